"""The README documents every command and holds the two set-up commands CI relies on; each command's help reads well."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import typer.main

from knucaptcha.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(command: object, prefix: str = "knucaptcha") -> dict[str, object]:
    """Every leaf command by its full path. Duck-typed: typer builds on its own vendored copy of click's classes."""
    if not hasattr(command, "commands"):
        return {prefix: command}
    leaves: dict[str, object] = {}
    for name, sub in command.commands.items():
        leaves.update(_commands(sub, f"{prefix} {name}"))
    return leaves


def test_every_command_is_documented_in_the_readme() -> None:
    paths = list(_commands(typer.main.get_command(app)))
    assert len(paths) >= 9  # generate, data stats, train, evaluate, solve, export, serve, label, collect
    missing = [path for path in paths if path not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_names_exactly_the_two_setup_commands() -> None:
    setup = set(re.findall(r"^bash (scripts/\S+\.sh)", README, flags=re.MULTILINE))
    assert setup == {"scripts/run_demo.sh", "scripts/run_tests.sh"}
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/run_tests.sh" in ci


def test_command_help_reads_well_in_an_80_column_terminal() -> None:
    """Typer keeps a help text's line breaks: its first paragraph is the one-line summary in the
    command list, and a line of a later paragraph wider than the panel breaks mid-sentence."""
    for path, command in _commands(typer.main.get_command(app)).items():
        summary, *rest = inspect.cleandoc(command.help or "").split("\n\n")
        assert summary and "\n" not in summary, f"{path}: the summary paragraph spans lines"
        wide = [line for line in "\n".join(rest).splitlines() if len(line) > 78]
        assert not wide, f"{path}: help lines wider than 78 columns: {wide}"
