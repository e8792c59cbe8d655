"""Charset: class layout, encode/decode round-trip, vocabulary from labels, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knucaptcha.charset import BLANK, DIGITS_UPPER, SIMPLECAPTCHA, UNKNOWN, Charset
from knucaptcha.errors import CharsetError

symbols = st.sets(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=40).map(
    lambda chars: "".join(sorted(c for c in chars if not c.isspace()))
).filter(bool)


def test_blank_is_class_zero_and_symbols_follow() -> None:
    charset = Charset("AB")
    assert BLANK == 0
    assert charset.encode("BA") == [2, 1]
    assert charset.num_classes == 3
    assert len(charset) == 2


def test_known_alphabets() -> None:
    assert Charset(DIGITS_UPPER).num_classes == 37
    assert len(Charset(SIMPLECAPTCHA)) == 23


@given(data=st.data(), letters=symbols)
def test_encode_decode_round_trip(data: st.DataObject, letters: str) -> None:
    charset = Charset(letters)
    label = data.draw(st.text(alphabet=letters, max_size=10))
    classes = charset.encode(label)
    assert all(1 <= index < charset.num_classes for index in classes)
    assert charset.decode(classes) == label


def test_decode_drops_blanks_and_marks_unknown_classes() -> None:
    charset = Charset("AB")
    assert charset.decode([0, 1, 0, 0, 2, 0]) == "AB"
    assert charset.decode([1, 3, -1, 2]) == f"A{UNKNOWN}{UNKNOWN}B"


def test_encode_rejects_unknown_symbols() -> None:
    with pytest.raises(CharsetError, match="'xz'"):
        Charset("AB").encode("AzBx")


def test_membership() -> None:
    charset = Charset("AB")
    assert "A" in charset
    assert "AB" not in charset
    assert 1 not in charset


def test_from_labels_is_sorted_and_independent_of_order() -> None:
    labels = ["ZB12", "AB34", "a9"]
    charset = Charset.from_labels(labels)
    assert charset.symbols == "12349ABZa"
    assert Charset.from_labels(reversed(labels)) == charset
    assert Charset.from_labels(iter(labels)) == charset  # any iterable, read once


@given(labels=st.lists(st.text(alphabet=DIGITS_UPPER, min_size=1, max_size=6), min_size=1))
def test_from_labels_encodes_every_label(labels: list[str]) -> None:
    charset = Charset.from_labels(labels)
    assert list(charset.symbols) == sorted(set("".join(labels)))
    for label in labels:
        assert charset.decode(charset.encode(label)) == label


@pytest.mark.parametrize(("text", "message"), [("", "at least one"), ("ABA", "repeated"), ("A B", "whitespace")])
def test_malformed_charsets(text: str, message: str) -> None:
    with pytest.raises(CharsetError, match=message):
        Charset(text)


def test_from_labels_needs_a_symbol() -> None:
    with pytest.raises(CharsetError):
        Charset.from_labels(["", ""])


def test_charset_is_frozen_and_hashable() -> None:
    charset = Charset("AB")
    with pytest.raises(AttributeError):
        charset.symbols = "CD"  # type: ignore[misc]
    assert {charset: 1}[Charset("AB")] == 1
