"""``knucaptcha generate``: files, manifest, preview, and one clean error line on bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from knucaptcha.cli import app

runner = CliRunner()


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_generate_writes_count_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(app, ["generate", str(out), "--count", "7", "--seed", "2", "--difficulty", "mixed"])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert len(rows) == 7 and len(list(out.glob("*.png"))) == 7
    assert all((out / row["file"]).name == f"{row['label']}_{i}.png" for i, row in enumerate(rows))
    assert all(Image.open(out / row["file"]).size == (140, 35) for row in rows)


def test_generate_is_deterministic_and_never_overwrites(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert runner.invoke(app, ["generate", str(tmp_path / name), "-n", "5", "--seed", "9"]).exit_code == 0
    assert [p.read_bytes() for p in sorted((tmp_path / "a").iterdir())] == [
        p.read_bytes() for p in sorted((tmp_path / "b").iterdir())
    ]
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    result = runner.invoke(app, ["generate", str(tmp_path / "a"), "-n", "5", "--seed", "9"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to overwrite existing files")
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before


def test_generate_style_length_and_charset_options(tmp_path: Path) -> None:
    out = tmp_path / "old"
    args = ["generate", str(out), "-n", "6", "--style", "knu2021", "--length", "3-4", "--charset", "abc"]
    assert runner.invoke(app, args).exit_code == 0
    rows = _rows(out)
    assert all(3 <= len(r["label"]) <= 4 and set(r["label"]) <= set("abc") for r in rows)
    assert Image.open(out / rows[0]["file"]).mode == "RGB"


def test_generate_preview_alone_and_with_a_dataset(tmp_path: Path) -> None:
    alone = tmp_path / "alone.png"
    result = runner.invoke(app, ["generate", "--preview", str(alone), "-n", "8", "--style", "knu-unseen"])
    assert result.exit_code == 0, result.output
    assert Image.open(alone).mode == "RGB"
    both = tmp_path / "both.png"
    result = runner.invoke(app, ["generate", str(tmp_path / "d"), "-n", "3", "--preview", str(both)])
    assert result.exit_code == 0, result.output
    assert both.exists() and len(_rows(tmp_path / "d")) == 3


def test_generate_with_workers(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", str(tmp_path / "w"), "-n", "4", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert len(_rows(tmp_path / "w")) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: give an output folder OUT, --preview FILE.png, or both"),
        (["OUT", "--style", "nope"], "error: unknown style 'nope'"),
        (["OUT", "--difficulty", "brutal"], "error: difficulty must be one of"),
        (["OUT", "--count", "0"], "error: count must be at least 1"),
        (["OUT", "--workers", "0"], "error: workers must be at least 1"),
        (["OUT", "--length", "x"], "error: --length must be N or MIN-MAX"),
        (["OUT", "--length", "5-2"], "error: label length range 5..2"),
        (["OUT", "--charset", "AA"], "error: charset has repeated symbols"),
        (["OUT", "--fonts", "ABSENT"], "error: no such font folder"),
        (["--preview", "PREVIEW", "--count", "0"], "error: a preview needs at least one sample"),
    ],
)
def test_generate_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / a) if a in ("OUT", "ABSENT", "PREVIEW") else a for a in args]
    result = runner.invoke(app, ["generate", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "PREVIEW").exists()


def test_generate_preview_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "p.png"
    target.write_bytes(b"mine")
    result = runner.invoke(app, ["generate", "--preview", str(target)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr
    assert target.read_bytes() == b"mine"
