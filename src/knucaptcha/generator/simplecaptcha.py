"""What SimpleCaptcha (``nl.captcha``, the Java library the KNU server uses) draws, in numpy and Pillow.

Two of its renderers make the real captcha (``CONTEXT.md``):

* ``ColoredEdgesWordRenderer`` lays the word out as one line of text from a
  pen origin, each glyph at the font's advance width after the previous, and
  strokes only the outline of the glyphs: :func:`draw_word`.
* ``CurvedLineNoiseProducer`` draws one cubic Bézier from the left to the
  right of the image, flattened by Java2D into straight pieces whose vertices
  are truncated to integers, each piece an antialiased line with square caps:
  :func:`curve_points` and :func:`draw_curves`.

Both are drawn at a multiple of the image size and reduced, which stands in for
Java2D's antialiasing (its exact coverage values differ; styles vary stroke
width, opacity and position around them so a model sees both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .fonts import load_font, stroked_glyph

WORD_SCALE = 8  # glyph outlines are drawn at this multiple, then reduced: sub-pixel placement and widths
FILLED_SCALE = 2  # filled glyphs need less: their edges are all the antialiasing there is
CURVE_SCALE = 4  # curves are drawn at this multiple, then reduced
FLATNESS = 2.0  # Java2D's flattening tolerance SimpleCaptcha asks for, in pixels
FLATTEN_LIMIT = 10  # Java2D's FlatteningPathIterator default: at most 10 halvings of a curve


def advance(font: Path, size: float, symbol: str) -> int:
    """The pen advance of ``symbol`` at ``size`` pixels, rounded to whole pixels as Java2D lays text out."""
    return round(load_font(font, round(size * WORD_SCALE)).getlength(symbol) / WORD_SCALE)


def draw_word(
    size: tuple[int, int],
    font: Path,
    font_size: float,
    label: str,
    origin: tuple[float, float],
    outline: float,
    gap: float = 0.0,
) -> Image.Image:
    """Coverage (``L``, 0..255) of ``label``'s glyphs laid out from ``origin``: outlines ``outline`` px wide, or filled (0).

    ``origin`` is the pen position of the first glyph on the baseline; each
    next glyph starts :func:`advance` (plus ``gap``) pixels further. Outlines
    are drawn at ``WORD_SCALE`` times the size, so origin, size and width take
    eighths of a pixel; filled glyphs at ``FILLED_SCALE``.
    """
    s = WORD_SCALE if outline else FILLED_SCALE
    canvas = Image.new("L", (size[0] * s, size[1] * s))
    scaled_size, scaled_width = round(font_size * s), round(outline * s)
    pen_x, pen_y = origin[0] * s, round(origin[1] * s)
    for symbol in label:
        mask, (left, top) = stroked_glyph(font, scaled_size, symbol, scaled_width)
        canvas.paste(255, (round(pen_x) + left, pen_y + top), mask)
        pen_x += (advance(font, font_size, symbol) + gap) * s
    return canvas.reduce(s)


def curve_points(rng: np.random.Generator, width: int, height: int) -> list[tuple[int, int]]:
    """The vertices of one SimpleCaptcha curve: its Bézier flattened as Java2D does, truncated to integers.

    The curve runs from (0.1·W, H·u1) through controls (0.1·W, H·u2) and
    (0.25·W, H·u3) to (0.9·W, H·u4), each ``u`` uniform in [0, 1).
    """
    u1, u2, u3, u4 = rng.random(4).tolist()
    controls = np.array(
        [(0.1 * width, height * u1), (0.1 * width, height * u2), (0.25 * width, height * u3), (0.9 * width, height * u4)]
    )  # (4, 2): start, control, control, end
    points = [controls[0]]
    _flatten(controls, FLATTEN_LIMIT, points)
    return [(int(x), int(y)) for x, y in points]


def _flatten(curve: np.ndarray, depth: int, points: list[np.ndarray]) -> None:
    """Append the end points of ``curve``'s straight pieces: halve it until it is within ``FLATNESS``."""
    if depth == 0 or _flatness(curve) < FLATNESS:
        points.append(curve[3])
        return
    # de Casteljau at t = 0.5: the two halves share the midpoint.
    p01, p12, p23 = (curve[:-1] + curve[1:]) / 2
    p012, p123 = (p01 + p12) / 2, (p12 + p23) / 2
    middle = (p012 + p123) / 2
    _flatten(np.array([curve[0], p01, p012, middle]), depth - 1, points)
    _flatten(np.array([middle, p123, p23, curve[3]]), depth - 1, points)


def _flatness(curve: np.ndarray) -> float:
    """The larger distance of the two control points from the chord (segment) between the ends."""
    start, end = curve[0], curve[3]
    chord = end - start
    length = float(chord @ chord)
    distances = []
    for control in curve[1:3]:
        t = 0.0 if length == 0 else min(1.0, max(0.0, float((control - start) @ chord) / length))
        distances.append(float(np.hypot(*(control - (start + t * chord)))))
    return max(distances)


def draw_curves(size: tuple[int, int], curves: list[tuple[list[tuple[int, int]], float]]) -> Image.Image:
    """Coverage (``L``) of polylines, each piece a line ``width`` px wide with square caps, antialiased.

    Java2D strokes integer coordinates through pixel centres, hence the half-pixel shift.
    """
    s = CURVE_SCALE
    canvas = Image.new("L", (size[0] * s, size[1] * s))
    draw = ImageDraw.Draw(canvas)
    for points, width in curves:
        half = width / 2
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            dx, dy = x1 - x0, y1 - y0
            length = float(np.hypot(dx, dy))
            ux, uy = (dx / length, dy / length) if length else (1.0, 0.0)
            # The piece's rectangle, grown by half the width at both ends: square caps.
            ax, ay, bx, by = x0 - ux * half + 0.5, y0 - uy * half + 0.5, x1 + ux * half + 0.5, y1 + uy * half + 0.5
            nx, ny = -uy * half, ux * half
            corners = [(ax + nx, ay + ny), (bx + nx, by + ny), (bx - nx, by - ny), (ax - nx, ay - ny)]
            draw.polygon([(x * s, y * s) for x, y in corners], fill=255)
    return canvas.reduce(s)
