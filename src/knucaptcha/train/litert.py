"""Convert a trained CRNN to one self-describing ``.tflite`` file with litert-torch, and prove it reads the same.

litert-torch lowers the PyTorch graph itself (``torch.export``, then the
LiteRT converter), so the bidirectional LSTMs become plain TFLite builtin ops:
the file runs on the bare ``ai-edge-litert`` interpreter, without the
TensorFlow "select ops" the seed's Keras conversion needed. The batch is fixed
at one: the converter could not lower the column reshape (now a convolution;
not retried) with a symbolic batch.
Needs the ``tflite`` extra (litert-torch, ai-edge-litert).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from ..errors import ModelError
from ..inference import Solver
from ..integrity import WEIGHTS_KEY
from ..litert import LiteRtBackend, embed_metadata, weights_digest
from ..spec import ModelSpec
from .checkpoint import atomic_write
from .export import checkpoint_export_args, model_metadata
from .model import Probabilities

PARITY_TOLERANCE = 1e-4
"""Largest allowed difference between the ``.tflite`` file's probabilities and PyTorch's."""


def _converter() -> ModuleType:
    try:
        import litert_torch
    except ImportError:
        raise ModelError("converting to .tflite needs litert-torch: pip install 'knucaptcha[tflite]'") from None
    return litert_torch


def export_tflite(
    model: torch.nn.Module,
    spec: ModelSpec,
    path: str | Path,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` to ``path`` as a ``.tflite`` file carrying ``spec`` (and ``extra_metadata``) as metadata.

    The metadata stores the SHA-256 of the tensors' constant data
    (:func:`knucaptcha.litert.weights_digest`), checked at load. The parity
    check runs before the file is moved into place, so a file that reads
    differently from PyTorch is never written.

    Raises:
        ModelError: litert-torch is missing, an extra metadata key lacks the
            ``knucaptcha.`` prefix, or the converted logits differ from
            PyTorch's by more than :data:`PARITY_TOLERANCE`.
    """
    litert_torch = _converter()
    metadata = model_metadata(spec, extra_metadata)
    model = model.eval()
    example = torch.zeros(1, 1, spec.preprocess.height, spec.preprocess.width)
    # litert-torch prints its progress on stdout, where the CLI keeps its results; torch.export
    # warns about the LSTM's cached weights and its own deprecations, none of it the caller's concern.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
        warnings.simplefilter("ignore", FutureWarning)
        content = litert_torch.convert(Probabilities(model), (example,)).model_content()
    content = embed_metadata(content, {**metadata, WEIGHTS_KEY: weights_digest(content)})
    check_parity(model, content, spec)

    def write(temp: Path) -> None:
        temp.write_bytes(content)
        if Solver.load(temp).spec != spec:
            raise ModelError("the .tflite metadata does not read back as the model's spec")

    path = Path(path)
    atomic_write(path, write)
    return path


def check_parity(model: torch.nn.Module, content: bytes, spec: ModelSpec, seed: int = 0, count: int = 4) -> float:
    """Max abs difference between the ``.tflite`` flatbuffer ``content``'s output and ``model``'s probabilities.

    Raises:
        ModelError: the shapes differ or the outputs differ by more than :data:`PARITY_TOLERANCE`.
    """
    shape = (count, 1, spec.preprocess.height, spec.preprocess.width)
    inputs = (np.random.default_rng(seed).random(shape) > 0.8).astype(np.float32)
    converted = LiteRtBackend(content).run(inputs)
    with torch.no_grad():
        expected = Probabilities(model).eval()(torch.from_numpy(inputs)).numpy()
    if converted.shape != expected.shape:
        raise ModelError(f".tflite output has shape {converted.shape}, PyTorch's {expected.shape}")
    worst = float(np.abs(converted - expected).max())
    if worst > PARITY_TOLERANCE:
        raise ModelError(f".tflite output differs from PyTorch's by {worst:.2e} (> {PARITY_TOLERANCE:g})")
    return worst


def export_checkpoint_tflite(checkpoint: str | Path, path: str | Path) -> Path:
    """Convert the model in ``checkpoint`` (a ``.pt`` file, a run folder or ``default``) to ``path``.

    The file records the preset, the architecture and the training summary
    when the checkpoint has one, as the exported ONNX file does.
    """
    model, spec, extra = checkpoint_export_args(checkpoint)
    return export_tflite(model, spec, path, extra)
