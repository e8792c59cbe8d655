"""Typed, frozen configuration of the model architecture and of a training run.

Both travel inside every checkpoint (as plain dicts) and the architecture also
inside the exported ONNX file, so a run can be resumed, fine-tuned or audited
from its files alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ..errors import ConfigError
from ..spec import check_keys

Downsample = Literal["maxpool", "stride"]
SequenceKind = Literal["lstm", "conv"]


def _tupled(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with lists turned back into tuples (JSON and torch.save round-trips give lists)."""
    check_keys(cls, values)
    tuple_fields = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
    return {
        key: tuple(tuple(v) if isinstance(v, list) else v for v in value) if key in tuple_fields else value
        for key, value in values.items()
    }


@dataclass(frozen=True)
class ArchConfig:
    """The CRNN's stages: convolutional feature extraction, bidirectional LSTMs, a linear head.

    Args:
        channels: output channels of each conv block (3×3, 'same' padding, ReLU).
        pools: per conv block, the (height, width) downsampling factor.
        downsample: ``maxpool`` convolves at full size then max-pools (the
            seed); ``stride`` convolves with that stride (4× cheaper a block).
        batch_norm: batch normalization after each convolution.
        dense: width of the per-step projection of the flattened feature column.
        dropout: dropout after that projection.
        sequence: how the steps are read in context: ``lstm``, bidirectional
            LSTM layers (the seed's); or ``conv``, 1-D convolutions over time
            (kernel 3, ReLU), each step seeing its neighbours two layers deep.
            The convolutions run in parallel over the steps, where an LSTM
            walks them one by one (a third of a ``wide`` model's time in ONNX Runtime).
        hidden: per sequence layer, hidden units per direction (``lstm``) or
            output channels (``conv``).
        recurrent_dropout: dropout on each sequence layer's input, one mask
            per sequence shared by all steps (as Keras' ``LSTM(dropout=...)``).
    """

    channels: tuple[int, ...] = (32, 64)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2))
    downsample: Downsample = "maxpool"
    batch_norm: bool = False
    dense: int = 64
    dropout: float = 0.2
    sequence: SequenceKind = "lstm"
    hidden: tuple[int, ...] = (128, 64)
    recurrent_dropout: float = 0.25

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.pools):
            raise ConfigError("channels and pools must be non-empty and of equal length (one per conv block)")
        if any(c < 1 for c in self.channels) or self.dense < 1 or not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError("channels, dense and hidden sizes must be positive")
        if any(len(p) != 2 or min(p) < 1 for p in self.pools):
            raise ConfigError(f"each pool must be a (height, width) pair of positive ints, not {self.pools}")
        if self.downsample not in ("maxpool", "stride"):
            raise ConfigError(f"downsample must be maxpool or stride, not {self.downsample!r}")
        if self.sequence not in ("lstm", "conv"):
            raise ConfigError(f"sequence must be lstm or conv, not {self.sequence!r}")
        if not (0 <= self.dropout < 1 and 0 <= self.recurrent_dropout < 1):
            raise ConfigError("dropout rates must lie in [0, 1)")

    @property
    def time_stride(self) -> int:
        """Input columns per output frame: the product of the pools' width factors.

        ``knucaptcha train --data`` rounds an inferred input width to a multiple of it
        (:mod:`knucaptcha.folder_spec`), so no column is cut off or padded.
        """
        return math.prod(width for _, width in self.pools)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ArchConfig:
        """Build from a mapping (lists accepted for tuples), rejecting unknown keys."""
        return cls(**_tupled(cls, values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Strided convs downsample early (the seed's full-size convolutions are most
# of its cost), BatchNorm lets it train fast, a third block halves the time
# steps (18 for 140 px: ample for 4 characters), and one small BiLSTM reads the
# line (PyTorch's fused LSTM trains faster than its GRU here).
_FAST = ArchConfig(
    channels=(16, 32, 64),
    pools=((2, 2), (2, 2), (2, 2)),
    downsample="stride",
    batch_norm=True,
    dense=64,
    dropout=0.1,
    hidden=(64,),
    recurrent_dropout=0.0,
)

PRESETS: dict[str, ArchConfig] = {
    # The seed notebook's model, layer for layer.
    "seed": ArchConfig(),
    "fast": _FAST,
    # ``fast`` with half again the conv channels and wider column and LSTM
    # states: the default's until its stage 6. ``fast`` stopped improving at 94% on
    # mixed knu captchas however long it trained; this reaches 96% for about
    # twice the parameters and 1.7x the solve time, still under 1 MB as ONNX.
    "wide": replace(_FAST, channels=(24, 48, 96), dense=96, hidden=(80,)),
    # ``wide``'s feature extractor read by two 1-D convolutions instead of its
    # BiLSTM: in ONNX Runtime the LSTM is a third of ``wide``'s model time and
    # walks the steps one by one; this reads them all at once. The shipped default's.
    "wide-conv": replace(_FAST, channels=(24, 48, 96), dense=96, sequence="conv", hidden=(96, 96)),
}
DEFAULT_PRESET = "fast"

FINE_TUNE_LR = 1e-4
"""The learning rate ``knucaptcha train --init`` uses unless told otherwise. At
the from-scratch 1e-3, fine-tuning the default on 200 images of a new font
family forgot more than it learned (56.5% against 58.5% zero-shot); at 1e-4 it
reached 67.1% (``benchmarks/adaptation.py``). Not from the bundled ``opaque`` reader, which
``train --data`` starts from on opaque folders: a broad start has more to learn than a site's
model has to keep, and on 200 labels of each dev library (validated on splits of their own, 4
minutes each) it read 69% and 43% at 1e-4, 83% and 51% at 3e-4, 89% and 52% at 1e-3, so it
trains at the from-scratch rate."""


FOLDER_WARMUP = 200
"""The warm-up steps ``knucaptcha train --data`` uses unless told otherwise (generated data: none)."""

FOLDER_MAX_MINUTES = 10.0
"""The time limit of ``knucaptcha train --data`` unless told otherwise: a folder of a few hundred captchas
should be read within it on a laptop's CPU (issue 17's target)."""

FOLDER_WEIGHT_DECAY = 0.01
"""The weight decay ``knucaptcha train --data`` uses unless told otherwise (AdamW's own default; generated
data, which never repeats an image, none)."""


def preset(name: str) -> ArchConfig:
    """The architecture of a named preset; :class:`ConfigError` for an unknown name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. Defaults follow the seed's recipe where it fits.

    Args:
        max_epochs: upper bound on epochs (the seed's 500).
        batch_size: images per step (the seed's 16).
        lr: Adam's learning rate (Keras' default 1e-3).
        patience: early stopping: epochs without a better epoch before
            stopping (the seed's 10, which counts validation loss). Better
            means a higher validation sequence accuracy, ties broken by the
            loss. Counting starts only once the model has read a validation
            label right (its take-off): a CTC model sits on a long loss
            plateau first, and stopping there is what leaves small folders at 0%.
        plateau_patience: before take-off, the epochs without a better
            validation loss tolerated before giving up (a model that never
            reads anything right should not run to ``max_epochs``).
        min_epochs: epochs always trained, whatever the validation says.
        lr_patience: halve the learning rate after this many epochs without
            a better epoch (after take-off); 0 disables.
        seed: seeds weight init, shuffling, augmentation and dropout.
        augment: small random affine jitter and pixel noise on training images.
        valid_fraction: share of a labelled folder held out for validation.
        epoch_size: images per epoch: generated ones, or a labelled folder's
            training split repeated up to about this many when it is smaller
            (so that patience, counted in epochs, means enough steps).
        valid_size: generated validation images.
        warmup: steps over which the learning rate rises linearly from
            ``lr / warmup`` to ``lr`` at the start of a run: the first steps'
            gradients on a fresh output layer are large and unreliable, and a
            full-size step there can undo what a pretrained reader knows.
        max_minutes: stop before an epoch that would end past this many
            minutes of training (counted over resumed runs too; 0: no limit).
        weight_decay: AdamW's decoupled weight decay (0: plain Adam), which
            keeps a model fitting a few hundred images from growing weights
            that memorize them.
    """

    max_epochs: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 10
    plateau_patience: int = 50
    min_epochs: int = 0
    lr_patience: int = 5
    seed: int = 0
    augment: bool = False
    valid_fraction: float = 0.1
    epoch_size: int = 4000
    valid_size: int = 400
    warmup: int = 0
    weight_decay: float = 0.0
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience", "plateau_patience", "epoch_size", "valid_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.min_epochs < 0 or self.lr_patience < 0 or self.warmup < 0:
            raise ConfigError("min_epochs, lr_patience and warmup may not be negative")
        if self.max_minutes < 0:
            raise ConfigError(f"max_minutes may not be negative, not {self.max_minutes}")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"weight_decay must lie in [0, 1), not {self.weight_decay}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr must lie in (0, 1), not {self.lr}")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must lie in (0, 1), not {self.valid_fraction}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys."""
        check_keys(cls, values)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
