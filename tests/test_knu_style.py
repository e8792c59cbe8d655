"""The ``knu`` style pins what is known of the real KNU captcha (README, "The real KNU captcha")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from knucaptcha.generator import encode_png, fonts_for, generate_samples, get_style, render_sample
from knucaptcha.generator.simplecaptcha import advance, curve_points, draw_word
from knucaptcha.generator.styles import Knobs

ADVANCES_AT_30 = {
    **{digit: 18 for digit in "0123456789"},
    **dict(
        zip(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            (22, 18, 20, 22, 17, 15, 24, 22, 7, 11, 19, 15, 29, 22, 24, 17, 24, 19, 16, 16, 22, 20, 31, 20, 20, 16),
        )
    ),
}
"""NanumGothic Bold's advance widths at 30 px, which match the real glyph boxes (CONTEXT.md)."""


@pytest.fixture(scope="module")
def font():
    (path,) = fonts_for(get_style("knu"))
    return path


def exact_without_curve():
    style = get_style("knu", "exact")
    return replace(style, calm=replace(style.calm, beziers=(0, 0)))


def test_the_bundled_font_draws_the_real_advance_widths(font) -> None:
    assert font.name == "KnuCaptchaGothic-Bold.ttf"
    assert {symbol: advance(font, 30, symbol) for symbol in ADVANCES_AT_30} == ADVANCES_AT_30
    assert (font.parent / "OFL.txt").is_file()  # the licence travels with the font


def test_the_exact_look_is_the_servers_image_format() -> None:
    style = get_style("knu", "exact")
    assert (style.width, style.height, style.min_length, style.max_length) == (140, 35, 4, 4)
    assert style.charset.symbols == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for sample in generate_samples(style, 11, 20):
        pixels = np.asarray(sample.image)  # (35, 140, 4)
        assert sample.image.mode == "RGBA" and pixels.shape == (35, 140, 4)
        assert not pixels[..., :3].any()  # RGB is black everywhere
        assert pixels[..., 3].max() == 255  # the curve's opaque core
        assert (pixels[..., 3] == 0).mean() > 0.7  # transparent background


def test_glyphs_are_hollow_half_transparent_outlines_in_steps_of_4() -> None:
    for sample in generate_samples(exact_without_curve(), 12, 20):
        alpha = np.asarray(sample.image)[..., 3]
        ink = alpha[alpha > 0]
        assert ink.max() <= 128 and not (ink % 4).any()
        assert np.median(ink) <= 96  # a thin stroke at half opacity covers most pixels partly


def test_glyphs_sit_at_the_fixed_origin_and_advance(font) -> None:
    for sample in generate_samples(exact_without_curve(), 13, 20):
        alpha = np.asarray(sample.image)[..., 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        assert rows[0] in (3, 4)  # cap tops at y = 4 (the outline's outer half may reach row 3)
        assert rows[-1] <= (31 if "Q" in sample.label else 28)  # as the real crops: O reaches 28, Q 31
        pen = 7
        for symbol in sample.label:
            width = ADVANCES_AT_30[symbol]
            alone = np.asarray(draw_word((140, 35), font, 30, symbol, (pen, 26), 0.5))
            columns = np.flatnonzero(alone.any(axis=0))
            assert pen - 1 <= columns[0] and columns[-1] <= pen + width + 1  # inside its box
            pen += width


def test_a_hollow_glyph_is_empty_inside(font) -> None:
    outline = np.asarray(draw_word((40, 35), font, 30, "O", (0, 26), 0.5))
    assert outline[15, 12] == 0  # the middle of O's bowl and of its stroke ring...
    filled = np.asarray(draw_word((40, 35), font, 30, "I", (0, 26), 0.5))
    middle = filled[15]
    inked = np.flatnonzero(middle)
    assert len(inked) >= 2 and (middle[inked[0] + 1 : inked[-1]] < middle.max()).all()  # two edges, no fill


def test_the_curve_is_simplecaptchas_flattened_bezier() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        points = curve_points(rng, 140, 35)
        assert points[0][0] == 14 and points[-1][0] == 126  # from 0.1 W to 0.9 W, truncated
        assert all(isinstance(v, int) for point in points for v in point)
        assert all(0 <= y < 35 for _, y in points)
        assert 2 <= len(points) <= 2**10 + 1


def test_same_seed_gives_the_same_bytes_and_difficulty_varies_the_look() -> None:
    exact = get_style("knu", "exact")
    assert encode_png(render_sample(exact, 3, 1).image) == encode_png(render_sample(exact, 3, 1).image)
    hard = get_style("knu", "hard")
    assert render_sample(hard, 3, 1).label == render_sample(exact, 3, 1).label  # the label comes first
    assert encode_png(render_sample(hard, 3, 1).image) != encode_png(render_sample(exact, 3, 1).image)


def test_the_look_is_configuration_not_code() -> None:
    bigger = get_style("knu", "exact", calm=Knobs(font_size=(34, 34), ink=(255, 255), hollow=(1, 1)))
    alpha = np.asarray(render_sample(bigger, 0, 0).image)[..., 3]
    assert 128 < alpha.max() < 255 and np.flatnonzero(alpha.any(axis=1))[0] < 3  # darker, taller, no curve
    assert len(render_sample(get_style("knu", "exact", min_length=6, max_length=6), 0, 0).label) == 6
