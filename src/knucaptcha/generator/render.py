"""Drawing one synthetic captcha.

A sample depends only on ``(style, seed, index)``: its random generator is
``numpy.random.default_rng([seed, index])``, so samples can be drawn in any
order, in any number of processes, and the same arguments give the same
pixels (and byte-identical PNGs) with the same fonts and Pillow.

Drawing happens on one ``L`` plane of *ink*, which is warped, blurred and
cut and then turned into the style's image: the alpha channel of a black RGBA
image (transparent background), or black over a grey gradient (opaque RGB).
Scattered glyphs come at 1x from cached masks; a ``line`` layout and the
SimpleCaptcha curves are drawn by :mod:`.simplecaptcha` at 8x and 4x; other
noise at 2x, each reduced so its edges are antialiased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from ..errors import ConfigError
from .fonts import find_fonts, glyph_mask
from .simplecaptcha import curve_points, draw_curves, draw_word
from .styles import DIFFICULTY_LEVELS, Span, Style, blend

_NOISE_SCALE = 2  # noise is drawn at this multiple of the image size, then reduced
_MARGIN = 2  # pixels kept free at the left and right of the text
_WARP_KNOT = 12  # pixels between the knots of the random elastic field


@dataclass(frozen=True)
class Sample:
    """One generated captcha.

    Attributes:
        image: RGBA (transparent styles) or RGB (gradient styles), the style's size.
        label: the symbols drawn, left to right.
        font: stem of the font file drawn with (e.g. ``DejaVuSans-Bold``).
        difficulty: the difficulty in [0, 1] its knobs were drawn at.
    """

    image: Image.Image
    label: str
    font: str
    difficulty: float


def render_sample(style: Style, seed: int, index: int) -> Sample:
    """Draw sample ``index`` of the stream ``seed`` in ``style``."""
    rng = _rng(seed, index)
    label = _draw_label(rng, style)
    difficulty = _draw_difficulty(rng, style)
    spans = blend(style.calm, style.wild, difficulty)
    fonts = fonts_for(style)
    font = fonts[int(rng.integers(len(fonts)))]
    ink = int(_uniform(rng, spans["ink"]))
    outline = _uniform(rng, spans["outline"]) if _chance(rng, spans["hollow"]) else 0.0
    if style.layout == "line" or _chance(rng, spans["lined"]):
        plane = _draw_line(rng, style, spans, font, label, ink, outline)
    else:
        plane = _draw_text(rng, style, spans, font, label, ink, outline)
    strength = _strength(plane, ink)
    plane = ImageChops.lighter(plane, _draw_noise(rng, style, spans, ink))
    plane = _warp(rng, spans, plane)
    plane = _blur(rng, spans, plane)
    plane = _cut_edges(rng, spans, plane, ink, strength)
    plane = _speckle(rng, spans, plane, ink)
    return Sample(_finish(rng, style, spans, plane), label, font.stem, difficulty)


def render_noise(style: Style, seed: int, index: int) -> Image.Image:
    """Noise alone, no glyphs: the lines, arcs, curves, grid and dots of a ``style`` image, unwarped.

    Drawn from the stream ``(seed, index)`` at a difficulty as :func:`render_sample`
    draws one, and finished as the style's image (so the solver's preprocessing
    reads it as it reads a captcha). Training overlays it on labelled images
    (:class:`~knucaptcha.train.data.FolderSource`): a few hundred of a site's
    captchas then show their glyphs among more clutter than they hold.
    """
    rng = _rng(seed, index)
    spans = blend(style.calm, style.wild, _draw_difficulty(rng, style))
    ink = int(_uniform(rng, spans["ink"]))
    plane = _cut_edges(rng, spans, _draw_noise(rng, style, spans, ink), ink)
    return _finish(rng, style, spans, plane)


def fonts_for(style: Style) -> tuple[Path, ...]:
    """The font files ``style`` draws with (see :func:`find_fonts`); raises if there are none."""
    return find_fonts(style.font_dir, style.fonts, style.charset.symbols)


def label_for(style: Style, seed: int, index: int) -> str:
    """The label :func:`render_sample` would draw, without drawing it (to plan file names)."""
    return _draw_label(_rng(seed, index), style)


def _rng(seed: int, index: int) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be non-negative, not {seed} and {index}")
    return np.random.default_rng([seed, index])


def _draw_label(rng: np.random.Generator, style: Style) -> str:
    # The label must be the generator's first draws: label_for relies on it.
    length = int(rng.integers(style.min_length, style.max_length + 1))
    symbols = style.charset.symbols
    return "".join(symbols[i] for i in rng.integers(len(symbols), size=length))


def _draw_difficulty(rng: np.random.Generator, style: Style) -> float:
    if style.difficulty == "mixed":
        return float(rng.uniform(0.0, 1.0))
    return DIFFICULTY_LEVELS[style.difficulty]


def _uniform(rng: np.random.Generator, span: Span) -> float:
    return float(rng.uniform(span[0], span[1]))


def _uniforms(rng: np.random.Generator, span: Span, count: int) -> list[float]:
    """``count`` draws in one call: per-call overhead, not arithmetic, is what costs here."""
    return rng.uniform(span[0], span[1], count).tolist()


def _count(rng: np.random.Generator, span: Span) -> int:
    """A whole number in the span, each integer about equally likely.

    The top is the span's high end rounded, not floored: floored, a span that
    reaches 2 only at difficulty 1 drew 2 nowhere below it, so ``mixed``
    training never saw the most of anything that ``hard`` draws.
    """
    return min(int(_uniform(rng, (span[0], span[1] + 1))), round(span[1]))


def _chance(rng: np.random.Generator, span: Span) -> bool:
    """True with a probability drawn from ``span``; draws nothing when it is never true (styles without it keep their streams)."""
    if span[1] <= 0:
        return False
    return bool(rng.random() < _uniform(rng, span))


def _draw_line(
    rng: np.random.Generator, style: Style, spans: dict[str, Span], font: Path, label: str, ink: int, outline: float
) -> Image.Image:
    """The label as SimpleCaptcha lays it out: one line of text from a pen origin, hollow when ``outline``.

    The server's glyph alpha values are multiples of 4; so are these.
    """
    size, gap = _uniform(rng, spans["font_size"]), _uniform(rng, spans["spacing"])
    origin = (_uniform(rng, spans["origin_x"]), _uniform(rng, spans["baseline"]))
    coverage = draw_word((style.width, style.height), font, size, label, origin, outline, gap)
    return coverage.point([4 * round(value * ink / 1020) for value in range(256)])


def _draw_text(
    rng: np.random.Generator, style: Style, spans: dict[str, Span], font: Path, label: str, ink: int, outline: float
) -> Image.Image:
    """The label's glyphs, each sized, stretched, jittered and turned, placed left to right with gaps.

    Hollow when ``outline`` (its width, rounded to tenths to keep the glyph cache small).
    """
    count = len(label)
    sizes, stretches = _uniforms(rng, spans["font_size"], count), _uniforms(rng, spans["stretch"], count)
    jitters, angles = _uniforms(rng, spans["jitter"], count), _uniforms(rng, spans["rotation"], count)
    gaps = _uniforms(rng, spans["spacing"], count - 1)
    inks = _glyph_inks(rng, spans, ink, count)

    def glyphs(scale: float) -> list[tuple[Image.Image, int]]:
        drawn = []
        for symbol, size, stretch in zip(label, sizes, stretches):
            mask, top = glyph_mask(font, max(6, round(size * scale)), symbol, round(outline, 1))
            if abs(stretch - 1.0) > 0.02:
                mask = mask.resize((max(1, round(mask.width * stretch)), mask.height), Image.Resampling.BILINEAR)
            drawn.append((mask, top))
        return drawn

    drawn = glyphs(1.0)
    total = sum(mask.width for mask, _ in drawn) + sum(gaps)
    room = style.width - 2 * _MARGIN
    if total > room:  # too long for the canvas: shrink every glyph rather than pile them up
        drawn = glyphs(room / total)
        total = sum(mask.width for mask, _ in drawn) + sum(gaps)
    x = _MARGIN + _uniform(rng, (0.0, max(0.0, room - total)))
    if total > room:  # still too long (huge overlaps can't be shrunk away): centre it
        x = (style.width - total) / 2
    plane = Image.new("L", (style.width, style.height))
    for (mask, top), gap, jitter, angle, glyph_ink in zip(drawn, [*gaps, 0.0], jitters, angles, inks):
        # Centre the glyph's box vertically, move it by the jitter, keep it inside, turn it about its centre.
        low, high = sorted((mask.height / 2, style.height - mask.height / 2))
        centre_y = min(max(style.height / 2 + jitter, low), high)
        centre_x = x + mask.width / 2
        turned = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True) if abs(angle) > 0.5 else mask
        plane.paste(glyph_ink, (round(centre_x - turned.width / 2), round(centre_y - turned.height / 2)), turned)
        x += mask.width + gap
    return plane


def _glyph_inks(rng: np.random.Generator, spans: dict[str, Span], ink: int, count: int) -> list[int]:
    """Each glyph's ink: ``ink``, lightened per glyph by ``ink_spread``; styles without it draw nothing."""
    if spans["ink_spread"][1] <= 0:
        return [ink] * count
    return [max(1, round(ink * (1 - u))) for u in _uniforms(rng, (0.0, _uniform(rng, spans["ink_spread"])), count)]


def _draw_noise(rng: np.random.Generator, style: Style, spans: dict[str, Span], ink: int) -> Image.Image:
    """Lines, arcs, curves, grid and dots, drawn at 2x and halved so their edges are antialiased."""
    s = _NOISE_SCALE
    width, height = style.width * s, style.height * s
    layer = Image.new("L", (width, height))
    draw = ImageDraw.Draw(layer)

    def strokes(count: int) -> list[int]:
        return [max(1, round(w * s)) for w in _uniforms(rng, spans["stroke"], count)]

    lines = _count(rng, spans["lines"])
    # From the left half to the right half, so each line crosses some text.
    ends = rng.uniform((0, 0, width / 2, 0), (width / 2, height, width, height), (lines, 4)).tolist()
    for end, stroke in zip(ends, strokes(lines)):
        draw.line(end, fill=ink, width=stroke)
    arcs = _count(rng, spans["arcs"])
    # Centre x, centre y, radius x, radius y, start angle, extent.
    low, high = (0, 0, width / 6, height / 3, 0, 60), (width, height, width / 2, height * 1.5, 360, 200)
    shapes = rng.uniform(low, high, (arcs, 6))
    for (cx, cy, rx, ry, start, extent), stroke in zip(shapes.tolist(), strokes(arcs)):
        draw.arc((cx - rx, cy - ry, cx + rx, cy + ry), start, start + extent, fill=ink, width=stroke)
    for _ in range(_count(rng, spans["curves"])):
        centre, amplitude = rng.uniform(height * 0.3, height * 0.7), rng.uniform(height * 0.1, height * 0.3)
        period, phase = rng.uniform(width / 2, width * 1.5), rng.uniform(0, 2 * math.pi)
        xs = np.arange(0, width + 8, 8, dtype=np.float64)
        ys = centre + amplitude * np.sin(2 * math.pi * xs / period + phase)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=ink, width=strokes(1)[0], joint="curve")
    columns = _count(rng, spans["grid"])
    if columns:
        pitch = width / columns
        offset = rng.uniform(0, pitch)
        for x in np.arange(offset, width, pitch).tolist():
            draw.line((x, 0, x, height), fill=ink, width=s)
        for y in np.arange(offset % pitch, height, pitch).tolist():
            draw.line((0, y, width, y), fill=ink, width=s)
    dots = _count(rng, spans["dots"])
    centres = rng.uniform((0, 0), (width, height), (dots, 2)).tolist()
    for (x, y), size in zip(centres, _uniforms(rng, spans["dot_size"], dots)):
        radius = size * s / 2
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    layer = layer.reduce(s)
    if spans["beziers"][1] > 0:  # drawn opaque, as SimpleCaptcha does; styles without them keep their streams
        count = _count(rng, spans["beziers"])
        curves = [(curve_points(rng, style.width, style.height), _uniform(rng, spans["bezier_width"])) for _ in range(count)]
        layer = ImageChops.lighter(layer, draw_curves((style.width, style.height), curves))
    if spans["rails"][1] > 0:
        layer = ImageChops.lighter(layer, _draw_rails(rng, style, spans, ink))
    return layer


def _draw_rails(rng: np.random.Generator, style: Style, spans: dict[str, Span], ink: int) -> Image.Image:
    """Straight lines across the whole width, descending to the right, a gap apart, aliased (no soft edges)."""
    layer = Image.new("L", (style.width, style.height))
    draw = ImageDraw.Draw(layer)
    count = _count(rng, spans["rails"])
    gaps = _uniforms(rng, spans["rail_gap"], count)
    height = style.height
    left = rng.uniform(0.1, 0.5) * height
    # How much lower the right end is; the last rail still ends inside the image.
    drop = rng.uniform(0.05, max(0.05, min(0.45, (height - 3 - left - sum(gaps[1:])) / height))) * height
    for index, gap in enumerate(gaps):
        skew = rng.uniform(-1.0, 1.0)  # roughly, not exactly, parallel
        width = max(1, round(_uniform(rng, spans["stroke"])))
        left += gap if index else 0.0  # the first rail starts at left itself
        draw.line((0, left, style.width - 1, left + drop + skew), fill=ink, width=width)
    return layer


def _blur(rng: np.random.Generator, spans: dict[str, Span], plane: Image.Image) -> Image.Image:
    """A Gaussian blur of the ink; styles that never blur draw nothing for it."""
    if spans["blur"][1] <= 0:
        return plane
    radius = _uniform(rng, spans["blur"])
    return plane.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.05 else plane


def _warp(rng: np.random.Generator, spans: dict[str, Span], plane: Image.Image) -> Image.Image:
    """Move pixels by a vertical sine plus a random smooth (elastic) field, sampling bilinearly."""
    amplitude = _uniform(rng, spans["warp"])
    elastic = _uniform(rng, spans["elastic"])
    if amplitude < 0.05 and elastic < 0.05:
        return plane
    width, height = plane.size
    period = _uniform(rng, spans["warp_period"])
    phase = rng.uniform(0, 2 * math.pi)
    to_rows, to_columns = _upsampling(height, width)  # (height, knots_y), (width, knots_x)
    knots = (2, to_rows.shape[1], to_columns.shape[1])
    # A coarse random field upsampled bilinearly is smooth: displacement, not noise.
    shift_x, shift_y = to_rows @ (elastic * rng.standard_normal(knots)) @ to_columns.T  # (2, height, width)
    shift_y += amplitude * np.sin(2 * math.pi * np.arange(width) / period + phase)  # per column
    # Bilinear sampling from a copy with a 1-pixel empty border, so ink never smears in from the
    # edges; the four neighbours are read from the flattened copy, which is faster than 2-D indexing.
    padded = np.zeros((height + 2, width + 2), dtype=np.float32)
    padded[1:-1, 1:-1] = plane
    xs, ys = _pixel_grid(height, width)  # (height, width) each, float32
    source_x = np.clip(xs + shift_x, 0, width).astype(np.float32)
    source_y = np.clip(ys + shift_y, 0, height).astype(np.float32)
    left, top = source_x.astype(np.intp), source_y.astype(np.intp)
    source_x -= left  # now the weight of the right neighbour
    source_y -= top  # now the weight of the lower neighbour
    flat = padded.ravel()
    upper_left = top * (width + 2) + left
    upper, upper_right = flat.take(upper_left), flat.take(upper_left + 1)
    lower, lower_right = flat.take(upper_left + width + 2), flat.take(upper_left + width + 3)
    upper += (upper_right - upper) * source_x
    lower += (lower_right - lower) * source_x
    upper += (lower - upper) * source_y
    return Image.fromarray((upper + 0.5).astype(np.uint8), "L")


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's x and y plus 1, the offset of the padded copy the warp samples from."""
    ys, xs = np.mgrid[1 : height + 1, 1 : width + 1].astype(np.float32)  # (2, height, width)
    return xs, ys


@lru_cache(maxsize=8)
def _upsampling(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation matrices from a knot every ``_WARP_KNOT`` pixels to every pixel."""
    return _interpolation(height), _interpolation(width)


def _interpolation(size: int) -> np.ndarray:
    knots = max(2, round(size / _WARP_KNOT) + 1)
    positions = np.linspace(0, knots - 1, size)  # each pixel's position in knot units
    return np.maximum(0.0, 1 - np.abs(positions[:, None] - np.arange(knots)[None, :]))  # (size, knots)


def _cut_edges(
    rng: np.random.Generator, spans: dict[str, Span], plane: Image.Image, ink: int, strength: float = 1.0
) -> Image.Image:
    """Clear the faint antialiased fringe: pixels under ``edge_cut`` of the ink become empty.

    The cut stays under half the glyphs' ``strength`` (:func:`_strength`): a
    deeper one erased thin outlines and hairline faces whole, leaving a label
    with no glyphs.
    """
    cut = round(min(_uniform(rng, spans["edge_cut"]), strength / 2) * ink)
    if cut <= 0:
        return plane
    return plane.point([0 if value < cut else value for value in range(256)])


def _strength(glyphs: Image.Image, ink: int) -> float:
    """The share of ``ink`` that the glyphs' strong pixels reach (their 90th percentile): 1 for filled
    bold glyphs, far less for a thin outline or a hairline face, whose pixels are all antialiased."""
    values = np.asarray(glyphs)
    inked = values[values > 0]
    return float(np.percentile(inked, 90)) / ink if inked.size else 1.0


def _speckle(rng: np.random.Generator, spans: dict[str, Span], plane: Image.Image, ink: int) -> Image.Image:
    """Salt noise: single ink pixels, added after the warp so they stay one pixel."""
    fraction = _uniform(rng, spans["speckle"])
    if fraction <= 0:
        return plane
    pixels = np.array(plane)  # (height, width) uint8
    pixels[rng.random(pixels.shape) < fraction] = ink
    return Image.fromarray(pixels, "L")


def _finish(rng: np.random.Generator, style: Style, spans: dict[str, Span], plane: Image.Image) -> Image.Image:
    """The ink plane as the style's image: alpha of black RGBA, or black over a grey gradient."""
    if style.background == "transparent":
        black = _black(plane.size)
        return Image.merge("RGBA", (black, black, black, plane))
    # Gradient: from one grey level to another along a direction, ink composited in black.
    ends = (_uniform(rng, spans["shade"]), _uniform(rng, spans["shade_end"]))
    angle = math.radians(_uniform(rng, spans["shade_angle"]))
    ys, xs = np.mgrid[0 : style.height, 0 : style.width]  # (height, width) each
    along = xs * math.cos(angle) + ys * math.sin(angle)
    along = (along - along.min()) / max(1e-9, float(np.ptp(along)))
    shades = ends[0] + (ends[1] - ends[0]) * along  # (height, width)
    if spans["texture"][1] > 0:  # styles without texture draw nothing for it
        shades = shades + _texture(rng, _uniform(rng, spans["texture"]), style.height, style.width)
    background = Image.fromarray(np.clip(shades, 0, 255).round().astype(np.uint8), "L")
    gray = Image.composite(_black(plane.size), background, plane)
    return Image.merge("RGB", (gray, gray, gray))


def _texture(rng: np.random.Generator, amplitude: float, height: int, width: int) -> np.ndarray:
    """Grey-level offsets: smooth mottling ``amplitude`` strong (a coarse random field upsampled, as
    the elastic warp's) plus a fine grain a quarter as strong; ``(height, width)`` floats."""
    to_rows, to_columns = _upsampling(height, width)  # (height, knots_y), (width, knots_x)
    mottling = to_rows @ rng.standard_normal((to_rows.shape[1], to_columns.shape[1])) @ to_columns.T
    return amplitude * (mottling + 0.25 * rng.standard_normal((height, width)))


@lru_cache(maxsize=8)
def _black(size: tuple[int, int]) -> Image.Image:
    """A black ``L`` plane, shared read-only between samples (merge and composite copy it)."""
    return Image.new("L", size)
