"""Does the ``knu`` style draw the real server's glyphs? A check against the 36 reference crops.

The team keeps the real captcha's glyph crops (alpha values, one PNG per
symbol, each the glyph's box from y = 4, as wide as its advance) outside the
repository, in ``../shared/knu-glyphs/``. They are a yardstick only: nothing
here trains on them or ships them. For each symbol this draws the glyph as
``knu``'s exact look does (``draw_word`` at pen origin 7, baseline 26, 30 px,
0.5 px outline, half opacity, fringe under alpha 20 cleared) and prints:

* the crop width against our advance width (they must be equal; ``T`` and
  ``V`` crops hold one column of the next box);
* IoU of the ``alpha > 0`` masks, plain and within 1 pixel (every inked pixel
  of one lies within a pixel of an inked pixel of the other);
* our inked pixel count and total alpha over the crop's.

    python benchmarks/knu_glyphs.py                 # ../shared/knu-glyphs beside the repository
    python benchmarks/knu_glyphs.py --glyphs DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from knucaptcha.generator import fonts_for, get_style
from knucaptcha.generator.simplecaptcha import advance, draw_word

DEFAULT_GLYPHS = Path(__file__).resolve().parents[2] / "shared" / "knu-glyphs"
TOP = 4  # the crops start at the captcha's row 4
EXTRA_COLUMN = {"T", "V"}  # crops one column wider than their advance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glyphs", type=Path, default=DEFAULT_GLYPHS, help=f"Folder of crops (default {DEFAULT_GLYPHS}).")
    args = parser.parse_args()
    if not args.glyphs.is_dir():
        raise SystemExit(f"error: no reference crops at {args.glyphs}; this check needs the team's knu-glyphs folder")
    style = get_style("knu", "exact")
    (font,) = fonts_for(style)
    cut = round(style.calm.edge_cut[0] * style.calm.ink[0])
    print(f"{'symbol':>6} {'width':>9} {'IoU':>6} {'IoU±1':>6} {'pixels':>7} {'alpha':>6}")
    rows = []
    for symbol in style.charset.symbols:
        reference = np.asarray(Image.open(args.glyphs / f"{symbol}.png"))[..., 3]
        height, width = reference.shape
        ours_width = advance(font, 30, symbol)
        coverage = np.asarray(draw_word((width + 8, 35), font, 30, symbol, (0, 26), 0.5)).astype(np.float64)
        alpha = 4 * np.round(coverage * 128 / 1020)
        alpha[alpha < cut] = 0
        ours = alpha[TOP : TOP + height, :width]
        iou, near = _iou(reference > 0, ours > 0)
        rows.append((iou, near, (ours > 0).sum() / (reference > 0).sum(), ours.sum() / reference.sum()))
        widths_match = width == ours_width + (symbol in EXTRA_COLUMN)
        print(
            f"{symbol:>6} {width:>3}/{ours_width:<3}{'' if widths_match else ' !':2} "
            f"{iou:6.3f} {near:6.3f} {rows[-1][2]:7.2f} {rows[-1][3]:6.2f}"
        )
    means = np.mean(rows, axis=0)
    print(f"{'mean':>6} {'':9} {means[0]:6.3f} {means[1]:6.3f} {means[2]:7.2f} {means[3]:6.2f}")


def _iou(reference: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """Plain IoU of two masks, and the share of each mask's pixels within 1 px of the other (the smaller)."""
    plain = (reference & ours).sum() / max(1, (reference | ours).sum())
    grown_reference, grown_ours = _grow(reference), _grow(ours)
    near = min((ours & grown_reference).sum() / max(1, ours.sum()), (reference & grown_ours).sum() / max(1, reference.sum()))
    return float(plain), float(near)


def _grow(mask: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))) > 0


if __name__ == "__main__":
    main()
