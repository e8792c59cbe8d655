"""Where the generator's fonts come from, and the caches that make drawing fast.

By default the fonts are the ones this package bundles (``KnuCaptchaGothic``,
a subset of NanumGothic Bold: the real KNU captcha's font; see
``knucaptcha/fonts/OFL.txt``) and the ones matplotlib ships (DejaVu, STIX,
Computer Modern): matplotlib is a core dependency, so every install can draw
without system fonts. Only ``matplotlib`` itself is imported, never ``pyplot``.

A font is usable for a charset only if it draws every symbol, each
differently, and none as the font's missing-glyph box; this drops symbol-only
and subset fonts (``DejaVuSansDisplay``, ``LastResortHE``, ``STIXSiz*``)
without a hand-kept list.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError, MissingFileError

FONT_SUFFIXES = (".ttf", ".otf")

_PROBE_SIZE = 24
_MISSING_PROBE = "\ue000"  # a private-use code point: fonts draw their missing-glyph box for it


def matplotlib_font_dir() -> Path:
    """The folder of TrueType fonts bundled with matplotlib."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def bundled_font_dir() -> Path:
    """The folder of fonts shipped inside knucaptcha (with their licence)."""
    return Path(__file__).resolve().parent.parent / "fonts"


def default_font_dirs() -> tuple[Path, ...]:
    """Where a style without a ``font_dir`` finds its fonts: the bundled ones, then matplotlib's."""
    return bundled_font_dir(), matplotlib_font_dir()


@lru_cache(maxsize=64)
def find_fonts(font_dir: Path | None, patterns: tuple[str, ...], symbols: str) -> tuple[Path, ...]:
    """Font files in ``font_dir`` whose stem matches a pattern and that draw every symbol.

    ``font_dir`` None searches :func:`default_font_dirs`. Sorted by file name,
    so a seed picks the same font on every machine with the same fonts.

    Raises:
        MissingFileError: ``font_dir`` does not exist.
        ConfigError: no matching file can draw all of ``symbols``.
    """
    folders = default_font_dirs() if font_dir is None else (Path(font_dir),)
    for folder in folders:
        if not folder.is_dir():
            raise MissingFileError(f"no such font folder: {folder}")
    candidates = sorted(
        (
            path
            for folder in folders
            for path in folder.iterdir()
            if path.suffix.lower() in FONT_SUFFIXES and any(fnmatchcase(path.stem, p) for p in patterns)
        ),
        key=lambda path: path.name,
    )
    usable = tuple(path for path in candidates if draws_all(path, symbols))
    if not usable:
        where = " or ".join(str(folder) for folder in folders)
        raise ConfigError(
            f"no font in {where} matching {', '.join(patterns)} draws all of {symbols!r} "
            f"({len(candidates)} matching files checked)"
        )
    return usable


def draws_all(path: Path, symbols: str) -> bool:
    """Whether the font at ``path`` loads and draws each symbol, distinctly, none as a missing box."""
    try:
        font = load_font(path, _PROBE_SIZE)
    except OSError:  # unreadable or not a font: skipped like a font that lacks a symbol
        return False
    missing = bytes(font.getmask(_MISSING_PROBE))
    masks = [bytes(font.getmask(symbol)) for symbol in symbols]
    return len(set(masks)) == len(masks) and all(any(m) and m != missing for m in masks)


@lru_cache(maxsize=512)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """The font at ``path`` in ``size`` pixels, loaded once per process."""
    return ImageFont.truetype(str(path), size)


@lru_cache(maxsize=16384)
def glyph_mask(path: Path, size: int, symbol: str, outline: float = 0.0) -> tuple[Image.Image, int]:
    """An antialiased ``L`` mask of one symbol cropped to its ink, and its top relative to the baseline.

    The offset (negative above the baseline) lets glyphs of different heights
    and descenders share a baseline. With ``outline`` (pixels) only the
    glyph's outline is drawn, a band that wide centred on it: hollow glyphs.
    Cached, because a captcha draws the same few dozen symbols in a handful of
    sizes over and over (callers round ``outline`` to keep the cache small).
    """
    if outline > 0:
        band, (_, top) = stroked_glyph(path, size, symbol, outline)
        return band, top
    font = load_font(path, size)
    left, top, right, bottom = font.getbbox(symbol, anchor="ls")
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(mask).text((-left, -top), symbol, font=font, fill=255, anchor="ls")
    return mask, top


@lru_cache(maxsize=16384)
def stroked_glyph(path: Path, size: int, symbol: str, width: float) -> tuple[Image.Image, tuple[int, int]]:
    """One symbol as FreeType draws it at ``size``: its outline stroked ``width`` pixels wide (a band
    centred on it: a hollow glyph), or filled when ``width`` is 0; and its offset from the pen on the
    baseline. ``ImageDraw.text`` cannot draw the band alone: it fills the glyph in over the stroke."""
    mask, offset = load_font(path, size).getmask2(symbol, "L", stroke_width=width / 2, anchor="ls")
    return Image.frombytes("L", mask.size, bytes(mask)), offset
