"""Tesseract through pytesseract, given the best set-up we found on KNU-style images.

Tesseract is a document OCR: it wants dark text on a white page with a margin.
So each captcha is composited onto white, its grey ink map (the one knucaptcha's
model reads, anti-aliasing kept) is drawn black on white with a 16-pixel border,
and Tesseract reads one text line (``--psm 7``) restricted to the alphabet.
On 120 generated ``knu`` images (a tuning seed, not the test seed) this beat
thresholding, 2-4x upscaling, median filtering and ``--psm 8``/``13``; the
Debian language data has no legacy engine, so ``--oem 0`` is not an option.
There is no batch API: pytesseract runs one ``tesseract`` process per image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, ImageOps

from knucaptcha.preprocess import ink

from . import on_white

BORDER = 16


class TesseractPeer:
    distribution = "pytesseract"
    batched = False

    def __init__(self, name: str, alphabet: str):
        import pytesseract

        # One small image per process: OpenMP threads only add start-up cost, and the
        # machine is shared. Tesseract's own advice for this kind of work.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self.name = name
        self.pytesseract = pytesseract
        self.config = f"--psm 7 -c tessedit_char_whitelist={alphabet}"

    def page(self, png: bytes) -> Image.Image:
        """The picture Tesseract is given: black glyphs on white, with a margin."""
        darkness = ink(on_white(png), "gray")  # (H, W) uint8, 255 where something is drawn
        return ImageOps.expand(Image.fromarray(255 - darkness), BORDER, fill=255)

    def solve(self, png: bytes) -> str:
        text = self.pytesseract.image_to_string(self.page(png), config=self.config)
        return "".join(text.split())

    def solve_batch(self, pngs: Sequence[bytes]) -> list[str]:
        return [self.solve(png) for png in pngs]
