"""Export a trained model to one self-describing ONNX file, and prove it computes what PyTorch does.

The file's metadata is :meth:`ModelSpec.to_metadata` plus any extra
``knucaptcha.*`` keys (preset, architecture, training summary, the reading
length) and the SHA-256 of its weights, so :class:`knucaptcha.inference.Solver`
needs nothing else and can tell a corrupted file.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch

from ..ctc import ReadOptions, with_read_length
from ..errors import ConfigError, ModelError
from ..integrity import WEIGHTS_KEY, onnx_weights_digest
from ..spec import METADATA_PREFIX, OUTPUT_KEY, ModelSpec
from .checkpoint import atomic_write, load_checkpoint
from .config import ArchConfig
from .model import Probabilities

OPSET = 17
PARITY_TOLERANCE = 1e-4
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def model_metadata(spec: ModelSpec, extra_metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The metadata an exported model file carries: :meth:`ModelSpec.to_metadata`, the output kind, ``extra_metadata``.

    Raises:
        ModelError: an extra key lacks the ``knucaptcha.`` prefix.
    """
    metadata = {**spec.to_metadata(), OUTPUT_KEY: "probabilities"}
    for key, value in (extra_metadata or {}).items():
        if not key.startswith(METADATA_PREFIX):
            raise ModelError(f"metadata key {key!r} must start with {METADATA_PREFIX!r}")
        metadata[key] = value
    return metadata


def run_metadata(
    preset: str, arch: ArchConfig, training: Mapping[str, object] | None = None, max_length: int | None = None
) -> dict[str, str]:
    """The ``knucaptcha.*`` keys that say how a model was built: preset, architecture, training summary,
    and the reading length its training data implies (:func:`trained_read_length`), if any."""
    metadata = {f"{METADATA_PREFIX}preset": preset, f"{METADATA_PREFIX}arch": json.dumps(arch.to_dict())}
    if training is not None:
        metadata[f"{METADATA_PREFIX}training"] = json.dumps(training)
    return with_read_length(metadata, trained_read_length(training, max_length))


def trained_read_length(training: Mapping[str, object] | None, max_length: int | None = None) -> int | None:
    """The reading length a model trained as ``training`` (the trainer's summary) describes should store.

    A model trained on generated captchas of a style whose labels all have
    one length (``knu``: 4) reads that many symbols by default: the style is
    what is known of the site's captchas, so an old checkpoint exported anew
    reads the style's length today. None for a labelled folder, a style of
    several lengths, one this version does not know, or one whose length is
    above the model's ``max_length``, if given.
    """
    from ..generator import get_style

    data = (training or {}).get("data")
    if not isinstance(data, Mapping) or data.get("kind") != "generated":
        return None
    try:
        style = get_style(str(data["style"]))
    except (KeyError, ConfigError):
        return None
    if style.min_length != style.max_length or (max_length is not None and style.max_length > max_length):
        return None
    return style.max_length


def export_onnx(
    model: torch.nn.Module,
    spec: ModelSpec,
    path: str | Path,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX: input ``image``, output ``probabilities``, dynamic batch.

    The graph ends in the softmax (:class:`Probabilities`), so solvers read
    probabilities straight from the runtime.

    The metadata stores the SHA-256 of the weights (:mod:`knucaptcha.integrity`).
    The parity check runs before the file is moved into place, so a model
    that would read differently on ONNX Runtime is never written.

    Raises:
        ModelError: extra metadata keys lack the ``knucaptcha.`` prefix, or the
            exported graph's output differs from PyTorch's by more than 1e-4.
    """
    path = Path(path)
    metadata = model_metadata(spec, extra_metadata)
    model = model.eval()
    height, width = spec.preprocess.height, spec.preprocess.width
    example = torch.zeros(1, 1, height, width)

    def write(temp: Path) -> None:
        # The TorchScript exporter maps nn.LSTM to one ONNX LSTM node and needs no
        # onnxscript; torch 2.13 warns that it is deprecated and traces nn.LSTM's shape
        # checks, neither of which is the caller's concern (parity is checked below).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(
                Probabilities(model),
                (example,),
                str(temp),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
            )
        graph = onnx.load(str(temp))
        drop_zero_lstm_states(graph.graph)
        digest = onnx_weights_digest(graph.SerializeToString())  # over the weights only, so storing it keeps it true
        onnx.helper.set_model_props(graph, {**metadata, WEIGHTS_KEY: digest})
        onnx.save(graph, str(temp))
        check_parity(model, temp, spec)

    atomic_write(path, write)
    return path


def checkpoint_export_args(
    checkpoint: str | Path, read_length: int | None = None
) -> tuple[torch.nn.Module, ModelSpec, dict[str, str]]:
    """The model, spec and run metadata (preset, architecture, training summary, reading length) an exporter needs.

    ``checkpoint`` is a ``.pt`` file, a run folder or a bundled model's name.
    ``read_length`` replaces the reading length the training summary implies
    (:func:`trained_read_length`); 0 stores none, None keeps it.

    Raises:
        ConfigError: ``read_length`` is above the model's maximum length.
    """
    loaded = load_checkpoint(checkpoint)
    ReadOptions(length=read_length).check(loaded.spec.charset, loaded.spec.max_length)
    metadata = run_metadata(loaded.preset, loaded.arch, loaded.state.get("training"), loaded.spec.max_length)
    return loaded.model, loaded.spec, with_read_length(metadata, read_length)


def export_checkpoint_onnx(checkpoint: str | Path, path: str | Path, read_length: int | None = None) -> Path:
    """Export the model in ``checkpoint`` to ``path`` with this version's exporter, keeping its run metadata;
    ``read_length`` as in :func:`checkpoint_export_args`."""
    model, spec, extra = checkpoint_export_args(checkpoint, read_length)
    return export_onnx(model, spec, path, extra)


def drop_zero_lstm_states(graph: onnx.GraphProto) -> None:
    """Let each LSTM start from ONNX's implicit zero state instead of one computed per call.

    The TorchScript exporter builds ``initial_h``/``initial_c`` as a zero
    tensor of the batch's shape at run time (Shape, Gather, Unsqueeze,
    Concat, ConstantOfShape: five small ops in every solve). ONNX's LSTM
    starts from zeros when those inputs are omitted, so they are cut and the
    ops that only fed them pruned.
    """
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        for index in range(5, min(len(node.input), 7)):  # initial_h, initial_c
            producer = producers.get(node.input[index])
            if producer is not None and producer.op_type == "ConstantOfShape" and _fills_zero(producer):
                node.input[index] = ""
        while node.input and not node.input[-1]:
            node.input.pop()
    _prune_unused(graph)


def _fills_zero(node: onnx.NodeProto) -> bool:
    """Whether a ConstantOfShape node fills with zero (its default when ``value`` is absent)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            return not onnx.numpy_helper.to_array(attribute.t).any()
    return True


def _prune_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes none of whose outputs is used by another node or by the graph's outputs."""
    while True:
        used = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        dead = [node for node in graph.node if not any(output in used for output in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def check_parity(model: torch.nn.Module, path: Path, spec: ModelSpec, seed: int = 0) -> float:
    """Max abs difference between the ONNX file's output and ``model``'s probabilities on the same inputs.

    The file is opened through :class:`~knucaptcha.inference.Solver` (so its
    metadata must read back as ``spec``) and through a raw session for the
    output; batches of 1 and 5 exercise the dynamic batch axis.

    Raises:
        ModelError: the metadata or the outputs disagree.
    """
    from ..inference import Solver

    solver = Solver.load(path)
    if solver.spec != spec:
        raise ModelError(f"exported metadata reads back as {solver.spec}, not {spec}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    shape = (1, spec.preprocess.height, spec.preprocess.width)
    worst = 0.0
    for count in (1, 5):
        inputs = (rng.random((count, *shape)) > 0.8).astype(np.float32)
        onnx_output = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
        with torch.no_grad():
            torch_output = Probabilities(model).eval()(torch.from_numpy(inputs)).numpy()
        if onnx_output.shape != torch_output.shape:
            raise ModelError(f"ONNX output has shape {onnx_output.shape}, PyTorch's {torch_output.shape}")
        worst = max(worst, float(np.abs(onnx_output - torch_output).max()))
    if worst > PARITY_TOLERANCE:
        raise ModelError(f"ONNX output differs from PyTorch's by {worst:.2e} (> {PARITY_TOLERANCE:g})")
    return worst
