"""Running a model over image files on disk: solving folders, scoring against labels, the sample grid.

Both ``knucaptcha solve`` and ``knucaptcha evaluate`` read files through
:func:`solve_files`, so a folder reads the same whichever command looks at it,
and one unreadable file is reported on its own instead of sinking the batch it
was in. Inference runs on ONNX Runtime through :class:`~knucaptcha.inference.Solver`;
nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ctc import Prediction, ReadOptions
from .errors import ChannelMismatchError, ConfigError, ImageError, LabelError, MissingFileError
from .labels import LabelledImage
from .metrics import Scores, score
from .preprocess import load_image, to_input
from .spec import PreprocessSpec

if TYPE_CHECKING:
    from PIL import Image

    from .inference import Solver

ProgressCallback = Callable[[int], None]
"""Called with the number of files just finished, once per batch."""

GRID_ROWS, GRID_COLUMNS = 4, 4
GRID_SIZE = (1200, 600)
"""Pixel size (width, height) of the PNG :func:`render_grid` writes."""

_GRID_DPI = 100


@dataclass(frozen=True)
class SolvedFile:
    """What became of one image file: a prediction, or why it could not be read.

    Exactly one of ``prediction`` and ``error`` is set.
    """

    path: Path
    prediction: Prediction | None = None
    error: ImageError | MissingFileError | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{file, text, confidence, char_confidences, warnings}``, or ``{file, error}`` for a failure."""
        if self.prediction is None:
            return {"file": str(self.path), "error": str(self.error)}
        return {"file": str(self.path), **self.prediction.to_dict()}


def solve_files(
    solver: Solver,
    paths: Sequence[str | os.PathLike[str]],
    options: ReadOptions = ReadOptions(),
    *,
    batch_size: int = 64,
    on_progress: ProgressCallback | None = None,
) -> list[SolvedFile]:
    """Read every image file in ``paths`` with ``options``, ``batch_size`` at a time, in the given order.

    A file that cannot be decoded (or vanished since it was listed) yields a
    :class:`SolvedFile` with ``error`` set; the others are still read. So,
    with ``options.strict``, does a file of another kind than the model reads
    (a :class:`~knucaptcha.errors.ChannelMismatchError` naming it).

    Raises:
        ConfigError: ``batch_size`` below 1, or options the model cannot follow
            (:meth:`Solver.check_options`).
    """
    if batch_size < 1:
        raise ConfigError("batch_size must be positive")
    results: list[SolvedFile] = []
    for start in range(0, len(paths), batch_size):
        chunk = [Path(path) for path in paths[start : start + batch_size]]
        images: list[Image.Image] = []
        failures: dict[Path, ImageError | MissingFileError] = {}
        for path in chunk:
            try:
                images.append(load_image(path))
            except (ImageError, MissingFileError) as error:
                failures[path] = error
        predictions = iter(solver.read(images, replace(options, strict=False), batch_size=batch_size))
        results.extend(
            SolvedFile(path, error=failures[path]) if path in failures else _solved(path, next(predictions), options)
            for path in chunk
        )
        if on_progress is not None:
            on_progress(len(chunk))
    return results


def _solved(path: Path, prediction: Prediction, options: ReadOptions) -> SolvedFile:
    """``prediction`` as the outcome for ``path``: an error in strict mode when it carries a channel warning."""
    if options.strict and prediction.warnings:
        return SolvedFile(path, error=ChannelMismatchError(f"{path}: {prediction.warnings[0]}"))
    return SolvedFile(path, prediction)


@dataclass(frozen=True)
class EvaluatedImage:
    """One labelled image with what the model read in it."""

    path: Path
    label: str
    prediction: Prediction
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        reading = self.prediction.to_dict()
        return {"file": str(self.path), "label": self.label, **reading, "correct": self.correct}


@dataclass(frozen=True)
class Evaluation:
    """A model's results on a labelled folder.

    Attributes:
        model: the solver's name.
        rows: every readable image with its prediction, in input order.
        unreadable: images that could not be decoded; they are not scored.
        scores: sequence and character accuracy, per-length accuracy, confusions.
        case_sensitive: whether ``a`` and ``A`` counted as different.
        options: how the readings were decoded (beam width, alphabet, length),
            with the model's own reading length where none was asked for.
    """

    model: str
    rows: tuple[EvaluatedImage, ...]
    unreadable: tuple[SolvedFile, ...]
    scores: Scores
    case_sensitive: bool
    options: ReadOptions = ReadOptions()

    def worst(self, count: int) -> list[EvaluatedImage]:
        """Up to ``count`` wrong predictions, the least confident first (ties by path)."""
        wrong = [row for row in self.rows if not row.correct]
        return sorted(wrong, key=lambda row: (row.prediction.confidence, row.path))[:count]

    def to_dict(self, *, worst: int = 10) -> dict[str, Any]:
        """A JSON-ready summary: scores, the ``worst`` examples, unreadable files and every row."""
        return {
            "model": self.model,
            "case_sensitive": self.case_sensitive,
            "beam_width": self.options.beam_width,
            "symbols": self.options.symbols,
            "length": self.options.length,
            "scores": self.scores.to_dict(),
            "worst": [row.to_dict() for row in self.worst(worst)],
            "unreadable": [failure.to_dict() for failure in self.unreadable],
            "items": [row.to_dict() for row in self.rows],
        }


def evaluate_folder(
    solver: Solver,
    items: Sequence[LabelledImage],
    options: ReadOptions = ReadOptions(),
    *,
    case_sensitive: bool = True,
    batch_size: int = 64,
    on_progress: ProgressCallback | None = None,
) -> Evaluation:
    """Solve every labelled image of ``items`` with ``options`` and score the readings against the labels.

    Args:
        items: labelled images, e.g. from :func:`knucaptcha.labels.scan_folder`.
        case_sensitive: when false, a reading that differs from its label
            only in letter case counts as correct.

    Raises:
        LabelError: ``items`` is empty, or no image in it could be read.
    """
    if not items:
        raise LabelError("there are no labelled images to evaluate")
    paths = [item.path for item in items]
    solved = solve_files(solver, paths, options, batch_size=batch_size, on_progress=on_progress)
    rows: list[EvaluatedImage] = []
    unreadable: list[SolvedFile] = []
    for item, result in zip(items, solved):
        if result.prediction is None:
            unreadable.append(result)
            continue
        correct = _same(item.label, result.prediction.text, case_sensitive)
        rows.append(EvaluatedImage(item.path, item.label, result.prediction, correct))
    if not rows:
        raise LabelError(f"none of the {len(items)} labelled images could be read ({unreadable[0].error})")
    labels, texts = [row.label for row in rows], [row.prediction.text for row in rows]
    scores = score(labels, texts, case_sensitive=case_sensitive)
    read_with = solver.resolve_options(options)
    return Evaluation(solver.name, tuple(rows), tuple(unreadable), scores, case_sensitive, read_with)


def _same(label: str, text: str, case_sensitive: bool) -> bool:
    return label == text if case_sensitive else label.casefold() == text.casefold()


def render_grid(rows: Sequence[EvaluatedImage], out: str | os.PathLike[str], spec: PreprocessSpec) -> Path:
    """Draw the first 16 rows as a 4×4 PNG grid of model inputs titled label → reading, errors in red.

    This is the seed notebook's check-by-eye, showing what the model saw
    (``spec`` applied) rather than the raw file. The PNG is
    :data:`GRID_SIZE` pixels whatever the number of rows; unused cells stay blank.

    Raises:
        MissingFileError: the folder ``out`` should go in does not exist.
        ConfigError: ``out`` cannot be written (a folder, no permission).
    """
    # Lazy and pyplot-free: the Agg canvas needs no display and no global figure state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    if not out.parent.is_dir():
        raise MissingFileError(f"no such folder for the grid image: {out.parent}")
    width, height = GRID_SIZE
    figure = Figure(figsize=(width / _GRID_DPI, height / _GRID_DPI), dpi=_GRID_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(GRID_ROWS, GRID_COLUMNS).ravel()
    for cell in axes[len(rows) :]:
        cell.axis("off")
    for cell, row in zip(axes, rows):
        cell.imshow(to_input(row.path, spec)[0], cmap="gray_r", vmin=0.0, vmax=1.0)  # ink dark on white
        cell.set_xticks([])  # keep the frame: it shows the input's extent
        cell.set_yticks([])
        # Monospace tells O from 0 and I from 1, the usual confusions.
        title = f"{row.label} → {row.prediction.text or '∅'}"
        cell.set_title(title, color="black" if row.correct else "red", fontfamily="monospace")
    figure.tight_layout()
    try:
        figure.savefig(out, format="png")
    except OSError as error:
        raise ConfigError(f"cannot write the grid to {out}: {error.strerror or error}") from None
    return out
