"""A model file's integrity: the SHA-256 of its weights, stored in its metadata at export and checked at load.

The digest covers the weights and never the metadata, so writing it into the
file (or stamping a reading length later) leaves it unchanged. For an ONNX
file it is taken over the graph's initializers, where the exporter and the
quantizer put every weight, in the order of their names; it is read straight
from the protobuf wire format, so checking it needs neither the ``onnx``
package nor anything but the standard library. (``.tflite`` files are hashed
by :func:`knucaptcha.litert.weights_digest`.) Files written before the digest
existed carry none and load unchecked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import ModelError
from .spec import METADATA_PREFIX

WEIGHTS_KEY = f"{METADATA_PREFIX}weights_sha256"
"""Metadata key holding the hex SHA-256 of the model's weights (:func:`onnx_weights_digest`)."""

# Field numbers in onnx.proto: ModelProto.graph, GraphProto.initializer and .sparse_initializer,
# TensorProto.name, SparseTensorProto.values (a TensorProto that carries the sparse tensor's name).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_GRAPH_SPARSE_INITIALIZER = 15
_TENSOR_NAME = 8
_SPARSE_VALUES = 1

_LENGTH_DELIMITED = 2


class _Malformed(ValueError):
    """The bytes are not a well-formed protobuf message."""


def onnx_weights_digest(content: bytes) -> str:
    """The hex SHA-256 of the weights in an ONNX file's bytes ``content``, whatever its metadata says.

    Each initializer (dense, then sparse) is hashed as its name and its
    serialized tensor, lengths first, in name order: the digest is the same
    however the graph's nodes, inputs or metadata are written.

    Raises:
        ModelError: ``content`` is not a well-formed ONNX protobuf.
    """
    try:
        graphs = [value for number, value in _fields(content) if number == _MODEL_GRAPH]
        tensors = [
            (_tensor_name(value, sparse=number == _GRAPH_SPARSE_INITIALIZER), number, value)
            for graph in graphs
            for number, value in _fields(graph)
            if number in (_GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER)
        ]
    except _Malformed as error:
        raise ModelError(f"not a well-formed ONNX file ({error})") from None
    digest = hashlib.sha256()
    for name, number, tensor in sorted(tensors, key=lambda entry: (entry[1], entry[0])):
        for part in (name, tensor):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()


def check_weights(path: Path, metadata: Mapping[str, str], actual: str) -> None:
    """Refuse the model at ``path`` if its metadata stores a weights digest other than ``actual``.

    A file without one (written before knucaptcha stored it) passes.

    Raises:
        ModelError: the digests differ: the file was corrupted or its weights changed after export.
    """
    stored = metadata.get(WEIGHTS_KEY)
    if stored is not None and stored.strip().lower() != actual:
        raise ModelError(
            f"{path}: its weights do not match the SHA-256 stored at export (the file is corrupt or was "
            f"altered; stored {stored[:12]}…, found {actual[:12]}…); re-export it, or load it with "
            "verify=False (--no-verify) to skip the check"
        )


def _tensor_name(tensor: memoryview, sparse: bool) -> bytes:
    """The name of a serialized TensorProto (a SparseTensorProto's is that of its values)."""
    if sparse:
        values = [value for number, value in _fields(tensor) if number == _SPARSE_VALUES]
        return _tensor_name(values[0], sparse=False) if values else b""
    names = [value for number, value in _fields(tensor) if number == _TENSOR_NAME]
    return bytes(names[-1]) if names else b""


def _fields(message: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """The length-delimited fields of a protobuf message, as (field number, bytes); other fields are skipped."""
    view = memoryview(message)
    position = 0
    while position < len(view):
        key, position = _varint(view, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(view, position)
            continue
        size = {1: 8, 5: 4}.get(wire_type)
        if wire_type == _LENGTH_DELIMITED:
            size, position = _varint(view, position)
        if size is None or number == 0:
            raise _Malformed(f"field {number} has wire type {wire_type} at byte {position}")
        if position + size > len(view):
            raise _Malformed(f"field {number} runs past the end of its message")
        if wire_type == _LENGTH_DELIMITED:
            yield number, view[position : position + size]
        position += size


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    """The base-128 integer starting at ``position``, and the position after it."""
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(view):
            raise _Malformed("a number runs past the end of its message")
        byte = view[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise _Malformed(f"a number longer than 10 bytes ends at byte {position}")
