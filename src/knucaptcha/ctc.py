"""Decoding CTC output into text with confidences: greedy, prefix beam search and fixed length, in numpy.

Every consumer (solver, evaluation, training's validation, export checks)
decodes with these functions, so a model reads the same everywhere.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .charset import BLANK, Charset
from .errors import ConfigError
from .spec import METADATA_PREFIX

READ_LENGTH_KEY = f"{METADATA_PREFIX}read_length"
"""Metadata key of a model file's reading length: how many symbols it reads
when its caller gives no ``length`` (the real KNU captcha always shows 4).
Files without it read any number, as before it existed."""


@dataclass(frozen=True)
class Prediction:
    """What a model read in one image.

    Attributes:
        text: the decoded text; symbols the charset lacks appear as ``?``.
        confidence: product of the per-character confidences, in [0, 1]
            (for an empty reading, the least certain frame's probability).
        char_confidences: for each character of ``text``, the highest
            probability the model gave it on the frames where it was read.
        warnings: why the reading may mean nothing although it was made: the
            image is not of the kind the model was trained on (an opaque image
            on a model of transparent captchas; see
            :func:`~knucaptcha.preprocess.channel_mismatch`). Empty when it is.
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "char_confidences": list(self.char_confidences),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ReadOptions:
    """How to turn a model's output into text, beyond what the model file itself says.

    One value carries a site's alphabet and length (and the beam width) from
    the command line or the service's settings to everything that reads:
    solving, scoring a folder, guessing labels. Each reads the same way, and a
    cache of readings can record what they were made with (:meth:`describe`).

    Attributes:
        beam_width: 0 for greedy decoding (fast, the seed's way); above 0,
            CTC prefix beam search with that many beams.
        symbols: if given, the only symbols a reading may contain (a site's
            alphabet, e.g. one without ``0``/``O`` and ``1``/``I``).
        length: the number of symbols every reading has (a site whose
            captchas always show that many): a reading of another length is
            decoded again as the most probable alignment of exactly ``length``
            symbols (:func:`fixed_length_decode`). ``0`` reads any number of
            symbols. ``None`` leaves it to the model: a
            :class:`~knucaptcha.Solver` whose file stores a reading length
            (``knucaptcha.read_length``, as the bundled ``default`` stores 4)
            reads that many, any other reads any number (as :func:`decode` does).
        strict: refuse an image of another kind than the model reads (an opaque
            image for a model of transparent captchas) with a
            :class:`~knucaptcha.errors.ChannelMismatchError` instead of reading
            it with a warning (:attr:`Prediction.warnings`). It never changes
            what a reading says, so :meth:`describe` leaves it out.

    Whether a model can read ``symbols`` and ``length`` depends on the model:
    :meth:`knucaptcha.Solver.check_options` asks.

    Raises:
        ConfigError: a ``beam_width`` that is not a non-negative integer, a
            ``symbols`` that is not a string, a ``length`` that is not a
            non-negative integer, a ``strict`` that is not a bool.
    """

    beam_width: int = 0
    symbols: str | None = None
    length: int | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.beam_width, bool) or not isinstance(self.beam_width, int) or self.beam_width < 0:
            raise ConfigError(f"beam_width must be 0 (greedy) or a positive integer, not {self.beam_width!r}")
        if self.symbols is not None and not isinstance(self.symbols, str):
            raise ConfigError(f"symbols must be a string or None, not {self.symbols!r}")
        if self.length is not None and (
            isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 0
        ):
            raise ConfigError(f"length must be 0 (any), a positive integer or None, not {self.length!r}")
        if not isinstance(self.strict, bool):
            raise ConfigError(f"strict must be true or false, not {self.strict!r}")

    def check(self, charset: Charset, max_length: int) -> None:
        """Refuse options a model with ``charset``, reading at most ``max_length`` symbols, cannot follow.

        Raises:
            ConfigError: :attr:`symbols` is empty or names a symbol the charset
                lacks, or :attr:`length` is outside 1 .. ``max_length`` (and not 0: any).
        """
        if self.symbols is not None:
            allowed_classes(charset, self.symbols)
        if self.length and not 1 <= self.length <= max_length:
            raise ConfigError(
                f"this model reads 1 to {max_length} symbols, so a reading length of {self.length} cannot be asked for"
            )

    def describe(self) -> str:
        """The options that change a reading, as ``beam=8 symbols=ABC length=4`` (empty for the defaults)."""
        parts = []
        if self.beam_width:
            parts.append(f"beam={self.beam_width}")
        if self.symbols is not None:
            parts.append(f"symbols={''.join(sorted(set(self.symbols)))}")
        if self.length is not None:
            parts.append(f"length={self.length or 'any'}")
        return " ".join(parts)


def stored_read_length(metadata: Mapping[str, str], max_length: int) -> int | None:
    """The reading length ``metadata`` stores under :data:`READ_LENGTH_KEY`; None where it stores none.

    Raises:
        ConfigError: the value is not an integer in 1 .. ``max_length``.
    """
    text = metadata.get(READ_LENGTH_KEY)
    if text is None:
        return None
    try:
        length = int(text)
    except ValueError:
        raise ConfigError(f"{READ_LENGTH_KEY} must be an integer, not {text!r}") from None
    if not 1 <= length <= max_length:
        raise ConfigError(f"{READ_LENGTH_KEY} must lie in 1..{max_length} (the model's maximum), not {length}")
    return length


def with_read_length(metadata: Mapping[str, str], length: int | None) -> dict[str, str]:
    """A copy of ``metadata`` whose reading length is ``length``: None keeps the one it has
    (or its lack of one), 0 removes it (the model reads any number of symbols)."""
    changed = dict(metadata)
    if length:
        changed[READ_LENGTH_KEY] = str(length)
    elif length == 0:
        changed.pop(READ_LENGTH_KEY, None)
    return changed


def decode(probs: np.ndarray, charset: Charset, options: ReadOptions = ReadOptions()) -> list[Prediction]:
    """The readings of a ``(N, T, C)`` probability batch with ``options``.

    A ``length`` of ``None`` reads any number of symbols, as ``0`` does: a
    model's own reading length is the :class:`~knucaptcha.Solver`'s to apply.

    Raises:
        ConfigError: ``options.symbols`` the charset lacks, or a length above the number of frames.
    """
    if options.symbols is not None:
        probs = restrict(probs, allowed_classes(charset, options.symbols))
    if options.beam_width:
        read = [beam_decode(item, charset, options.beam_width) for item in probs]
    else:
        read = greedy_decode_batch(probs, charset)
    if not options.length:
        return read
    return [
        reading if len(reading.text) == options.length else fixed_length_decode(item, charset, options.length)
        for item, reading in zip(probs, read)
    ]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax over ``axis`` (float32 in, float32 out)."""
    exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
    exp /= exp.sum(axis=axis, keepdims=True)
    return exp


def allowed_classes(charset: Charset, symbols: str) -> np.ndarray:
    """The ``(C,)`` boolean mask of the classes a reading may use: the blank and each of ``symbols``.

    Raises:
        ConfigError: ``symbols`` is empty or names a symbol the charset lacks
            (the model could never read it, so the restriction is a mistake).
    """
    if not symbols:
        raise ConfigError("the allowed symbols are empty; give at least one")
    unknown = sorted(set(symbols) - set(charset.symbols))
    if unknown:
        raise ConfigError(f"the model cannot read {''.join(unknown)!r}; its symbols are {charset.symbols!r}")
    mask = np.zeros(charset.num_classes, dtype=bool)
    mask[BLANK] = True
    mask[charset.encode("".join(sorted(set(symbols))))] = True
    return mask


def restrict(probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``probs`` ``(..., C)`` with the classes outside ``mask`` set to 0 and each frame renormalized.

    Telling the decoder a site's alphabet: where the model hesitates between
    ``0`` and ``O`` and the site never draws ``O``, the ``0`` wins, and the
    confidences are those among the allowed readings.
    """
    kept = np.where(mask, probs, np.float32(0))
    total = kept.sum(axis=-1, keepdims=True)
    return kept / np.maximum(total, np.float32(1e-30))


def _prediction(charset: Charset, classes: list[int], confidences: list[float], fallback: float) -> Prediction:
    text = charset.decode(classes)
    if not classes:
        return Prediction(text, fallback, ())
    return Prediction(text, math.prod(confidences), tuple(confidences))


def greedy_decode(probs: np.ndarray, charset: Charset) -> Prediction:
    """Best-path decoding of one ``(T, C)`` probability matrix: argmax, collapse repeats, drop blanks."""
    return greedy_decode_batch(probs[np.newaxis], charset)[0]


def greedy_decode_batch(probs: np.ndarray, charset: Charset) -> list[Prediction]:
    """:func:`greedy_decode` over a ``(N, T, C)`` batch.

    The argmax and its probability are taken for the whole batch in two numpy
    calls; only the collapse of a few dozen frames per image runs in Python.
    """
    return [
        _collapse(charset, frames, frame_probs)
        for frames, frame_probs in zip(probs.argmax(axis=-1).tolist(), probs.max(axis=-1).tolist())
    ]


def _collapse(charset: Charset, frames: list[int], frame_probs: list[float]) -> Prediction:
    """The text of one alignment (merge repeats, drop blanks); each symbol's confidence is its best frame's."""
    classes: list[int] = []
    confidences: list[float] = []
    previous = BLANK
    for cls, prob in zip(frames, frame_probs):
        if cls != BLANK:
            if cls != previous:
                classes.append(cls)
                confidences.append(prob)
            elif prob > confidences[-1]:
                confidences[-1] = prob
        previous = cls
    return _prediction(charset, classes, confidences, min(frame_probs))


def beam_decode(probs: np.ndarray, charset: Charset, beam_width: int = 8, prune: float = 1e-3) -> Prediction:
    """CTC prefix beam search over one ``(T, C)`` probability matrix.

    Sums the probability of every alignment of a prefix, so it can beat
    greedy decoding when the model hesitates between two readings. Classes
    below ``prune`` on a frame are not expanded (they cannot win and cost time).
    Character confidences come from the best alignment of the winning text.

    Cutting beams drops alignments, so prefix scores are lower bounds and the
    cut can even lose the greedy reading. The surviving beams and the greedy
    reading are therefore rescored exactly (forward algorithm) before one is
    picked: the result is never less probable than greedy decoding's.
    """
    if beam_width < 1:
        raise ConfigError(f"beam_width must be at least 1, not {beam_width}")
    log = np.log(np.clip(probs, 1e-30, 1.0)).astype(np.float64)
    neg_inf = -np.inf
    # prefix -> (log P(prefix, ending in blank), log P(prefix, ending in its last symbol))
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}
    for step in range(log.shape[0]):
        frame = log[step]
        candidates = [c for c in np.flatnonzero(probs[step] >= prune).tolist() if c != BLANK]
        following: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], blank: float, symbol: float) -> None:
            entry = following.setdefault(prefix, [neg_inf, neg_inf])
            entry[0] = np.logaddexp(entry[0], blank)
            entry[1] = np.logaddexp(entry[1], symbol)

        for prefix, (p_blank, p_symbol) in beams.items():
            total = np.logaddexp(p_blank, p_symbol)
            add(prefix, total + frame[BLANK], neg_inf)
            last = prefix[-1] if prefix else None
            for cls in candidates:
                if cls == last:
                    # A repeat extends the prefix only after a blank; otherwise it collapses.
                    add(prefix + (cls,), neg_inf, p_blank + frame[cls])
                    add(prefix, neg_inf, p_symbol + frame[cls])
                else:
                    add(prefix + (cls,), neg_inf, total + frame[cls])
        ranked = sorted(following.items(), key=lambda kv: np.logaddexp(*kv[1]), reverse=True)
        beams = {prefix: (pb, ps) for prefix, (pb, ps) in ranked[:beam_width]}
    greedy = tuple(cls for cls, _ in itertools.groupby(probs.argmax(axis=-1).tolist()) if cls != BLANK)
    best = max(sorted({*beams, greedy}), key=lambda prefix: _log_likelihood(log, prefix))
    classes = list(best)
    return _prediction(charset, classes, _aligned_confidences(probs, classes), float(probs.max(axis=-1).min()))


def fixed_length_decode(probs: np.ndarray, charset: Charset, length: int) -> Prediction:
    """The most probable single alignment of one ``(T, C)`` matrix whose text has exactly ``length`` symbols.

    Greedy decoding is the most probable alignment of any length; this is the
    same search (Viterbi) with the number of symbols written so far in the
    state. A captcha site that always shows four symbols turns a reading that
    dropped a thin ``I`` or doubled a wide ``W`` into the best four-symbol one.
    Where greedy decoding already reads ``length`` symbols, the two agree.
    Confidences are as in :func:`greedy_decode`.

    Raises:
        ConfigError: ``length`` is below 1 or above the number of frames.
    """
    steps, classes = probs.shape
    if not 1 <= length <= steps:
        raise ConfigError(f"the reading length must lie in 1..{steps} (one symbol a frame at most), not {length}")
    log = np.log(np.clip(probs, 1e-30, 1.0)).astype(np.float64)
    counts, labels = np.arange(length + 1), np.arange(classes)
    # score[k, c]: the best alignment of the frames so far that has written k symbols and ends in class c.
    score = np.full((length + 1, classes), -np.inf)
    score[0, BLANK] = log[0, BLANK]
    score[1] = log[0]
    score[1, BLANK] = -np.inf
    came_from = np.zeros((steps, length + 1, classes, 2), dtype=np.int64)  # (k, c) at the frame before
    for step in range(1, steps):
        best = score.argmax(axis=1)  # (k+1,): the best class to come from at each count
        runner_up = np.argsort(score, axis=1)[:, -2]
        # Writing symbol c anew: from one symbol fewer, ending in anything but c.
        source = np.where(labels[None, :] == best[:-1, None], runner_up[:-1, None], best[:-1, None])  # (k, C)
        write = np.full_like(score, -np.inf)
        write[1:] = np.take_along_axis(score[:-1], source, axis=1)
        writes = write > score  # otherwise c follows c and merges into the same symbol
        came_count = np.where(writes, counts[:, None] - 1, counts[:, None])
        came_label = np.where(writes, np.vstack([np.zeros((1, classes), np.int64), source]), labels[None, :])
        following = np.maximum(write, score)
        # A blank writes nothing and may follow any class.
        following[:, BLANK] = score[counts, best]
        came_count[:, BLANK], came_label[:, BLANK] = counts, best
        score = following + log[step]
        came_from[step, :, :, 0], came_from[step, :, :, 1] = came_count, came_label
    count, label = length, int(score[length].argmax())
    path = [label]
    for step in range(steps - 1, 0, -1):
        count, label = (int(value) for value in came_from[step, count, label])
        path.append(label)
    path.reverse()
    return _collapse(charset, path, probs[np.arange(steps), path].tolist())


def _states(classes: Sequence[int]) -> np.ndarray:
    """The CTC state sequence of ``classes``: a blank before, between and after every symbol."""
    states = np.full(2 * len(classes) + 1, BLANK, dtype=np.int64)
    states[1::2] = classes
    return states


def _log_likelihood(log: np.ndarray, classes: Sequence[int]) -> float:
    """``log P(classes)`` under ``(T, C)`` log-probabilities, summed over every alignment (forward algorithm)."""
    states = _states(classes)
    # A state may be entered from two states back only past a blank between two different symbols.
    skippable = np.zeros(len(states), dtype=bool)
    skippable[2:] = (states[2:] != BLANK) & (states[2:] != states[:-2])
    alpha = np.full(len(states), -np.inf)
    alpha[:2] = log[0, states[:2]]
    for step in range(1, log.shape[0]):
        move = np.full_like(alpha, -np.inf)
        move[1:] = alpha[:-1]
        skip = np.full_like(alpha, -np.inf)
        skip[2:] = alpha[:-2]
        skip[~skippable] = -np.inf
        alpha = np.logaddexp(np.logaddexp(alpha, move), skip) + log[step, states]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(states) > 1 else alpha[-1])


def _aligned_confidences(probs: np.ndarray, classes: list[int]) -> list[float]:
    """Per-class confidence along the most probable CTC alignment of ``classes`` (Viterbi)."""
    if not classes:
        return []
    steps = probs.shape[0]
    states = [BLANK]
    for cls in classes:
        states += [cls, BLANK]
    log = np.log(np.clip(probs[:, states], 1e-30, 1.0))  # (T, S)
    size = len(states)
    score = np.full(size, -np.inf)
    score[0] = log[0, 0]
    if size > 1:
        score[1] = log[0, 1]
    back = np.zeros((steps, size), dtype=np.int64)
    for step in range(1, steps):
        stay = score
        move = np.concatenate(([-np.inf], score[:-1]))
        skip = np.concatenate(([-np.inf, -np.inf], score[:-2]))
        # Skipping a blank is allowed only between two different symbols.
        for s in range(size):
            if states[s] == BLANK or (s >= 2 and states[s] == states[s - 2]):
                skip[s] = -np.inf
        options = np.stack([stay, move, skip])  # (3, S)
        choice = options.argmax(axis=0)
        back[step] = np.arange(size) - choice
        score = options.max(axis=0) + log[step]
    state = size - 1 if size == 1 or score[size - 1] >= score[size - 2] else size - 2
    confidences = [0.0] * len(classes)
    for step in range(steps - 1, -1, -1):
        if state % 2 == 1:
            index = state // 2
            confidences[index] = max(confidences[index], float(probs[step, states[state]]))
        state = back[step, state]
    return confidences
