"""How closely a light export (int8, TFLite) reads like the model it came from, on the same images.

Accuracy alone can hide a changed model (two different sets of mistakes can
score the same), so the share of images both read identically is reported
beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .metrics import score
from .preprocess import ImageSource

if TYPE_CHECKING:
    from .inference import Solver


@dataclass(frozen=True)
class Agreement:
    """A candidate model's readings of ``count`` labelled images, against a reference's.

    Attributes:
        accuracy: the candidate's sequence accuracy.
        reference_accuracy: the reference's, or ``None`` without a reference.
        agreement: share of images both read as the same text, or ``None``.
    """

    count: int
    accuracy: float
    reference_accuracy: float | None
    agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    candidate: Solver, reference: Solver | None, images: Sequence[ImageSource], labels: Sequence[str]
) -> Agreement:
    """Read ``images`` with both models and score them against ``labels`` (greedy decoding).

    Raises:
        LabelError: no images, or not one label per image.
    """
    texts = [p.text for p in candidate.solve_batch(images)]
    accuracy = score(labels, texts).sequence_accuracy
    if reference is None:
        return Agreement(len(texts), accuracy, None, None)
    expected = [p.text for p in reference.solve_batch(images)]
    same = sum(a == b for a, b in zip(texts, expected)) / len(texts)
    return Agreement(len(texts), accuracy, score(labels, expected).sequence_accuracy, same)
