"""The one preprocessing path: any image source to the model's float32 input.

Training, evaluation, export checks, the CLI and the web service all call
:func:`to_input`, so a model always sees exactly what it was trained on. The
solver reads through :func:`to_checked_batch`, which also tells an image of
another kind than the model reads (:func:`channel_mismatch`).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError, MissingFileError
from .spec import PreprocessSpec

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike, Image.Image, np.ndarray]
"""Anything :func:`load_image` accepts: encoded bytes, a file path, a PIL image, or a pixel array."""

MAX_PIXELS = 4096 * 4096
"""Largest image (width × height) accepted; captchas are tiny, so more is an attack or a mistake."""

_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``source`` into a fully loaded PIL image: first frame, EXIF orientation applied.

    Raises:
        MissingFileError: a path that does not exist.
        ImageTooLargeError: more than ``max_pixels`` pixels (checked before decoding).
        ImageError: anything else that is not a readable image.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = _open(bytes(source), "input bytes", max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise MissingFileError(f"no such file: {path}")
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
        try:
            data = path.read_bytes()
        except OSError as unreadable:  # permissions, I/O errors: still "not a readable image"
            raise ImageError(f"cannot read {path}: {unreadable.strerror or unreadable}") from None
        image = _open(data, str(path), max_pixels)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    _check_size(image, max_pixels, "image")
    return image


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        _check_size(image, max_pixels, name)  # before decoding a possible bomb
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        # exif_transpose copies the image (and drops frames); skip it when there is nothing to turn.
        if image.getexif().get(0x0112, 1) != 1:
            image = ImageOps.exif_transpose(image)
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError:  # over Pillow's own, larger limit: its message would quote that one
        raise ImageTooLargeError(
            f"{name} is over the limit of {max_pixels:,} pixels (a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image format that can be read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as broken:
        raise ImageError(f"{name} is a damaged image: {broken}") from None
    return image


def _check_size(image: Image.Image, max_pixels: int, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} pixels, over the limit of {max_pixels:,} pixels"
        )


def _from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        # Floats are taken as 0..1 intensities, the convention of the model input itself.
        array = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"an image array must be uint8, bool or float, not {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))  # mode inferred: L, RGB or RGBA


def _normalize_mode(image: Image.Image) -> Image.Image:
    """Reduce every PIL mode to L, LA, RGB or RGBA with 8-bit channels."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(values / scale + 0.5, 0, 255).astype(np.uint8))
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        return Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8))
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("1",):
        return image.convert("L")
    if mode in _ALPHA_MODES:  # PA, RGBa, La
        return image.convert("RGBA")
    if "transparency" in image.info:  # L or RGB with a transparent colour key
        return image.convert("RGBA")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries a non-trivial alpha channel (some pixel is not opaque)."""
    image = _normalize_mode(image)
    if image.mode not in ("LA", "RGBA"):
        return False
    low, _ = image.getchannel("A").getextrema()
    return low < 255


def ink(image: Image.Image, mode: str) -> np.ndarray:
    """The (H, W) uint8 ink map of ``image`` for a channel mode: 255 where something is drawn."""
    image = _normalize_mode(image)
    if mode == "auto":
        mode = "alpha" if has_alpha(image) else "gray"
    if mode == "alpha":
        if image.mode in ("LA", "RGBA"):
            return np.asarray(image)[:, :, -1]  # a view of one decode; getchannel would copy twice
        return np.full((image.height, image.width), 255, np.uint8)
    if image.mode in ("LA", "RGBA"):
        # Composite onto white: a transparent pixel carries no ink.
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    luminance = np.asarray(image.convert("L"))
    return 255 - luminance


def to_input(source: ImageSource, spec: PreprocessSpec = PreprocessSpec()) -> np.ndarray:
    """Model input of shape ``(1, spec.height, spec.width)``, float32 in [0, 1].

    On a 140×35 RGBA image with the default spec this is exactly the seed's
    preprocessing: alpha channel, ``alpha > 0 → 1``, no resize. With
    ``opaque_at`` ink reads 0.5 and opaque ink 1.
    """
    plane = np.empty((1, spec.height, spec.width), np.float32)
    _write_input(source, spec, plane[0])
    return plane


def to_batch(sources: Iterable[ImageSource], spec: PreprocessSpec = PreprocessSpec()) -> np.ndarray:
    """:func:`to_input` of each source, stacked into ``(N, 1, H, W)``.

    Each image is written straight into the batch: no per-image array to
    stack, which is a tenth of the preprocessing time of one captcha.
    """
    return to_checked_batch(sources, spec, check=False)[0]


def to_checked_batch(
    sources: Iterable[ImageSource], spec: PreprocessSpec = PreprocessSpec(), *, check: bool = True
) -> tuple[np.ndarray, list[str | None]]:
    """:func:`to_batch`, and for each image its :func:`channel_mismatch` (None where it fits).

    What the solver reads with: the check looks at the image already decoded
    for the input, so it costs one alpha-extrema scan per image. ``check=False``
    skips it (training, whose folders are checked once up front) and gives Nones.
    """
    sources = list(sources)
    batch = np.empty((len(sources), 1, spec.height, spec.width), np.float32)
    mismatches = [_write_input(source, spec, batch[index, 0], check) for index, source in enumerate(sources)]
    return batch, mismatches


_OPAQUE_ON_ALPHA = (
    "the image is opaque, but the model reads the alpha channel (it was trained on transparent captchas): "
    "to it every pixel is ink, so its reading means nothing; use a model that reads opaque images "
    "(the bundled knu2021, or one trained on such images: knucaptcha train --data reads their format)"
)
_FAINT_ON_GRAY = (
    "the image is transparent and its drawing all but vanishes on white, but the model reads darkness "
    "on white (gray mode); use a model that reads the alpha channel (the bundled default, or one trained "
    "on such images)"
)


def channel_mismatch(image: Image.Image, values: np.ndarray, mode: str) -> str | None:
    """Why ``image`` is not the kind a model reading channel ``mode`` was trained on, or None.

    ``values`` is the image's ink map in that mode (:func:`ink`). An opaque
    image on an alpha model is always wrong: its alpha channel is solid ink, a
    blank input. A transparent image on a gray model is composited onto white,
    which is right for dark drawing; it is wrong only when the drawing is light
    and vanishes, so only then: less than a quarter of the alpha channel's ink
    left. ``auto`` reads either kind.
    """
    if mode == "alpha":
        # In alpha mode ``values`` is the alpha plane itself (all 255 for an image without one):
        # one scan of it says what has_alpha would, without decoding the channel again.
        return None if int(values.min()) < 255 else _OPAQUE_ON_ALPHA
    if mode == "gray" and has_alpha(image):
        alpha = np.asarray(_normalize_mode(image))[:, :, -1]
        if 4 * int(values.sum(dtype=np.int64)) < int(alpha.sum(dtype=np.int64)):
            return _FAINT_ON_GRAY
    return None


def flatten_background(values: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` uint8 ink map with the paper taken out: 0 where nothing is drawn, the drawing stretched to 255.

    Text covers less than half of a captcha, so the median is the paper: when
    more of the picture lies far below it than above (light text on a dark
    background) the picture is turned round first. The paper's level is then
    the 20th percentile of each tile half the shorter side wide (bold text
    fills less than four fifths of one), spread back over the image
    bilinearly, so a tint or a gradient behind the text goes and thick strokes
    keep their middles. Each pixel's ink becomes its share of the way from the
    paper to full ink, so text on the dark end of a gradient counts as much as
    on the light end. The drawing's 99.5th percentile becomes full ink, but a
    faint picture is raised at most fourfold, so an empty one does not become
    a page of noise.
    """
    drawing = values.astype(np.float32)
    low, middle, high = np.percentile(drawing, (1, 50, 99))
    if middle - low > 1.5 * max(high - middle, 1.0):
        drawing = 255.0 - drawing
    height, width = values.shape
    tile = max(2, min(height, width) // 2)
    rows, cols = -(-height // tile), -(-width // tile)
    padded = np.pad(drawing, ((0, rows * tile - height), (0, cols * tile - width)), mode="edge")
    tiles = padded.reshape(rows, tile, cols, tile).transpose(0, 2, 1, 3).reshape(rows, cols, tile * tile)
    low = tile * tile // 5
    paper = Image.fromarray(np.partition(tiles, low, axis=-1)[..., low], mode="F")
    level = np.asarray(paper.resize((cols * tile, rows * tile), Image.BILINEAR))[:height, :width]
    drawing = (drawing - level) * (255.0 / np.maximum(255.0 - level, 32.0))
    top = max(float(np.percentile(drawing, 99.5)), 64.0)
    return np.clip(drawing * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def _write_input(source: ImageSource, spec: PreprocessSpec, out: np.ndarray, check: bool = False) -> str | None:
    """Preprocess one image into ``out``, an ``(H, W)`` float32 array; with ``check``, its :func:`channel_mismatch`."""
    image = load_image(source)
    values = ink(image, spec.mode)
    drawn = flatten_background(values) if spec.background == "flatten" else values
    if values.shape == (spec.height, spec.width):
        _levels(drawn, spec, out)
    else:
        plane = np.empty(values.shape, np.float32)
        _levels(drawn, spec, plane)
        out[...] = np.asarray(Image.fromarray(plane).resize((spec.width, spec.height), Image.BILINEAR))
    return channel_mismatch(image, values, spec.mode) if check else None


def _levels(values: np.ndarray, spec: PreprocessSpec, out: np.ndarray) -> None:
    """Ink values 0..255 (uint8) to model values in ``out``: one lookup in :func:`_level_table`."""
    np.take(_level_table(spec.binarize, spec.threshold, spec.opaque_at), values, out=out)


@functools.lru_cache(maxsize=None)
def _level_table(binarize: bool, threshold: int, opaque_at: int) -> np.ndarray:
    """The model value of each ink value 0..255: binary (above ``threshold``), three levels
    (0, 0.5, and 1 from ``opaque_at``) or linear (``ink / 255``), as :class:`PreprocessSpec` says.

    Every level is a function of one 8-bit value, so a table of 256 answers
    them all in one lookup: half the time of the comparisons it replaces.
    """
    ink_values = np.arange(256, dtype=np.float32)
    if not binarize:
        table = ink_values * np.float32(1 / 255)
    elif opaque_at:
        table = np.float32(0.5) * ((ink_values > threshold) + (ink_values >= opaque_at).astype(np.float32))
    else:
        table = (ink_values > threshold).astype(np.float32)
    table.flags.writeable = False
    return table
