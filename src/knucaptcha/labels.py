"""Labelled folders: which file holds which label, manifests, and the train/validation split.

A labelled folder is a flat folder of images. The label of each image comes
from a ``labels.csv`` manifest (``file,label`` header, extra columns allowed)
when the folder has one, else from the file name: the stem, cut at the first
``_`` so that ``AB12_7.png`` (a second sample of ``AB12``) is ``AB12``. This is
the seed's naming rule, extended so that repeated labels can coexist without
one file overwriting another.

Standard library only: training, evaluation, the labelling tools and
``knucaptcha data stats`` all read folders through this module.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError, LabelError, MissingFileError
from .fileops import write_text_atomically

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
"""File suffixes (lower case, with the dot) that a folder scan treats as images."""

MANIFEST_NAME = "labels.csv"
"""The manifest file a folder may carry; when present it is the only source of labels."""

CASES: tuple[str, ...] = ("keep", "upper", "lower")

_MANIFEST_FIELDS = ("file", "label")

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class LabelledImage:
    """One image file and the text it shows. Ordered by path, so lists of them sort."""

    path: Path
    label: str


@dataclass(frozen=True)
class FolderScan:
    """Everything a scan found in a folder, including what it could not use.

    Attributes:
        items: labelled images, sorted by path.
        unlabelled: image files no label could be found for, sorted.
        missing: manifest entries that name no existing file, in manifest order.
    """

    items: tuple[LabelledImage, ...]
    unlabelled: tuple[Path, ...]
    missing: tuple[str, ...]


def label_from_name(path: str | os.PathLike[str]) -> str | None:
    """The label a file name carries, or ``None`` when it carries none.

    The label is the stem up to the first ``_``. A name whose label would be
    empty (``_7.png``) or hold whitespace (``AB12 copy.png``, the copies a file
    manager makes) has no label, since no charset can encode whitespace.
    """
    label = Path(path).stem.split("_", 1)[0]
    if not label or any(symbol.isspace() for symbol in label):
        return None
    return label


def survey_folder(folder: str | os.PathLike[str], *, case: str = "keep") -> FolderScan:
    """Scan ``folder`` and report labelled, unlabelled and missing files alike.

    Hidden files (names starting with ``.``, such as macOS ``._*`` forks) are
    ignored. Use :func:`scan_folder` when only the labelled images matter.

    Raises:
        ConfigError: ``case`` is not one of ``keep``, ``upper``, ``lower``.
        MissingFileError: ``folder`` does not exist or is not a folder.
        LabelError: the folder's manifest is malformed.
    """
    if case not in CASES:
        raise ConfigError(f"case must be one of {', '.join(CASES)}, not {case!r}")
    root = Path(folder)
    if not root.is_dir():
        raise MissingFileError(f"no such folder: {root}" if not root.exists() else f"not a folder: {root}")
    images = sorted(
        entry
        for entry in root.iterdir()
        if entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file()
    )
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        labels = read_manifest(manifest)
        items = [LabelledImage(root / name, _fold(label, case)) for name, label in labels.items()]
        missing = tuple(name for name, item in zip(labels, items) if not item.path.exists())
        named = {item.path for item in items}
        unlabelled = tuple(image for image in images if image not in named)
        present = [item for item in items if item.path.exists()]
    else:
        present, unlabelled_list = [], []
        for image in images:
            label = label_from_name(image)
            if label is None:
                unlabelled_list.append(image)
            else:
                present.append(LabelledImage(image, _fold(label, case)))
        unlabelled, missing = tuple(unlabelled_list), ()
    return FolderScan(tuple(sorted(present)), unlabelled, missing)


def scan_folder(folder: str | os.PathLike[str], *, case: str = "keep") -> list[LabelledImage]:
    """The labelled images of ``folder``, sorted by path; unlabelled files are skipped.

    Args:
        folder: a flat folder of images, with or without a ``labels.csv``.
        case: ``keep`` the labels as written, or fold them to ``upper`` or ``lower`` case.

    Raises:
        ConfigError: ``case`` is not one of ``keep``, ``upper``, ``lower``.
        MissingFileError: ``folder`` does not exist or is not a folder.
        LabelError: the manifest is malformed or names files that do not exist.
    """
    scan = survey_folder(folder, case=case)
    if scan.missing:
        shown = ", ".join(scan.missing[:5]) + (" ..." if len(scan.missing) > 5 else "")
        raise LabelError(
            f"{Path(folder) / MANIFEST_NAME} names {len(scan.missing)} missing file(s): {shown}"
        )
    return list(scan.items)


def _fold(label: str, case: str) -> str:
    if case == "upper":
        return label.upper()
    if case == "lower":
        return label.lower()
    return label


def read_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``file,label`` manifest into ``{file name: label}``, in file order.

    Extra columns are allowed and ignored; a UTF-8 byte-order mark (as Excel
    writes) is accepted.

    Raises:
        MissingFileError: ``path`` does not exist.
        LabelError: no ``file``/``label`` header, a short row, an empty or
            whitespace-holding label, or one file listed twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MissingFileError(f"no such manifest: {path}") from None
    except UnicodeDecodeError as bad:
        raise LabelError(f"{path} is not UTF-8 text: {bad.reason}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if not set(_MANIFEST_FIELDS) <= set(header):
        raise LabelError(f"{path} must start with a 'file,label' header, not {','.join(header)!r}")
    labels: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        name, label = row["file"], row["label"]
        if name is None or label is None:
            raise LabelError(f"{path} line {line}: missing the file or label column")
        _check_entry(name, label, f"{path} line {line}")
        if name in labels:
            raise LabelError(f"{path} line {line}: {name!r} is listed twice")
        labels[name] = label
    return labels


def write_manifest(path: str | os.PathLike[str], mapping: Mapping[str, str]) -> None:
    """Write ``{file name: label}`` as a ``file,label`` manifest, atomically.

    The rows go through :func:`~knucaptcha.fileops.write_text_atomically`: a
    reader sees the old manifest or the new one, never half of one, and a
    crash mid-write leaves the old one intact.

    Raises:
        LabelError: an empty or path-escaping file name, or an empty or
            whitespace-holding label (nothing is written).
    """
    for name, label in mapping.items():
        _check_entry(name, label, f"manifest entry {name!r}")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_MANIFEST_FIELDS)
    writer.writerows(mapping.items())
    write_text_atomically(path, buffer.getvalue())


def _check_entry(name: str, label: str, where: str) -> None:
    """Reject manifest entries that cannot name a file in the folder or cannot be encoded."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or "\n" in name:
        raise LabelError(f"{where}: {name!r} is not a file name inside the folder")
    if not label:
        raise LabelError(f"{where}: the label is empty")
    if any(symbol.isspace() for symbol in label):
        raise LabelError(f"{where}: the label {label!r} holds whitespace")


def split(items: Iterable[T], valid_fraction: float = 0.1, seed: int = 0) -> tuple[list[T], list[T]]:
    """Shuffle ``items`` with ``seed`` and cut them into ``(train, valid)``.

    The validation side gets ``round(len * valid_fraction)`` items, but at
    least one, and the training side at least one, whenever there are two
    items or more (a single item goes to training). Sortable items (paths,
    strings, :class:`LabelledImage`) are sorted first, so the split depends
    only on the set of items and the seed, not on the order a folder listing
    returned them in; other items are shuffled in the order given.

    Raises:
        ConfigError: ``valid_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must lie strictly between 0 and 1, not {valid_fraction}")
    ordered = _sorted_if_possible(list(items))
    random.Random(seed).shuffle(ordered)
    count = len(ordered)
    valid_count = min(max(round(count * valid_fraction), 1), count - 1) if count >= 2 else 0
    return ordered[valid_count:], ordered[:valid_count]


def _sorted_if_possible(items: Sequence[T]) -> list[T]:
    try:
        return sorted(items)  # type: ignore[type-var]
    except (TypeError, ValueError):  # unordered items (dicts; arrays raise ValueError): keep the given order
        return list(items)
