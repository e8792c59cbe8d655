"""The README documents every command, and holds the two set-up commands CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from knucaptcha.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _command_paths(command: object, prefix: str = "knucaptcha") -> list[str]:
    # Duck-typed: typer builds on its own vendored copy of click's classes.
    if hasattr(command, "commands"):
        return [path for name, sub in command.commands.items() for path in _command_paths(sub, f"{prefix} {name}")]
    return [prefix]


def test_every_command_is_documented_in_the_readme() -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert len(paths) >= 9  # generate, data stats, train, evaluate, solve, export, serve, label, collect
    missing = [path for path in paths if path not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_names_exactly_the_two_setup_commands() -> None:
    setup = set(re.findall(r"^bash (scripts/\S+\.sh)", README, flags=re.MULTILINE))
    assert setup == {"scripts/run_demo.sh", "scripts/run_tests.sh"}
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/run_tests.sh" in ci
