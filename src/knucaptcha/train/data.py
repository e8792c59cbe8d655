"""Training data as tensors: a labelled folder (loaded once) or an endless stream of generated captchas.

Every image goes through :func:`knucaptcha.preprocess.to_batch`, the same
function the solver uses, so a model sees at training time exactly what it
will see when solving.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..charset import Charset
from ..errors import TrainingError
from ..folder_spec import channel_problem
from ..folder_stats import FolderStats, folder_stats, listed, unreadable_entries
from ..generator import Style, generate_mixture, get_style, render_noise, with_font_folder
from ..labels import scan_folder, split
from ..preprocess import to_batch
from ..spec import PreprocessSpec
from ..workers import exit_with_parent


@dataclass(frozen=True)
class LabelledTensors:
    """Preprocessed images ``(N, 1, H, W)`` and their labels."""

    images: torch.Tensor
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[LabelledTensors]:
        """Consecutive batches; shuffled by ``generator`` when one is given."""
        count = len(self)
        order = torch.randperm(count, generator=generator) if generator is not None else torch.arange(count)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            yield LabelledTensors(self.images[index], tuple(self.labels[i] for i in index.tolist()))


class DataSource(Protocol):
    """Where a run's images come from: a fixed validation set and one training set per epoch."""

    preprocess: PreprocessSpec
    valid: LabelledTensors

    def vocabulary(self) -> tuple[Charset, int]:
        """The symbols the source's labels use and its longest label's length."""

    def epoch(self, epoch: int) -> LabelledTensors:
        """The training images of epoch ``epoch`` (0-based)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description from which :func:`open_source` rebuilds the source."""

    def close(self) -> None:
        """Release what the source holds beyond memory (a worker process)."""


def _labelled(images: np.ndarray, labels: Sequence[str]) -> LabelledTensors:
    """A preprocessed batch and its labels as tensors for training."""
    return LabelledTensors(torch.from_numpy(images), tuple(labels))


def _tensors(images: list[Any], labels: list[str], preprocess: PreprocessSpec) -> LabelledTensors:
    return _labelled(to_batch(images, preprocess), labels)


NOISE_STYLE = "knu-varied"
"""The style whose noise :class:`FolderSource` overlays, at mixed difficulty."""

NOISE_OVERLAY = 0.5
"""The ``noise_overlay`` ``knucaptcha train --data`` uses unless told otherwise."""


class FolderSource:
    """A labelled folder, split (seeded) into training and validation, preprocessed once.

    With ``epoch_size``, a training split smaller than that is repeated to
    about ``epoch_size`` images per epoch (augmentation draws anew for every
    copy). Early stopping counts epochs, and an epoch of a 180-image split is
    a dozen steps: patience 10 then stopped fine-tuning runs after a few
    hundred steps, long before their training loss had levelled off.

    ``noise_overlay`` is the share of each epoch's training images drawn over
    with generated noise (:func:`~knucaptcha.generator.render_noise`, lines,
    arcs, curves and dots, no glyphs), new noise every epoch; validation
    images stay as they are. A few hundred labels show each glyph a few dozen
    times, always among the same clutter; under fresh noise the model learns
    the glyphs rather than their surroundings (measured in the README,
    "Adapting to real captchas").

    Images that do not decode are skipped and listed in ``skipped`` (with
    ``strict_images``, refused). The charset is the labels' symbols, sorted,
    or ``symbols`` (in that order) when given, which must hold them all. A
    ``preprocess`` reading the alpha channel of opaque images is refused: it
    would train on blank input. ``stats`` spares a second look at the folder
    when the caller already took one (``knucaptcha train`` infers the
    preprocessing from it).
    """

    def __init__(
        self,
        folder: str | Path,
        preprocess: PreprocessSpec,
        *,
        case: str,
        valid_fraction: float,
        seed: int,
        epoch_size: int = 0,
        noise_overlay: float = 0.0,
        symbols: str | None = None,
        strict_images: bool = False,
        stats: FolderStats | None = None,
    ):
        if not 0.0 <= noise_overlay <= 1.0:
            raise TrainingError(f"noise_overlay must lie in [0, 1], not {noise_overlay}")
        self.folder = Path(folder)
        self.preprocess = preprocess
        self.case = case
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.epoch_size = epoch_size
        self.noise_overlay = noise_overlay
        self.symbols = symbols
        self.strict_images = strict_images
        self._noise_style = get_style(NOISE_STYLE, "mixed")
        stats = folder_stats(self.folder, case=case) if stats is None else stats
        self.skipped = stats.unreadable
        if strict_images and self.skipped:
            raise TrainingError(
                f"{len(self.skipped)} image(s) in {self.folder} cannot be read: "
                f"{listed(unreadable_entries(self.skipped))}; fix or remove them, or drop --strict-images to skip them"
            )
        broken = {self.folder / file.name for file in self.skipped}
        items = [item for item in scan_folder(self.folder, case=case) if item.path not in broken]
        if len(items) < 2:
            raise TrainingError(
                f"{self.folder} holds {len(items)} readable labelled image(s); training needs at least 2"
            )
        problem = channel_problem(preprocess.mode, stats.transparent, sum(stats.sizes.values()))
        if problem:
            raise TrainingError(f"{self.folder}: {problem}; read the folder as gray")
        labels = [item.label for item in items]
        self._vocabulary = (_charset(labels, symbols), max(len(label) for label in labels))
        train, valid = split(items, valid_fraction, seed)
        self.train = _tensors([i.path for i in train], [i.label for i in train], preprocess)
        self.valid = _tensors([i.path for i in valid], [i.label for i in valid], preprocess)
        repeats = max(1, epoch_size // len(self.train))
        self._epoch = LabelledTensors(self.train.images.repeat(repeats, 1, 1, 1), self.train.labels * repeats)

    def vocabulary(self) -> tuple[Charset, int]:
        return self._vocabulary

    def epoch(self, epoch: int) -> LabelledTensors:
        if not self.noise_overlay:
            return self._epoch
        count = len(self._epoch)
        rng = np.random.default_rng([self.seed, epoch])  # the same noise on the same images after --resume
        chosen = np.flatnonzero(rng.random(count) < self.noise_overlay)
        noise = to_batch(
            [render_noise(self._noise_style, self.seed, epoch * count + int(i)) for i in chosen], self.preprocess
        )
        images = self._epoch.images.clone()
        index = torch.from_numpy(chosen)
        images[index] = torch.maximum(images[index], torch.from_numpy(noise))
        return LabelledTensors(images, self._epoch.labels)

    def close(self) -> None:
        """Nothing to release: the folder is read once, into memory."""

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "folder",
            "folder": str(self.folder.resolve()),
            "case": self.case,
            "valid_fraction": self.valid_fraction,
            "seed": self.seed,
            "epoch_size": self.epoch_size,
            "noise_overlay": self.noise_overlay,
            "symbols": self.symbols,
            "strict_images": self.strict_images,
            "preprocess": self.preprocess.to_dict(),
            "train_images": len(self.train),
            "valid_images": len(self.valid),
            "skipped": [file.name for file in self.skipped],
        }


def _charset(labels: list[str], symbols: str | None) -> Charset:
    """The labels' sorted symbols, or ``symbols`` when given; :class:`TrainingError` if it misses some of theirs."""
    if symbols is None:
        return Charset.from_labels(labels)
    charset = Charset(symbols)
    missing = sorted({symbol for label in labels for symbol in label} - set(charset.symbols))
    if missing:
        raise TrainingError(
            f"the labels use {''.join(missing)!r}, which --symbols {symbols!r} lacks; add them to --symbols, "
            "or fold the labels' case with --case upper or lower"
        )
    return charset


class GeneratedSource:
    """Freshly generated captchas: ``epoch_size`` new ones each epoch, a fixed validation set.

    Epoch ``e`` is images ``e * epoch_size ...`` of the stream seeded with
    ``seed``, so a resumed run sees what an uninterrupted one would have. The
    validation set is drawn from ``seed + 1``, a different stream.

    With ``prefetch``, a worker process draws epoch ``e + 1`` while epoch ``e``
    trains: drawing costs about as much as a training step on one core, so on
    two cores this nearly halves an epoch. The images do not depend on it.

    ``font_dir`` draws with every font in that folder instead of the style's
    own (as ``knucaptcha generate --fonts``): the fonts a real site uses, or
    more families than the default style knows.

    ``mix`` ``(style, share)`` draws that share of every epoch (and of the
    generated validation set) from a second style with the same preprocessing,
    from streams of its own (seeds + 2 and + 3): the shipped default trains on
    mostly ``knu`` with some ``knu-varied``. ``mix_font_dir`` draws the second
    style with every font in that folder instead of its own
    (``scripts/setup_training_fonts.sh`` gathers the default's).

    ``valid_folder`` validates on every image of a labelled folder instead of
    generated ones. Training on captchas generated in a site's font gets
    further than thousands of labels (README, "Adapting to real captchas"),
    but generated validation images cannot tell which epoch reads the site's
    own captchas best; a small labelled folder of them can.
    """

    def __init__(
        self,
        style_name: str,
        difficulty: str,
        *,
        seed: int,
        epoch_size: int,
        valid_size: int,
        prefetch: bool = False,
        font_dir: str | Path | None = None,
        valid_folder: str | Path | None = None,
        case: str = "keep",
        mix: tuple[str, float] | None = None,
        mix_font_dir: str | Path | None = None,
    ):
        if mix_font_dir is not None and mix is None:
            raise TrainingError("fonts for a mixed style need a style to mix in")
        self.style = get_style(style_name, difficulty)
        self.font_dir = None if font_dir is None else Path(font_dir).resolve()
        if self.font_dir is not None:
            self.style = with_font_folder(self.style, self.font_dir)
        self.difficulty = difficulty
        self.preprocess = self.style.preprocess
        self.seed = seed
        self.epoch_size = epoch_size
        self.case = case
        self.mix_font_dir = None if mix_font_dir is None else Path(mix_font_dir).resolve()
        self.mix = None if mix is None else self._mixture(*mix)
        self.valid_folder = None if valid_folder is None else Path(valid_folder).resolve()
        if self.valid_folder is None:
            self.valid = _labelled(*generate_mixture(self._parts(seed + 1, valid_size, 0)))
        else:
            self.valid = self._folder_valid(self.valid_folder)
        # spawn, not fork: no copy of this process's torch threads; the worker imports no torch.
        # exit_with_parent: a killed run leaves no worker (or resource tracker) behind.
        self._pool = (
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent)
            if prefetch
            else None
        )
        self._next: tuple[int, Future] | None = None

    def _folder_valid(self, folder: Path) -> LabelledTensors:
        """Every image of ``folder``, refused if a label is one the generated captchas could never teach."""
        items = scan_folder(folder, case=self.case)
        if not items:
            raise TrainingError(f"{folder} holds no labelled image to validate on")
        unknown = sorted({symbol for item in items for symbol in item.label} - set(self.style.charset.symbols))
        if unknown:
            raise TrainingError(
                f"{folder}: labels use {''.join(unknown)!r}, which {self.style.name} captchas never draw (try --case)"
            )
        longest = max(items, key=lambda item: len(item.label))
        if len(longest.label) > self.style.max_length:
            raise TrainingError(
                f"{longest.path}: label {longest.label!r} is longer than {self.style.name}'s {self.style.max_length} symbols"
            )
        return _tensors([item.path for item in items], [item.label for item in items], self.preprocess)

    def _mixture(self, name: str, share: float) -> tuple[Style, float]:
        """The second style of a mixture and its share, checked against the first."""
        if not 0.0 < share < 1.0:
            raise TrainingError(f"a mixed style's share must lie strictly between 0 and 1, not {share}")
        style = get_style(name, self.difficulty)
        if self.mix_font_dir is not None:
            style = with_font_folder(style, self.mix_font_dir)
        if (style.preprocess, style.charset, style.max_length) != (
            self.preprocess,
            self.style.charset,
            self.style.max_length,
        ):
            raise TrainingError(
                f"{name} cannot be mixed into {self.style.name}: their preprocessing, symbols or length differ"
            )
        return style, share

    def _parts(self, seed: int, count: int, epoch: int) -> list[tuple[Style, int, int, int]]:
        """What ``count`` images of ``epoch`` are drawn from: ``(style, seed, count, start)`` per style."""
        if self.mix is None:
            return [(self.style, seed, count, epoch * count)]
        mixed_style, share = self.mix
        mixed = round(count * share)
        own = count - mixed
        return [(self.style, seed, own, epoch * own), (mixed_style, seed + 2, mixed, epoch * mixed)]

    def vocabulary(self) -> tuple[Charset, int]:
        return self.style.charset, self.style.max_length

    def epoch(self, epoch: int) -> LabelledTensors:
        if self._next is not None and self._next[0] == epoch:
            drawn = self._next[1].result()
        else:
            drawn = generate_mixture(self._parts(self.seed, self.epoch_size, epoch))
        if self._pool is not None:
            self._next = (epoch + 1, self._pool.submit(generate_mixture, self._parts(self.seed, self.epoch_size, epoch + 1)))
        return _labelled(*drawn)

    def close(self) -> None:
        """Stop the prefetching worker (a no-op without one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._next = None, None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "generated",
            "style": self.style.name,
            "font_dir": None if self.font_dir is None else str(self.font_dir),
            "valid_folder": None if self.valid_folder is None else str(self.valid_folder),
            "case": self.case,
            "difficulty": self.difficulty,
            "mix": None if self.mix is None else [self.mix[0].name, self.mix[1]],
            "mix_font_dir": None if self.mix_font_dir is None else str(self.mix_font_dir),
            "seed": self.seed,
            "epoch_size": self.epoch_size,
            "valid_images": len(self.valid),
        }


def open_source(description: dict[str, Any], *, prefetch: bool = False) -> DataSource:
    """Rebuild the source a checkpoint describes (for ``--resume``); ``prefetch`` as in :class:`GeneratedSource`."""
    if description["kind"] == "folder":
        return FolderSource(
            description["folder"],
            PreprocessSpec.from_dict(description["preprocess"]),
            case=description["case"],
            valid_fraction=description["valid_fraction"],
            seed=description["seed"],
            epoch_size=description["epoch_size"],
            noise_overlay=description.get("noise_overlay", 0.0),  # absent in runs from before the option
            symbols=description.get("symbols"),  # so are these two
            strict_images=description.get("strict_images", False),
        )
    return GeneratedSource(
        description["style"],
        description["difficulty"],
        seed=description["seed"],
        epoch_size=description["epoch_size"],
        valid_size=description["valid_images"],
        prefetch=prefetch,
        font_dir=description.get("font_dir"),  # absent in runs from before the option
        valid_folder=description.get("valid_folder"),  # so are these two
        case=description.get("case", "keep"),
        mix=None if description.get("mix") is None else (description["mix"][0], description["mix"][1]),
        mix_font_dir=description.get("mix_font_dir"),  # absent in runs from before the option
    )


def encode_targets(labels: tuple[str, ...], charset: Charset) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC targets: all labels' classes concatenated, and each label's length."""
    encoded = [charset.encode(label) for label in labels]
    targets = torch.tensor([c for classes in encoded for c in classes], dtype=torch.long)
    lengths = torch.tensor([len(classes) for classes in encoded], dtype=torch.long)
    return targets, lengths


def augment(images: torch.Tensor, generator: torch.Generator, preprocess: PreprocessSpec) -> torch.Tensor:
    """Small random affine jitter (±4°, ±6% scale, ±2 px shift) and pixel noise on ``(N, 1, H, W)``.

    Binarized inputs stay on their levels: the warped image is rounded back to
    0/1 (or 0/0.5/1 with ``opaque_at``) and noise flips 1% of the pixels to
    the other side of 0.5. Gray inputs also vary as one site's captchas do
    from image to image (:func:`_vary_gray`) and get Gaussian noise instead.
    """
    n, _, height, width = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    if not preprocess.binarize:
        images = _vary_gray(images, generator)
    angle = uniform(-4, 4) * math.pi / 180
    scale = uniform(0.94, 1.06)
    # affine_grid works in [-1, 1] coordinates: a shift of 2 px is 4 / size.
    shift_x, shift_y = uniform(-4 / width, 4 / width), uniform(-4 / height, 4 / height)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    aspect = height / width  # rotate in pixel space, not in the squashed [-1, 1] square
    theta = torch.stack(
        [
            torch.stack([cos, -sin * aspect, shift_x], dim=1),
            torch.stack([sin / aspect, cos, shift_y], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if preprocess.binarize:
        flips = torch.rand(warped.shape, generator=generator) < 0.01
        if preprocess.opaque_at:
            levels = torch.round(warped * 2) / 2
            return torch.where(flips, (levels == 0).float() * 0.5, levels)
        return ((warped > 0.5) ^ flips).float()
    noise = torch.randn(warped.shape, generator=generator) * 0.05
    return (warped + noise).clamp(0.0, 1.0)


def _vary_gray(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image of ``(N, 1, H, W)`` gray ink: a third thicken their strokes (3×3 dilation), a third
    thin them (erosion), a quarter are blurred (3×3 mean), and every one's contrast and background
    change (ink scaled by 0.6..1.1, plus a background level of 0..0.15)."""
    n = images.shape[0]
    stroke = torch.rand(n, 1, 1, 1, generator=generator)
    thick = F.max_pool2d(images, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-images, 3, stride=1, padding=1)
    images = torch.where(stroke < 1 / 3, thick, torch.where(stroke < 2 / 3, thin, images))
    blurred = F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    images = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.25, blurred, images)
    contrast = torch.rand(n, 1, 1, 1, generator=generator) * 0.5 + 0.6
    background = torch.rand(n, 1, 1, 1, generator=generator) * 0.15
    return (images * contrast + background * (1 - images)).clamp(0.0, 1.0)
