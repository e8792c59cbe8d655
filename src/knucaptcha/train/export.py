"""Export a trained model to one self-describing ONNX file, and prove it computes what PyTorch does.

The file's metadata is :meth:`ModelSpec.to_metadata` plus any extra
``knucaptcha.*`` keys (preset, architecture, training summary), so
:class:`knucaptcha.inference.Solver` needs nothing else.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..errors import ModelError
from ..spec import METADATA_PREFIX, ModelSpec
from .checkpoint import atomic_write
from .config import ArchConfig

OPSET = 17
PARITY_TOLERANCE = 1e-4
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def model_metadata(spec: ModelSpec, extra_metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The metadata an exported model file carries: :meth:`ModelSpec.to_metadata` plus ``extra_metadata``.

    Raises:
        ModelError: an extra key lacks the ``knucaptcha.`` prefix.
    """
    metadata = dict(spec.to_metadata())
    for key, value in (extra_metadata or {}).items():
        if not key.startswith(METADATA_PREFIX):
            raise ModelError(f"metadata key {key!r} must start with {METADATA_PREFIX!r}")
        metadata[key] = value
    return metadata


def run_metadata(preset: str, arch: ArchConfig, training: Mapping[str, object] | None = None) -> dict[str, str]:
    """The ``knucaptcha.*`` keys that say how a model was built: preset, architecture, training summary."""
    metadata = {f"{METADATA_PREFIX}preset": preset, f"{METADATA_PREFIX}arch": json.dumps(arch.to_dict())}
    if training is not None:
        metadata[f"{METADATA_PREFIX}training"] = json.dumps(training)
    return metadata


def export_onnx(
    model: torch.nn.Module,
    spec: ModelSpec,
    path: str | Path,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (in eval mode) to ``path`` as ONNX with input ``image`` (dynamic batch) and output ``logits``.

    The parity check runs before the file is moved into place, so a model
    that would read differently on ONNX Runtime is never written.

    Raises:
        ModelError: extra metadata keys lack the ``knucaptcha.`` prefix, or the
            exported graph's logits differ from PyTorch's by more than 1e-4.
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
                model,
                (example,),
                str(temp),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
            )
        graph = onnx.load(str(temp))
        onnx.helper.set_model_props(graph, metadata)
        onnx.save(graph, str(temp))
        check_parity(model, temp, spec)

    atomic_write(path, write)
    return path


def check_parity(model: torch.nn.Module, path: Path, spec: ModelSpec, seed: int = 0) -> float:
    """Max abs difference of logits between ``model`` and the ONNX file on the same inputs.

    The file is opened through :class:`~knucaptcha.inference.Solver` (so its
    metadata must read back as ``spec``) and through a raw session for the
    logits; batches of 1 and 5 exercise the dynamic batch axis.

    Raises:
        ModelError: the metadata or the logits disagree.
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
        onnx_logits = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
        with torch.no_grad():
            torch_logits = model.eval()(torch.from_numpy(inputs)).numpy()
        if onnx_logits.shape != torch_logits.shape:
            raise ModelError(f"ONNX logits have shape {onnx_logits.shape}, PyTorch's {torch_logits.shape}")
        worst = max(worst, float(np.abs(onnx_logits - torch_logits).max()))
    if worst > PARITY_TOLERANCE:
        raise ModelError(f"ONNX logits differ from PyTorch's by {worst:.2e} (> {PARITY_TOLERANCE:g})")
    return worst
