"""A model's guesses for unlabelled images, kept in ``prelabels.csv`` so each image is solved once.

``knucaptcha collect --prelabel`` writes the file and the labelling page reads
it (and adds the guesses it had to compute), so a person starts from the
model's reading and corrects only its mistakes. Columns: ``file,guess,confidence,reader``.
A guess is never a label: training ignores this file.

``reader`` says which model made a guess (the SHA-256 of its file) and with
which reading options (alphabet, length, beam width). The usual round is
collect, label some, fine-tune, then label the rest with the fine-tuned model:
a guess whose reader is not the one asking now is made again, so the better
model's guesses are the ones shown.
Files written before the column existed read as guesses of an unknown reader.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .ctc import ReadOptions
from .errors import LabelError
from .evaluate import ProgressCallback, solve_files
from .fileops import write_text_atomically

if TYPE_CHECKING:
    from .inference import Solver

PRELABELS_NAME = "prelabels.csv"
_FIELDS = ("file", "guess", "confidence", "reader")
_REQUIRED = _FIELDS[:3]


@dataclass(frozen=True)
class Guess:
    """What a model read in one image, how sure it was (0 to 1), and who read it (:func:`reader_of`; empty if unknown)."""

    text: str
    confidence: float
    reader: str = ""


def reader_of(solver: Solver, options: ReadOptions = ReadOptions()) -> str:
    """Who makes a guess: the model's file digest, and the options it read with (its own reading
    length included), if not the defaults."""
    return f"sha256:{solver.digest[:16]} {solver.resolve_options(options).describe()}".rstrip()


def read_prelabels(path: str | os.PathLike[str]) -> dict[str, Guess]:
    """``{file name: Guess}`` from a prelabels file; an absent file holds no guesses.

    Raises:
        LabelError: the header lacks ``file,guess,confidence`` or a confidence
            is not a number between 0 and 1.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    if not set(_REQUIRED) <= set(reader.fieldnames or []):
        raise LabelError(f"{path} must start with a 'file,guess,confidence' header")
    guesses: dict[str, Guess] = {}
    for row in reader:
        try:
            confidence = float(row["confidence"])
        except (TypeError, ValueError):
            where = f"{path} line {reader.line_num}"
            raise LabelError(f"{where}: confidence {row['confidence']!r} is not a number") from None
        if not 0.0 <= confidence <= 1.0:  # NaN fails it too
            raise LabelError(f"{path} line {reader.line_num}: confidence {confidence} is not between 0 and 1")
        guesses[row["file"] or ""] = Guess(row["guess"] or "", confidence, row.get("reader") or "")
    return guesses


def write_prelabels(path: str | os.PathLike[str], guesses: Mapping[str, Guess]) -> None:
    """Write ``{file name: Guess}`` as ``file,guess,confidence,reader``, atomically, sorted by file name.

    Confidences are written in full (``repr``), so a guess reads back equal to the one written.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_FIELDS)
    writer.writerows(
        (name, guess.text, repr(guess.confidence), guess.reader) for name, guess in sorted(guesses.items())
    )
    write_text_atomically(path, buffer.getvalue())


def guess_files(
    solver: Solver,
    paths: Sequence[Path],
    options: ReadOptions = ReadOptions(),
    *,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Guess]:
    """The model's guess, read with ``options``, for each readable file in ``paths``, keyed by file name;
    unreadable files are left out."""
    solved = solve_files(solver, paths, options, on_progress=on_progress)
    reader = reader_of(solver, options)
    return {
        item.path.name: Guess(item.prediction.text, item.prediction.confidence, reader)
        for item in solved
        if item.prediction is not None
    }


def add_guesses(
    folder: Path,
    solver: Solver,
    paths: Sequence[Path],
    options: ReadOptions = ReadOptions(),
    *,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Guess]:
    """Guess the files of ``paths`` that ``folder``'s prelabels file lacks, save them, and return all guesses.

    An image is solved once per reader: guesses on file from this model, read
    with the same ``options`` (as in :func:`guess_files`), are kept;
    those from another model or other options are made again. Guesses for
    files outside ``paths`` (labelled since) stay as they are.
    """
    # Refuse a bad alphabet or length even when nothing is left to guess.
    solver.check_options(options)
    cache = folder / PRELABELS_NAME
    guesses = read_prelabels(cache)
    reader = reader_of(solver, options)
    todo = [path for path in paths if path.name not in guesses or guesses[path.name].reader != reader]
    if todo:
        guesses.update(guess_files(solver, todo, options, on_progress=on_progress))
        write_prelabels(cache, guesses)
    return guesses
