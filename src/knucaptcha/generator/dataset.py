"""Streams of samples, labelled folders on disk, and a preview grid for people.

``write_dataset`` writes ``LABEL_<index>.png`` files (the labelled-folder
rule reads the label as the part before the first ``_``) plus a
``labels.csv`` manifest with columns ``file,label,font,difficulty``. It never
overwrites: every target name is planned and checked before the first byte is
written, and each file is created exclusively.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from ..errors import ConfigError, OutputExistsError
from ..labels import MANIFEST_NAME
from ..preprocess import to_batch
from .fonts import load_font, matplotlib_font_dir
from .render import Sample, fonts_for, label_for, render_sample
from .styles import Style

MANIFEST = MANIFEST_NAME
MANIFEST_COLUMNS = ("file", "label", "font", "difficulty")

_UNSAFE_IN_NAMES = set('/\\:*?"<>|_.')  # path syntax, Windows-reserved, and the label separator
_CHUNK = 256  # samples per task handed to a worker process
_PREVIEW_ZOOM = 2
_PREVIEW_CAPTION = 12  # caption font size in pixels


def generate_samples(style: Style, seed: int, count: int | None = None, start: int = 0) -> Iterator[Sample]:
    """Samples ``start, start + 1, ...`` of stream ``seed``, in memory; ``count=None`` never ends."""
    if count is not None and count < 0:
        raise ConfigError(f"count must be non-negative, not {count}")
    indices = itertools.count(start) if count is None else range(start, start + count)
    return (render_sample(style, seed, index) for index in indices)


def generate_inputs(style: Style, seed: int, count: int, start: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """Samples ``start ...`` of stream ``seed`` as a model's input batch ``(N, 1, H, W)``, and their labels.

    Preprocessed with the style's own spec, through the solver's
    :func:`~knucaptcha.preprocess.to_batch`. Lives here rather than in
    training so that a worker process drawing epochs ahead imports no torch.
    """
    samples = list(generate_samples(style, seed, count=count, start=start))
    return to_batch([s.image for s in samples], style.preprocess), tuple(s.label for s in samples)


def generate_mixture(parts: Sequence[tuple[Style, int, int, int]]) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`generate_inputs` of each ``(style, seed, count, start)``, concatenated in order.

    The styles must share a preprocessing spec: one model reads them all.
    """
    specs = {style.preprocess for style, *_ in parts}
    if len(specs) != 1:
        raise ConfigError(f"mixed styles must share one preprocessing spec, not {len(specs)}: {sorted(map(str, specs))}")
    drawn = [generate_inputs(*part) for part in parts]
    return np.concatenate([images for images, _ in drawn]), tuple(label for _, labels in drawn for label in labels)


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image``; no timestamps or other metadata, so equal pixels give equal bytes.

    zlib level 1: on these small images it encodes about twice as fast as the
    default 6 for files only ~5% larger, and encoding dominates writing a dataset.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_dataset(
    out_dir: str | Path,
    style: Style,
    count: int,
    seed: int,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write samples ``0..count-1`` of stream ``seed`` as ``LABEL_<index>.png`` plus ``labels.csv``.

    The folder is created if needed and may already hold other files, but if
    any file this call would write exists, nothing is written. ``workers > 1``
    renders in that many processes; the files are the same as with one.

    Args:
        on_progress: called with the number of samples just finished, for a progress bar.

    Returns:
        The image paths, in index order.

    Raises:
        ConfigError: bad count, workers or charset for file names, or a file already exists.
    """
    if count < 1:
        raise ConfigError(f"count must be at least 1, not {count}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    unsafe = sorted(_UNSAFE_IN_NAMES & set(style.charset.symbols))
    if unsafe:
        raise ConfigError(f"charset symbols {''.join(unsafe)!r} cannot appear in file names")
    fonts_for(style)  # fail on a bad font folder before creating anything
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    names = [f"{label_for(style, seed, index)}_{index}.png" for index in range(count)]
    clashes = [name for name in (*names, MANIFEST) if (out / name).exists()]
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise OutputExistsError(f"refusing to overwrite existing files in {out}: {shown}")
    out.mkdir(parents=True, exist_ok=True)

    chunks = [range(start, min(start + _CHUNK, count)) for start in range(0, count, _CHUNK)]
    rows: list[tuple[str, str, str, str]] = []
    if workers == 1:
        results: Iterable[list[tuple[str, str, str, str]]] = (_write_chunk(out, style, seed, c) for c in chunks)
        rows = _collect(results, on_progress)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = _collect(pool.map(_write_chunk, itertools.repeat(out), itertools.repeat(style),
                                     itertools.repeat(seed), chunks), on_progress)
    _write_manifest(out / MANIFEST, rows)
    return [out / name for name in names]


def _collect(
    results: Iterable[list[tuple[str, str, str, str]]], on_progress: Callable[[int], None] | None
) -> list[tuple[str, str, str, str]]:
    rows = []
    for chunk_rows in results:
        rows.extend(chunk_rows)
        if on_progress is not None:
            on_progress(len(chunk_rows))
    return rows


def _write_chunk(out: Path, style: Style, seed: int, indices: range) -> list[tuple[str, str, str, str]]:
    """Render and write one run of samples; a top-level function so worker processes can run it."""
    rows = []
    for index in indices:
        sample = render_sample(style, seed, index)
        name = f"{sample.label}_{index}.png"
        _create(out / name, encode_png(sample.image))
        rows.append((name, sample.label, sample.font, f"{sample.difficulty:.3f}"))
    return rows


def _write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    _create(path, text.getvalue().encode("utf-8"))


def _create(path: Path, data: bytes) -> None:
    """Write a new file; exclusive creation, so a file that appeared since the check is never replaced."""
    try:
        with open(path, "xb") as file:
            file.write(data)
    except FileExistsError:
        raise OutputExistsError(f"refusing to overwrite existing file {path}") from None


def write_preview(path: str | Path, samples: Iterable[Sample], columns: int = 4) -> Path:
    """Save :func:`preview_grid` of ``samples`` as a new PNG at ``path`` (never overwriting)."""
    path = Path(path)
    if path.exists():
        raise OutputExistsError(f"refusing to overwrite existing file {path}")
    sheet = preview_grid(samples, columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    _create(path, encode_png(sheet))
    return path


def preview_grid(samples: Iterable[Sample], columns: int = 4) -> Image.Image:
    """A white RGB sheet of the samples, enlarged 2x, each framed and captioned with label, font, difficulty.

    Transparent captchas are drawn over white so a person sees the ink.
    """
    if columns < 1:
        raise ConfigError(f"columns must be at least 1, not {columns}")
    samples = list(samples)
    if not samples:
        raise ConfigError("a preview needs at least one sample")
    caption_font = load_font(matplotlib_font_dir() / "DejaVuSans.ttf", _PREVIEW_CAPTION)
    cell_width = max(s.image.width for s in samples) * _PREVIEW_ZOOM + 16
    image_height = max(s.image.height for s in samples) * _PREVIEW_ZOOM
    cell_height = image_height + 2 * _PREVIEW_CAPTION + 16
    rows = math.ceil(len(samples) / columns)
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    for position, sample in enumerate(samples):
        left, top = (position % columns) * cell_width + 8, (position // columns) * cell_height + 8
        shown = sample.image.convert("RGBA")
        shown = shown.resize((shown.width * _PREVIEW_ZOOM, shown.height * _PREVIEW_ZOOM), Image.Resampling.NEAREST)
        on_white = Image.alpha_composite(Image.new("RGBA", shown.size, "white"), shown).convert("RGB")
        sheet.paste(ImageOps.expand(on_white, border=1, fill="#bbbbbb"), (left - 1, top - 1))
        caption = f"{sample.label}   {sample.font}   d={sample.difficulty:.2f}"
        draw.text((left, top + image_height + 4), caption, font=caption_font, fill="black")
    return sheet
