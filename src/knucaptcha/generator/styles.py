"""What a synthetic captcha looks like: typed, frozen style configuration.

A :class:`Style` fixes the image (size, background, fonts, alphabet, label
length, layout) and holds two sets of :class:`Knobs`: ``calm`` (the ranges at
difficulty 0) and ``wild`` (the ranges at difficulty 1). A sample of
difficulty ``d`` draws every knob from the range linearly between the two, so
one number scales rotation, overlap, noise and warp together. The presets
``exact`` (0: the calm end), ``easy``, ``medium`` and ``hard`` fix ``d``;
``mixed`` draws ``d`` uniformly from [0, 1] for each sample, which gives a
training set that covers both ends.

Five styles are built in (see :func:`get_style`):

``knu``
    The current KNU captcha as the server draws it (``CONTEXT.md``; README,
    "The real KNU captcha"): 140×35 RGBA, fully transparent, black ink only in
    the alpha channel, 4 symbols of ``0-9A-Z`` in NanumGothic Bold 30 px (the
    bundled subset ``KnuCaptchaGothic-Bold``), laid out as one text line from
    pen origin (7, 26) at the font's advance widths, each glyph's outline
    stroked 0.5 px wide at half opacity (hollow glyphs), and one opaque 3 px
    SimpleCaptcha curve. ``exact`` is that look; higher difficulties vary
    the parameters around it (size ±2 px, sub-pixel origin, outline width and
    opacity, curve width 2–4 and 0–2 curves, faint edge pixels) so that the
    server's Java2D rasterization falls inside what a model saw.
``knu-varied``
    The same 140×35 alpha format, domain-randomized for a redesign: the DejaVu
    families and the bundled Gothic, filled or hollow glyphs, rotation,
    jitter, overlap, lines, arcs, curves, dots, grids, speckle and warps.
``knu2021``
    The 2020–2021 captcha: 150×40 opaque RGB, a diagonal gradient from dark grey
    to white, 4 lower-case symbols of SimpleCaptcha's alphabet in heavy, lightly
    blurred bold italic from near the left edge, two aliased straight lines
    descending across it.
``knu-unseen``
    A knu-like style deliberately outside ``knu-varied``'s distribution, to
    measure fine-tuning on something the default model has not seen: the STIX
    and Computer Modern fonts (never used in ``knu`` or ``knu-varied``; STIX
    bold italic is one of ``knu2021``'s faces), a grid of thin lines and salt
    speckle and a thick noise line, scattered glyphs. After the seed's
    binarization many samples are ambiguous to a person too
    (``benchmarks/person_reading.py``).
``opaque``
    No one site: a broad opaque gray style (4–8 symbols of ``0-9A-Za-z``,
    160×48, many fonts, filled and hollow glyphs, gradients and textures,
    every kind of noise), which the bundled ``opaque`` reader is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ..charset import ALPHANUMERIC, DIGITS_UPPER, SIMPLECAPTCHA, Charset
from ..errors import ConfigError
from ..spec import PreprocessSpec, check_keys

Span = tuple[float, float]
"""An inclusive ``(low, high)`` range a value is drawn from."""

Difficulty = Literal["exact", "easy", "medium", "hard", "mixed"]

DIFFICULTY_LEVELS: dict[str, float] = {"exact": 0.0, "easy": 0.2, "medium": 0.5, "hard": 1.0}
"""The fixed difficulty of each preset; ``mixed`` draws one per sample from [0, 1]."""

DIFFICULTIES: tuple[str, ...] = (*DIFFICULTY_LEVELS, "mixed")

Background = Literal["transparent", "gradient"]
BACKGROUNDS: tuple[str, ...] = ("transparent", "gradient")

Layout = Literal["scattered", "line"]
LAYOUTS: tuple[str, ...] = ("scattered", "line")


def _knob(default: Span, low: float, high: float) -> Any:
    """A knob field: its default span and the limits any span must stay within."""
    return field(default=default, metadata={"limits": (low, high)})


@dataclass(frozen=True)
class Knobs:
    """The ranges one sample's random choices are drawn from.

    Every field is a ``(low, high)`` span; counts are rounded down after
    drawing. Lengths are in pixels of the final image. The defaults draw
    plain upright text without noise, so a style only names what it varies.

    Args:
        font_size: font size (em) in pixels, per glyph.
        stretch: horizontal scale of each glyph (below 1 is condensed).
        rotation: degrees each glyph is turned about its centre (positive is
            counter-clockwise).
        jitter: vertical offset of each glyph from the common baseline.
        spacing: gap between neighbouring glyph boxes; negative overlaps them.
        ink: opacity 1..255 of glyphs and noise (on a transparent background
            this is the alpha value; the seed's binarization sees any ink as 1).
        lines: number of straight noise segments.
        arcs: number of elliptic noise arcs.
        curves: number of wavy lines across the whole image (SimpleCaptcha's noise).
        stroke: width of lines, arcs, curves and grid lines.
        dots: number of noise dots.
        dot_size: diameter of a noise dot.
        grid: number of columns of a lattice of thin lines (rows at the same
            pitch); 0 draws none.
        speckle: fraction of pixels set to ink at random after warping.
        warp: amplitude of a vertical sine displacement.
        warp_period: wavelength of that sine.
        elastic: standard deviation of a random smooth displacement.
        shade: grey level 0..255 where a gradient background starts.
        shade_end: grey level where it ends.
        shade_angle: direction of the gradient in degrees (0 runs left to
            right, 90 top to bottom; SimpleCaptcha's runs along the diagonal).
        rails: number of straight lines drawn aliased across the whole width,
            descending left to right, roughly parallel (2021's noise).
        rail_gap: vertical distance between neighbouring rails.
        blur: radius of a Gaussian blur of the ink.
        ink_spread: each glyph's ink is the sample's ``ink`` times ``1 - u``,
            ``u`` drawn per glyph from ``(0, spread)``: glyphs of different
            greys (or colours, once read as grey) in one captcha.
        texture: amplitude in grey levels of a smooth random mottling (plus a
            fine grain a quarter as strong) over a gradient background.
        edge_cut: share of the sample's ink below which antialiased edge pixels are
            cleared after warping (0 keeps soft edges; 0.5 leaves hard ones).
            The seed's ``alpha > 0`` sees every soft edge pixel as ink, which
            fattens small bold glyphs until 9 and 0 are one blob; servers that
            draw without antialiasing never produce such edges.
        hollow: chance that a sample's glyphs are drawn as outlines only
            (hollow, as SimpleCaptcha's ``ColoredEdgesWordRenderer`` does) rather
            than filled.
        outline: width of a hollow glyph's outline stroke, centred on it.
        origin_x: pen position of the first glyph (``line`` layout).
        baseline: baseline height from the top (``line`` layout).
        lined: chance that a ``scattered`` style lays a sample out as one line
            from ``origin_x`` on ``baseline``, as ``line`` does: the real
            captcha's layout as one corner of a varied style.
        beziers: number of SimpleCaptcha curves (``CurvedLineNoiseProducer``:
            one cubic Bézier from left to right, flattened, drawn opaque).
        bezier_width: stroke width of those curves.
    """

    font_size: Span = _knob((24, 24), 6, 96)
    stretch: Span = _knob((1.0, 1.0), 0.3, 3.0)
    rotation: Span = _knob((0, 0), -90, 90)
    jitter: Span = _knob((0, 0), -40, 40)
    spacing: Span = _knob((1, 1), -40, 40)
    ink: Span = _knob((255, 255), 1, 255)
    lines: Span = _knob((0, 0), 0, 50)
    arcs: Span = _knob((0, 0), 0, 50)
    curves: Span = _knob((0, 0), 0, 10)
    stroke: Span = _knob((1, 1), 1, 12)
    dots: Span = _knob((0, 0), 0, 2000)
    dot_size: Span = _knob((1, 1), 1, 10)
    grid: Span = _knob((0, 0), 0, 100)
    speckle: Span = _knob((0, 0), 0, 0.5)
    warp: Span = _knob((0, 0), 0, 20)
    warp_period: Span = _knob((60, 60), 4, 1000)
    elastic: Span = _knob((0, 0), 0, 10)
    shade: Span = _knob((255, 255), 0, 255)
    shade_end: Span = _knob((255, 255), 0, 255)
    shade_angle: Span = _knob((0, 360), 0, 360)
    edge_cut: Span = _knob((0, 0), 0, 0.9)
    hollow: Span = _knob((0, 0), 0, 1)
    outline: Span = _knob((0.5, 0.5), 0.1, 4)
    origin_x: Span = _knob((7, 7), 0, 64)
    baseline: Span = _knob((26, 26), 4, 508)
    lined: Span = _knob((0, 0), 0, 1)
    beziers: Span = _knob((0, 0), 0, 10)
    bezier_width: Span = _knob((3, 3), 1, 12)
    rails: Span = _knob((0, 0), 0, 10)
    rail_gap: Span = _knob((6, 6), 1, 40)
    blur: Span = _knob((0, 0), 0, 5)
    ink_spread: Span = _knob((0, 0), 0, 0.9)
    texture: Span = _knob((0, 0), 0, 120)

    def __post_init__(self) -> None:
        for knob in fields(self):
            span = getattr(self, knob.name)
            low, high = knob.metadata["limits"]
            if not (isinstance(span, tuple) and len(span) == 2):
                raise ConfigError(f"knob {knob.name} must be a (low, high) pair, not {span!r}")
            if not low <= span[0] <= span[1] <= high:
                raise ConfigError(
                    f"knob {knob.name}={span!r} must satisfy {low} <= low <= high <= {high}"
                )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Knobs:
        """Build from a mapping of knob name to ``[low, high]``, rejecting unknown keys."""
        check_keys(cls, values)
        return cls(**{name: tuple(span) for name, span in values.items()})


def blend(calm: Knobs, wild: Knobs, difficulty: float) -> dict[str, Span]:
    """Each knob's span at ``difficulty``: both ends interpolated from ``calm`` (0) to ``wild`` (1).

    Returns a plain dict rather than :class:`Knobs` because it is built for every
    sample and the spans need no re-validation (a blend of valid spans is valid).
    """
    spans = {}
    for knob in fields(Knobs):
        (calm_low, calm_high), (wild_low, wild_high) = getattr(calm, knob.name), getattr(wild, knob.name)
        spans[knob.name] = (
            calm_low + (wild_low - calm_low) * difficulty,
            calm_high + (wild_high - calm_high) * difficulty,
        )
    return spans


@dataclass(frozen=True)
class Style:
    """Everything that decides what a generated captcha looks like.

    Args:
        name: the style's name, recorded nowhere but useful in messages.
        charset: the symbols labels are drawn from (uniformly, independently).
        min_length: shortest label.
        max_length: longest label; a model for this style needs at least this.
        preprocess: how a model should read these images.
        width: image width in pixels.
        height: image height in pixels.
        background: ``transparent`` (RGBA, ink in alpha, RGB black) or
            ``gradient`` (opaque RGB, black ink over a grey gradient).
        fonts: file-name patterns (``fnmatch``, without suffix) of the fonts to
            draw with, in ``font_dir``; fonts lacking a symbol are skipped.
        font_dir: folder of ``.ttf``/``.otf`` files; None means the fonts that
            matplotlib ships (a core dependency, so every install has them).
        difficulty: a preset (``exact``, ``easy``, ``medium``, ``hard``) or ``mixed``.
        calm: knob ranges at difficulty 0.
        wild: knob ranges at difficulty 1.
        layout: ``scattered`` places each glyph on its own (size, stretch,
            rotation, jitter, spacing knobs; the run centred at random);
            ``line`` lays the label out as one line of text, as SimpleCaptcha
            does: from ``origin_x`` on ``baseline``, each glyph at the font's
            advance width (plus ``spacing``) after the previous, nothing
            turned or moved.
    """

    name: str
    charset: Charset
    min_length: int
    max_length: int
    preprocess: PreprocessSpec
    width: int
    height: int
    background: Background
    fonts: tuple[str, ...]
    font_dir: Path | None = None
    difficulty: Difficulty = "medium"
    calm: Knobs = Knobs()
    wild: Knobs = Knobs()
    layout: Layout = "scattered"

    def __post_init__(self) -> None:
        if not isinstance(self.charset, Charset):
            raise ConfigError(f"charset must be a Charset, not {type(self.charset).__name__}")
        if not 1 <= self.min_length <= self.max_length <= 64:
            raise ConfigError(
                f"label length range {self.min_length}..{self.max_length} must satisfy 1 <= min <= max <= 64"
            )
        if not (8 <= self.width <= 2048 and 8 <= self.height <= 512):
            raise ConfigError(f"image size {self.width}x{self.height} is outside 8..2048 x 8..512")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"background must be one of {', '.join(BACKGROUNDS)}, not {self.background!r}")
        if self.difficulty not in DIFFICULTIES:
            raise ConfigError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, not {self.difficulty!r}")
        if not self.fonts or not all(isinstance(p, str) and p for p in self.fonts):
            raise ConfigError("fonts must be a non-empty tuple of file-name patterns")
        if not isinstance(self.calm, Knobs) or not isinstance(self.wild, Knobs):
            raise ConfigError("calm and wild must be Knobs")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")


def _knu() -> Style:
    return Style(
        name="knu",
        charset=Charset(DIGITS_UPPER),
        min_length=4,
        max_length=4,
        preprocess=PreprocessSpec(opaque_at=250),
        width=140,
        height=35,
        background="transparent",
        fonts=("KnuCaptchaGothic-Bold",),
        layout="line",
        # Java2D leaves no faint fringe where ours has one: clearing alpha under 20 matches the real
        # glyphs' ink pixel count (README, "The real KNU captcha").
        calm=Knobs(
            font_size=(30, 30), spacing=(0, 0), ink=(128, 128), hollow=(1, 1), beziers=(1, 1), edge_cut=(0.15, 0.15)
        ),
        wild=Knobs(
            font_size=(28, 32),
            spacing=(0, 0),
            ink=(96, 176),
            hollow=(1, 1),
            outline=(0.35, 0.9),
            origin_x=(6, 8),
            baseline=(25, 27),
            beziers=(0, 2),
            bezier_width=(2, 4),
            edge_cut=(0, 0.2),  # deeper, with the thinnest outline at the lowest opacity, erased whole glyphs
        ),
    )
"""``knu`` at difficulty 0 is the real captcha's look (``CONTEXT.md``); at 1 every parameter sits at the
edge of the variation meant to cover what our rasterizer and the server's Java2D do differently."""


_KNU_VARIED_WILD = Knobs(
    font_size=(20, 32),
    stretch=(0.9, 1.1),
    rotation=(-20, 20),
    jitter=(-4, 4),
    spacing=(-2, 3),
    ink=(96, 255),
    hollow=(0.2, 0.8),
    outline=(0.4, 1.6),
    lined=(0.3, 0.3),
    origin_x=(3, 10),
    baseline=(23, 29),
    lines=(0, 3),
    arcs=(0, 1),
    curves=(0, 1),
    beziers=(0, 1),
    bezier_width=(1, 4),
    stroke=(1, 2),
    dots=(0, 40),
    dot_size=(1, 1.5),
    grid=(0, 6),
    speckle=(0, 0.006),
    warp=(0, 2),
    warp_period=(30, 120),
    elastic=(0, 1),
    edge_cut=(0, 0.6),
)
"""``knu-varied`` at difficulty 1: wide, but bounded by what the seed's binarization leaves readable
(wider stretch turns 0 into O, stronger rotation and overlap merge bold glyphs; a second opaque
SimpleCaptcha curve over a thin unfamiliar face left no symbol a person could read)."""


def _knu_varied() -> Style:
    return replace(
        _knu(),  # the real captcha's format, alphabet, length and preprocessing
        name="knu-varied",
        fonts=("DejaVuSans*", "DejaVuSerif*", "KnuCaptchaGothic-Bold"),
        layout="scattered",
        calm=Knobs(
            font_size=(24, 30),
            stretch=(0.95, 1.05),
            rotation=(-4, 4),
            jitter=(-1, 1),
            spacing=(0, 2),
            ink=(128, 255),
            hollow=(0.3, 0.6),
            outline=(0.4, 1.0),
            lined=(0.5, 0.5),
            origin_x=(6, 8),
            baseline=(25, 27),
            lines=(0, 1),
            beziers=(0, 1),
            dots=(0, 5),
            warp_period=(60, 120),
            edge_cut=(0, 0.3),
        ),
        wild=_KNU_VARIED_WILD,
    )


def _knu2021() -> Style:
    return Style(
        name="knu2021",
        charset=Charset(SIMPLECAPTCHA),
        min_length=4,
        max_length=4,
        preprocess=PreprocessSpec(mode="gray", height=40, width=150, binarize=False),
        width=150,
        height=40,
        background="gradient",
        fonts=("DejaVuSerif-BoldItalic", "DejaVuSansMono-BoldOblique", "STIXGeneralBolIta"),
        layout="line",
        calm=Knobs(
            font_size=(36, 36),
            spacing=(-1, -1),
            origin_x=(6, 6),
            baseline=(30, 30),
            rails=(2, 2),
            rail_gap=(6, 6),
            stroke=(2, 2),
            blur=(0.6, 0.6),
            shade=(64, 64),
            shade_end=(255, 255),
            shade_angle=(15, 15),
        ),
        wild=Knobs(
            font_size=(31, 40),
            spacing=(-4, 1),
            origin_x=(1, 12),
            baseline=(27, 34),
            rails=(1, 3),
            rail_gap=(4, 8),
            stroke=(1.5, 3),
            blur=(0.2, 1.2),
            shade=(40, 120),
            shade_end=(200, 255),
            shade_angle=(0, 35),
        ),
    )
"""``knu2021`` at difficulty 0 is the 2020–2021 captcha as CONTEXT.md describes it: SimpleCaptcha's
diagonal gradient from (64, 64, 64) to white, 4 lower-case symbols laid out from near the left edge
in heavy bold italic (serif and typewriter faces), two aliased 2 px lines descending left to right,
a light blur."""


def _knu_unseen() -> Style:
    return replace(
        _knu_varied(),
        name="knu-unseen",
        fonts=("STIXGeneral*", "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10", "cmmi10"),
        calm=Knobs(
            font_size=(24, 28),
            rotation=(-6, 6),
            jitter=(-1, 1),
            lines=(0, 1),
            stroke=(2.5, 3),
            grid=(5, 6),
            speckle=(0.003, 0.006),
            warp_period=(60, 120),
            edge_cut=(0.1, 0.25),
        ),
        wild=Knobs(
            font_size=(20, 28),
            stretch=(0.93, 1.08),
            rotation=(-20, 20),
            jitter=(-4, 4),
            spacing=(-1, 3),
            ink=(150, 255),
            lines=(1, 1),
            stroke=(2.5, 3),
            grid=(6, 8),
            speckle=(0.006, 0.012),
            warp=(0, 2),
            warp_period=(30, 120),
            elastic=(0, 1),
            edge_cut=(0.1, 0.25),  # keeps the serif hairlines, which a deeper cut erases
        ),
    )


def _opaque() -> Style:
    return Style(
        name="opaque",
        charset=Charset(ALPHANUMERIC),
        min_length=4,
        max_length=8,
        preprocess=PreprocessSpec(mode="gray", height=48, width=160, binarize=False, background="flatten"),
        width=160,
        height=48,
        background="gradient",
        fonts=("DejaVuSans*", "DejaVuSerif*"),
        calm=Knobs(
            font_size=(28, 36),
            stretch=(0.9, 1.1),
            rotation=(-8, 8),
            jitter=(-2, 2),
            spacing=(-1, 3),
            ink=(160, 255),
            ink_spread=(0, 0.2),
            hollow=(0, 0.1),
            outline=(1.0, 2.0),
            lines=(0, 1),
            curves=(0, 1),
            dots=(0, 20),
            dot_size=(1, 2),
            stroke=(1, 2),
            warp_period=(60, 160),
            shade=(190, 255),
            shade_end=(200, 255),
            texture=(0, 10),
        ),
        wild=Knobs(
            font_size=(22, 44),
            stretch=(0.75, 1.3),
            rotation=(-25, 25),
            jitter=(-5, 5),
            spacing=(-4, 6),
            ink=(120, 255),
            ink_spread=(0, 0.5),
            hollow=(0, 0.3),
            outline=(0.8, 2.5),
            lines=(0, 3),
            arcs=(0, 1),
            curves=(0, 2),
            beziers=(0, 1),
            bezier_width=(1, 4),
            stroke=(1, 3),
            dots=(0, 150),
            dot_size=(1, 3),
            grid=(0, 5),
            speckle=(0, 0.01),
            warp=(0, 3),
            warp_period=(30, 160),
            elastic=(0, 1.5),
            blur=(0, 1.0),
            shade=(150, 255),
            shade_end=(170, 255),
            texture=(0, 30),
        ),
    )
"""``opaque`` is no one site's look but a broad family of opaque ones, the bundled ``opaque`` reader's
training data and the starting point of ``knucaptcha train --data`` on opaque folders: 4 to 8 symbols of
``0-9A-Za-z`` at 160×48, read in gray; any font family (with ``--fonts``), filled or hollow glyphs of
different greys, light gradients and mottled textures, lines, arcs, curves, dots, grids, speckle, warps
and blur. Colour reaches a gray reader only as luminance, so the style draws in grey levels."""


_STYLES = {
    "knu": _knu,
    "knu-varied": _knu_varied,
    "knu2021": _knu2021,
    "knu-unseen": _knu_unseen,
    "opaque": _opaque,
}
STYLE_NAMES: tuple[str, ...] = tuple(_STYLES)


def with_font_folder(style: Style, folder: str | Path, pattern: str = "*") -> Style:
    """``style`` drawing with the fonts in ``folder`` whose file stem matches ``pattern`` instead of its own.

    ``generate``/``train --fonts`` take every font of the folder; a pattern such
    as ``LiberationSans-*`` keeps one family of it (a real site draws with one).
    """
    return replace(style, font_dir=Path(folder), fonts=(pattern,))


def get_style(name: str = "knu", difficulty: str = "medium", **overrides: Any) -> Style:
    """A built-in style at a difficulty preset, with any :class:`Style` fields overridden.

    ``charset`` may be given as a string and ``font_dir`` as a string path;
    ``calm``/``wild`` as mappings of knob name to ``(low, high)``.

    Raises:
        ConfigError: an unknown style, difficulty or override key, or a value out of range.
    """
    if name not in _STYLES:
        raise ConfigError(f"unknown style {name!r}; choose one of {', '.join(STYLE_NAMES)}")
    check_keys(Style, overrides)
    if isinstance(overrides.get("charset"), str):
        overrides["charset"] = Charset(overrides["charset"])
    if isinstance(overrides.get("font_dir"), str):
        overrides["font_dir"] = Path(overrides["font_dir"])
    for knobs in ("calm", "wild"):
        if isinstance(overrides.get(knobs), dict):
            overrides[knobs] = Knobs.from_dict(overrides[knobs])
    if isinstance(overrides.get("fonts"), list):
        overrides["fonts"] = tuple(overrides["fonts"])
    return replace(_STYLES[name](), difficulty=difficulty, **overrides)
