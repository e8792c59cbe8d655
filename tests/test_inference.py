"""The ONNX Runtime :class:`Solver`: loading, metadata, batch and thread consistency, typed errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from knucaptcha.charset import DIGITS_UPPER, UNKNOWN
from knucaptcha.ctc import READ_LENGTH_KEY, Prediction, ReadOptions, beam_decode
from knucaptcha.errors import ConfigError, ImageError, MissingFileError, ModelError
from knucaptcha.inference import Solver
from knucaptcha.preprocess import to_batch
from knucaptcha.spec import METADATA_PREFIX, PreprocessSpec
from model_files import with_metadata


@pytest.fixture(scope="module")
def solver(linear_model: Path) -> Solver:
    return Solver.load(linear_model)


@pytest.fixture(scope="module")
def image_paths(captcha_folder: Path) -> list[Path]:
    return sorted(captcha_folder.glob("*.png"))


def test_load_reads_the_spec_from_the_model_metadata(solver: Solver) -> None:
    assert solver.name == "linear"
    assert solver.spec.charset.symbols == DIGITS_UPPER
    assert solver.spec.preprocess == PreprocessSpec()
    assert solver.spec.max_length == 4
    assert solver.metadata[f"{METADATA_PREFIX}charset"] == DIGITS_UPPER


def test_solve_gives_a_consistent_prediction(solver: Solver, image_paths: list[Path]) -> None:
    prediction = solver.solve(image_paths[0])

    assert isinstance(prediction, Prediction)
    assert prediction.text
    assert set(prediction.text) <= set(DIGITS_UPPER) | {UNKNOWN}
    assert len(prediction.char_confidences) == len(prediction.text)
    assert all(0.0 < c <= 1.0 for c in prediction.char_confidences)
    assert prediction.confidence == pytest.approx(float(np.prod(prediction.char_confidences)))


def test_every_image_source_reads_the_same(solver: Solver, image_paths: list[Path]) -> None:
    path = image_paths[0]
    with Image.open(path) as opened:
        image = opened.copy()
    sources = [path, str(path), path.read_bytes(), image, np.asarray(image)]

    assert {solver.solve(source) for source in sources} == {solver.solve(path)}


def test_batch_equals_single(solver: Solver, image_paths: list[Path]) -> None:
    singles = [solver.solve(path) for path in image_paths]

    assert solver.solve_batch(image_paths, batch_size=3) == singles
    assert solver.solve_batch(image_paths) == singles
    assert solver.solve_batch([]) == []


def test_concurrent_solving_matches_sequential(solver: Solver, image_paths: list[Path]) -> None:
    work = image_paths * 4
    sequential = [solver.solve(path) for path in work]

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(solver.solve, work))
        chunks = [work[start : start + 5] for start in range(0, len(work), 5)]
        batched = list(pool.map(solver.solve_batch, chunks))

    assert concurrent == sequential
    assert [prediction for chunk in batched for prediction in chunk] == sequential


def test_beam_search_decodes_the_model_probabilities(solver: Solver, image_paths: list[Path]) -> None:
    probs = solver.probabilities(to_batch(image_paths[:2], solver.spec.preprocess))  # (2, T, C)

    assert probs.shape == (2, 140, solver.spec.charset.num_classes)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    for path, frames in zip(image_paths, probs):
        assert solver.solve(path, beam_width=4) == beam_decode(frames, solver.spec.charset, 4)


def test_negative_beam_or_batch_size_is_a_config_error(solver: Solver, image_paths: list[Path]) -> None:
    with pytest.raises(ConfigError):
        solver.solve(image_paths[0], beam_width=-1)
    with pytest.raises(ConfigError):
        solver.solve_batch(image_paths, batch_size=0)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such model file"):
        Solver.load(tmp_path / "absent.onnx")


def test_a_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a model file"):
        Solver.load(tmp_path)


def test_random_bytes_are_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))

    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Solver.load(path)


def test_an_onnx_model_without_our_metadata_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ModelError, match="not a knucaptcha model"):
        Solver.load(path)


def test_a_model_from_a_newer_format_is_refused(linear_model: Path, tmp_path: Path) -> None:
    model = onnx.load(str(linear_model))
    for prop in model.metadata_props:
        if prop.key == f"{METADATA_PREFIX}format":
            prop.value = "99"
    path = tmp_path / "future.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ModelError, match="newer"):
        Solver.load(path)


@pytest.mark.parametrize("version", ["0", "-1"])
def test_a_format_version_below_the_first_is_refused(linear_model: Path, tmp_path: Path, version: str) -> None:
    path = with_metadata(linear_model, tmp_path / "unknown.onnx", {f"{METADATA_PREFIX}format": version})

    with pytest.raises(ModelError, match=f"unknown.onnx: unknown model format {version}"):
        Solver.load(path)


@pytest.mark.parametrize("symbols", [DIGITS_UPPER[:-1], DIGITS_UPPER + "abc"], ids=["shorter", "longer"])
def test_a_charset_that_does_not_match_the_output_is_refused_at_load(
    exported_model: Path, tmp_path: Path, symbols: str
) -> None:
    # The crafted file: solve --symbols then died in numpy, and a shorter charset read '?' silently.
    path = with_metadata(exported_model, tmp_path / "mismatched.onnx", {f"{METADATA_PREFIX}charset": symbols})

    with pytest.raises(ModelError, match=rf"mismatched.onnx: the model outputs 37 classes per frame, but the charset "
                       rf"in its metadata has {len(symbols)} symbols, {len(symbols) + 1} classes with the blank"):
        Solver.load(path)
    with pytest.raises(ModelError, match="37 classes"):
        Solver.load(path, verify=False)  # not a digest matter: the weights are the exported ones


def test_an_input_shape_other_than_the_preprocessing_makes_is_refused(exported_model: Path, tmp_path: Path) -> None:
    taller = '{"binarize": true, "height": 40, "mode": "alpha", "threshold": 0, "width": 140}'
    path = with_metadata(exported_model, tmp_path / "taller.onnx", {f"{METADATA_PREFIX}preprocess": taller})

    with pytest.raises(ModelError, match=r"taller.onnx: the model takes inputs of shape \(\?, 1, 35, 140\), but the "
                       r"preprocessing in its metadata makes \(batch, 1, 40, 140\)"):
        Solver.load(path)


@pytest.mark.parametrize("symbols, accepted", [(DIGITS_UPPER, True), ("0123", False)])
def test_an_output_whose_classes_the_file_leaves_open_is_measured(
    linear_model: Path, tmp_path: Path, symbols: str, accepted: bool
) -> None:
    model = onnx.load(str(linear_model))
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_param = "classes"  # no longer a number
    path = with_metadata(linear_model, tmp_path / "open.onnx", {f"{METADATA_PREFIX}charset": symbols})
    helper.set_model_props(model, {p.key: p.value for p in onnx.load(str(path)).metadata_props})
    onnx.save(model, str(path))

    if accepted:
        assert Solver.load(path).spec.charset.symbols == symbols
    else:
        with pytest.raises(ModelError, match="open.onnx: the model outputs 37 classes per frame"):
            Solver.load(path)


def test_a_model_taking_more_than_one_input_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "bias"], ["probabilities"])],
        "two_inputs",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1, 35, 140]) for name in ("image", "bias")],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 140, 37])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {f"{METADATA_PREFIX}format": "1"})
    onnx.save(model, str(tmp_path / "two.onnx"))

    with pytest.raises(ModelError, match=r"two.onnx takes the inputs image \(tensor\(float\)\), bias"):
        Solver.load(tmp_path / "two.onnx")


def test_a_file_that_outputs_logits_is_read_through_a_softmax(solver: Solver) -> None:
    # The linear test model records no output kind: files from before the softmax moved into the graph.
    inputs = (np.random.default_rng(1).random((2, 1, 35, 140)) > 0.8).astype(np.float32)
    np.testing.assert_allclose(solver.probabilities(inputs).sum(-1), 1.0, atol=1e-5)


def test_an_unknown_output_kind_is_refused(linear_model: Path, tmp_path: Path) -> None:
    model = onnx.load(str(linear_model))
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "knucaptcha.output": "scores"})
    path = tmp_path / "scores.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ModelError, match="unknown model output 'scores'"):
        Solver.load(path)


def test_a_stored_reading_length_is_read_unless_a_length_is_given(
    stamped_model: Path, solver: Solver, image_paths: list[Path]
) -> None:
    stamped = Solver.load(stamped_model)  # the same weights as ``solver``, whose file stores no length
    assert (stamped.read_length, solver.read_length) == (3, None)
    plain = solver.solve_batch(image_paths)
    assert any(len(p.text) != 3 for p in plain)  # a file without the key reads any number, as before it existed
    assert stamped.solve_batch(image_paths) == solver.solve_batch(image_paths, length=3)
    assert stamped.solve(image_paths[0], beam_width=3) == solver.solve(image_paths[0], beam_width=3, length=3)
    assert stamped.solve_batch(image_paths, length=0) == plain  # 0: any number
    assert stamped.solve_batch(image_paths, length=2) == solver.solve_batch(image_paths, length=2)  # a given one wins
    assert stamped.resolve_options(ReadOptions(beam_width=2)) == ReadOptions(beam_width=2, length=3)
    assert stamped.resolve_options(ReadOptions(length=0)) == ReadOptions(length=0)
    assert solver.resolve_options(ReadOptions()) == ReadOptions()


@pytest.mark.parametrize("value, message", [("5", "must lie in 1..4"), ("four", "must be an integer")])
def test_a_reading_length_the_model_cannot_read_is_refused(
    linear_model: Path, tmp_path: Path, value: str, message: str
) -> None:
    model = onnx.load(str(linear_model))
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, READ_LENGTH_KEY: value})
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ModelError, match=f"bad.onnx: knucaptcha.read_length {message}"):
        Solver.load(path)


def test_unreadable_and_missing_images(solver: Solver, tmp_path: Path) -> None:
    broken = tmp_path / "AB12.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    with pytest.raises(ImageError, match="AB12.png"):
        solver.solve(broken)
    with pytest.raises(ImageError):
        solver.solve(b"not an image")
    with pytest.raises(MissingFileError):
        solver.solve(tmp_path / "absent.png")
