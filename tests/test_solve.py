"""``knucaptcha solve``: pipe-friendly output, JSON, per-file errors, exit codes; agreement with evaluate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from knucaptcha.cli import app
from knucaptcha.generator import Style, write_dataset
from knucaptcha.inference import Solver
from model_files import flip_weight_bit, with_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def solver(linear_model: Path) -> Solver:
    return Solver.load(linear_model)


@pytest.fixture()
def broken_folder(captcha_folder: Path, tmp_path: Path) -> Path:
    folder = shutil.copytree(captcha_folder, tmp_path / "folder")
    (folder / "AAAA_broken.png").write_bytes(b"not a png")
    return folder


def solve(*arguments: object) -> Result:
    return runner.invoke(app, ["solve", *map(str, arguments)])


def test_lines_are_file_tab_text_tab_confidence(
    linear_model: Path, captcha_folder: Path, solver: Solver
) -> None:
    paths = sorted(captcha_folder.glob("*.png"))

    result = solve(captcha_folder, "--model", linear_model, "--batch-size", 6)

    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]  # nothing else on stdout: no progress
    assert [row[0] for row in rows] == [str(path) for path in paths]
    expected = solver.solve_batch(paths)
    assert [row[1] for row in rows] == [prediction.text for prediction in expected]
    assert [float(row[2]) for row in rows] == pytest.approx([p.confidence for p in expected], abs=1e-4)


def test_a_dash_reads_one_image_piped_to_standard_input(
    linear_model: Path, captcha_folder: Path, solver: Solver
) -> None:
    path = sorted(captcha_folder.glob("*.png"))[2]
    piped = subprocess.run(
        [sys.executable, "-m", "knucaptcha", "solve", "-", "-m", str(linear_model), "--length", "3"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    want = solver.solve(path.read_bytes(), length=3)
    file, text, confidence = piped.stdout.decode().rstrip("\n").split("\t")
    assert (file, text) == ("-", want.text) and float(confidence) == pytest.approx(want.confidence, abs=1e-4)
    as_json = runner.invoke(app, ["solve", "-", "-m", str(linear_model), "--json"], input=path.read_bytes())
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)[0]["text"] == solver.solve(path).text


@pytest.mark.parametrize(
    ("arguments", "piped", "message"),
    [
        (["-"], b"", "error: standard input: input bytes is empty (0 bytes)"),
        (["-"], b"not a png", "error: standard input: input bytes is not an image format that can be read"),
        (["-", "{png}"], b"", "error: '-' (one image on standard input) must be the only input"),
    ],
)
def test_a_dash_without_an_image_on_standard_input_is_one_error_line(
    linear_model: Path, captcha_folder: Path, arguments: list[str], piped: bytes, message: str
) -> None:
    png = str(sorted(captcha_folder.glob("*.png"))[0])
    command = ["solve", *(argument.format(png=png) for argument in arguments), "-m", str(linear_model)]
    result = runner.invoke(app, command, input=piped)
    assert result.exit_code == 2 and result.stderr == message + "\n" and result.stdout == ""


def test_a_dash_with_a_terminal_on_standard_input_asks_for_a_pipe(linear_model: Path) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "knucaptcha", "solve", "-", "-m", str(linear_model)],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: '-' reads an image from standard input, which is a terminal; pipe one in\n"


def test_json_is_one_list_of_readings(linear_model: Path, captcha_folder: Path, solver: Solver) -> None:
    paths = sorted(captcha_folder.glob("*.png"))

    result = solve("--json", "-m", linear_model, paths[3], captcha_folder)

    assert result.exit_code == 0, result.stderr
    readings = json.loads(result.stdout)
    assert [reading["file"] for reading in readings] == [str(path) for path in [paths[3], *paths]]
    assert all(set(reading) == {"file", "text", "confidence", "char_confidences", "warnings"} for reading in readings)
    assert readings[0] == {"file": str(paths[3]), **solver.solve(paths[3]).to_dict()}


def test_beam_search_option(linear_model: Path, captcha_folder: Path, solver: Solver) -> None:
    path = sorted(captcha_folder.glob("*.png"))[0]

    result = solve(path, "--json", "-m", linear_model, "--beam", 3)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["text"] == solver.solve(path, beam_width=3).text


def test_symbols_option_restricts_the_readings(linear_model: Path, captcha_folder: Path, solver: Solver) -> None:
    paths = sorted(captcha_folder.glob("*.png"))
    allowed = "0123456789"

    result = solve(captcha_folder, "--json", "-m", linear_model, "--symbols", allowed)

    assert result.exit_code == 0, result.stderr
    texts = [reading["text"] for reading in json.loads(result.stdout)]
    assert texts == [p.text for p in solver.solve_batch(paths, symbols=allowed)]
    assert all(set(text) <= set(allowed) for text in texts)
    assert any(set(p.text) - set(allowed) for p in solver.solve_batch(paths))  # unrestricted, it reads letters
    refused = solve(paths[0], "-m", linear_model, "--symbols", "AB!")
    assert refused.exit_code == 2 and refused.stderr == "error: the model cannot read '!'; its symbols are '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'\n"


def test_length_option_reads_exactly_that_many_symbols(linear_model: Path, captcha_folder: Path, solver: Solver) -> None:
    paths = sorted(captcha_folder.glob("*.png"))
    assert any(len(p.text) != 3 for p in solver.solve_batch(paths))  # untold, some readings have another length

    result = solve(captcha_folder, "--json", "-m", linear_model, "--length", 3)

    assert result.exit_code == 0, result.stderr
    texts = [reading["text"] for reading in json.loads(result.stdout)]
    assert texts == [p.text for p in solver.solve_batch(paths, length=3)] and {len(text) for text in texts} == {3}
    refused = solve(paths[0], "-m", linear_model, "--length", 5)
    assert refused.exit_code == 2
    assert refused.stderr == "error: this model reads 1 to 4 symbols, so a reading length of 5 cannot be asked for\n"


def test_a_model_that_stores_a_reading_length_reads_it_unless_told_another(
    stamped_model: Path, captcha_folder: Path, solver: Solver
) -> None:
    paths = sorted(captcha_folder.glob("*.png"))

    def texts(*options: object) -> list[str]:
        result = solve(captcha_folder, "--json", "-m", stamped_model, *options)
        assert result.exit_code == 0, result.stderr
        return [reading["text"] for reading in json.loads(result.stdout)]

    assert texts() == [p.text for p in solver.solve_batch(paths, length=3)]  # the file stores 3
    assert texts("--length", 0) == [p.text for p in solver.solve_batch(paths)]  # 0: any number
    assert texts("--length", 2) == [p.text for p in solver.solve_batch(paths, length=2)]
    refused = solve(paths[0], "-m", stamped_model, "--length", -1)
    assert refused.exit_code == 2 and refused.stdout == "" and "--length" in refused.stderr  # a usage error


def test_broken_files_in_a_folder_are_reported_and_the_rest_read(
    linear_model: Path, broken_folder: Path
) -> None:
    as_json = solve(broken_folder, "--json", "-m", linear_model)
    as_lines = solve(broken_folder, "-m", linear_model)

    assert as_json.exit_code == as_lines.exit_code == 1
    readings = json.loads(as_json.stdout)
    assert len(readings) == 21
    failed = [reading for reading in readings if "error" in reading]
    assert failed == [{"file": str(broken_folder / "AAAA_broken.png"), "error": failed[0]["error"]}]
    assert "not an image" in failed[0]["error"]
    assert len(as_lines.stdout.splitlines()) == 20
    assert "AAAA_broken.png" in as_lines.stderr
    assert as_lines.stderr.strip().endswith("1 of 21 images could not be read")


def test_one_broken_file_in_a_folder_is_a_report(
    linear_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "AB12.png").write_bytes(b"")

    result = solve(tmp_path, "--json", "-m", linear_model)

    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["file"] == str(tmp_path / "AB12.png")


@pytest.mark.parametrize(
    ("target", "model", "message"),
    [
        ("broken", "linear", "AB12.png is not an image format that can be read"),
        ("empty", "linear", "AB12.png is empty"),
        ("absent", "linear", "no such file or folder"),
        ("folder", "linear", "no image files"),
        ("image", "noise", "not a loadable ONNX model"),
        ("image", "absent", "no such model file"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    target: str, model: str, message: str, linear_model: Path, captcha_folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "AB12.png").write_bytes(b"this is text")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "AB12.png").write_bytes(b"")
    (tmp_path / "no-images").mkdir()
    (tmp_path / "no-images" / "notes.txt").write_text("not an image\n")
    (tmp_path / "noise.onnx").write_bytes(bytes(range(256)) * 8)
    targets = {
        "broken": tmp_path / "AB12.png",
        "empty": tmp_path / "empty" / "AB12.png",
        "absent": tmp_path / "absent.png",
        "folder": tmp_path / "no-images",
        "image": next(captcha_folder.glob("*.png")),
    }
    models = {"linear": linear_model, "noise": tmp_path / "noise.onnx", "absent": tmp_path / "absent.onnx"}

    for extra in ([], ["--json"]):
        result = solve(targets[target], "-m", models[model], *extra)

        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("broken", ["charset", "weights"])
def test_a_model_that_does_not_match_itself_is_one_error_line_and_exit_2(
    broken: str, exported_model: Path, captcha_folder: Path, tmp_path: Path
) -> None:
    # The issue: a charset shorter than the output made `solve --symbols` die with a numpy traceback.
    if broken == "charset":
        shorter = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXY"
        model = with_metadata(exported_model, tmp_path / "bad.onnx", {"knucaptcha.charset": shorter})
        message = "bad.onnx: the model outputs 37 classes per frame, but the charset in its metadata has 35 symbols"
    else:
        model = flip_weight_bit(exported_model, tmp_path / "bad.onnx")
        message = "bad.onnx: its weights do not match the SHA-256 stored at export"
    image = next(captcha_folder.glob("*.png"))

    for extra in ([], ["--symbols", "0123456789"], ["--json"]):
        result = solve(image, "-m", model, *extra)

        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.startswith(f"error: {tmp_path}") and message in result.stderr
        assert result.stderr.count("\n") == 1
    skipped = solve(image, "-m", model, "--no-verify")
    assert (skipped.exit_code, skipped.stdout.count("\t")) == ((2, 0) if broken == "charset" else (0, 2))


def test_a_zero_batch_size_is_a_usage_error(linear_model: Path, captcha_folder: Path) -> None:
    result = solve(captcha_folder, "-m", linear_model, "--batch-size", 0)

    assert result.exit_code == 2
    assert result.stdout == ""


def test_solve_in_a_fresh_process_reads_what_evaluate_read(
    trained_model: Path, trained_style: Style, tmp_path: Path
) -> None:
    folder = tmp_path / "held-out"
    write_dataset(folder, trained_style, 32, seed=1)  # the model trained on stream 0

    evaluated = runner.invoke(app, ["evaluate", str(trained_model), str(folder), "--json"])
    solved = subprocess.run(
        [sys.executable, "-m", "knucaptcha", "solve", "--json", "--model", str(trained_model), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert evaluated.exit_code == 0, evaluated.stderr
    assert solved.returncode == 0, solved.stderr
    report = json.loads(evaluated.stdout)
    assert report["scores"]["sequence_accuracy"] >= 0.25  # a model that reads, so agreement means something
    evaluate_texts = {item["file"]: item["text"] for item in report["items"]}
    solve_texts = {reading["file"]: reading["text"] for reading in json.loads(solved.stdout)}
    assert solve_texts == evaluate_texts
    assert len(solve_texts) == 32
