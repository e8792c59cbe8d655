"""``knucaptcha data ...``: look at a labelled folder before training on it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..folder_stats import FolderStats, folder_stats
from ..labels import CASES
from .app import app, progress

Case = Enum("Case", {case: case for case in CASES}, type=str)  # type: ignore[misc]
"""The ``--case`` choices, built from :data:`knucaptcha.labels.CASES` so they cannot drift."""

data_app = typer.Typer(help="Inspect labelled image folders.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("stats")
def stats(
    folder: Path = typer.Argument(..., help="A folder of images, labelled by file name or labels.csv."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    case: Case = typer.Option("keep", "--case", help="Keep label case, or fold it to upper or lower."),
) -> None:
    """Count labels, lengths, characters, sizes, modes, transparency; list unreadable, unlabelled, duplicate files."""
    with progress() as bar:
        task = bar.add_task("reading images", total=None)
        result = folder_stats(folder, case=case.value, on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_tables(result, Console())


def _print_tables(result: FolderStats, out: Console) -> None:
    summary = Table(title=f"{result.folder}", show_header=False)
    summary.add_row("labelled images", str(result.count))
    summary.add_row("vocabulary", f"{result.vocabulary} ({len(result.vocabulary)} symbols)")
    summary.add_row("transparent images", f"{result.transparent} of {sum(result.sizes.values())}")
    summary.add_row("unlabelled files", str(len(result.unlabelled)))
    summary.add_row("unreadable files", str(len(result.unreadable)))
    summary.add_row("duplicate groups", str(len(result.duplicates)))
    if result.missing:
        summary.add_row("manifest entries without a file", str(len(result.missing)))
    out.print(summary)
    out.print(_counts("label length", "labels", {str(k): v for k, v in result.lengths.items()}, result.count))
    out.print(_counts("character", "occurrences", result.characters, sum(result.characters.values())))
    images = sum(result.sizes.values())
    out.print(_counts("size (WxH)", "images", {f"{w}x{h}": n for (w, h), n in result.sizes.items()}, images))
    out.print(_counts("mode", "images", result.modes, images))
    if result.unreadable:
        table = Table("unreadable file", "reason", title="Unreadable (skipped)")
        for item in result.unreadable:
            table.add_row(item.name, item.reason)
        out.print(table)
    _print_names(out, "Unlabelled (skipped)", result.unlabelled)
    _print_names(out, "Duplicates (same bytes)", [", ".join(group) for group in result.duplicates])
    _print_names(out, "In labels.csv but missing", result.missing)


def _counts(key: str, unit: str, counts: dict[str, int], total: int) -> Table:
    table = Table(key, unit, "share")
    for name, count in counts.items():
        table.add_row(name, str(count), f"{count / total:.1%}")
    return table


def _print_names(out: Console, title: str, names: tuple[str, ...] | list[str]) -> None:
    if names:
        table = Table(title, show_header=True)
        for name in names:
            table.add_row(name)
        out.print(table)
