"""How well predictions match labels: sequence accuracy, character error rate, confusions.

A captcha is solved only when every character is right, so sequence accuracy
is the figure that matters; the character error rate and the confusion list
say *why* a model misses (which symbols it mixes up). Standard library only,
so training, evaluation and the web service all score the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import LabelError


@dataclass(frozen=True)
class Scores:
    """The scores of a set of predictions against their labels.

    Attributes:
        count: number of (label, prediction) pairs.
        sequence_accuracy: fraction of predictions equal to their label.
        char_accuracy: ``1 - cer``, floored at 0.
        cer: character error rate, total edit distance over total label
            characters; above 1 when predictions insert many characters.
        by_length: label length -> (pairs with a label that long, their sequence accuracy).
        confusions: substitutions (expected, got) from an edit-distance
            alignment with how often each occurred, most frequent first.
    """

    count: int
    sequence_accuracy: float
    char_accuracy: float
    cer: float
    by_length: dict[int, tuple[int, float]]
    confusions: list[tuple[tuple[str, str], int]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (string keys, lists rather than tuples)."""
        return {
            "count": self.count,
            "sequence_accuracy": self.sequence_accuracy,
            "char_accuracy": self.char_accuracy,
            "cer": self.cer,
            "by_length": {
                str(length): {"count": count, "sequence_accuracy": accuracy}
                for length, (count, accuracy) in self.by_length.items()
            },
            "confusions": [
                {"expected": expected, "got": got, "count": count}
                for (expected, got), count in self.confusions
            ],
        }


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a  # keep the row short
    previous = list(range(len(b) + 1))
    for i, item in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (item != other)))
        previous = current
    return previous[-1]


def substitutions(expected: str, got: str) -> list[tuple[str, str]]:
    """The (expected, got) character pairs substituted along one minimal alignment.

    Ties between equally short alignments prefer a match or substitution
    over a deletion, and a deletion over an insertion, so the result is
    deterministic.
    """
    rows, cols = len(expected), len(got)
    table = [[0] * (cols + 1) for _ in range(rows + 1)]  # table[i][j]: distance of the prefixes
    for i in range(rows + 1):
        table[i][0] = i
    for j in range(cols + 1):
        table[0][j] = j
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            table[i][j] = min(
                table[i - 1][j - 1] + (expected[i - 1] != got[j - 1]),
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
            )
    pairs: list[tuple[str, str]] = []
    i, j = rows, cols
    while i > 0 and j > 0:
        differs = expected[i - 1] != got[j - 1]
        if table[i][j] == table[i - 1][j - 1] + differs:
            if differs:
                pairs.append((expected[i - 1], got[j - 1]))
            i, j = i - 1, j - 1
        elif table[i][j] == table[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


def score(labels: Sequence[str], predictions: Sequence[str], *, case_sensitive: bool = True) -> Scores:
    """Score ``predictions`` against ``labels``, pair by pair.

    Args:
        labels: the true texts.
        predictions: what was read, in the same order.
        case_sensitive: when false, both sides are case-folded first.

    Raises:
        LabelError: the two sequences differ in length, or are empty.
    """
    if len(labels) != len(predictions):
        raise LabelError(f"got {len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise LabelError("there is nothing to score: no labels")
    if not case_sensitive:
        labels = [label.casefold() for label in labels]
        predictions = [prediction.casefold() for prediction in predictions]
    edits = label_chars = correct = 0
    per_length: Counter[int] = Counter()
    correct_per_length: Counter[int] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for label, prediction in zip(labels, predictions):
        hit = label == prediction
        correct += hit
        per_length[len(label)] += 1
        correct_per_length[len(label)] += hit
        label_chars += len(label)
        if not hit:
            edits += edit_distance(label, prediction)
            confusions.update(substitutions(label, prediction))
    # Empty labels have no characters; count against one so the rate stays finite.
    cer = edits / max(label_chars, 1)
    return Scores(
        count=len(labels),
        sequence_accuracy=correct / len(labels),
        char_accuracy=max(0.0, 1.0 - cer),
        cer=cer,
        by_length={
            length: (per_length[length], correct_per_length[length] / per_length[length])
            for length in sorted(per_length)
        },
        confusions=sorted(confusions.items(), key=lambda entry: (-entry[1], entry[0])),
    )
