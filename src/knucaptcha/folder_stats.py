"""What a labelled folder holds, and what is wrong with it, before anything trains on it.

Counts labels, label lengths and characters, image sizes, modes and
transparency (what ``knucaptcha train --data`` infers its input from), and finds
the files that would hurt a run: unreadable images, unlabelled files,
byte-identical duplicates (which leak between training and validation) and
manifest entries naming no file. Every image is decoded with
:func:`~knucaptcha.preprocess.load_image`, the same function training uses, so
"readable" here means readable there. Broken files are reported, never raised.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .charset import Charset
from .errors import ImageError, MissingFileError
from .fileops import file_digest
from .labels import survey_folder
from .preprocess import has_alpha, load_image

ProgressCallback = Callable[[int, int], None]
"""Called as ``(files done, files in total)`` after each file is examined."""


@dataclass(frozen=True)
class UnreadableFile:
    """A file that is not a readable image, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class FolderStats:
    """A labelled folder's contents. File names are relative to the folder.

    Attributes:
        folder: the folder examined.
        count: labelled images that decode (what a training run would use).
        lengths: label length -> how many labels have it, by length.
        characters: symbol -> occurrences in the labels, most frequent first.
        vocabulary: the sorted symbols of the labels (:meth:`Charset.from_labels`), or ``""``.
        sizes: ``(width, height)`` -> readable images of that size, most frequent first.
        modes: PIL mode -> readable images in that mode, most frequent first.
        transparent: readable images with real transparency (some pixel not
            opaque, :func:`~knucaptcha.preprocess.has_alpha`); an RGBA file
            whose alpha is all 255 is opaque.
        duplicates: groups of byte-identical readable files, each sorted, ordered by first name.
        unreadable: files that do not decode as images, with the reason.
        unlabelled: image files no label could be found for.
        missing: manifest entries that name no existing file.
    """

    folder: Path
    count: int
    lengths: dict[int, int]
    characters: dict[str, int]
    vocabulary: str
    sizes: dict[tuple[int, int], int]
    modes: dict[str, int]
    transparent: int
    duplicates: tuple[tuple[str, ...], ...]
    unreadable: tuple[UnreadableFile, ...]
    unlabelled: tuple[str, ...]
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (string keys; sizes as ``"WxH"``)."""
        return {
            "folder": str(self.folder),
            "count": self.count,
            "lengths": {str(length): count for length, count in self.lengths.items()},
            "characters": dict(self.characters),
            "vocabulary": self.vocabulary,
            "sizes": {f"{width}x{height}": count for (width, height), count in self.sizes.items()},
            "modes": dict(self.modes),
            "transparent": self.transparent,
            "duplicates": [list(group) for group in self.duplicates],
            "unreadable": [{"name": item.name, "reason": item.reason} for item in self.unreadable],
            "unlabelled": list(self.unlabelled),
            "missing": list(self.missing),
        }


def folder_stats(
    folder: str | os.PathLike[str], *, case: str = "keep", on_progress: ProgressCallback | None = None
) -> FolderStats:
    """Examine every image of ``folder``, labelled or not (see :func:`~knucaptcha.labels.survey_folder`).

    Label statistics cover the labelled images that decode; sizes, modes,
    transparency and duplicates cover every image that decodes.

    Raises:
        ConfigError: ``case`` is not one of ``keep``, ``upper``, ``lower``.
        MissingFileError: ``folder`` does not exist or is not a folder.
        LabelError: the folder's manifest is malformed.
    """
    root = Path(folder)
    scan = survey_folder(root, case=case)
    labels = {item.path: item.label for item in scan.items}
    paths = sorted([*labels, *scan.unlabelled])
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    transparent = 0
    by_digest: defaultdict[str, list[str]] = defaultdict(list)
    unreadable: list[UnreadableFile] = []
    readable_labels: list[str] = []
    for done, path in enumerate(paths, start=1):
        name = path.relative_to(root).as_posix()
        try:
            image = load_image(path)
            digest = file_digest(path)
        except (ImageError, MissingFileError, OSError) as error:
            unreadable.append(UnreadableFile(name, str(error)))
        else:
            sizes[image.size] += 1
            modes[image.mode] += 1
            transparent += has_alpha(image)
            by_digest[digest].append(name)
            if path in labels:
                readable_labels.append(labels[path])
        if on_progress is not None:
            on_progress(done, len(paths))
    characters = Counter(symbol for label in readable_labels for symbol in label)
    return FolderStats(
        folder=root,
        count=len(readable_labels),
        lengths=dict(sorted(Counter(len(label) for label in readable_labels).items())),
        characters=_most_frequent_first(characters),
        vocabulary=Charset.from_labels(readable_labels).symbols if characters else "",
        sizes=_most_frequent_first(sizes),
        modes=_most_frequent_first(modes),
        transparent=transparent,
        duplicates=tuple(sorted(tuple(group) for group in by_digest.values() if len(group) > 1)),
        unreadable=tuple(unreadable),
        unlabelled=tuple(path.relative_to(root).as_posix() for path in scan.unlabelled),
        missing=scan.missing,
    )


def listed(entries: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``entries`` for a one-line message, and how many more there are."""
    more = len(entries) - limit
    return "; ".join(entries[:limit]) + (f"; and {more} more" if more > 0 else "")


def unreadable_entries(files: Sequence[UnreadableFile]) -> list[str]:
    """Each unreadable file as ``name (reason)``."""
    return [f"{file.name} ({file.reason})" for file in files]


def _most_frequent_first(counts: Counter[Any]) -> dict[Any, int]:
    """Counts ordered by frequency, ties by key, so output is stable from run to run."""
    return dict(sorted(counts.items(), key=lambda entry: (-entry[1], entry[0])))
