"""Dynamic int8 quantization of an exported ONNX model with ONNX Runtime's own tools (no torch).

Dynamic quantization stores weights as int8 and quantizes activations on the
fly, so it needs no calibration data. The quantized file keeps every
``knucaptcha.*`` metadata key and adds ``knucaptcha.quantization``, so it
loads in :class:`~knucaptcha.inference.Solver` like the original. Needs the
``onnx`` package (the ``quantize`` extra).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ModelError
from .inference import Solver
from .spec import METADATA_PREFIX

QUANTIZATION_KEY = f"{METADATA_PREFIX}quantization"
QUANTIZATION = "int8-dynamic"
"""The value of ``knucaptcha.quantization`` in files this module writes."""

QUANTIZED_OPS = ("MatMul", "LSTM")
"""Operator types quantized. Not ``Conv``: ONNX Runtime's ``ConvInteger`` kernel made a
CRNN 2.5× slower on CPU than float convolutions. The convolutions hold a fifth of the
``fast`` preset's weights (two fifths with the column projection, a convolution in the graph)."""


def quantize_int8(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write a dynamically int8-quantized copy of the knucaptcha ONNX model ``source`` to ``out``.

    The linear layers and LSTMs (nearly all the weights) become int8; the
    convolutions stay float (see :data:`QUANTIZED_OPS`). The result is loaded with :class:`Solver` before it is moved into place,
    so a file that would not load is never written.

    Raises:
        ModelError: ``source`` is not a knucaptcha ONNX model, or the ``onnx``
            package is missing.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ModelError("int8 quantization needs the onnx package: pip install 'knucaptcha[quantize]'") from None
    source, out = Path(source), Path(out)
    metadata = Solver.load(source).metadata  # rejects files that are not knucaptcha models
    if metadata.get(QUANTIZATION_KEY):
        raise ModelError(f"{source} is already quantized ({metadata[QUANTIZATION_KEY]})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / out.name
        # Shape inference and graph optimization first, as ONNX Runtime's quantizer asks for.
        quant_pre_process(str(source), str(prepared))
        quantize_dynamic(prepared, quantized, list(QUANTIZED_OPS), weight_type=QuantType.QInt8)
        model = onnx.load(str(quantized))
        onnx.helper.set_model_props(model, {**metadata, QUANTIZATION_KEY: QUANTIZATION})
        onnx.save(model, str(quantized))
        Solver.load(quantized)
        os.replace(quantized, out)
    return out
