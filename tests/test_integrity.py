"""The SHA-256 of a model's weights: stored at export (fp32 and int8), independent of the metadata,
checked at load unless told not to; files from before it existed load unchecked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest

from knucaptcha.ctc import READ_LENGTH_KEY
from knucaptcha.errors import ModelError
from knucaptcha.inference import Solver
from knucaptcha.integrity import WEIGHTS_KEY, onnx_weights_digest
from model_files import flip_weight_bit, with_metadata


def reference_digest(path: Path) -> str:
    """The digest as documented, computed with the ``onnx`` package rather than the wire-format reader."""
    digest = hashlib.sha256()
    for tensor in sorted(onnx.load(str(path)).graph.initializer, key=lambda tensor: tensor.name.encode()):
        for part in (tensor.name.encode(), tensor.SerializeToString()):
            digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()


def test_the_digest_covers_the_weights_in_name_order(exported_model: Path, linear_model: Path) -> None:
    for path in (exported_model, linear_model):
        assert onnx_weights_digest(path.read_bytes()) == reference_digest(path)


def test_the_digest_ignores_the_metadata_and_the_order_of_initializers(exported_model: Path, tmp_path: Path) -> None:
    digest = onnx_weights_digest(exported_model.read_bytes())
    stamped = with_metadata(exported_model, tmp_path / "stamped.onnx", {READ_LENGTH_KEY: "3", WEIGHTS_KEY: "x"})
    assert onnx_weights_digest(stamped.read_bytes()) == digest
    model = onnx.load(str(exported_model))
    initializers = list(model.graph.initializer)[::-1]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    assert onnx_weights_digest(model.SerializeToString()) == digest


def test_malformed_bytes_are_a_model_error() -> None:
    with pytest.raises(ModelError, match="not a well-formed ONNX file"):
        onnx_weights_digest(b"\x3a\xff\xff\xff\x0f")  # the graph field, claiming 4 GB it does not hold


def test_export_stores_the_digest_of_the_weights_it_wrote(exported_model: Path) -> None:
    solver = Solver.load(exported_model)
    assert solver.metadata[WEIGHTS_KEY] == onnx_weights_digest(exported_model.read_bytes())


def test_a_flipped_weight_bit_is_a_model_error_unless_verify_is_off(exported_model: Path, tmp_path: Path) -> None:
    corrupt = flip_weight_bit(exported_model, tmp_path / "corrupt.onnx")
    with pytest.raises(ModelError, match=r"corrupt\.onnx: its weights do not match the SHA-256 stored at export"):
        Solver.load(corrupt)
    solver = Solver.load(corrupt, verify=False)
    assert solver.spec == Solver.load(exported_model).spec


def test_a_file_without_a_digest_loads_as_before(linear_model: Path, exported_model: Path, tmp_path: Path) -> None:
    assert WEIGHTS_KEY not in Solver.load(linear_model).metadata  # built by hand, as files exported before the digest
    model = onnx.load(str(exported_model))
    kept = [prop for prop in model.metadata_props if prop.key != WEIGHTS_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    flipped = flip_weight_bit(tmp_path / "old.onnx", tmp_path / "old-flipped.onnx")
    assert WEIGHTS_KEY not in Solver.load(flipped).metadata  # nothing to check it against


def test_int8_stores_the_digest_of_its_own_weights(exported_model: Path, tmp_path: Path) -> None:
    from knucaptcha.quantize import quantize_int8

    quantized = quantize_int8(exported_model, tmp_path / "model.int8.onnx")
    stored = Solver.load(quantized).metadata[WEIGHTS_KEY]
    assert stored == onnx_weights_digest(quantized.read_bytes()) != Solver.load(exported_model).metadata[WEIGHTS_KEY]
    with pytest.raises(ModelError, match="do not match the SHA-256"):
        Solver.load(flip_weight_bit(quantized, tmp_path / "flipped.int8.onnx"))
    with pytest.raises(ModelError, match="do not match the SHA-256"):
        quantize_int8(flip_weight_bit(exported_model, tmp_path / "flipped.onnx"), tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()
