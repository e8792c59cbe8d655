"""``knucaptcha generate``: synthetic captchas as a labelled folder, and a preview grid to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..generator import (
    DIFFICULTIES,
    MANIFEST,
    STYLE_NAMES,
    generate_samples,
    get_style,
    with_font_folder,
    write_dataset,
    write_preview,
)
from .app import app, console, progress

DEFAULT_COUNT = 1000
PREVIEW_COUNT = 16


@app.command()
def generate(
    out: Path | None = typer.Argument(
        None, help="Folder for LABEL_<index>.png files and labels.csv (created if needed; nothing is overwritten)."
    ),
    count: int | None = typer.Option(
        None,
        "--count",
        "-n",
        help=f"Captchas to make (default: {DEFAULT_COUNT}, or {PREVIEW_COUNT} with --preview alone).",
    ),
    style: str = typer.Option("knu", help=f"Style: {', '.join(STYLE_NAMES)}."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical files."),
    difficulty: str = typer.Option(
        "exact", help=f"{', '.join(DIFFICULTIES)} (exact: the style's own look, knu's is the real one)."
    ),
    workers: int = typer.Option(1, "--workers", "-j", help="Processes to render with; the files do not depend on it."),
    fonts: Path | None = typer.Option(
        None, help="Folder of .ttf/.otf fonts to draw with instead of the style's (from matplotlib)."
    ),
    charset: str | None = typer.Option(None, help="Symbols to draw labels from (default: the style's)."),
    length: str | None = typer.Option(None, help="Label length, N or MIN-MAX (default: the style's)."),
    preview: Path | None = typer.Option(
        None, help=f"Also (or only) draw the first {PREVIEW_COUNT} captchas as a labelled grid into this new PNG."
    ),
) -> None:
    """Generate synthetic captchas: a labelled folder for training, and/or a preview grid to look at."""
    if out is None and preview is None:
        raise ConfigError("give an output folder OUT, --preview FILE.png, or both")
    overrides: dict[str, Any] = {}
    if charset is not None:
        overrides["charset"] = charset
    if length is not None:
        overrides["min_length"], overrides["max_length"] = _parse_length(length)
    chosen = get_style(style, difficulty, **overrides)
    if fonts is not None:
        chosen = with_font_folder(chosen, fonts)

    total = count if count is not None else (DEFAULT_COUNT if out is not None else PREVIEW_COUNT)
    if out is not None:
        with progress() as bar:
            task = bar.add_task(f"generating {chosen.name}", total=total)
            write_dataset(out, chosen, total, seed, workers=workers, on_progress=lambda done: bar.advance(task, done))
        console.print(f"wrote {total} images and {MANIFEST} to {out}")
    if preview is not None:
        shown = total if out is None else min(PREVIEW_COUNT, total)  # a dataset's first samples
        write_preview(preview, generate_samples(chosen, seed, shown))
        console.print(f"wrote preview {preview}")


def _parse_length(text: str) -> tuple[int, int]:
    """``"4"`` → (4, 4); ``"4-6"`` → (4, 6)."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise ConfigError(f"--length must be N or MIN-MAX, not {text!r}") from None
