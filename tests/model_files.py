"""Model files broken on purpose, for the tests of what loading a model checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def with_metadata(source: Path, target: Path, changes: Mapping[str, str]) -> Path:
    """A copy of the ONNX file ``source`` at ``target`` with the metadata entries in ``changes`` set,
    the weights untouched (so their stored digest still holds)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    helper.set_model_props(model, {**{prop.key: prop.value for prop in model.metadata_props}, **changes})
    onnx.save(model, str(target))
    return target


def flip_weight_bit(source: Path, target: Path) -> Path:
    """A copy of the ONNX file ``source`` at ``target`` with one bit flipped in the middle of its largest
    initializer's bytes: a file corrupted on disk or in transit, which ONNX Runtime still loads."""
    import onnx

    content = bytearray(source.read_bytes())
    largest = max(onnx.load(str(source)).graph.initializer, key=lambda tensor: len(tensor.raw_data))
    start = bytes(content).index(largest.raw_data)
    content[start + len(largest.raw_data) // 2] ^= 0x01
    target.write_bytes(bytes(content))
    return target
