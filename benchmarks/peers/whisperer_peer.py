"""captcha-whisperer's bundled CRNN, with its batch API for throughput."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import on_white


class WhispererPeer:
    distribution = "captcha-whisperer"
    batched = True

    def __init__(self, name: str, threads: int = 0, batch_size: int = 64):
        from captcha_whisperer import CaptchaRecognizer
        from captcha_whisperer.preprocess import preprocess_array

        self.name = name
        self.recognizer = CaptchaRecognizer(threads=threads or None)
        self.preprocess = preprocess_array
        self.batch_size = batch_size

    def _tensor(self, png: bytes) -> np.ndarray:
        # Its own preprocess_bytes drops alpha, which leaves a blank KNU image; composite first.
        return self.preprocess(np.asarray(on_white(png)))

    def solve(self, png: bytes) -> str:
        return self.recognizer.recognize_batch([self._tensor(png)])[0]["text"]

    def solve_batch(self, pngs: Sequence[bytes]) -> list[str]:
        texts: list[str] = []
        for start in range(0, len(pngs), self.batch_size):
            tensors = [self._tensor(png) for png in pngs[start : start + self.batch_size]]
            texts.extend(result["text"] for result in self.recognizer.recognize_batch(tensors))
        return texts
