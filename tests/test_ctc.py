"""CTC decoding: greedy collapse rules, confidences, and prefix beam search against brute force."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knucaptcha.charset import BLANK, UNKNOWN, Charset
from knucaptcha.ctc import (
    READ_LENGTH_KEY,
    Prediction,
    ReadOptions,
    allowed_classes,
    beam_decode,
    decode,
    fixed_length_decode,
    greedy_decode,
    greedy_decode_batch,
    restrict,
    softmax,
    stored_read_length,
    with_read_length,
)
from knucaptcha.errors import ConfigError

ABC = Charset("ABC")  # classes: 0 blank, 1 A, 2 B, 3 C


def peaked(path: list[int], classes: int = 4, peak: float = 0.99) -> np.ndarray:
    """A (T, C) matrix giving ``peak`` to the class of ``path`` at each frame, the rest spread evenly."""
    probs = np.full((len(path), classes), (1 - peak) / (classes - 1), np.float32)
    probs[np.arange(len(path)), path] = peak
    return probs


def collapse(path: list[int]) -> list[int]:
    """The CTC rule, written the obvious way: merge runs, then drop blanks."""
    return [cls for cls, _ in itertools.groupby(path) if cls != BLANK]


def random_probs(seed: int, steps: int, classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return softmax(rng.normal(0, 2, (steps, classes)).astype(np.float32))


def text_probability(probs: np.ndarray, classes: list[int]) -> float:
    """P(text | probs) summed over every alignment: the CTC forward algorithm."""
    states = [BLANK]
    for cls in classes:
        states += [cls, BLANK]
    alpha = np.zeros(len(states))
    alpha[0] = probs[0, BLANK]
    if len(states) > 1:
        alpha[1] = probs[0, states[1]]
    for step in range(1, len(probs)):
        previous = alpha.copy()
        for s, cls in enumerate(states):
            total = previous[s] + (previous[s - 1] if s >= 1 else 0.0)
            if s >= 2 and cls != BLANK and cls != states[s - 2]:
                total += previous[s - 2]  # skip the blank between two different symbols
            alpha[s] = total * probs[step, cls]
    return float(alpha[-1] + (alpha[-2] if len(states) > 1 else 0.0))


def brute_force_texts(probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """P(text) for every text, by enumerating every path (only for tiny T and C)."""
    totals: dict[tuple[int, ...], float] = defaultdict(float)
    steps, classes = probs.shape
    for path in itertools.product(range(classes), repeat=steps):
        totals[tuple(collapse(list(path)))] += float(np.prod(probs[np.arange(steps), path]))
    return totals


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ([1, 1, 0, 1, 2, 2, 0], "AAB"),  # a blank between repeats keeps both
        ([1, 1, 1, 1], "A"),  # a run is one symbol
        ([1, 0, 0, 1], "AA"),
        ([1, 2, 1], "ABA"),
        ([0, 0, 0], ""),
        ([0, 3, 0, 3, 3, 2], "CCB"),
    ],
)
def test_greedy_collapse_rules(path: list[int], text: str) -> None:
    assert greedy_decode(peaked(path), ABC).text == text


@given(path=st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_greedy_matches_the_collapse_rule(path: list[int]) -> None:
    prediction = greedy_decode(peaked(path), ABC)
    assert prediction.text == ABC.decode(collapse(path))
    assert len(prediction.char_confidences) == len(prediction.text)


@given(seed=st.integers(0, 2**32), steps=st.integers(1, 40), classes=st.integers(2, 8))
def test_greedy_text_never_outgrows_the_frames(seed: int, steps: int, classes: int) -> None:
    prediction = greedy_decode(random_probs(seed, steps, classes), Charset("ABCDEFG"))
    assert len(prediction.text) <= steps
    assert 0.0 <= prediction.confidence <= 1.0
    assert all(0.0 < c <= 1.0 for c in prediction.char_confidences)


def test_greedy_confidences() -> None:
    probs = peaked([1, 1, 0, 2])
    probs[1] = [0.1, 0.8, 0.05, 0.05]  # the second frame of the A run is less sure
    prediction = greedy_decode(probs, ABC)
    assert prediction.char_confidences == pytest.approx((0.99, 0.99))  # the best frame of each run
    assert prediction.confidence == pytest.approx(0.99 * 0.99)
    empty = greedy_decode(peaked([0, 0], peak=0.7), ABC)
    assert (empty.text, empty.char_confidences, empty.confidence) == ("", (), pytest.approx(0.7))


def test_classes_beyond_the_charset_read_as_unknown() -> None:
    assert greedy_decode(peaked([1, 5, 0], classes=6), ABC).text == f"A{UNKNOWN}"


def test_batch_decodes_each_item() -> None:
    batch = np.stack([peaked([1, 0, 2]), peaked([3, 3, 3])])
    assert [p.text for p in greedy_decode_batch(batch, ABC)] == ["AB", "C"]


def test_softmax_is_stable_and_normalised() -> None:
    logits = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], np.float32)
    probs = softmax(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[0], [0.5, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(softmax(logits[1:] + 50), probs[1:], rtol=1e-5)


def test_forward_algorithm_matches_brute_force() -> None:
    probs = random_probs(0, 4, 3)
    for text, total in brute_force_texts(probs).items():
        assert text_probability(probs, list(text)) == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("width", [1, 2, 4, 8])
@given(path=st.lists(st.integers(0, 3), min_size=1, max_size=12))
def test_beam_equals_greedy_on_peaked_distributions(width: int, path: list[int]) -> None:
    probs = peaked(path)
    greedy, beam = greedy_decode(probs, ABC), beam_decode(probs, ABC, beam_width=width)
    assert beam.text == greedy.text
    assert beam.char_confidences == pytest.approx(greedy.char_confidences)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 12), width=st.integers(1, 16))
def test_beam_text_is_at_least_as_likely_as_greedy(seed: int, steps: int, width: int) -> None:
    probs = random_probs(seed, steps, 4)
    greedy, beam = greedy_decode(probs, ABC), beam_decode(probs, ABC, beam_width=width)
    assert len(beam.text) <= steps
    assert text_probability(probs, ABC.encode(beam.text)) >= text_probability(probs, ABC.encode(greedy.text)) * (1 - 1e-9)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 5))
def test_unpruned_beam_finds_the_most_likely_text(seed: int, steps: int) -> None:
    probs = random_probs(seed, steps, 3)
    texts = brute_force_texts(probs)
    best = max(texts.values())
    beam = beam_decode(probs, Charset("AB"), beam_width=64, prune=0.0)
    assert texts[tuple(Charset("AB").encode(beam.text))] == pytest.approx(best)


def test_beam_keeps_repeats_separated_by_a_blank() -> None:
    assert beam_decode(peaked([1, 0, 1, 1]), ABC).text == "AA"


def test_beam_width_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        beam_decode(peaked([1]), ABC, beam_width=0)


def test_prediction_to_dict() -> None:
    prediction = Prediction("AB", 0.5, (1.0, 0.5))
    assert prediction.to_dict() == {"text": "AB", "confidence": 0.5, "char_confidences": [1.0, 0.5], "warnings": []}
    warned = Prediction("AB", 0.5, (1.0, 0.5), ("the image is opaque",))
    assert warned.to_dict()["warnings"] == ["the image is opaque"]


def test_allowed_classes_keep_the_blank_and_the_given_symbols() -> None:
    assert allowed_classes(ABC, "CA").tolist() == [True, True, False, True]
    assert allowed_classes(ABC, "AAB").tolist() == [True, True, True, False]
    with pytest.raises(ConfigError, match="empty"):
        allowed_classes(ABC, "")
    with pytest.raises(ConfigError, match="cannot read 'DZ'"):
        allowed_classes(ABC, "ADZ")


def test_a_restricted_reading_takes_the_best_allowed_symbol_with_renormalized_confidence() -> None:
    probs = np.array([[0.05, 0.6, 0.3, 0.05], [0.9, 0.04, 0.03, 0.03]], np.float32)  # frame 0 prefers A over B
    assert greedy_decode(probs, ABC).text == "A"
    kept = restrict(probs, allowed_classes(ABC, "BC"))
    assert kept[:, 1].tolist() == [0.0, 0.0]
    assert kept.sum(axis=-1) == pytest.approx([1.0, 1.0])
    reading = greedy_decode(kept, ABC)
    assert reading.text == "B"
    assert reading.confidence == pytest.approx(0.3 / 0.4)
    assert beam_decode(kept, ABC, beam_width=4).text == "B"


def best_path_of_each_length(probs: np.ndarray) -> dict[int, float]:
    """The probability of the most likely single alignment with each text length, by enumeration."""
    best: dict[int, float] = defaultdict(float)
    steps, classes = probs.shape
    for path in itertools.product(range(classes), repeat=steps):
        length = len(collapse(list(path)))
        best[length] = max(best[length], float(np.prod(probs[np.arange(steps), path])))
    return best


def alignment_probability(probs: np.ndarray, prediction: Prediction) -> float:
    """The most likely alignment of the predicted text, by enumeration (the decoder returns only the text)."""
    steps, classes = probs.shape
    wanted = ABC.encode(prediction.text)
    return max(
        float(np.prod(probs[np.arange(steps), path]))
        for path in itertools.product(range(classes), repeat=steps)
        if collapse(list(path)) == wanted
    )


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 6), length=st.integers(1, 6))
def test_fixed_length_finds_the_best_alignment_of_that_length(seed: int, steps: int, length: int) -> None:
    probs = random_probs(seed, steps, 4)
    if length > steps:
        with pytest.raises(ConfigError, match="1..%d" % steps):
            fixed_length_decode(probs, ABC, length)
        return
    prediction = fixed_length_decode(probs, ABC, length)
    assert len(prediction.text) == length
    assert alignment_probability(probs, prediction) == pytest.approx(best_path_of_each_length(probs)[length])
    assert len(prediction.char_confidences) == length


@given(path=st.lists(st.integers(0, 3), min_size=1, max_size=20))
def test_fixed_length_agrees_with_greedy_at_greedy_s_length(path: list[int]) -> None:
    greedy = greedy_decode(peaked(path), ABC)
    if greedy.text:
        assert fixed_length_decode(peaked(path), ABC, len(greedy.text)) == greedy


def test_fixed_length_restores_a_symbol_greedy_dropped() -> None:
    probs = peaked([1, 0, 2, 0, 0, 3])  # A, B, C with a blank in between
    probs[3] = [0.55, 0.05, 0.05, 0.35]  # a faint second C: greedy drops it
    assert greedy_decode(probs, ABC).text == "ABC"
    four = fixed_length_decode(probs, ABC, 4)
    assert four.text == "ABCC"
    assert four.char_confidences == pytest.approx((0.99, 0.99, 0.35, 0.99))


def test_decode_applies_each_read_option_in_turn() -> None:
    dropped = peaked([1, 0, 2, 0, 0, 3])
    dropped[3] = [0.55, 0.05, 0.05, 0.35]  # greedy reads ABC; four symbols read ABCC
    hesitant = np.array([[0.05, 0.6, 0.3, 0.05], [0.9, 0.04, 0.03, 0.03]] * 3, np.float32)  # A over B
    batch = np.stack([dropped, hesitant])
    assert [p.text for p in decode(batch, ABC)] == ["ABC", "AAA"]
    four = decode(batch, ABC, ReadOptions(length=4))
    assert four == [fixed_length_decode(item, ABC, 4) for item in batch] and four[0].text == "ABCC"
    assert decode(batch, ABC, ReadOptions(length=3)) == decode(batch, ABC)  # both read 3 already: kept as read
    assert [p.text for p in decode(batch, ABC, ReadOptions(symbols="BC"))] == ["BC", "BBB"]
    assert decode(batch, ABC, ReadOptions(beam_width=4)) == [beam_decode(item, ABC, 4) for item in batch]


def test_read_options_check_against_a_model_and_describe_themselves() -> None:
    ReadOptions(symbols="CA", length=4).check(ABC, max_length=4)
    with pytest.raises(ConfigError, match="cannot read 'D'"):
        ReadOptions(symbols="AD").check(ABC, max_length=4)
    with pytest.raises(ConfigError, match="reads 1 to 4 symbols, so a reading length of 5"):
        ReadOptions(length=5).check(ABC, max_length=4)
    ReadOptions(length=0).check(ABC, max_length=4)  # 0: any number of symbols
    with pytest.raises(ConfigError, match="length must be 0 \\(any\\), a positive integer or None, not -1"):
        ReadOptions(length=-1)
    assert ReadOptions().describe() == ""
    assert ReadOptions(beam_width=8, symbols="CAAB", length=4).describe() == "beam=8 symbols=ABC length=4"
    assert ReadOptions(length=0).describe() == "length=any"
    assert ReadOptions(symbols="BA").describe() == ReadOptions(symbols="AB").describe()


def test_length_zero_reads_any_number_of_symbols_as_no_length_does() -> None:
    batch = np.stack([peaked([1, 0, 2, 0, 0, 0]), peaked([1, 2, 3, 0, 1, 0])])
    assert decode(batch, ABC, ReadOptions(length=0)) == decode(batch, ABC) == greedy_decode_batch(batch, ABC)


def test_a_reading_length_round_trips_through_metadata() -> None:
    assert stored_read_length(with_read_length({}, 4), max_length=4) == 4
    assert stored_read_length({}, max_length=4) is None  # files from before the key: any number
    stamped = with_read_length({"knucaptcha.format": "1"}, 3)
    assert stamped == {"knucaptcha.format": "1", READ_LENGTH_KEY: "3"}
    assert with_read_length(stamped, None) == stamped  # None keeps it
    assert with_read_length(stamped, 0) == {"knucaptcha.format": "1"}  # 0 removes it
    for bad, message in (("5", "must lie in 1..4"), ("0", "must lie in 1..4"), ("four", "must be an integer")):
        with pytest.raises(ConfigError, match=message):
            stored_read_length({READ_LENGTH_KEY: bad}, max_length=4)
