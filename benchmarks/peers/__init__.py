"""One small adapter per solver compared in ``compare_peers.py``.

Every adapter reads PNG bytes and answers text, so each is timed from the same
starting point a user's code has: the bytes of a downloaded captcha.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Protocol

from PIL import Image


class Peer(Protocol):
    """What the benchmark needs of a solver.

    Attributes:
        name: the row label in the table.
        distribution: the PyPI distribution whose dependency closure is its install size.
        batched: whether :meth:`solve_batch` uses a real batch API (else it loops).
    """

    name: str
    distribution: str
    batched: bool

    def solve(self, png: bytes) -> str: ...

    def solve_batch(self, pngs: Sequence[bytes]) -> list[str]: ...


def on_white(png: bytes) -> Image.Image:
    """The image as RGB, transparency composited onto white.

    The KNU captcha draws its text only in the alpha channel; a general OCR model
    that drops alpha sees whatever colour the transparent pixels happen to carry,
    so every peer gets the picture a person would see in a browser.
    """
    image = Image.open(io.BytesIO(png))
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")
