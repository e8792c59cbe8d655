"""``knucaptcha evaluate``: score a model on a labelled folder, as tables, JSON or a sample grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..ctc import ReadOptions
from ..evaluate import Evaluation, evaluate_folder, render_grid
from ..labels import scan_folder
from .app import app, console
from .solve import EXIT_SOME_FAILED, BatchSize, Beam, Length, Symbols, Verify, progress_callback

CONFUSIONS_SHOWN = 10


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="A .onnx model file, or the name of a bundled model.")],
    folder: Annotated[Path, typer.Argument(help="A folder of images labelled by file name or labels.csv.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    grid: Annotated[
        Path | None, typer.Option(help="Also write a 4x4 PNG grid of samples, errors in red.")
    ] = None,
    case_insensitive: Annotated[
        bool, typer.Option("--case-insensitive", help="Count a reading that differs only in case as right.")
    ] = False,
    worst: Annotated[int, typer.Option(min=0, help="How many wrong readings to list.")] = 10,
    beam: Beam = 0,
    batch_size: BatchSize = 64,
    symbols: Symbols = None,
    length: Length = None,
    verify: Verify = True,
) -> None:
    """Sequence and character accuracy, accuracy per length, confusions and the worst readings.

    Images that cannot be decoded are listed on stderr and left out of the
    scores; the exit status is then 1.
    """
    from ..inference import Solver  # ONNX Runtime loads only when a command needs it

    solver = Solver.load(model, verify=verify)
    items = scan_folder(folder)
    with progress_callback("evaluating", len(items)) as advance:
        evaluation = evaluate_folder(
            solver,
            items,
            ReadOptions(beam, symbols, length),
            case_sensitive=not case_insensitive,
            batch_size=batch_size,
            on_progress=advance,
        )
    for failure in evaluation.unreadable:
        typer.echo(f"error: {failure.error}", err=True)
    if as_json:
        typer.echo(json.dumps(evaluation.to_dict(worst=worst), ensure_ascii=False, indent=2))
    else:
        _print_report(evaluation, worst, Console())
    if grid is not None:
        written = render_grid(evaluation.rows, grid, solver.spec.preprocess)
        console.print(f"grid written to {written}", markup=False)
    if evaluation.unreadable:
        count = len(evaluation.unreadable)
        typer.echo(f"error: {count} images could not be read and were not scored", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)


def _print_report(evaluation: Evaluation, worst: int, out: Console) -> None:
    scores = evaluation.scores
    summary = Table(title=f"{evaluation.model} on {scores.count} images", show_header=False)
    summary.add_row("sequence accuracy", f"{scores.sequence_accuracy:.2%}")
    summary.add_row("character accuracy", f"{scores.char_accuracy:.2%}")
    summary.add_row("character error rate", f"{scores.cer:.4f}")
    summary.add_row("letter case", "counted" if evaluation.case_sensitive else "ignored")
    options = evaluation.options
    summary.add_row("decoding", f"beam search, width {options.beam_width}" if options.beam_width else "greedy")
    summary.add_row("symbols read", options.symbols or "all the model's")
    summary.add_row("reading length", f"exactly {options.length}" if options.length else "any")
    out.print(summary)

    lengths = Table("label length", "images", "sequence accuracy", title="By label length")
    for length, (count, accuracy) in scores.by_length.items():
        lengths.add_row(str(length), str(count), f"{accuracy:.2%}")
    out.print(lengths)

    if scores.confusions:
        confusions = Table("expected", "read", "times", title="Most frequent confusions")
        for (expected, got), count in scores.confusions[:CONFUSIONS_SHOWN]:
            confusions.add_row(Text(expected), Text(got), str(count))
        out.print(confusions)

    wrong = evaluation.worst(worst)
    if wrong:
        table = Table("file", "label", "read", "confidence", title="Worst readings (least confident first)")
        for row in wrong:
            reading = row.prediction
            table.add_row(Text(row.path.name), Text(row.label), Text(reading.text), f"{reading.confidence:.3f}")
        out.print(table)
