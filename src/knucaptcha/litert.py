"""Running a ``.tflite`` model with the LiteRT runtime, and the knucaptcha metadata inside the file.

A ``.tflite`` file is a flatbuffer whose ``metadata`` table maps names to
byte buffers; knucaptcha stores its ``knucaptcha.*`` key/value pairs there,
as one JSON object under the name ``knucaptcha``, so a ``.tflite`` file
describes itself exactly as an exported ONNX file does. The flatbuffer schema
ships with the runtime (``ai_edge_litert.schema_py_generated``), which is
imported only when a ``.tflite`` file is used: the base install never needs it.
Needs the ``litert`` extra (``ai-edge-litert``); never torch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from .errors import ModelError

METADATA_NAME = "knucaptcha"
"""Name of the flatbuffer metadata entry that holds knucaptcha's keys."""

FILE_IDENTIFIER = b"TFL3"
"""The flatbuffer file identifier of every TFLite model, at bytes 4..8."""


def is_tflite(path: Path) -> bool:
    """Whether ``path`` holds a TFLite flatbuffer (by its file identifier, not its name)."""
    with open(path, "rb") as handle:
        return handle.read(8)[4:8] == FILE_IDENTIFIER


def _runtime() -> ModuleType:
    """The ``ai_edge_litert`` package, or a :class:`ModelError` saying which extra installs it."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import ai_edge_litert.schema_py_generated as schema
    except ImportError:
        raise ModelError(
            "running or writing a .tflite model needs the LiteRT runtime: pip install 'knucaptcha[litert]'"
        ) from None
    return schema


def read_metadata(content: bytes) -> dict[str, str]:
    """The knucaptcha keys stored in a ``.tflite`` flatbuffer (empty if it has none)."""
    schema = _runtime()
    model = schema.Model.GetRootAs(content, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() is not None and entry.Name().decode() == METADATA_NAME:
            payload = model.Buffers(entry.Buffer()).DataAsNumpy()
            try:
                values = json.loads(payload.tobytes().decode("utf-8"))
            except (AttributeError, UnicodeDecodeError, json.JSONDecodeError):
                raise ModelError(f"the {METADATA_NAME!r} metadata of this .tflite file is not JSON") from None
            return {str(key): str(value) for key, value in values.items()}
    return {}


def weights_digest(content: bytes) -> str:
    """The hex SHA-256 of the constant data of every tensor in a ``.tflite`` flatbuffer ``content``.

    Each buffer a tensor refers to is hashed as its index and its bytes,
    lengths first, in index order; the metadata's own buffers are not among
    them, so :func:`embed_metadata` leaves the digest unchanged.

    Raises:
        ModelError: the file names a buffer it does not hold.
    """
    schema = _runtime()
    model = schema.Model.GetRootAs(content, 0)
    indices = {
        model.Subgraphs(graph).Tensors(tensor).Buffer()
        for graph in range(model.SubgraphsLength())
        for tensor in range(model.Subgraphs(graph).TensorsLength())
    }
    digest = hashlib.sha256()
    for index in sorted(indices - {0}):  # buffer 0 is the empty sentinel of tensors without data
        if index >= model.BuffersLength():
            raise ModelError(f"this .tflite file names buffer {index} but holds {model.BuffersLength()}")
        buffer = model.Buffers(index)
        if buffer.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
            data = content[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            data = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
        digest.update(index.to_bytes(8, "little") + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def embed_metadata(content: bytes, metadata: Mapping[str, str]) -> bytes:
    """``content`` (a ``.tflite`` flatbuffer) re-packed with ``metadata`` stored under ``knucaptcha``.

    An existing ``knucaptcha`` entry is replaced; the runtime ignores
    metadata it does not know, so the model computes exactly as before.
    """
    import flatbuffers  # a dependency of ai-edge-litert (and of onnxruntime)

    schema = _runtime()
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    if any(buffer.offset > 1 for buffer in model.buffers or []):
        # Buffers stored after the flatbuffer (models over 2 GB) would not survive re-packing.
        raise ModelError("this .tflite file keeps its weights outside the flatbuffer; cannot embed metadata")
    payload = schema.BufferT()
    payload.data = np.frombuffer(json.dumps(dict(metadata), sort_keys=True).encode("utf-8"), np.uint8)
    model.buffers.append(payload)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    kept = [m for m in model.metadata or [] if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata = [*kept, entry]
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


class LiteRtBackend:
    """Logits from a ``.tflite`` model on the LiteRT interpreter.

    The converted model has a fixed batch of one (the converter could not lower
    the CRNN's column reshape with a symbolic batch), so a batch runs image by
    image. An interpreter is not safe to call from two threads at once; a lock
    keeps :class:`~knucaptcha.inference.Solver` safe to share.
    """

    def __init__(self, content: bytes, threads: int = 0):
        _runtime()
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_content=content, num_threads=threads or None)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"not a loadable .tflite model: {str(error).splitlines()[0]}") from None
        (source,) = self._interpreter.get_input_details()
        (target,) = self._interpreter.get_output_details()
        self._input, self._output = source["index"], target["index"]
        self.input_shape: tuple[int | None, ...] = tuple(int(n) for n in source["shape"])
        self.output_shape: tuple[int | None, ...] = tuple(int(n) for n in target["shape"])
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, threads: int = 0) -> tuple[LiteRtBackend, dict[str, str]]:
        """The backend for the file at ``path`` and the knucaptcha metadata it carries."""
        content = path.read_bytes()
        try:
            backend = cls(content, threads)  # the interpreter verifies the flatbuffer before it is read
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None
        return backend, read_metadata(content)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The model's output ``(N, T, C)`` for inputs ``(N, 1, H, W)`` float32."""
        if inputs.shape[1:] != self.input_shape[1:]:
            raise ModelError(f"this .tflite model takes inputs of shape {self.input_shape}, not {inputs.shape[1:]}")
        outputs = []
        with self._lock:
            for image in inputs:
                self._interpreter.set_tensor(self._input, image[np.newaxis])
                self._interpreter.invoke()
                outputs.append(self._interpreter.get_tensor(self._output)[0])
        return np.stack(outputs)
