"""int8 quantization of an exported ONNX model with ONNX Runtime's own tools (no torch).

The LSTMs and linear layers are quantized dynamically: int8 weights,
activations quantized on the fly, no data needed. Given calibration images,
the convolutions become int8 too, statically: their activation ranges are
measured on those images once, and ONNX Runtime runs them as integer
convolutions (its dynamic ``ConvInteger`` kernel was 2.5× slower than float;
with static ones, ``benchmarks/compare_peers.py`` read the ``wide`` default 1.45×
as fast as fp32 on one thread, against 1.1× with float convolutions). The quantized file keeps every ``knucaptcha.*`` metadata key
and adds ``knucaptcha.quantization`` (and the SHA-256 of its own int8 weights), so it loads in
:class:`~knucaptcha.inference.Solver` like the original. Needs the ``onnx``
package (the ``quantize`` extra).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .ctc import ReadOptions, with_read_length
from .errors import ModelError
from .inference import Solver
from .integrity import WEIGHTS_KEY, onnx_weights_digest
from .preprocess import ImageSource, to_batch
from .spec import METADATA_PREFIX

QUANTIZATION_KEY = f"{METADATA_PREFIX}quantization"
QUANTIZATION = "int8-dynamic"
"""``knucaptcha.quantization`` of a file whose convolutions stayed float (no calibration images)."""
QUANTIZATION_CALIBRATED = "int8-dynamic+static-conv"
"""``knucaptcha.quantization`` of a file whose convolutions were calibrated too."""

DYNAMIC_OPS = ("MatMul", "LSTM")
"""Operator types quantized dynamically: nearly all of the sequence stage's weights."""
STATIC_OPS = ("Conv",)
"""Operator types quantized from calibration images; the column projection is a convolution too."""
CALIBRATION_BATCH = 32
"""Images per calibration run of the model."""
CALIBRATION_COUNT = 256
"""Generated captchas ``knucaptcha export`` calibrates on by default: enough for stable ranges."""
CALIBRATION_SEED = 9_002
"""Their seed, apart from the export check's (9001) and every training and test seed."""


def quantize_int8(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calibration: Sequence[ImageSource] = (),
    read_length: int | None = None,
) -> Path:
    """Write an int8-quantized copy of the knucaptcha ONNX model ``source`` to ``out``.

    The linear layers and LSTMs become int8 dynamically; with ``calibration``
    images (a few hundred of the captchas the model will read), the
    convolutions become int8 too, with activation ranges measured on them.
    The result is loaded with :class:`Solver` before it is moved into place,
    so a file that would not load is never written. ``read_length`` replaces
    the source's reading length (0 stores none; None keeps it).

    Raises:
        ModelError: ``source`` is not a knucaptcha ONNX model, or the ``onnx``
            package is missing.
        ConfigError: ``read_length`` is above the model's maximum length.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ModelError("int8 quantization needs the onnx package: pip install 'knucaptcha[quantize]'") from None
    source, out = Path(source), Path(out)
    solver = Solver.load(source)  # rejects files that are not knucaptcha models
    ReadOptions(length=read_length).check(solver.spec.charset, solver.spec.max_length)
    metadata = with_read_length(solver.metadata, read_length)
    if metadata.get(QUANTIZATION_KEY):
        raise ModelError(f"{source} is already quantized ({metadata[QUANTIZATION_KEY]})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch, _quiet_quantizer():
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / out.name
        # Shape inference and graph optimization first, as ONNX Runtime's quantizer asks for.
        quant_pre_process(str(source), str(prepared))
        if calibration:
            calibrated = Path(scratch) / "calibrated.onnx"
            inputs = to_batch(calibration, solver.spec.preprocess)
            name = onnx.load(str(prepared)).graph.input[0].name
            batches = iter([{name: inputs[i : i + CALIBRATION_BATCH]} for i in range(0, len(inputs), CALIBRATION_BATCH)])
            quantize_static(
                prepared,
                calibrated,
                _Batches(batches),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(STATIC_OPS),
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            prepared = calibrated
        quantize_dynamic(prepared, quantized, list(DYNAMIC_OPS), weight_type=QuantType.QInt8)
        model = onnx.load(str(quantized))
        kind = QUANTIZATION_CALIBRATED if calibration else QUANTIZATION
        digest = onnx_weights_digest(model.SerializeToString())  # the int8 weights, not the source's
        onnx.helper.set_model_props(model, {**metadata, QUANTIZATION_KEY: kind, WEIGHTS_KEY: digest})
        onnx.save(model, str(quantized))
        Solver.load(quantized)
        os.replace(quantized, out)
    return out


class _Batches:
    """ONNX Runtime's calibration reader protocol over ready input batches."""

    def __init__(self, batches: Iterator[dict[str, object]]):
        self._batches = batches

    def get_next(self) -> dict[str, object] | None:
        return next(self._batches, None)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Silence the quantizer's root-logger warnings while it runs (for one, it mistakes our own
    static pass for a model quantized in training); they are not the user's to act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
