"""benchmarks/person_reading.py: blind reading sheets of what the model sees, and their score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knucaptcha.generator import generate_samples, get_style, write_dataset
from knucaptcha.inference import Solver
from knucaptcha.preprocess import to_input

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "person_reading.py"
HELDOUT_SEED = 770001  # the sheet's default seed (benchmarks/heldout.py)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sheets of the default's misreadings among 20 hard captchas, plus 3 of its right readings."""
    out = tmp_path_factory.mktemp("reading") / "sheet"
    done = run("sheet", str(out), "--difficulty", "hard", "--count", "20", "--errors-plus", "3")
    assert done.returncode == 0, done.stderr
    return out


def test_sheet_shows_every_misreading_plus_the_right_readings_asked_for(sheet: Path) -> None:
    key = json.loads((sheet / "key.json").read_text())
    shown = key["shown"]
    wrong = [item for item in shown if item["model"] != item["label"]]
    assert wrong and len(wrong) == key["count"] - key["model_right"]
    assert len(shown) == len(wrong) + 3
    assert len({item["index"] for item in shown}) == len(shown)
    pages = (len(shown) + 15) // 16
    assert sorted(path.name for path in sheet.glob("sheet-*.png")) == [f"sheet-{n:02d}.png" for n in range(pages)]


def test_sheet_cells_are_the_model_input_enlarged_in_ink_on_white(sheet: Path) -> None:
    key = json.loads((sheet / "key.json").read_text())
    samples = list(generate_samples(get_style("knu", "hard"), HELDOUT_SEED, key["count"]))
    page = np.asarray(Image.open(sheet / "sheet-00.png"))
    for item in key["shown"][:2]:
        plane = to_input(samples[item["index"]].image, Solver.load().spec.preprocess)[0]  # (35, 140), ink 0.5 or 1
        column = item["n"] % 2
        left, top = column * (140 * 3 + 10), 16
        cell = page[top : top + 35 * 3, left : left + 140 * 3]
        expected = np.repeat(np.repeat(((1 - plane) * 255).astype(np.uint8), 3, axis=0), 3, axis=1)
        assert np.array_equal(cell, expected)  # darker where the model's input holds more ink


def test_score_counts_the_readers_hits_in_each_group(sheet: Path, tmp_path: Path) -> None:
    shown = json.loads((sheet / "key.json").read_text())["shown"]
    wrong = sum(item["model"] != item["label"] for item in shown)
    readings = [item["label"] for item in shown]
    readings[0] = "?" * len(readings[0])  # the reader gives up on the first image
    first_wrong = shown[0]["model"] != shown[0]["label"]
    (tmp_path / "mine.txt").write_text("\n".join(readings))
    done = run("score", str(sheet), str(tmp_path / "mine.txt"))
    assert done.returncode == 0, done.stderr
    assert f"| the model misreads | {wrong} | {wrong - first_wrong} (" in done.stdout
    assert f"| the model reads | 3 | {3 - (not first_wrong)} (" in done.stdout
    assert f"read by the person, misread by the model ({wrong - first_wrong})" in done.stdout


def test_score_refuses_a_readings_file_of_the_wrong_length(sheet: Path, tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("ABCD")
    done = run("score", str(sheet), str(tmp_path / "short.txt"))
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error:") and "1 readings for" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_sheet_never_writes_into_a_folder_that_holds_files(sheet: Path) -> None:
    before = {path: path.read_bytes() for path in sheet.iterdir()}
    done = run("sheet", str(sheet), "--count", "4")
    assert done.returncode != 0 and "not empty" in done.stderr
    assert {path: path.read_bytes() for path in sheet.iterdir()} == before


def test_sheet_reads_a_labelled_folder_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "real"
    write_dataset(folder, get_style("knu", "easy"), 6, seed=3)
    done = run("sheet", str(tmp_path / "sheet"), "--data", str(folder), "--count", "4")
    assert done.returncode == 0, done.stderr
    key = json.loads((tmp_path / "sheet" / "key.json").read_text())
    first_four = sorted(path.name for path in folder.glob("*.png"))[:4]
    assert key["count"] == 4 and sorted(item["note"] for item in key["shown"]) == first_four
    assert all(item["note"].startswith(item["label"]) for item in key["shown"])


def test_sheet_refuses_a_folder_without_labelled_images_or_with_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = run("sheet", str(tmp_path / "sheet"), "--data", str(tmp_path / "empty"))
    assert done.returncode != 0 and done.stderr.strip() == f"error: {tmp_path / 'empty'} holds no labelled image"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ABCD_1.png").write_bytes(b"not a png")
    done = run("sheet", str(tmp_path / "sheet"), "--data", str(tmp_path / "broken"))
    assert done.returncode != 0 and done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "sheet").exists()
