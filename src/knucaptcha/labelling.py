"""A person labelling a folder, one image at a time: the queue, the writes, and undo (no HTTP here).

Which images need a label
    Exactly those training would find no label for
    (:func:`knucaptcha.labels.survey_folder`): with a ``labels.csv``, the images
    it does not list; without one, the images whose name carries no label (the
    stem before the first ``_`` is empty, as in the ``_<time>-<n>-<hash>.png``
    names ``knucaptcha collect`` gives). The queue shows them least confident
    model guess first; images without a guess come last. A skipped image goes
    to the back of the queue for this session.

How a label is written (``write``)
    ``csv``: a row ``file,label`` is added to ``labels.csv``; the image keeps its name.
    ``rename``: the image is renamed ``LABEL_<n>.ext`` with the smallest free
    ``n`` from 1 (a hard link then an unlink: an existing file is never
    replaced); if the folder has a ``labels.csv`` the new name is added to it
    too, since a manifest is then the only source of labels.
    ``both``: rename, and add the new name to ``labels.csv``.
    When ``labels.csv`` is first created, the images already labelled by name
    are listed in it, so creating it takes no label away.

Undo takes back the last label or skip of the session: the file gets its old
name back and the row the label added to ``labels.csv`` is taken out again;
nothing else in the manifest changes (a ``labels.csv`` the label created stays,
listing the images labelled by name).

Several sessions on one folder (two ``knucaptcha label`` processes, or a
person editing ``labels.csv`` meanwhile) lose nothing: every write holds an
exclusive lock on ``.labels.lock`` in the folder and re-reads ``labels.csv``
inside it, so each change applies to the manifest as it is then. An image
another session labelled meanwhile is refused, not labelled twice.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .ctc import ReadOptions
from .errors import ConfigError, LabelError, MissingFileError
from .evaluate import ProgressCallback
from .fileops import exclusive_lock, move_to_free_name, move_without_replacing, write_text_atomically
from .labels import MANIFEST_NAME, read_manifest, survey_folder, write_manifest
from .prelabels import PRELABELS_NAME, Guess, add_guesses, read_prelabels

if TYPE_CHECKING:
    from .inference import Solver

WRITE_MODES: tuple[str, ...] = ("csv", "rename", "both")
MAX_LABEL_LENGTH = 64
"""Longest label accepted: captcha texts are short, and a label becomes part of a file name."""
MAX_LABEL_BYTES = 255 - 16
"""Longest label in UTF-8 bytes: file names hold 255 bytes, and ``rename`` adds ``_<n>.<ext>`` (16 kept for it)."""
LOCK_NAME = ".labels.lock"
"""The file whose lock every labelling write holds (hidden, so folder scans skip it)."""
FORBIDDEN_IN_LABELS = frozenset('/\\:*?"<>|_.,')
"""Path syntax, characters Windows forbids in names, the label separator ``_``, and the CSV comma."""


def check_label(label: str) -> str:
    """Return ``label`` if it can be both a manifest entry and a file name's label.

    Raises:
        LabelError: empty, longer than :data:`MAX_LABEL_LENGTH` characters or
            :data:`MAX_LABEL_BYTES` bytes, holding whitespace or control
            characters, or a character of :data:`FORBIDDEN_IN_LABELS`.
    """
    if not label:
        raise LabelError("the label is empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise LabelError(f"the label is longer than {MAX_LABEL_LENGTH} characters")
    size = len(label.encode("utf-8", "surrogatepass"))  # a lone surrogate (JSON allows one) is refused below
    if size > MAX_LABEL_BYTES:
        raise LabelError(f"the label is {size} bytes in UTF-8; at most {MAX_LABEL_BYTES} fit in a file name")
    if any(symbol.isspace() or not symbol.isprintable() for symbol in label):
        raise LabelError(f"the label {label!r} holds whitespace or control characters")
    bad = sorted(FORBIDDEN_IN_LABELS & set(label))
    if bad:
        raise LabelError(f"the label {label!r} holds {''.join(bad)!r}, which cannot appear in labels")
    return label


@dataclass(frozen=True)
class QueueItem:
    """An image waiting for a label, with the model's guess (``None`` when there is none)."""

    file: str
    guess: Guess | None


@dataclass(frozen=True)
class Progress:
    """Counts for the page: ``labelled`` of ``total`` images, ``done`` in this session, ``skipped`` now."""

    labelled: int
    total: int
    done: int
    skipped: int


@dataclass(frozen=True)
class Step:
    """One action of the session, with what undo needs to take it back.

    Attributes:
        item: the image as it was queued.
        label: the label given, or ``None`` for a skip.
        renamed: the image's new name, when it was renamed.
        wrote_manifest: whether the label added a row to ``labels.csv``.
    """

    item: QueueItem
    label: str | None = None
    renamed: str | None = None
    wrote_manifest: bool = False


class LabellingSession:
    """The unlabelled images of one folder and the labels a person gives them.

    Safe to call from several threads (the web server's worker pool): every
    action holds one lock, so two clicks never race on a file or the manifest.
    Writes also hold the folder's lock file (:data:`LOCK_NAME`), so another
    session on the same folder, in this process or another, cannot race either.
    """

    def __init__(self, folder: Path, write: str, queue: list[QueueItem], total: int):
        if write not in WRITE_MODES:
            raise ConfigError(f"write must be one of {', '.join(WRITE_MODES)}, not {write!r}")
        self.folder = folder
        self.write = write
        self._pending = {item.file: item for item in queue}
        self._skipped: list[str] = []
        self._history: list[Step] = []
        self._total = total
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        write: str = "csv",
        solver: Solver | None = None,
        options: ReadOptions = ReadOptions(),
        on_progress: ProgressCallback | None = None,
    ) -> LabellingSession:
        """Scan ``folder`` and queue its unlabelled images with the model's guesses.

        Guesses come from the folder's ``prelabels.csv``; with a ``solver``,
        images it holds no guess of this solver's for (read with the same
        ``options``: the site's alphabet, length) are solved and saved to it (see
        :func:`~knucaptcha.prelabels.add_guesses`).

        Raises:
            MissingFileError: ``folder`` is not a folder.
            LabelError: its ``labels.csv`` or ``prelabels.csv`` is malformed.
            ConfigError: ``write`` is not a known mode.
        """
        folder = Path(folder)
        scan = survey_folder(folder)
        if solver is None:
            guesses = read_prelabels(folder / PRELABELS_NAME)
        else:
            guesses = add_guesses(folder, solver, list(scan.unlabelled), options, on_progress=on_progress)
        queue = [QueueItem(path.name, guesses.get(path.name)) for path in scan.unlabelled]
        return cls(folder, write, queue, total=len(scan.items) + len(scan.unlabelled))

    def current(self) -> QueueItem | None:
        """The image to show next: unskipped first, least confident first; ``None`` when all are labelled."""
        with self._lock:
            return min(self._pending.values(), key=self._rank, default=None)

    def _rank(self, item: QueueItem) -> tuple[int, int, float, str]:
        skip_order = self._skipped.index(item.file) + 1 if item.file in self._skipped else 0
        if item.guess is None:
            return (skip_order, 1, 0.0, item.file)
        return (skip_order, 0, item.guess.confidence, item.file)

    def progress(self) -> Progress:
        with self._lock:
            done = sum(1 for step in self._history if step.label is not None)
            return Progress(self._total - len(self._pending), self._total, done, len(self._skipped))

    def can_undo(self) -> bool:
        with self._lock:
            return bool(self._history)

    def image_path(self, file: str) -> Path:
        """The path of a queued image, for showing it.

        Raises:
            MissingFileError: ``file`` is not in the queue (this also stops ``../`` tricks).
        """
        with self._lock:
            if file not in self._pending:
                raise MissingFileError(f"{file!r} is not an image waiting for a label")
            return self.folder / file

    def label(self, file: str, label: str) -> Step:
        """Give the queued image ``file`` its ``label``, writing as :attr:`write` says.

        Raises:
            LabelError: the label is invalid, ``labels.csv`` is malformed, or the
                file cannot be renamed safely.
            MissingFileError: ``file`` is not queued, vanished from the folder,
                or was labelled in ``labels.csv`` meanwhile (another session).
        """
        check_label(label)
        with self._lock, exclusive_lock(self.folder / LOCK_NAME):
            item = self._queued(file)
            path = self.folder / file
            if not path.is_file():
                del self._pending[file]
                self._total -= 1
                raise MissingFileError(f"{file} is no longer in {self.folder}")
            manifest = self.folder / MANIFEST_NAME
            before = manifest.read_text(encoding="utf-8") if manifest.is_file() else None
            if before is not None and file in read_manifest(manifest):
                del self._pending[file]  # still counted: it has a label now, just not from this session
                raise MissingFileError(f"{file} was labelled meanwhile, in {MANIFEST_NAME} (another session?)")
            renamed = None
            if self.write in ("rename", "both"):
                suffix = path.suffix
                renamed = move_to_free_name(path, lambda: _numbered(label, suffix)).name
            wrote = self.write in ("csv", "both") or before is not None
            if wrote:
                try:
                    self._record(manifest, before, renamed or file, label)
                except BaseException:
                    if renamed is not None:
                        move_without_replacing(self.folder / renamed, path)
                    raise
            step = Step(item, label, renamed, wrote)
            del self._pending[file]
            self._forget_skip(file)
            self._history.append(step)
            return step

    def skip(self, file: str) -> Step:
        """Put the queued image ``file`` at the back of the queue; nothing is written.

        Raises:
            MissingFileError: ``file`` is not queued.
        """
        with self._lock:
            step = Step(self._queued(file))
            self._forget_skip(file)
            self._skipped.append(file)
            self._history.append(step)
            return step

    def undo(self) -> Step:
        """Take back the last label or skip; the image is queued again and shown next.

        Raises:
            LabelError: there is nothing to undo, the old name has been taken
                by another file meanwhile, or ``labels.csv`` is no longer
                readable (nothing is changed then).
        """
        with self._lock, exclusive_lock(self.folder / LOCK_NAME):
            if not self._history:
                raise LabelError("there is nothing to undo")
            step = self._history[-1]
            file = step.item.file
            manifest = self.folder / MANIFEST_NAME
            after = None
            if step.wrote_manifest and manifest.is_file():  # gone or unlisted: someone took the label back already
                read_manifest(manifest)  # a malformed manifest stops the undo before anything changes
                after = _without_row(manifest.read_text(encoding="utf-8"), step.renamed or file)
            if step.renamed is not None:
                try:
                    move_without_replacing(self.folder / step.renamed, self.folder / file)
                except FileExistsError:
                    raise LabelError(f"cannot undo: {file} exists again, so {step.renamed} keeps its name") from None
            if after is not None:
                write_text_atomically(manifest, after)
            self._history.pop()
            self._forget_skip(file)
            self._pending[file] = step.item
            # Back among the unskipped at its confidence rank, where it was shown from.
            return step

    def _queued(self, file: str) -> QueueItem:
        if file not in self._pending:
            raise MissingFileError(f"{file!r} is not an image waiting for a label (labelled already, or unknown)")
        return self._pending[file]

    def _forget_skip(self, file: str) -> None:
        if file in self._skipped:
            self._skipped.remove(file)

    def _record(self, manifest: Path, before: str | None, file: str, label: str) -> None:
        """Add ``file,label`` to the manifest, keeping every byte already in it (extra columns too)."""
        if before is None:
            named = {item.path.name: item.label for item in survey_folder(self.folder).items}
            write_manifest(manifest, {**named, file: label})
            return
        header = next(csv.reader(io.StringIO(before.lstrip("\ufeff"))), [])
        row = io.StringIO(newline="")
        csv.DictWriter(row, fieldnames=header, lineterminator="\n", restval="").writerow({"file": file, "label": label})
        separator = "" if before.endswith("\n") else "\n"
        write_text_atomically(manifest, before + separator + row.getvalue())


def _without_row(text: str, file: str) -> str:
    """The manifest ``text`` without the row that lists ``file``, every other byte as it was.

    Rows are found by parsing, since a quoted extra column may span lines;
    the lines of other rows are copied untouched.
    """
    lines = list(io.StringIO(text, newline=""))  # each with its own line ending, as the file has it
    rows = csv.reader(lines)
    header = [name.lstrip("\ufeff") for name in next(rows, [])]
    column = header.index("file")  # read_manifest has checked the header
    start = rows.line_num
    for row in rows:
        if len(row) > column and row[column] == file:
            return "".join(lines[:start] + lines[rows.line_num :])
        start = rows.line_num
    return text


def _numbered(label: str, suffix: str) -> Iterator[str]:
    """``LABEL_1.ext``, ``LABEL_2.ext``, ...: candidate names for a renamed image."""
    return (f"{label}_{n}{suffix}" for n in itertools.count(1))
