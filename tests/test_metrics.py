"""Scores: edit distance, sequence accuracy, character error rate, confusions."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knucaptcha.errors import LabelError
from knucaptcha.metrics import edit_distance, score, substitutions

texts = st.text(alphabet="AB01x", max_size=7)


def reference_distance(a: str, b: str) -> int:
    """The textbook recursive definition, memoised: slow but obviously right."""

    @lru_cache(maxsize=None)
    def distance(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(distance(i - 1, j) + 1, distance(i, j - 1) + 1, distance(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return distance(len(a), len(b))


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("", "ABC", 3), ("kitten", "sitting", 3), ("AB12", "A812", 1), ("AB12", "B12", 1), ("AB", "BA", 2)],
)
def test_edit_distance_examples(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance


@given(a=texts, b=texts, c=texts)
def test_edit_distance_is_a_metric(a: str, b: str, c: str) -> None:
    assert edit_distance(a, b) == edit_distance(b, a)
    assert (edit_distance(a, b) == 0) == (a == b)
    assert edit_distance(a, c) <= edit_distance(a, b) + edit_distance(b, c)
    assert abs(len(a) - len(b)) <= edit_distance(a, b) <= max(len(a), len(b))


@given(a=texts, b=texts)
def test_edit_distance_matches_the_definition(a: str, b: str) -> None:
    assert edit_distance(a, b) == reference_distance(a, b)


def test_edit_distance_on_sequences() -> None:
    assert edit_distance([1, 2, 3], (1, 3)) == 1


def test_substitutions_follow_a_minimal_alignment() -> None:
    assert substitutions("AB12", "A812") == [("B", "8")]
    assert substitutions("AB12", "AB12") == []
    assert substitutions("AB12", "B12") == []  # a deletion, not a chain of substitutions
    assert substitutions("O0", "0O") == [("O", "0"), ("0", "O")]  # ties prefer substitutions


@given(a=texts, b=texts)
def test_substitutions_never_exceed_the_distance(a: str, b: str) -> None:
    pairs = substitutions(a, b)
    assert len(pairs) <= edit_distance(a, b)
    assert all(expected != got for expected, got in pairs)
    if len(a) == len(b) and edit_distance(a, b) == sum(x != y for x, y in zip(a, b)):
        assert pairs == [(x, y) for x, y in zip(a, b) if x != y]


def test_score_example() -> None:
    scores = score(["AB12", "CD34", "EF56", "X"], ["A812", "CD34", "EF5", "XY"])
    assert scores.count == 4
    assert scores.sequence_accuracy == 0.25
    assert scores.cer == pytest.approx(3 / 13)
    assert scores.char_accuracy == pytest.approx(10 / 13)
    assert scores.by_length == {1: (1, 0.0), 4: (3, pytest.approx(1 / 3))}
    assert scores.confusions == [(("B", "8"), 1)]


def test_confusions_most_frequent_first_then_by_pair() -> None:
    scores = score(["O1", "O2", "I3", "I4", "Z"], ["01", "02", "13", "l4", "2"])
    assert scores.confusions == [(("O", "0"), 2), (("I", "1"), 1), (("I", "l"), 1), (("Z", "2"), 1)]


def test_case_insensitive_scoring() -> None:
    assert score(["Ab12"], ["aB12"]).sequence_accuracy == 0.0
    assert score(["Ab12"], ["aB12"], case_sensitive=False).sequence_accuracy == 1.0


def test_char_accuracy_is_floored_at_zero() -> None:
    scores = score(["A"], ["XYZW"])
    assert scores.cer == 4.0
    assert scores.char_accuracy == 0.0


def test_to_dict_is_json_ready() -> None:
    scores = score(["AB12", "CD"], ["A812", "CD"])
    data = json.loads(json.dumps(scores.to_dict()))
    assert data["count"] == 2
    assert data["sequence_accuracy"] == 0.5
    assert data["by_length"] == {"2": {"count": 1, "sequence_accuracy": 1.0}, "4": {"count": 1, "sequence_accuracy": 0.0}}
    assert data["confusions"] == [{"expected": "B", "got": "8", "count": 1}]


@given(pairs=st.lists(st.tuples(texts.filter(bool), texts), min_size=1, max_size=20))
def test_score_invariants(pairs: list[tuple[str, str]]) -> None:
    labels, predictions = [list(side) for side in zip(*pairs)]
    scores = score(labels, predictions)
    assert 0.0 <= scores.sequence_accuracy <= 1.0
    assert 0.0 <= scores.char_accuracy <= 1.0
    assert (scores.cer == 0.0) == (labels == predictions)
    assert sum(count for count, _ in scores.by_length.values()) == scores.count == len(pairs)
    counts = [count for _, count in scores.confusions]
    assert counts == sorted(counts, reverse=True)


def test_score_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(LabelError, match="2 labels but 1 predictions"):
        score(["A", "B"], ["A"])
    with pytest.raises(LabelError, match="nothing to score"):
        score([], [])
