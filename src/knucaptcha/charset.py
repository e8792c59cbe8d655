"""The symbols a model reads, and the mapping between labels and class indices.

Class 0 is the CTC blank; symbol ``i`` of the charset is class ``i + 1``. This
matches PyTorch's ``CTCLoss(blank=0)`` and keeps the blank index fixed when a
charset grows, which matters for fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from .errors import CharsetError

BLANK = 0
UNKNOWN = "?"

DIGITS_UPPER = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""The current KNU captcha's alphabet (the original solver's vocabulary)."""

ALPHANUMERIC = DIGITS_UPPER + "abcdefghijklmnopqrstuvwxyz"
"""Digits and both cases: what the bundled ``opaque`` reader reads."""

SIMPLECAPTCHA = "abcdefghkmnprwxy2345678"
"""Java SimpleCaptcha's default alphabet, used by the 2021 KNU captcha."""


@dataclass(frozen=True)
class Charset:
    """An ordered set of single-character symbols.

    Args:
        symbols: the symbols in class order, each exactly once; no whitespace.
    """

    symbols: str

    def __post_init__(self) -> None:
        if not self.symbols:
            raise CharsetError("a charset needs at least one symbol")
        if len(set(self.symbols)) != len(self.symbols):
            dupes = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
            raise CharsetError(f"charset has repeated symbols: {''.join(dupes)!r}")
        if any(s.isspace() for s in self.symbols):
            raise CharsetError("charset symbols may not be whitespace")

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> Charset:
        """The sorted set of every symbol used in ``labels`` (the seed's vocabulary rule)."""
        symbols = sorted({symbol for label in labels for symbol in label})
        if not symbols:
            raise CharsetError("no symbols found in the labels")
        return cls("".join(symbols))

    @property
    def num_classes(self) -> int:
        """Output classes of a model over this charset: the symbols plus the blank."""
        return len(self.symbols) + 1

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and len(symbol) == 1 and symbol in self.symbols

    def encode(self, label: str) -> list[int]:
        """Class indices (1-based) of ``label``; raises :class:`CharsetError` on unknown symbols."""
        index = self._index
        try:
            return [index[symbol] for symbol in label]
        except KeyError:
            unknown = sorted({s for s in label if s not in index})
            raise CharsetError(
                f"label {label!r} has symbols outside the charset: {''.join(unknown)!r}"
            ) from None

    def decode(self, indices: Sequence[int]) -> str:
        """Text for class indices; the blank is dropped and out-of-range classes become ``?``."""
        symbols = self.symbols
        return "".join(
            symbols[i - 1] if 0 < i <= len(symbols) else UNKNOWN for i in indices if i != BLANK
        )

    @cached_property
    def _index(self) -> dict[str, int]:
        # cached_property writes the instance __dict__ directly, so it works on a frozen dataclass.
        return {symbol: i + 1 for i, symbol in enumerate(self.symbols)}
