"""``folder_stats`` and ``knucaptcha data stats`` on a folder full of the usual accidents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from knucaptcha.cli import app
from knucaptcha.errors import MissingFileError
from knucaptcha.folder_stats import folder_stats
from knucaptcha.labels import MANIFEST_NAME, write_manifest


def png_bytes(size: tuple[int, int], mode: str = "RGBA", colour: int | tuple[int, ...] = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture()
def messy_folder(tmp_path: Path) -> Path:
    """Four good images (one a byte-for-byte copy of another) and every kind of broken file."""
    good = png_bytes((140, 35), colour=(0, 0, 0, 255))
    (tmp_path / "AB12.png").write_bytes(good)
    (tmp_path / "AB12_2.png").write_bytes(good)  # duplicate
    (tmp_path / "CD3.png").write_bytes(png_bytes((150, 40), "RGB", (200, 200, 200)))
    (tmp_path / "ef45.png").write_bytes(png_bytes((140, 35), "L", 255))
    (tmp_path / "_9.png").write_bytes(png_bytes((20, 20), "L"))  # readable, unlabelled
    (tmp_path / "ZERO.png").write_bytes(b"")
    (tmp_path / "TRUNC.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "TEXT.png").write_text("this is not a picture\n")
    (tmp_path / "readme.txt").write_text("not an image extension: ignored\n")
    return tmp_path


def test_stats_of_a_messy_folder(messy_folder: Path) -> None:
    progress: list[tuple[int, int]] = []
    stats = folder_stats(messy_folder, on_progress=lambda done, total: progress.append((done, total)))

    assert stats.count == 4
    assert stats.lengths == {3: 1, 4: 3}
    # Most frequent first, ties by key: the order is part of the result, so compare item lists.
    assert list(stats.characters.items()) == [
        ("1", 2), ("2", 2), ("A", 2), ("B", 2), ("3", 1), ("4", 1), ("5", 1), ("C", 1), ("D", 1), ("e", 1), ("f", 1)
    ]
    assert stats.vocabulary == "12345ABCDef"
    assert list(stats.sizes.items()) == [((140, 35), 3), ((20, 20), 1), ((150, 40), 1)]
    assert list(stats.modes.items()) == [("L", 2), ("RGBA", 2), ("RGB", 1)]
    assert stats.transparent == 0  # the RGBA files' alpha is all 255: opaque, as train --data reads them
    assert stats.duplicates == (("AB12.png", "AB12_2.png"),)
    assert stats.unlabelled == ("_9.png",)
    assert stats.missing == ()
    unreadable = {item.name: item.reason for item in stats.unreadable}
    assert sorted(unreadable) == ["TEXT.png", "TRUNC.png", "ZERO.png"]
    assert "empty" in unreadable["ZERO.png"]
    assert "damaged" in unreadable["TRUNC.png"]
    assert "not an image" in unreadable["TEXT.png"]
    assert progress[-1] == (8, 8)
    assert [done for done, _ in progress] == list(range(1, 9))


def test_stats_with_case_folding_and_manifest(messy_folder: Path) -> None:
    write_manifest(messy_folder / MANIFEST_NAME, {"ef45.png": "ab", "gone.png": "X"})
    stats = folder_stats(messy_folder, case="upper")
    assert stats.count == 1
    assert stats.vocabulary == "AB"
    assert stats.missing == ("gone.png",)
    assert "AB12.png" in stats.unlabelled


def test_stats_of_an_empty_folder(tmp_path: Path) -> None:
    stats = folder_stats(tmp_path)
    assert (stats.count, stats.vocabulary, stats.lengths, stats.sizes) == (0, "", {}, {})


def test_stats_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        folder_stats(tmp_path / "absent")


def test_to_dict_is_json_ready(messy_folder: Path) -> None:
    data = json.loads(json.dumps(folder_stats(messy_folder).to_dict()))
    assert data["sizes"] == {"140x35": 3, "20x20": 1, "150x40": 1}
    assert data["lengths"] == {"3": 1, "4": 3}
    assert data["duplicates"] == [["AB12.png", "AB12_2.png"]]
    assert {item["name"] for item in data["unreadable"]} == {"TEXT.png", "TRUNC.png", "ZERO.png"}


runner = CliRunner()


def test_cli_json(messy_folder: Path) -> None:
    result = runner.invoke(app, ["data", "stats", str(messy_folder), "--json", "--case", "lower"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["vocabulary"] == "12345abcdef"
    assert data["unlabelled"] == ["_9.png"]


def test_cli_tables_name_every_problem_file(messy_folder: Path) -> None:
    result = runner.invoke(app, ["data", "stats", str(messy_folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("ZERO.png", "TRUNC.png", "TEXT.png", "_9.png", "AB12.png, AB12_2.png", "12345ABCDef", "140x35"):
        assert name in result.stdout


def test_cli_missing_folder_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: no such folder: {tmp_path / 'absent'}"]
