"""The contract between data, training and inference: how images become model input.

A :class:`PreprocessSpec` says how an image is turned into the model's input;
a :class:`ModelSpec` adds the charset and maximum label length. Both travel
inside every checkpoint and every exported ONNX file (as string metadata), so
a model file is all a solver needs: no side files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .charset import Charset
from .errors import ConfigError

ChannelMode = Literal["alpha", "gray", "auto"]
CHANNEL_MODES: tuple[str, ...] = ("alpha", "gray", "auto")

Background = Literal["keep", "flatten"]
BACKGROUNDS: tuple[str, ...] = ("keep", "flatten")

FORMAT_VERSION = 1
"""Version of the metadata layout written into model files."""

METADATA_PREFIX = "knucaptcha."

OUTPUT_KEY = f"{METADATA_PREFIX}output"
"""Metadata key saying what a model file outputs per frame: ``probabilities``
(what knucaptcha exports, softmax inside the graph) or ``logits`` (files
exported before it was recorded; the solver applies the softmax)."""


def check_keys(cls: type, values: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` if ``values`` has keys that are not fields of dataclass ``cls``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{cls.__name__} values must be a mapping, not {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _check_int(name: str, value: object) -> None:
    # Values read back from JSON metadata may be strings or floats; compare only integers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes a model input of shape ``(1, height, width)``, float32.

    Values lie in [0, 1] and mean *ink*: 1 where a glyph or noise is drawn.
    The width axis is the model's time axis (the seed transposed to
    ``(width, height, 1)`` for Keras; we keep ``(channel, height, width)`` and
    let the model read columns as steps).

    Args:
        mode: ``alpha`` takes the alpha channel (the seed's way, for the
            transparent KNU captcha); ``gray`` takes darkness, ``1 - luminance``,
            after compositing any transparency onto white; ``auto`` uses alpha
            when the image has a non-trivial alpha channel, else gray.
        height: input height in pixels (the seed's 35).
        width: input width in pixels (the seed's 140).
        binarize: map each pixel to 0 or 1 before resizing (the seed: alpha > 0).
        threshold: on the 0..255 ink scale, pixels strictly above it become 1.
        opaque_at: with ``binarize``, a third level: ink at or above this
            becomes 1 and fainter ink (above ``threshold``) 0.5; 0 turns it off
            (every ink pixel is 1, the seed's way). The KNU server draws glyphs
            half-transparent (alpha ≤ 128) and its noise curve opaque (255):
            three levels keep the two apart, where ``alpha > 0`` merges them.
        background: ``keep`` the ink map as it is, or ``flatten`` it first
            (:func:`~knucaptcha.preprocess.flatten_background`): light drawing
            on dark turned round, the paper's own level (a tint, a gradient)
            taken out and the drawing stretched to full ink, so captchas of one
            site that differ in background and contrast reach the model alike.
    """

    mode: ChannelMode = "alpha"
    height: int = 35
    width: int = 140
    binarize: bool = True
    threshold: int = 0
    opaque_at: int = 0
    background: Background = "keep"

    def __post_init__(self) -> None:
        _check_int("height", self.height)
        _check_int("width", self.width)
        _check_int("threshold", self.threshold)
        _check_int("opaque_at", self.opaque_at)
        if not isinstance(self.binarize, bool):
            raise ConfigError(f"binarize must be true or false, not {self.binarize!r}")
        if self.mode not in CHANNEL_MODES:
            raise ConfigError(f"mode must be one of {', '.join(CHANNEL_MODES)}, not {self.mode!r}")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"background must be one of {', '.join(BACKGROUNDS)}, not {self.background!r}")
        if not (8 <= self.height <= 512 and 8 <= self.width <= 2048):
            raise ConfigError(f"input size {self.height}x{self.width} is outside 8..512 x 8..2048")
        if not 0 <= self.threshold <= 254:
            raise ConfigError(f"threshold must lie in 0..254, not {self.threshold}")
        if self.opaque_at and not (self.binarize and self.threshold < self.opaque_at <= 255):
            raise ConfigError(
                f"opaque_at={self.opaque_at} needs binarize and must lie in threshold+1..255 (0 turns it off)"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessSpec:
        """Build from a mapping, rejecting unknown keys."""
        check_keys(cls, values)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a mapping; ``opaque_at`` and ``background`` only when set, so files without
        them stay readable by older releases."""
        values = asdict(self)
        if not self.opaque_at:
            del values["opaque_at"]
        if self.background == "keep":
            del values["background"]
        return values


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and read its output, stored with its weights.

    Args:
        charset: the symbols the model reads; class 0 is the CTC blank.
        preprocess: how images become input.
        max_length: the longest label the model was trained for.
    """

    charset: Charset
    preprocess: PreprocessSpec = PreprocessSpec()
    max_length: int = 4

    def __post_init__(self) -> None:
        _check_int("max_length", self.max_length)
        if not 1 <= self.max_length <= 64:
            raise ConfigError(f"max_length must lie in 1..64, not {self.max_length}")

    def to_metadata(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props`` and checkpoints."""
        return {
            f"{METADATA_PREFIX}format": str(FORMAT_VERSION),
            f"{METADATA_PREFIX}charset": self.charset.symbols,
            f"{METADATA_PREFIX}preprocess": json.dumps(self.preprocess.to_dict(), sort_keys=True),
            f"{METADATA_PREFIX}max_length": str(self.max_length),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ModelSpec:
        """Read back what :meth:`to_metadata` wrote; :class:`ConfigError` if absent or malformed."""
        try:
            version = int(metadata[f"{METADATA_PREFIX}format"])
            symbols = metadata[f"{METADATA_PREFIX}charset"]
            preprocess = json.loads(metadata[f"{METADATA_PREFIX}preprocess"])
            max_length = int(metadata[f"{METADATA_PREFIX}max_length"])
        except KeyError as missing:
            raise ConfigError(f"model metadata lacks {missing.args[0]}") from None
        except ValueError as bad:
            raise ConfigError(f"model metadata is malformed: {bad}") from None
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"model format {version} is newer than this knucaptcha reads ({FORMAT_VERSION}); upgrade"
            )
        if version < 1:
            raise ConfigError(f"unknown model format {version} (this knucaptcha reads formats 1 to {FORMAT_VERSION})")
        return cls(Charset(symbols), PreprocessSpec.from_dict(preprocess), max_length)
