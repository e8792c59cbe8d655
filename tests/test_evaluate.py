"""Evaluation: solving files with per-file errors, scoring a labelled folder, the grid, ``knucaptcha evaluate``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from knucaptcha.cli import app
from knucaptcha.ctc import Prediction, ReadOptions
from knucaptcha.errors import ConfigError, ImageError, LabelError, MissingFileError
from knucaptcha.evaluate import GRID_SIZE, evaluate_folder, render_grid, solve_files
from knucaptcha.inference import Solver
from knucaptcha.labels import LabelledImage, scan_folder
from knucaptcha.metrics import score
from knucaptcha.spec import PreprocessSpec


class ScriptedSolver:
    """Stands in for :class:`Solver`: returns given readings in call order, to test scoring exactly."""

    name = "scripted"

    def __init__(self, readings: Sequence[tuple[str, float]]):
        self._readings = list(readings)

    def read(
        self, images: Sequence[object], options: ReadOptions = ReadOptions(), *, batch_size: int = 64
    ) -> list[Prediction]:
        taken, self._readings = self._readings[: len(images)], self._readings[len(images) :]
        return [Prediction(text, confidence, (confidence,) * len(text)) for text, confidence in taken]

    def resolve_options(self, options: ReadOptions) -> ReadOptions:
        return options


@pytest.fixture()
def broken_folder(captcha_folder: Path, tmp_path: Path) -> Path:
    """The captcha folder with two undecodable images added, sorting second and last."""
    folder = shutil.copytree(captcha_folder, tmp_path / "folder")
    names = sorted(path.name for path in folder.iterdir())
    (folder / (names[0][:4] + "_broken.png")).write_bytes(b"not a png")
    (folder / "ZZZZ_0.png").write_bytes(b"")
    return folder


def items_of(labels: list[str], captcha_folder: Path) -> list[LabelledImage]:
    """Real image files of the captcha folder, relabelled (the scripted solver ignores pixels)."""
    paths = sorted(captcha_folder.glob("*.png"))
    return [LabelledImage(path, label) for path, label in zip(paths, labels)]


def test_solve_files_keeps_order_and_isolates_broken_files(linear_model: Path, broken_folder: Path) -> None:
    solver = Solver.load(linear_model)
    paths = sorted(broken_folder.iterdir())
    progress: list[int] = []

    results = solve_files(solver, paths, batch_size=3, on_progress=progress.append)

    assert [result.path for result in results] == paths
    assert sum(progress) == len(paths) and max(progress) <= 3
    failed = [result for result in results if result.error is not None]
    assert [result.path.name for result in failed] == [paths[1].name, "ZZZZ_0.png"]
    assert all(isinstance(result.error, ImageError) and result.prediction is None for result in failed)
    good = [result for result in results if result.error is None]
    assert [result.prediction for result in good] == solver.solve_batch([result.path for result in good])
    assert failed[0].to_dict() == {"file": str(paths[1]), "error": str(failed[0].error)}
    assert set(good[0].to_dict()) == {"file", "text", "confidence", "char_confidences", "warnings"}


def test_solve_files_rejects_a_zero_batch_size(linear_model: Path, captcha_folder: Path) -> None:
    with pytest.raises(ConfigError):
        solve_files(Solver.load(linear_model), sorted(captcha_folder.iterdir()), batch_size=0)


def test_evaluation_matches_the_solver_and_the_metrics(linear_model: Path, captcha_folder: Path) -> None:
    solver = Solver.load(linear_model)
    items = scan_folder(captcha_folder)

    evaluation = evaluate_folder(solver, items, batch_size=7)

    texts = [prediction.text for prediction in solver.solve_batch([item.path for item in items])]
    assert [row.prediction.text for row in evaluation.rows] == texts
    assert evaluation.scores == score([item.label for item in items], texts)
    assert evaluation.model == "linear" and evaluation.unreadable == ()


def test_correctness_worst_and_json(captcha_folder: Path) -> None:
    items = items_of(["AB12", "CD34", "EF56", "GH78"], captcha_folder)
    solver = ScriptedSolver([("AB12", 0.9), ("CD3A", 0.6), ("EF56", 0.1), ("", 0.2)])

    evaluation = evaluate_folder(solver, items)  # type: ignore[arg-type]

    assert [row.correct for row in evaluation.rows] == [True, False, True, False]
    assert evaluation.scores.sequence_accuracy == 0.5
    assert [row.label for row in evaluation.worst(10)] == ["GH78", "CD34"]  # wrong only, least confident first
    assert [row.label for row in evaluation.worst(1)] == ["GH78"]
    assert evaluation.worst(0) == []
    summary = json.loads(json.dumps(evaluation.to_dict(worst=1)))
    assert set(summary) == {
        "model", "case_sensitive", "beam_width", "symbols", "length", "scores", "worst", "unreadable", "items"
    }
    assert summary["scores"]["confusions"] == [{"expected": "4", "got": "A", "count": 1}]
    assert summary["worst"] == [
        {"file": str(items[3].path), "label": "GH78", "text": "", "confidence": 0.2, "char_confidences": [],
         "warnings": [], "correct": False}
    ]
    assert [item["text"] for item in summary["items"]] == ["AB12", "CD3A", "EF56", ""]


def test_case_insensitive_evaluation(captcha_folder: Path) -> None:
    items = items_of(["ab12", "Cd34"], captcha_folder)
    readings = [("AB12", 0.9), ("CD34", 0.9)]

    strict = evaluate_folder(ScriptedSolver(readings), items)  # type: ignore[arg-type]
    lenient = evaluate_folder(ScriptedSolver(readings), items, case_sensitive=False)  # type: ignore[arg-type]

    assert strict.scores.sequence_accuracy == 0.0 and not any(row.correct for row in strict.rows)
    assert lenient.scores.sequence_accuracy == 1.0 and all(row.correct for row in lenient.rows)
    assert lenient.to_dict()["case_sensitive"] is False


def test_unreadable_images_are_reported_and_not_scored(linear_model: Path, broken_folder: Path) -> None:
    evaluation = evaluate_folder(Solver.load(linear_model), scan_folder(broken_folder))

    assert evaluation.scores.count == 20
    assert len(evaluation.rows) == 20
    assert sorted(failure.path.name[:4] for failure in evaluation.unreadable)[-1] == "ZZZZ"
    assert len(evaluation.unreadable) == 2


def test_nothing_to_evaluate(linear_model: Path, tmp_path: Path) -> None:
    solver = Solver.load(linear_model)
    with pytest.raises(LabelError, match="no labelled images"):
        evaluate_folder(solver, [])
    (tmp_path / "AB12.png").write_bytes(b"")
    with pytest.raises(LabelError, match="none of the 1"):
        evaluate_folder(solver, scan_folder(tmp_path))


def red_pixels(path: Path) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum())


def test_grid_has_a_fixed_size_and_marks_errors_in_red(captcha_folder: Path, tmp_path: Path) -> None:
    labels = [f"A{index:03d}" for index in range(20)]
    items = items_of(labels, captcha_folder)
    right = evaluate_folder(ScriptedSolver([(label, 0.9) for label in labels]), items)  # type: ignore[arg-type]
    readings = [(label, 0.9) for label in labels[:5]] + [("XXXX", 0.4)] + [(label, 0.9) for label in labels[6:]]
    one_wrong = evaluate_folder(ScriptedSolver(readings), items)  # type: ignore[arg-type]

    clean = render_grid(right.rows, tmp_path / "right.png", PreprocessSpec())
    marked = render_grid(one_wrong.rows, tmp_path / "wrong.png", PreprocessSpec())
    few = render_grid(right.rows[:3], tmp_path / "few.png", PreprocessSpec())

    for path in (clean, marked, few):
        assert Image.open(path).size == GRID_SIZE
    assert red_pixels(clean) == 0
    assert red_pixels(marked) > 20


def test_grid_output_errors(captcha_folder: Path, tmp_path: Path) -> None:
    rows = evaluate_folder(ScriptedSolver([("A", 1.0)]), items_of(["A"], captcha_folder)).rows  # type: ignore[arg-type]
    with pytest.raises(MissingFileError, match="no such folder"):
        render_grid(rows, tmp_path / "absent" / "grid.png", PreprocessSpec())
    with pytest.raises(ConfigError, match="cannot write"):
        render_grid(rows, tmp_path, PreprocessSpec())


runner = CliRunner()


def test_cli_json_report(linear_model: Path, captcha_folder: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    result = runner.invoke(
        app, ["evaluate", str(linear_model), str(captcha_folder), "--json", "--worst", "3", "--grid", str(grid)]
    )

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)  # progress and the grid notice went to stderr
    assert report["scores"]["count"] == 20
    assert len(report["items"]) == 20 and len(report["worst"]) == 3
    assert Image.open(grid).size == GRID_SIZE
    assert "grid written to" in result.stderr


def test_cli_tables(linear_model: Path, captcha_folder: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(linear_model), str(captcha_folder), "--worst", "2"])

    assert result.exit_code == 0, result.stderr
    for heading in ("sequence accuracy", "character accuracy", "By label length", "Worst readings"):
        assert heading in result.stdout


def test_cli_reads_and_records_its_options(linear_model: Path, captcha_folder: Path) -> None:
    options = ["--length", "4", "--beam", "3"]
    told = runner.invoke(app, ["evaluate", str(linear_model), str(captcha_folder), "--json", *options])
    table = runner.invoke(app, ["evaluate", str(linear_model), str(captcha_folder), *options])

    assert told.exit_code == table.exit_code == 0, told.stderr
    report = json.loads(told.stdout)
    assert report["length"] == 4 and {len(item["text"]) for item in report["items"]} == {4}
    assert report["beam_width"] == 3 and report["symbols"] is None
    assert "exactly 4" in table.stdout and "beam search, width 3" in table.stdout


def test_cli_reports_unreadable_images_and_exits_1(linear_model: Path, broken_folder: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(linear_model), str(broken_folder), "--json"])

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["unreadable"]) == 2 and report["scores"]["count"] == 20
    assert result.stderr.count("error: ") == 3  # one line per file, one summary


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{model}", "{absent}"], "no such folder"),
        (["{absent}", "{folder}"], "no such model file"),
        (["{folder}", "{folder}"], "not a model file"),
    ],
)
def test_cli_errors_are_one_line(
    arguments: list[str], message: str, linear_model: Path, captcha_folder: Path, tmp_path: Path
) -> None:
    names = {"model": linear_model, "folder": captcha_folder, "absent": tmp_path / "absent"}
    result = runner.invoke(app, ["evaluate", *(argument.format(**names) for argument in arguments)])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
