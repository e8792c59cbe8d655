"""knucaptcha itself, through its public :class:`Solver` (any exported ``.onnx``, fp32 or int8, or a ``.tflite``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from knucaptcha.inference import Solver


class KnucaptchaPeer:
    distribution = "knucaptcha"
    batched = True

    def __init__(self, name: str, model: str | Path | None = None, threads: int = 0, batch_size: int = 64):
        self.name = name
        self.solver = Solver.load(model, threads=threads)
        self.batch_size = batch_size

    def solve(self, png: bytes) -> str:
        return self.solver.solve(png).text

    def solve_batch(self, pngs: Sequence[bytes]) -> list[str]:
        return [prediction.text for prediction in self.solver.solve_batch(pngs, batch_size=self.batch_size)]
