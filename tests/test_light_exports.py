"""Light exports: int8 ONNX (no torch needed) and TFLite (litert-torch), each loading in the Solver with its metadata.

The texts-agree bar on int8 needs a model that really reads: it runs on the
bundled default once the package ships one. The TFLite parity test runs on
the bundled default's checkpoint when shipped, else on a random-weight
``fast`` CRNN (its logits still must match, so its texts must too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
from typer.testing import CliRunner

from knucaptcha.charset import DIGITS_UPPER, Charset
from knucaptcha.cli import app
from knucaptcha.errors import ModelError
from knucaptcha.generator import generate_samples, get_style
from knucaptcha.inference import Solver, resolve_model
from knucaptcha.integrity import WEIGHTS_KEY
from knucaptcha.quantize import QUANTIZATION, QUANTIZATION_CALIBRATED, QUANTIZATION_KEY, quantize_int8
from knucaptcha.spec import ModelSpec, PreprocessSpec

KNU = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
runner = CliRunner()


def bundled_default() -> Path | None:
    """The shipped default ONNX model, if this installation has one."""
    try:
        return resolve_model("default")
    except ModelError:
        return None


def knu_samples(count: int, seed: int = 77) -> tuple[list, list[str]]:
    samples = list(generate_samples(get_style("knu", "mixed"), seed=seed, count=count))
    return [s.image for s in samples], [s.label for s in samples]


@pytest.fixture(scope="module")
def random_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder (model.pt + model.onnx) of a random-weight ``fast`` CRNN, as training leaves one."""
    torch = pytest.importorskip("torch")
    from knucaptcha.train import CRNN, export_onnx, preset
    from knucaptcha.train.checkpoint import describe, save

    torch.manual_seed(0)
    model = CRNN(preset("fast"), KNU).eval()
    run = tmp_path_factory.mktemp("run")
    save(describe(model, KNU, preset("fast"), "fast"), run / "model.pt")
    export_onnx(model, KNU, run / "model.onnx", {"knucaptcha.preset": "fast"})
    return run


# --- int8 ---------------------------------------------------------------------------------------


def test_int8_keeps_metadata_shrinks_and_loads(random_run: Path, tmp_path: Path) -> None:
    source = random_run / "model.onnx"
    out = quantize_int8(source, tmp_path / "m.int8.onnx")
    original, quantized = Solver.load(source), Solver.load(out)
    assert quantized.spec == original.spec
    assert quantized.metadata == {**original.metadata, QUANTIZATION_KEY: QUANTIZATION, WEIGHTS_KEY: ANY}
    assert quantized.metadata[WEIGHTS_KEY] != original.metadata[WEIGHTS_KEY]  # its own int8 weights' digest
    assert out.stat().st_size < 0.6 * source.stat().st_size
    inputs = (np.random.default_rng(0).random((6, 1, 35, 140)) > 0.8).astype(np.float32)
    # int8 weights move the probabilities a little, never far.
    assert np.abs(quantized.probabilities(inputs) - original.probabilities(inputs)).max() < 0.1


def test_calibrated_int8_makes_the_convolutions_integer_too(random_run: Path, tmp_path: Path) -> None:
    import onnx

    source = random_run / "model.onnx"
    images, _ = knu_samples(64, seed=79)
    dynamic = quantize_int8(source, tmp_path / "dynamic.onnx")
    calibrated = quantize_int8(source, tmp_path / "calibrated.onnx", images)
    assert Solver.load(calibrated).metadata[QUANTIZATION_KEY] == QUANTIZATION_CALIBRATED
    graph = onnx.load(str(calibrated)).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    weights = {init.name for init in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(producers.get(node.input[0]) == "DequantizeLinear" for node in convs)  # int8 activations in
    assert all(node.input[1] not in weights for node in convs)  # weights stored int8, dequantized on the way
    assert calibrated.stat().st_size < dynamic.stat().st_size
    inputs = (np.random.default_rng(0).random((6, 1, 35, 140)) > 0.8).astype(np.float32)
    assert np.abs(Solver.load(calibrated).probabilities(inputs) - Solver.load(source).probabilities(inputs)).max() < 0.2


def test_int8_refuses_what_it_cannot_quantize(random_run: Path, linear_model: Path, tmp_path: Path) -> None:
    once = quantize_int8(random_run / "model.onnx", tmp_path / "once.onnx")
    with pytest.raises(ModelError, match="already quantized"):
        quantize_int8(once, tmp_path / "twice.onnx")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        quantize_int8(random_run / "model.pt", tmp_path / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.onnx"]  # no temporary left behind


def test_int8_quantizes_without_torch(random_run: Path, tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['torch'] = None\n"  # an import of torch now fails
        "from knucaptcha.quantize import quantize_int8\n"
        "from knucaptcha.inference import Solver\n"
        "from knucaptcha.generator import generate_samples, get_style\n"
        "images = [s.image for s in generate_samples(get_style('knu', 'mixed'), seed=1, count=8)]\n"
        "Solver.load(quantize_int8(sys.argv[1], sys.argv[2], images))\n"
        "assert 'torch' not in {m.partition('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(random_run / "model.onnx"), str(tmp_path / "q.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not even the quantizer's pre-processing warning


@pytest.mark.skipif(bundled_default() is None, reason="no bundled default model shipped yet: nothing trained to agree on")
@pytest.mark.parametrize("calibration", [0, 128])
def test_int8_reads_like_fp32_on_a_trained_model(tmp_path: Path, calibration: int) -> None:
    source = bundled_default()
    assert source is not None
    images, labels = knu_samples(300)
    fp32 = Solver.load(source).solve_batch(images)
    calibrate, _ = knu_samples(calibration, seed=80)
    int8 = [p.text for p in Solver.load(quantize_int8(source, tmp_path / "d.int8.onnx", calibrate)).solve_batch(images)]
    # Quantization may flip readings the model was unsure of anyway; confident ones must survive it.
    confident = [(a.text, b) for a, b in zip(fp32, int8) if a.confidence >= 0.5]
    assert len(confident) >= 100
    assert np.mean([a == b for a, b in confident]) >= 0.98
    accuracy = [np.mean([text == label for text, label in zip(texts, labels)]) for texts in ([p.text for p in fp32], int8)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.03


def test_cli_export_int8_reports_size_and_accuracy(random_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(random_run), "--format", "onnx-int8", "--samples", "8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["file"] == str(random_run / "model.int8.onnx") and report["reference"] == str(random_run / "model.onnx")
    assert report["bytes"] == (random_run / "model.int8.onnx").stat().st_size < report["reference_bytes"]
    comparison = report["comparison"]
    assert comparison["count"] == 8 and comparison["style"] == "knu"
    assert 0 <= comparison["agreement"] <= 1 and 0 <= comparison["accuracy"] <= 1
    assert Solver.load(report["file"]).metadata[QUANTIZATION_KEY] == QUANTIZATION_CALIBRATED  # 256 images by default
    assert report["read_length"] is None  # as its source, which stores none
    out = tmp_path / "float-convs.onnx"
    arguments = ["--out", str(out), "--calibration", "0", "--samples", "0", "--read-length", "4"]
    result = runner.invoke(app, ["export", str(random_run), "--format", "onnx-int8", *arguments])
    assert result.exit_code == 0, result.output
    assert Solver.load(out).metadata[QUANTIZATION_KEY] == QUANTIZATION
    assert Solver.load(out).read_length == 4 and "reads 4 symbols unless told otherwise" in result.stdout


def test_cli_export_errors_are_one_line(random_run: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.pt").write_bytes((random_run / "model.pt").read_bytes())
    result = runner.invoke(app, ["export", str(lone / "model.pt"), "--format", "onnx-int8"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "starts from an ONNX file" in result.stderr
    source = random_run / "model.onnx"
    result = runner.invoke(app, ["export", str(source), "--format", "onnx-int8", "--out", str(source)])
    assert result.exit_code == 2 and "is the model being exported" in result.stderr


# --- TFLite -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tflite_pair(random_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(.tflite written by ``knucaptcha export``, the ONNX file of the same model): default's, else random_run's."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    default = bundled_default()
    if default is not None and (default.parent / "default.pt").is_file():
        model, onnx = "default", default
    else:
        model, onnx = str(random_run), random_run / "model.onnx"
    out = tmp_path_factory.mktemp("tflite") / "model.tflite"
    result = runner.invoke(app, ["export", model, "--format", "tflite", "--out", str(out), "--samples", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["file"] == str(out)
    return out, onnx


def test_tflite_reads_the_same_texts_as_onnx(tflite_pair: tuple[Path, Path]) -> None:
    tflite, onnx = tflite_pair
    images, _ = knu_samples(200, seed=78)
    lite, reference = Solver.load(tflite), Solver.load(onnx)
    assert [p.text for p in lite.solve_batch(images)] == [p.text for p in reference.solve_batch(images)]
    inputs = (np.random.default_rng(1).random((3, 1, 35, 140)) > 0.8).astype(np.float32)
    np.testing.assert_allclose(lite.probabilities(inputs), reference.probabilities(inputs), atol=1e-5)


def test_tflite_carries_the_model_metadata(tflite_pair: tuple[Path, Path]) -> None:
    tflite, onnx = tflite_pair
    lite, reference = Solver.load(tflite), Solver.load(onnx)
    assert lite.spec == reference.spec
    keys = {"knucaptcha.format", "knucaptcha.charset", "knucaptcha.preprocess", "knucaptcha.max_length"}
    assert keys | {"knucaptcha.preset", "knucaptcha.arch"} <= set(lite.metadata)
    assert {k: lite.metadata[k] for k in keys} == {k: reference.metadata[k] for k in keys}


def test_tflite_metadata_round_trip_and_foreign_files(tflite_pair: tuple[Path, Path], tmp_path: Path) -> None:
    from knucaptcha.litert import embed_metadata, read_metadata

    content = tflite_pair[0].read_bytes()
    replaced = embed_metadata(content, {"knucaptcha.note": "ü"})
    assert read_metadata(replaced) == {"knucaptcha.note": "ü"}  # the entry is replaced, not duplicated
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(embed_metadata(content, {}))
    with pytest.raises(ModelError, match="TFLite model but not a knucaptcha model"):
        Solver.load(foreign)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(content[: len(content) // 3])
    with pytest.raises(ModelError, match="truncated.tflite"):
        Solver.load(truncated)


def test_tflite_stores_the_digest_of_its_weights_and_a_flipped_bit_is_refused(
    tflite_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    import ai_edge_litert.schema_py_generated as schema

    from knucaptcha.litert import embed_metadata, read_metadata, weights_digest

    content = tflite_pair[0].read_bytes()
    assert read_metadata(content)[WEIGHTS_KEY] == weights_digest(content)
    assert weights_digest(embed_metadata(content, {"knucaptcha.note": "x"})) == weights_digest(content)
    model = schema.Model.GetRootAs(content, 0)
    largest = max((model.Buffers(i).DataAsNumpy() for i in range(1, model.BuffersLength())), key=np.size)
    start = content.index(largest.tobytes())
    flipped = bytearray(content)
    flipped[start + largest.size // 2] ^= 0x01
    (tmp_path / "flipped.tflite").write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match=r"flipped.tflite: its weights do not match the SHA-256 stored at export"):
        Solver.load(tmp_path / "flipped.tflite")
    assert Solver.load(tmp_path / "flipped.tflite", verify=False).spec == Solver.load(tflite_pair[0]).spec


def test_tflite_without_runtime_says_which_extra(tflite_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ModelError, match=r"knucaptcha\[litert\]"):
        Solver.load(tflite_pair[0])
