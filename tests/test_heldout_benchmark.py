"""``benchmarks/heldout.py``: the per-level table, the split of the mixed level, and ``--wild-at``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "heldout.py"


def run(tmp_path: Path, name: str, *args: str) -> tuple[dict, str]:
    report = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "40", "--json", str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text()), done.stdout


def test_the_wild_end_at_medium_makes_hard_todays_medium_and_mixed_splits_by_difficulty(tmp_path: Path) -> None:
    today, printed = run(tmp_path, "today")
    tame, _ = run(tmp_path, "tame", "--wild-at", "0.5")
    levels = {row["difficulty"]: row for row in today["rows"]}
    tame_levels = {row["difficulty"]: row for row in tame["rows"]}
    same = ("sequence_accuracy", "char_accuracy", "top_confusions")
    assert [tame_levels["hard"][key] for key in same] == [levels["medium"][key] for key in same]
    assert tame["wild_at"] == 0.5 and today["wild_at"] is None

    by_tenth = today["mixed_by_difficulty_tenth"]
    assert sum(count for count, _ in by_tenth.values()) == 40
    right = sum(correct for _, correct in by_tenth.values())
    assert right / 40 == levels["mixed"]["sequence_accuracy"]
    assert sum(count for count, _ in today["mixed_by_font"].values()) == 40
    assert "by the difficulty each image drew" in printed and "by font" in printed


def test_a_wild_end_outside_the_scale_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "1", "--wild-at", "1.5"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "error: --wild-at must lie in [0, 1], not 1.5"
