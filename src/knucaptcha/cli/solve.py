"""``knucaptcha solve``: read captcha images with a model and print what they say.

Output is made for pipes: one ``file<TAB>text<TAB>confidence`` line per image
(``cut -f2`` gives the texts), or with ``--json`` one JSON list. Progress,
per-file errors and warnings (an image of another kind than the model reads)
go to stderr, so stdout holds nothing else. ``-`` reads one
image from standard input (``curl -s URL | knucaptcha solve -``), as a captcha
fetched by a script arrives.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..ctc import ReadOptions
from ..errors import ConfigError, ImageError, MissingFileError
from ..evaluate import ProgressCallback, SolvedFile, solve_files
from ..labels import IMAGE_EXTENSIONS
from ..preprocess import load_image
from .app import app, progress

if TYPE_CHECKING:
    from PIL import Image

EXIT_SOME_FAILED = 1
"""Exit status when the command ran but some images could not be read (2 means it could not run)."""

STDIN = Path("-")
"""The input that stands for one image on standard input."""


# Decoding options shared by ``solve`` and ``evaluate``, so both read the same way.
Beam = Annotated[int, typer.Option(min=0, help="Beam search width; 0 decodes greedily (fastest).")]
BatchSize = Annotated[int, typer.Option(min=1, help="Images run through the model at once.")]
Symbols = Annotated[
    Optional[str],
    typer.Option(help="Read only these symbols, e.g. a site's alphabet without 0/O and 1/I (default: all the model's)."),
]
Length = Annotated[
    Optional[int],
    typer.Option(
        min=0,
        help="Read exactly this many symbols, for a site whose captchas always show that many; 0 reads any number. "
        "Default: the model's reading length if its file stores one (4 for the bundled default), else any.",
    ),
]

Verify = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Check the model's weights against the SHA-256 stored in it at export; "
        "--no-verify loads a file whose weights were changed on purpose.",
    ),
]


@contextmanager
def progress_callback(description: str, total: int) -> Iterator[ProgressCallback]:
    """A progress bar on stderr for ``total`` files, as a callback that advances it."""
    with progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)


def image_files(inputs: list[Path]) -> list[Path]:
    """The files named in ``inputs``, with each folder replaced by its image files (sorted, not hidden).

    Raises:
        MissingFileError: an input does not exist, or the inputs hold no image at all.
    """
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            entries = sorted(path.iterdir())
            files.extend(entry for entry in entries if _is_image_file(entry))
        elif path.exists():
            files.append(path)
        else:
            raise MissingFileError(f"no such file or folder: {path}")
    if not files:
        raise MissingFileError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, inputs))}")
    return files


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


@app.command()
def solve(
    images: Annotated[
        list[Path], typer.Argument(help="Image files, folders whose images are all read, or - for one image on stdin.")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="A .onnx model file, or the name of a bundled model.")
    ] = "default",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON list of {file, text, confidence, char_confidences, warnings}."),
    ] = False,
    beam: Beam = 0,
    batch_size: BatchSize = 64,
    symbols: Symbols = None,
    length: Length = None,
    verify: Verify = True,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse an image of another kind than the model reads (an opaque one for a model of transparent "
            "captchas) as unreadable, instead of reading it with a warning on stderr.",
        ),
    ] = False,
) -> None:
    """Read captcha images: prints FILE<TAB>TEXT<TAB>CONFIDENCE per image.

    Images that cannot be read are reported on stderr (with --json, as objects
    with an "error" field) and the others are still read; the exit status is
    then 1. A single unreadable image, or a bad model, ends with status 2.
    An image of another kind than the model was trained on is read with a
    warning on stderr; with --strict it counts as unreadable.
    """
    from ..inference import Solver  # ONNX Runtime loads only when a command needs it

    if STDIN in images and len(images) > 1:
        raise ConfigError("'-' (one image on standard input) must be the only input")
    solver = Solver.load(model, verify=verify)
    options = ReadOptions(beam, symbols, length, strict)
    if images == [STDIN]:
        results = [SolvedFile(STDIN, solver.read([_stdin_image()], options)[0])]
        _print_warnings(results)
        _print_results(results, as_json)
        return
    files = image_files(images)
    if len(files) == 1:
        results = solve_files(solver, files, options)
        if results[0].error is not None and not images[0].is_dir():
            raise results[0].error  # the one image asked for by name: a plain error, not a report
    else:
        with progress_callback("solving", len(files)) as advance:
            results = solve_files(solver, files, options, batch_size=batch_size, on_progress=advance)
    _print_warnings(results)
    _print_results(results, as_json)
    failed = sum(result.error is not None for result in results)
    if failed:
        typer.echo(f"error: {failed} of {len(results)} images could not be read", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)


def _stdin_image() -> Image.Image:
    """The image piped to standard input, decoded; a terminal or bytes that are no image are errors."""
    if sys.stdin.isatty():
        raise ConfigError("'-' reads an image from standard input, which is a terminal; pipe one in")
    try:
        return load_image(sys.stdin.buffer.read())
    except ImageError as error:
        raise type(error)(f"standard input: {error}") from None


def _print_warnings(results: list[SolvedFile]) -> None:
    """One ``warning:`` line on stderr per distinct warning, naming the image (or how many, and the first few)."""
    named: defaultdict[str, list[Path]] = defaultdict(list)
    for result in results:
        for warning in result.prediction.warnings if result.prediction is not None else ():
            named[warning].append(result.path)
    for warning, paths in named.items():
        if len(results) == 1:
            where = "standard input" if paths[0] == STDIN else str(paths[0])
        else:
            shown = ", ".join(str(path) for path in paths[:3]) + (", ..." if len(paths) > 3 else "")
            where = f"{len(paths)} of {len(results)} images ({shown})"
        typer.echo(f"warning: {where}: {warning}", err=True)


def _print_results(results: list[SolvedFile], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([result.to_dict() for result in results], ensure_ascii=False, indent=2))
        return
    for result in results:
        if result.prediction is None:
            typer.echo(f"error: {result.error}", err=True)
        else:
            typer.echo(f"{result.path}\t{result.prediction.text}\t{result.prediction.confidence:.4f}")
