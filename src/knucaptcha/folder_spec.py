"""How ``knucaptcha train --data`` reads a labelled folder: the input format, inferred from the images themselves.

Reading every folder as the generated ``knu`` style does (alpha channel,
140×35) made runs on folders of real, opaque captchas end at 0% without a
word: the alpha channel of an opaque image is solid ink, so the model trained
on blank input. Each preprocessing field is now the user's explicit choice
or else follows from the folder, as :func:`~knucaptcha.folder_stats.folder_stats`
measured it:

- channel: ``alpha`` when every image carries real transparency, else
  ``gray``. A mixed folder reads as gray too: gray composites a transparent
  image onto white, which keeps dark drawing, where alpha would read every
  opaque image as blank.
- height: :data:`MAX_HEIGHT` (48 px), or the images' median height when that
  is smaller (never upscaled), but at least :data:`MIN_HEIGHT`.
- width: the height times the images' median aspect ratio, rounded to a
  multiple of the model's time stride (input columns per output frame: 8
  for the ``fast`` and ``wide`` presets, 4 for ``seed``), and at least
  :data:`FRAMES_PER_SYMBOL` frames per symbol of the longest label.
- levels: binarized above 0 for alpha (the seed's ``alpha > 0``), linear
  darkness for gray and auto.
- background: flattened for gray
  (:func:`~knucaptcha.preprocess.flatten_background`: the paper's tint or
  gradient taken out, light text on dark turned round, the drawing stretched
  to full ink), kept for alpha, whose transparent pixels are no paper, and
  for auto, which reads some images so.

A folder that does not read as alpha (some image is opaque) starts from the
bundled ``opaque`` reader (:data:`FOLDER_READER`, trained on the generated
``opaque`` style) unless ``--init`` says otherwise (``--init none``: from
scratch): a few hundred labels are too few to learn glyphs from nothing, and
plenty to adapt a reader that knows them. The reader fixes the channel (gray),
the height (its own, 48 px) and the levels (linear); the background treatment
and the width are still the folder's, the width being the reader's height times
the images' median aspect ratio rounded to its stride (the CRNN reads any
width), as :func:`reader_input` says.

The charset and maximum length come from the labels, as before
(:class:`~knucaptcha.train.data.FolderSource`). An explicit choice the images
contradict is refused with a message naming the fix, as is a model to
fine-tune from (``--init``) that reads the alpha channel of opaque images.
Core module: numpy and Pillow through ``folder_stats``, never torch (the
stride is the caller's to give).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from .charset import Charset
from .errors import ConfigError, TrainingError
from .folder_stats import FolderStats
from .spec import BACKGROUNDS, CHANNEL_MODES, Background, ChannelMode, PreprocessSpec

MAX_HEIGHT = 48
"""Input height for folders of taller images. Three stride-2 blocks leave 6 rows of
features, enough for a glyph's shape; the real captchas that motivated it were 47 to 75 px tall."""

MIN_HEIGHT = 16
"""Input height below which tiny images are upscaled: the feature extractor needs some rows to work on."""

FRAMES_PER_SYMBOL = 2
"""Output frames per symbol of the longest label, at least: CTC needs a blank between repeated
symbols, and the CRNN refuses inputs narrower than this (:class:`~knucaptcha.train.model.CRNN`)."""

FOLDER_READER = "opaque"
"""The bundled model ``train --data`` starts from on a folder of opaque images, unless ``--init`` is given."""

NO_INIT = "none"
"""``--init none``: train from scratch, even on an opaque folder."""

_FLAGS = {
    "channel": "--channel",
    "size": "--size",
    "binarize": "--binarize/--no-binarize",
    "threshold": "--threshold",
    "opaque_at": "--opaque-at",
    "background": "--background",
}


@dataclass(frozen=True)
class PreprocessRequest:
    """The preprocessing fields the user fixed (``train --channel/--size/--binarize/--threshold/--opaque-at/--background``).

    None leaves a field to the folder. ``size`` is ``(width, height)``.
    ``threshold`` or ``opaque_at`` imply binarization.

    Raises:
        ConfigError: an unknown channel, or ``threshold``/``opaque_at`` with ``binarize=False``.
    """

    channel: ChannelMode | None = None
    size: tuple[int, int] | None = None
    binarize: bool | None = None
    threshold: int | None = None
    opaque_at: int | None = None
    background: Background | None = None

    def __post_init__(self) -> None:
        if self.channel is not None and self.channel not in CHANNEL_MODES:
            raise ConfigError(f"--channel must be one of {', '.join(CHANNEL_MODES)}, not {self.channel!r}")
        if self.background is not None and self.background not in BACKGROUNDS:
            raise ConfigError(f"--background must be one of {', '.join(BACKGROUNDS)}, not {self.background!r}")
        if self.binarize is False and (self.threshold is not None or self.opaque_at is not None):
            raise ConfigError("--threshold and --opaque-at set binarization levels; drop them or --no-binarize")

    def given(self) -> tuple[str, ...]:
        """The flags the user gave, for messages."""
        return tuple(_FLAGS[field.name] for field in fields(self) if getattr(self, field.name) is not None)


@dataclass(frozen=True)
class FolderInput:
    """The input a folder is read with, and where each choice came from.

    Attributes:
        preprocess: the spec training (and every later solve) reads the images with.
        reasons: ``channel``, ``size``, ``levels`` and ``background`` -> how that choice was made, for people.
    """

    preprocess: PreprocessSpec
    reasons: Mapping[str, str]

    def describe(self, charset: Charset, max_length: int, symbols_reason: str = "from the labels") -> str:
        """One line: channel, input size, levels, background, charset and maximum length, each with its reason."""
        spec = self.preprocess
        return (
            f"channel {spec.mode} ({self.reasons['channel']}), input {spec.width}x{spec.height} "
            f"({self.reasons['size']}), {_levels(spec)} ({self.reasons['levels']}), "
            f"background {_BACKGROUND_SHOWN[spec.background]} ({self.reasons['background']}), "
            f"charset {charset.symbols} ({len(charset)} symbols, {symbols_reason}), "
            f"max length {max_length} (from the labels)"
        )


def infer_input(stats: FolderStats, request: PreprocessRequest = PreprocessRequest(), *, stride: int) -> FolderInput:
    """The preprocessing for ``stats``'s folder: ``request``'s fields, the rest inferred (module docstring).

    Args:
        stats: the folder, as :func:`~knucaptcha.folder_stats.folder_stats` found it.
        request: the fields the user fixed.
        stride: input columns per output frame of the model to be trained.

    Raises:
        TrainingError: the folder holds no readable labelled image.
        ConfigError: ``--channel alpha`` on a folder with opaque images, or a
            combination :class:`~knucaptcha.spec.PreprocessSpec` refuses.
    """
    images = sum(stats.sizes.values())
    if not stats.count:
        raise TrainingError(f"{stats.folder} holds no readable labelled image")
    reasons: dict[str, str] = {}
    if request.channel is None:
        channel: ChannelMode = "alpha" if stats.transparent == images else "gray"
        reasons["channel"] = f"inferred: {stats.transparent} of {images} images transparent"
    else:
        channel = request.channel
        _check_channel(channel, stats)
        reasons["channel"] = "--channel"
    if request.size is None:
        width, height = input_size(stats.sizes, stride=stride, max_length=max(stats.lengths))
        median_width, median_height = _median_size(_each(stats.sizes))
        reasons["size"] = (
            f"inferred: median image {median_width}x{median_height}, height at most {MAX_HEIGHT}, "
            f"width a multiple of {stride}"
        )
    else:
        (width, height), reasons["size"] = request.size, "--size"
    implied = request.threshold is not None or request.opaque_at is not None
    binarize = request.binarize if request.binarize is not None else implied or channel == "alpha"
    reasons["levels"] = "given" if request.binarize is not None or implied else f"inferred for {channel}"
    background, reasons["background"] = _background(request, channel)
    spec = PreprocessSpec(channel, height, width, binarize, request.threshold or 0, request.opaque_at or 0, background)
    return FolderInput(spec, reasons)


def _background(request: PreprocessRequest, channel: ChannelMode) -> tuple[Background, str]:
    """The background treatment and its reason: ``--background``, else flattened for the gray channel only."""
    if request.background is not None:
        return request.background, "--background"
    return ("flatten" if channel == "gray" else "keep"), f"inferred for {channel}"


def init_input(
    reference: str, preprocess: PreprocessSpec, stats: FolderStats, request: PreprocessRequest
) -> FolderInput:
    """The input when fine-tuning from a model (``--init``), which fixes its own preprocessing.

    Raises:
        ConfigError: the user also gave preprocessing flags.
        TrainingError: the model reads the alpha channel and the folder holds opaque images.
    """
    given = request.given()
    if given:
        raise ConfigError(
            f"--init {reference} brings its own preprocessing ({preprocess.mode} {preprocess.width}x"
            f"{preprocess.height}, {_levels(preprocess)}); drop {', '.join(given)}, or --init to train from scratch"
        )
    problem = channel_problem(preprocess.mode, stats.transparent, sum(stats.sizes.values()))
    if problem:
        raise TrainingError(
            f"--init {reference} reads the alpha channel (a model of transparent captchas), but {problem}; "
            f"drop --init to start from the bundled {FOLDER_READER} reader (the default for opaque images), "
            f"or train from scratch on the folder's own format with --init {NO_INIT}"
        )
    source = f"from --init {reference}"
    return FolderInput(preprocess, dict.fromkeys(("channel", "size", "levels", "background"), source))


def starting_point(init: str | None, stats: FolderStats) -> str | None:
    """The model ``train --data`` starts from: ``init`` as given (None for ``none``: from scratch), else
    :data:`FOLDER_READER` when some image of the folder is opaque (it reads as gray), else None."""
    if init is not None:
        return None if init == NO_INIT else init
    return FOLDER_READER if stats.transparent < sum(stats.sizes.values()) else None


def reader_input(
    reference: str, preprocess: PreprocessSpec, stats: FolderStats, request: PreprocessRequest, *, stride: int
) -> FolderInput:
    """The input when starting from the ``opaque`` reader: its channel, height and levels, the folder's width
    and background.

    The width is the reader's height times the images' median aspect ratio,
    rounded to ``stride`` (the reader's), unless ``--size`` gives one with the
    reader's height. The background is ``--background``'s, else flattened, as
    for any gray folder: flattening only takes out what varies from one site's
    captchas to the next, which the reader learned to look past anyway.

    Raises:
        ConfigError: a flag the reader cannot read with (another channel, height or levels); the message
            names ``--init none``.
    """
    if request.channel is not None:
        _check_channel(request.channel, stats)
    refused = []
    if request.channel not in (None, preprocess.mode):
        refused.append(f"--channel {request.channel}")
    if request.size is not None and request.size[1] != preprocess.height:
        refused.append(f"--size {request.size[0]}x{request.size[1]}")
    if request.binarize:
        refused.append("--binarize")
    refused += [flag for flag, value in (("--threshold", request.threshold), ("--opaque-at", request.opaque_at))
                if value is not None]  # fmt: skip
    if refused:
        raise ConfigError(
            f"{', '.join(refused)}: the {reference} reader this run starts from reads {preprocess.mode} input "
            f"{preprocess.height} px high with {_levels(preprocess)}; drop {', '.join(refused)}, or train from "
            f"scratch with --init {NO_INIT}"
        )
    source = f"from the {reference} reader"
    if request.size is None:
        width = _width(_each(stats.sizes), preprocess.height, stride, max(stats.lengths))
        size_reason = f"height {source}, width from the median aspect ratio, a multiple of {stride}"
    else:
        width, size_reason = request.size[0], f"height {source}, width --size"
    background, background_reason = _background(request, preprocess.mode)
    reasons = {"channel": source, "size": size_reason, "levels": source, "background": background_reason}
    return FolderInput(replace(preprocess, width=width, background=background), reasons)


def _check_channel(channel: ChannelMode, stats: FolderStats) -> None:
    """Refuse ``--channel`` ``channel`` when it would read ``stats``'s folder as blank input."""
    problem = channel_problem(channel, stats.transparent, sum(stats.sizes.values()))
    if problem:
        raise ConfigError(
            f"--channel {channel}: {problem}; use --channel gray (or auto), or leave --channel out to infer it"
        )


def channel_problem(mode: str, transparent: int, images: int) -> str | None:
    """Why reading ``images`` images (``transparent`` of them transparent) in channel ``mode``
    would train on blank input; None when it would not."""
    if mode != "alpha" or transparent == images:
        return None
    return (
        f"{images - transparent} of {images} images are opaque (no transparency), and the alpha channel of an "
        "opaque image is solid ink: a blank input"
    )


def input_size(sizes: Mapping[tuple[int, int], int], *, stride: int, max_length: int) -> tuple[int, int]:
    """``(width, height)`` of the input for images of ``sizes`` (``(width, height)`` -> count).

    The rule is the module docstring's; ``max_length`` is the longest label's length.
    """
    each = _each(sizes)
    if not each:
        raise TrainingError("no readable image to take an input size from")
    _, median_height = _median_size(each)
    height = MAX_HEIGHT if median_height >= MAX_HEIGHT else max(MIN_HEIGHT, median_height)
    return _width(each, height, stride, max_length), height


def _width(each: list[tuple[int, int]], height: int, stride: int, max_length: int) -> int:
    """``height`` times the median aspect ratio of ``each`` image, rounded to a multiple of ``stride``,
    but at least :data:`FRAMES_PER_SYMBOL` frames per symbol of the longest label."""
    aspect = statistics.median(width / image_height for width, image_height in each)
    return max(round(height * aspect / stride), FRAMES_PER_SYMBOL * max_length) * stride


def _each(sizes: Mapping[tuple[int, int], int]) -> list[tuple[int, int]]:
    """Every image's size, once per image."""
    return [size for size, count in sizes.items() for _ in range(count)]


def _median_size(each: list[tuple[int, int]]) -> tuple[int, int]:
    """The median width and the median height (each one an image's own)."""
    return statistics.median_low(width for width, _ in each), statistics.median_low(height for _, height in each)


_BACKGROUND_SHOWN = {"keep": "kept", "flatten": "flattened"}


def _levels(spec: PreprocessSpec) -> str:
    if not spec.binarize:
        return "linear levels"
    if spec.opaque_at:
        return f"three levels (ink above {spec.threshold}, opaque from {spec.opaque_at})"
    return f"binarized above {spec.threshold}"
