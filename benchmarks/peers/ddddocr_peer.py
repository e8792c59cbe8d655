"""ddddocr's default OCR model (shipped in its wheel), one image per call: it has no batch API."""

from __future__ import annotations

from collections.abc import Sequence


class DdddocrPeer:
    distribution = "ddddocr"
    batched = False

    def __init__(self, name: str, ranges: str | None = None):
        import ddddocr

        self.name = name
        self.ocr = ddddocr.DdddOcr(show_ad=False)
        if ranges:
            # In ddddocr 1.6.1 this filters the decoded characters; it does not
            # restrict the argmax, so a symbol outside the range is dropped, not replaced.
            self.ocr.set_ranges(ranges)

    def solve(self, png: bytes) -> str:
        # png_fix composites a transparent PNG onto white: ddddocr's own switch for this case.
        return self.ocr.classification(png, png_fix=True).strip()

    def solve_batch(self, pngs: Sequence[bytes]) -> list[str]:
        return [self.solve(png) for png in pngs]
