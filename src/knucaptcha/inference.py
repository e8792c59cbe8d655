"""Solving captchas with an exported model on ONNX Runtime: numpy and Pillow only, never torch.

A :class:`Solver` owns one backend that runs the model on inputs: an ONNX
Runtime session (safe to call from many threads at once), or for a ``.tflite``
file a LiteRT interpreter (:mod:`knucaptcha.litert`, imported only then).
Per-call options are arguments, never mutations, so one solver can serve a
whole web app.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Protocol, Union

import numpy as np
import onnxruntime as ort

from . import litert  # light: it imports the LiteRT runtime only when a .tflite file is opened
from .ctc import Prediction, ReadOptions, decode, softmax, stored_read_length
from .errors import ChannelMismatchError, CharsetError, ConfigError, MissingFileError, ModelError
from .integrity import WEIGHTS_KEY, check_weights, onnx_weights_digest
from .preprocess import ImageSource, to_checked_batch
from .spec import METADATA_PREFIX, OUTPUT_KEY, ModelSpec

ModelRef = Union[str, os.PathLike]
"""A model file path, or the name of a model shipped in the package (``default``)."""

BUNDLED_MODELS = {"default": "default.onnx", "knu2021": "knu2021.onnx", "opaque": "opaque.onnx"}


def bundled_path(name: str, filename: str) -> Path:
    """The file ``filename`` shipped in ``knucaptcha/models/`` for the bundled model ``name``.

    Raises:
        ModelError: this installation lacks the file.
    """
    path = Path(str(resources.files("knucaptcha") / "models" / filename))
    if not path.is_file():
        raise ModelError(f"the bundled model {name!r} is missing from this installation ({path})")
    return path


def resolve_model(model: ModelRef | None = None) -> Path:
    """The file behind a model reference: a bundled name (``None`` means ``default``) or a path."""
    reference = "default" if model is None else model
    if isinstance(reference, str) and reference in BUNDLED_MODELS:
        return bundled_path(reference, BUNDLED_MODELS[reference])
    path = Path(reference)
    if not path.exists():
        names = ", ".join(sorted(BUNDLED_MODELS))
        raise MissingFileError(f"no such model file: {path} (bundled models: {names})")
    if not path.is_file():
        raise ModelError(f"not a model file: {path}")
    return path


class Backend(Protocol):
    """What a :class:`Solver` runs: preprocessed inputs ``(N, 1, H, W)`` to the model's output ``(N, T, C)``.

    ``input_shape`` and ``output_shape`` are the shapes the file declares,
    None for a dimension it leaves open (such as the batch).
    """

    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]

    def run(self, inputs: np.ndarray) -> np.ndarray: ...


class OnnxBackend:
    """An ONNX model's output on one ONNX Runtime CPU session."""

    def __init__(self, session: ort.InferenceSession):
        self._session = session
        source, target = session.get_inputs()[0], session.get_outputs()[0]
        self._input, self._output = source.name, target.name
        self.input_shape = _declared(source.shape)
        self.output_shape = _declared(target.shape)

    @classmethod
    def open(cls, path: Path, threads: int = 1) -> tuple[OnnxBackend, dict[str, str]]:
        """The backend for the ONNX file at ``path`` and the metadata it carries."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # the runtime's own warnings are not the caller's concern
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise ModelError(f"{path} is not a loadable ONNX model: {str(error).splitlines()[0]}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            described = ", ".join(f"{source.name} ({source.type})" for source in inputs)
            raise ModelError(f"{path} takes the inputs {described}; a knucaptcha model takes one float image tensor")
        return cls(session), dict(session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input: inputs})[0]


class Solver:
    """Reads captchas with one exported knucaptcha model.

    Build it with :meth:`load`. The model's own metadata says how to
    preprocess and decode, so nothing else needs configuring. ``name`` is what
    messages call it; ``digest``, the SHA-256 of the whole model file, tells one
    model from another, so that what it read can be cached and redone when it changes.
    ``read_length`` is the number of symbols the file says it reads when a
    caller gives no ``length`` (None: any number; see :meth:`resolve_options`).

    Raises:
        ConfigError: the metadata stores a reading length outside 1 .. ``spec.max_length``.
    """

    def __init__(self, backend: Backend, spec: ModelSpec, metadata: dict[str, str], name: str, digest: str):
        self._backend = backend
        self.spec = spec
        self.metadata = metadata
        self.name = name
        self.digest = digest
        self.read_length = stored_read_length(metadata, spec.max_length)
        # Files from before the softmax moved into the graph output logits.
        self._needs_softmax = metadata.get(OUTPUT_KEY, "logits") == "logits"

    @classmethod
    def load(cls, model: ModelRef | None = None, *, threads: int = 1, verify: bool = True) -> Solver:
        """Load a model file or a bundled model by name (default: the shipped ``default``).

        The file is checked against itself before it is used: its metadata's
        format version must be one this version reads, its input must be the
        image shape its preprocessing makes and its output must have one class
        per charset symbol plus the blank (:func:`check_shapes`). With
        ``verify``, the weights must also match the SHA-256 stored at export
        (:mod:`knucaptcha.integrity`); files without one load unchecked.

        Args:
            model: a path to a ``.onnx`` file or a ``.tflite`` file (run with
                LiteRT; needs the ``litert`` extra), or a bundled model's name.
            threads: the runtime's intra-op threads; 0 lets the runtime choose.
                One is the default: a captcha is too small to split, and on a
                busy 2-core machine a second thread made the p90 latency 10×
                worse and halved batch throughput.
            verify: check the weights against the digest stored at export;
                False loads a file whose weights were changed on purpose.

        Raises:
            MissingFileError: the path does not exist.
            ModelError: the file is not a loadable model, not one of knucaptcha's,
                does not match its own metadata, or (with ``verify``) is corrupt.
        """
        path = resolve_model(model)
        content = path.read_bytes()
        weights_digest: Callable[[bytes], str]
        if litert.is_tflite(path):
            kind, weights_digest = "TFLite", litert.weights_digest
            backend, metadata = litert.LiteRtBackend.open(path, threads)
        else:
            kind, weights_digest = "ONNX", onnx_weights_digest
            backend, metadata = OnnxBackend.open(path, threads)
        if not any(key.startswith(METADATA_PREFIX) for key in metadata):
            raise ModelError(f"{path} is a {kind} model but not a knucaptcha model (no knucaptcha metadata)")
        if metadata.get(OUTPUT_KEY, "logits") not in ("logits", "probabilities"):
            raise ModelError(f"{path}: unknown model output {metadata[OUTPUT_KEY]!r} (logits or probabilities)")
        name = path.stem if model is None or not isinstance(model, str) or model not in BUNDLED_MODELS else model
        try:
            spec = ModelSpec.from_metadata(metadata)
            solver = cls(backend, spec, metadata, name, hashlib.sha256(content).hexdigest())
        except (ConfigError, CharsetError) as error:
            raise ModelError(f"{path}: {error}") from None
        check_shapes(backend, spec, path)
        if verify and WEIGHTS_KEY in metadata:
            try:
                actual = weights_digest(content)
            except ModelError as error:
                raise ModelError(f"{path}: {error}") from None
            check_weights(path, metadata, actual)
        return solver

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Per-frame class probabilities ``(N, T, C)`` for preprocessed inputs ``(N, 1, H, W)``."""
        output = self._backend.run(inputs)
        return softmax(output) if self._needs_softmax else output

    def solve(
        self,
        image: ImageSource,
        *,
        beam_width: int = 0,
        symbols: str | None = None,
        length: int | None = None,
        strict: bool = False,
    ) -> Prediction:
        """Read one image (bytes, path, PIL image or array); ``beam_width``, ``symbols``, ``length``
        and ``strict`` are those of :class:`ReadOptions` (and raise as :meth:`read` does): no ``length``
        reads the model's :attr:`read_length`, ``length=0`` any number of symbols."""
        return self.read([image], ReadOptions(beam_width, symbols, length, strict))[0]

    def solve_batch(
        self,
        images: Sequence[ImageSource],
        *,
        beam_width: int = 0,
        batch_size: int = 64,
        symbols: str | None = None,
        length: int | None = None,
        strict: bool = False,
    ) -> list[Prediction]:
        """Read several images, up to ``batch_size`` at a time; the options as in :meth:`solve`."""
        return self.read(images, ReadOptions(beam_width, symbols, length, strict), batch_size=batch_size)

    def read(
        self, images: Sequence[ImageSource], options: ReadOptions = ReadOptions(), *, batch_size: int = 64
    ) -> list[Prediction]:
        """Read several images with ``options``, running the model on up to ``batch_size`` at a time.

        Options that give no length read the model's own (:meth:`resolve_options`).
        An image of another kind than the model was trained on (an opaque one
        for a model of transparent captchas) is read with a warning in its
        :attr:`Prediction.warnings`, or with ``options.strict`` refused.

        Raises:
            ConfigError: ``batch_size`` below 1, or options this model cannot
                follow (:meth:`check_options`), even for no images.
            ImageError: an image that cannot be read (see :func:`~knucaptcha.load_image`).
            ChannelMismatchError: with ``options.strict``, the first image of the wrong kind.
        """
        if batch_size < 1:
            raise ConfigError("batch_size must be positive")
        options = self.resolve_options(options)
        self.check_options(options)
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            inputs, mismatches = to_checked_batch(images[start : start + batch_size], self.spec.preprocess)
            if options.strict:
                _refuse_mismatch(mismatches, start, len(images))
            readings = decode(self.probabilities(inputs), self.spec.charset, options)
            predictions.extend(
                reading if mismatch is None else replace(reading, warnings=(mismatch,))
                for reading, mismatch in zip(readings, mismatches)
            )
        return predictions

    def check_options(self, options: ReadOptions) -> None:
        """Refuse an alphabet or a reading length this model cannot read (a :class:`ConfigError`).

        For callers that must fail before expensive or irreversible work (a
        download, opening a port, reading a request body) rather than at the first solve.
        """
        options.check(self.spec.charset, self.spec.max_length)

    def resolve_options(self, options: ReadOptions) -> ReadOptions:
        """What this model reads with ``options``: its :attr:`read_length` where they give no ``length``.

        A file without a reading length, or ``length=0``, reads any number of
        symbols; a given length always wins. What :meth:`read` reads with, so
        what a report or a cache of readings should record.
        """
        if options.length is not None or self.read_length is None:
            return options
        return replace(options, length=self.read_length)


def _refuse_mismatch(mismatches: list[str | None], start: int, total: int) -> None:
    """Raise :class:`ChannelMismatchError` for the first mismatch, naming the image's place when there are several."""
    for index, mismatch in enumerate(mismatches, start=start + 1):
        if mismatch is not None:
            raise ChannelMismatchError(mismatch if total == 1 else f"image {index} of {total}: {mismatch}")


def check_shapes(backend: Backend, spec: ModelSpec, path: Path) -> None:
    """Refuse a model whose input or output does not fit its own metadata.

    The input must be ``(batch, 1, height, width)`` as ``spec.preprocess``
    makes it, and the output ``(batch, frames, classes)`` with one class per
    charset symbol plus the blank: a charset that does not match the output
    would otherwise misread or fail at the first solve. Dimensions the file
    leaves open are taken on trust, except the output's: one run on a blank
    image measures them.

    Raises:
        ModelError: naming ``path`` and both shapes.
    """
    height, width = spec.preprocess.height, spec.preprocess.width
    if not _fits(backend.input_shape, (None, 1, height, width)):
        raise ModelError(
            f"{path}: the model takes inputs of shape {_shown(backend.input_shape)}, but the preprocessing in "
            f"its metadata makes (batch, 1, {height}, {width})"
        )
    output = backend.output_shape
    if len(output) != 3 or output[-1] is None:
        output = _probe(backend, spec, path)
    if len(output) != 3:
        raise ModelError(f"{path}: the model outputs shape {_shown(output)}, not (batch, frames, classes)")
    symbols = len(spec.charset)
    if output[-1] != spec.charset.num_classes:
        raise ModelError(
            f"{path}: the model outputs {output[-1]} classes per frame, but the charset in its metadata has "
            f"{symbols} symbols, {symbols + 1} classes with the blank; the metadata belongs to another model"
        )


def _declared(shape: Sequence[object] | None) -> tuple[int | None, ...]:
    """A runtime's declared shape with every open dimension (a name, None, or -1) as None."""
    return tuple(dim if isinstance(dim, int) and dim >= 0 else None for dim in shape or ())


def _fits(shape: tuple[int | None, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(a is None or b is None or a == b for a, b in zip(shape, expected))


def _shown(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if dim is None else str(dim) for dim in shape) + ")"


def _probe(backend: Backend, spec: ModelSpec, path: Path) -> tuple[int | None, ...]:
    """The output shape of one run on a blank image, for a file that leaves it open."""
    blank = np.zeros((1, 1, spec.preprocess.height, spec.preprocess.width), np.float32)
    try:
        return tuple(backend.run(blank).shape)
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{path}: the model does not run on a blank image: {str(error).splitlines()[0]}") from None
