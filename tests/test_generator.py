"""The synthetic captcha generator: styles, determinism, label rules, fonts, datasets on disk, previews."""

from __future__ import annotations

import csv
import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knucaptcha.charset import DIGITS_UPPER, SIMPLECAPTCHA
from knucaptcha.errors import ConfigError, MissingFileError, OutputExistsError
from knucaptcha.generator import (
    DIFFICULTIES,
    MANIFEST,
    STYLE_NAMES,
    Knobs,
    encode_png,
    fonts_for,
    generate_samples,
    get_style,
    label_for,
    matplotlib_font_dir,
    preview_grid,
    render_noise,
    render_sample,
    with_font_folder,
    write_dataset,
    write_preview,
)
from knucaptcha.labels import scan_folder
from knucaptcha.preprocess import to_input
from knucaptcha.spec import PreprocessSpec


def test_same_seed_and_index_give_byte_identical_png() -> None:
    style = get_style("knu", "mixed")
    first = [encode_png(render_sample(style, 7, i).image) for i in range(10)]
    again = [encode_png(render_sample(style, 7, i).image) for i in range(10)]
    assert first == again
    assert len(set(first)) == 10  # and different indices give different images
    assert encode_png(render_sample(style, 8, 0).image) != first[0]


@pytest.mark.parametrize(
    ("name", "mode", "size", "preprocess"),
    [
        ("knu", "RGBA", (140, 35), PreprocessSpec(opaque_at=250)),
        ("knu-varied", "RGBA", (140, 35), PreprocessSpec(opaque_at=250)),
        ("knu-unseen", "RGBA", (140, 35), PreprocessSpec(opaque_at=250)),
        ("knu2021", "RGB", (150, 40), PreprocessSpec(mode="gray", height=40, width=150, binarize=False)),
        ("opaque", "RGB", (160, 48), PreprocessSpec(mode="gray", height=48, width=160, binarize=False, background="flatten")),
    ],
)
def test_each_style_has_its_size_mode_and_preprocessing(name, mode, size, preprocess) -> None:
    style = get_style(name)
    assert style.preprocess == preprocess
    for sample in generate_samples(style, 0, 5):
        assert (sample.image.mode, sample.image.size) == (mode, size)


def test_knu_varied_ink_lives_only_in_alpha_over_a_transparent_background() -> None:
    for sample in generate_samples(get_style("knu-varied", "hard"), 3, 5):
        pixels = np.asarray(sample.image)  # (35, 140, 4)
        assert not pixels[..., :3].any()  # RGB black everywhere
        alpha = pixels[..., 3]
        assert (alpha == 0).mean() > 0.4  # mostly transparent
        assert (alpha >= 0.8 * alpha.max()).sum() > 30  # solid ink near the sample's ink opacity


def test_lined_lays_a_scattered_style_out_from_the_pen_origin() -> None:
    def first_ink_column(lined: float) -> int:
        calm = Knobs(font_size=(30, 30), ink=(255, 255), origin_x=(60, 60), lined=(lined, lined))
        style = replace(get_style("knu-varied", "exact"), calm=calm, fonts=("KnuCaptchaGothic-Bold",))
        alpha = np.asarray(render_sample(style, 3, 0).image)[..., 3]
        return int(np.flatnonzero(alpha.any(axis=0))[0])

    assert 58 <= first_ink_column(1.0) <= 64  # one line from x = 60, cut off at the right edge
    assert first_ink_column(0.0) < 40  # scattered: the word centred, wherever the origin is


def test_the_edge_cut_never_erases_thin_outlines_whole() -> None:
    calm = Knobs(font_size=(24, 24), ink=(128, 128), hollow=(1, 1), outline=(0.4, 0.4), edge_cut=(0.9, 0.9))
    style = replace(get_style("knu-varied", "exact"), calm=calm)
    for sample in generate_samples(style, 3, 8):
        assert (np.asarray(sample.image)[..., 3] > 0).sum() > 200  # four outlined glyphs, not a blank label


def test_knu2021_exact_is_simplecaptchas_diagonal_gradient_with_two_rails() -> None:
    style = get_style("knu2021", "exact")
    assert (style.min_length, style.max_length, style.charset.symbols) == (4, 4, SIMPLECAPTCHA)
    for sample in generate_samples(style, 2, 5):
        gray = np.asarray(sample.image)[..., 0].astype(int)  # (40, 150)
        assert gray.max() >= 240 and gray[0, -1] > gray[0, 75] > gray[0, 0]  # dark grey top-left to white
        right = gray[:, 145]  # right of the text: only the rails cross here
        dark = np.flatnonzero(right < 0.7 * np.median(right))
        assert len(dark) >= 2 and 4 <= dark.max() - dark.min() <= 12  # two lines a few pixels apart


def test_knu2021_is_grey_opaque_with_black_ink() -> None:
    for sample in generate_samples(get_style("knu2021", "mixed"), 0, 5):
        pixels = np.asarray(sample.image).astype(int)  # (40, 150, 3)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        assert pixels.min() < 40  # black text or line
        assert np.median(pixels) > 100  # on a light background
        assert sample.label.islower() or any(c.isdigit() for c in sample.label)


def test_opaque_draws_glyphs_of_different_greys_over_a_mottled_background() -> None:
    knobs = {"font_size": (30, 30), "ink_spread": (0.6, 0.6), "texture": (30, 30)}  # no noise, to tell glyphs apart
    quiet = get_style("opaque", "exact", fonts=("DejaVuSans",), calm=knobs, wild=knobs)
    for sample in generate_samples(quiet, 4, 5):
        gray = np.asarray(sample.image)[..., 0].astype(int)  # (48, 160)
        inked = gray < 128
        columns = np.flatnonzero(inked.any(axis=0))
        glyph_darkness = [gray[:, c][inked[:, c]].min() for c in columns]
        assert max(glyph_darkness) - min(glyph_darkness) > 30  # glyphs of different greys
        assert gray[~inked].std() > 5  # not a plain gradient
    assert len({sample.font for sample in generate_samples(get_style("opaque", "mixed"), 0, 40)}) > 4


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_labels_follow_the_style_charset_and_length(name: str) -> None:
    style = get_style(name, "mixed")
    for sample in generate_samples(style, 1, 20):
        assert style.min_length <= len(sample.label) <= style.max_length
        assert all(symbol in style.charset for symbol in sample.label)
    assert get_style("knu").charset.symbols == DIGITS_UPPER
    assert (get_style("knu").min_length, get_style("knu").max_length) == (4, 4)
    assert get_style("knu2021").charset.symbols == SIMPLECAPTCHA


def test_charset_and_length_overrides_are_honoured() -> None:
    style = get_style("knu", charset="AB", min_length=2, max_length=5)
    labels = [label_for(style, 0, i) for i in range(200)]
    assert {len(label) for label in labels} == {2, 3, 4, 5}
    assert set("".join(labels)) == {"A", "B"}


def test_label_for_predicts_the_rendered_label() -> None:
    style = get_style("knu2021", "mixed")
    assert [label_for(style, 4, i) for i in range(10)] == [s.label for s in generate_samples(style, 4, 10)]


def test_generate_samples_counts_starts_and_streams_without_end() -> None:
    style = get_style("knu")
    assert len(list(generate_samples(style, 0, 3))) == 3
    labels = [s.label for s in generate_samples(style, 0, 2, start=5)]
    assert labels == [render_sample(style, 0, 5).label, render_sample(style, 0, 6).label]
    assert len(list(itertools.islice(generate_samples(style, 0), 25))) == 25


def test_difficulty_presets_and_mixed() -> None:
    assert DIFFICULTIES == ("exact", "easy", "medium", "hard", "mixed")
    assert {s.difficulty for s in generate_samples(get_style("knu", "exact"), 0, 5)} == {0.0}
    assert {s.difficulty for s in generate_samples(get_style("knu", "easy"), 0, 5)} == {0.2}
    assert {s.difficulty for s in generate_samples(get_style("knu", "hard"), 0, 5)} == {1.0}
    mixed = [s.difficulty for s in generate_samples(get_style("knu", "mixed"), 0, 30)]
    assert all(0 <= d <= 1 for d in mixed) and len(set(mixed)) == 30


def test_harder_means_more_ink_noise() -> None:
    def ink(difficulty: str) -> float:
        samples = generate_samples(get_style("knu", difficulty), 0, 30)
        return float(np.mean([(np.asarray(s.image)[..., 3] > 0).mean() for s in samples]))

    assert ink("easy") < ink("hard")


def test_noise_alone_is_the_styles_image_without_glyphs() -> None:
    style = get_style("knu", "hard")
    noise = render_noise(style, 3, 7)
    assert noise.mode == "RGBA" and noise.size == (style.width, style.height)
    assert np.array_equal(np.asarray(noise), np.asarray(render_noise(style, 3, 7)))  # seeded
    assert (np.asarray(noise)[..., 3] > 0).any()
    quiet = replace(style, calm=Knobs(), wild=Knobs())  # glyphs, but no lines, arcs, curves, grid or dots
    assert not (np.asarray(render_noise(quiet, 3, 7))[..., 3] > 0).any()
    assert (np.asarray(render_sample(quiet, 3, 7).image)[..., 3] > 0).any()
    gray = render_noise(get_style("knu2021", "hard"), 3, 7)
    assert gray.mode == "RGB" and gray.size == (150, 40)


def test_fonts_are_recorded_and_the_unseen_style_shares_none_with_knu() -> None:
    knu, varied, unseen = (get_style(name, "mixed") for name in ("knu", "knu-varied", "knu-unseen"))
    assert {p.stem for p in fonts_for(knu)} == {"KnuCaptchaGothic-Bold"}
    varied_fonts = {p.stem for p in fonts_for(varied)}
    unseen_fonts = {p.stem for p in fonts_for(unseen)}
    assert len(varied_fonts) >= 10 and "KnuCaptchaGothic-Bold" in varied_fonts
    assert {"DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Oblique"} <= varied_fonts
    assert len(unseen_fonts) >= 5 and not varied_fonts & unseen_fonts
    assert "DejaVuSansDisplay" not in varied_fonts  # a subset font that lacks letters is skipped
    used = {s.font for s in generate_samples(varied, 0, 60)}
    assert used <= varied_fonts and len(used) > 3


def test_unseen_draws_lines_thicker_than_knu_varied() -> None:
    varied, unseen = get_style("knu-varied"), get_style("knu-unseen")
    assert min(unseen.calm.stroke[0], unseen.wild.stroke[0]) > varied.wild.stroke[1]
    assert unseen.calm.grid[0] > 0 and unseen.calm.speckle[0] > 0  # always, where knu-varied draws them sometimes


def test_font_folder_override_uses_only_usable_fonts_there(tmp_path: Path) -> None:
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansDisplay.ttf"):
        shutil.copy(matplotlib_font_dir() / name, tmp_path / name)
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    style = get_style("knu", "mixed", font_dir=str(tmp_path), fonts=["*"])
    assert {s.font for s in generate_samples(style, 0, 30)} == {"DejaVuSans-Bold", "DejaVuSerif"}


def test_font_folder_pattern_keeps_one_family(tmp_path: Path) -> None:
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf"):
        shutil.copy(matplotlib_font_dir() / name, tmp_path / name)
    every = with_font_folder(get_style("knu"), tmp_path)
    sans = with_font_folder(get_style("knu"), tmp_path, "DejaVuSans*")
    assert {s.font for s in generate_samples(every, 0, 40)} == {"DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono", "DejaVuSerif"}
    assert {s.font for s in generate_samples(sans, 0, 40)} == {"DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"}


def test_font_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such font folder"):
        render_sample(get_style("knu", font_dir=tmp_path / "absent", fonts=("*",)), 0, 0)
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(ConfigError, match="no font in"):
        render_sample(get_style("knu", font_dir=tmp_path, fonts=("*",)), 0, 0)


@pytest.mark.parametrize(
    ("args", "overrides", "message"),
    [
        (("nope",), {}, "unknown style"),
        (("knu", "brutal"), {}, "difficulty must be one of"),
        (("knu",), {"colour": "red"}, "unknown Style keys: colour"),
        (("knu",), {"min_length": 5, "max_length": 4}, "label length range"),
        (("knu",), {"wild": {"rotation": (10, -10)}}, "knob rotation"),
        (("knu",), {"calm": {"tilt": (0, 1)}}, "unknown Knobs keys: tilt"),
        (("knu",), {"fonts": ()}, "fonts must be"),
    ],
)
def test_bad_style_configuration_is_a_config_error(args, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        get_style(*args, **overrides)


def test_knobs_reject_spans_outside_their_limits() -> None:
    with pytest.raises(ConfigError, match="knob speckle"):
        Knobs(speckle=(0, 0.9))
    with pytest.raises(ConfigError, match="pair"):
        Knobs(rotation=(1, 2, 3))  # type: ignore[arg-type]


def test_negative_seed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="non-negative"):
        render_sample(get_style(), -1, 0)


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_write_dataset_writes_labelled_files_and_a_manifest(tmp_path: Path) -> None:
    style = get_style("knu", "mixed")
    progress: list[int] = []
    paths = write_dataset(tmp_path / "out", style, 12, seed=3, on_progress=progress.append)
    assert sum(progress) == 12
    samples = list(generate_samples(style, 3, 12))
    assert [p.name for p in paths] == [f"{s.label}_{i}.png" for i, s in enumerate(samples)]
    assert all(p.read_bytes() == encode_png(s.image) for p, s in zip(paths, samples))
    with open(tmp_path / "out" / MANIFEST, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [r["file"] for r in rows] == [p.name for p in paths]
    assert [(r["label"], r["font"]) for r in rows] == [(s.label, s.font) for s in samples]
    assert [float(r["difficulty"]) for r in rows] == pytest.approx([s.difficulty for s in samples], abs=1e-3)
    # The labelled-folder reader sees exactly these labels.
    assert sorted((i.path.name, i.label) for i in scan_folder(tmp_path / "out")) == sorted(
        (p.name, s.label) for p, s in zip(paths, samples)
    )


def test_write_dataset_is_the_same_with_worker_processes(tmp_path: Path) -> None:
    style = get_style("knu", "mixed")
    write_dataset(tmp_path / "one", style, 300, seed=5)
    write_dataset(tmp_path / "two", style, 300, seed=5, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_write_dataset_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    style = get_style("knu")
    clash = tmp_path / f"{label_for(style, 0, 3)}_3.png"
    clash.write_bytes(b"precious")
    (tmp_path / "other.txt").write_text("unrelated")
    with pytest.raises(OutputExistsError, match=f"refusing to overwrite.*{clash.name}"):
        write_dataset(tmp_path, style, 5, seed=0)
    assert _files(tmp_path) == {clash.name: b"precious", "other.txt": b"unrelated"}


def test_write_dataset_refuses_an_existing_manifest(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("file,label\n")
    with pytest.raises(OutputExistsError, match=MANIFEST):
        write_dataset(tmp_path, get_style(), 2, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]


def test_write_dataset_adds_to_a_folder_without_clashes(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    write_dataset(tmp_path, get_style(), 3, seed=0)
    assert len(list(tmp_path.glob("*.png"))) == 3 and (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("count", "workers", "charset", "message"),
    [(0, 1, None, "count"), (3, 0, None, "workers"), (3, 1, "AB_", "file names"), (3, 1, "A/B", "file names")],
)
def test_write_dataset_rejects_bad_arguments(tmp_path: Path, count, workers, charset, message) -> None:
    style = get_style() if charset is None else get_style(charset=charset)
    with pytest.raises(ConfigError, match=message):
        write_dataset(tmp_path / "out", style, count, seed=0, workers=workers)
    assert not (tmp_path / "out").exists()


def test_preview_grid_lays_out_labelled_cells_on_white() -> None:
    samples = list(generate_samples(get_style("knu", "mixed"), 0, 6))
    sheet = preview_grid(samples, columns=4)
    assert sheet.mode == "RGB"
    cell_width, rows = 140 * 2 + 16, 2
    assert sheet.width == 4 * cell_width
    assert preview_grid(samples, columns=3).width == 3 * cell_width
    assert preview_grid(samples, columns=3).height == sheet.height  # 6 samples: 2 rows either way
    assert sheet.height > rows * 35 * 2
    pixels = np.asarray(sheet)
    assert (pixels > 250).all(axis=2).mean() > 0.5  # mostly white paper
    assert (pixels < 60).all(axis=2).any()  # dark ink visible


def test_preview_grid_and_write_preview_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one sample"):
        preview_grid([])
    with pytest.raises(ConfigError, match="columns"):
        preview_grid(generate_samples(get_style(), 0, 1), columns=0)
    path = write_preview(tmp_path / "p.png", generate_samples(get_style("knu2021"), 0, 2))
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        write_preview(path, generate_samples(get_style(), 0, 1))


def test_styles_are_frozen_and_replaceable() -> None:
    style = get_style()
    with pytest.raises(AttributeError):
        style.max_length = 6  # type: ignore[misc]
    longer = replace(style, max_length=6)
    assert longer.max_length == 6 and style.max_length == 4


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_samples_feed_the_one_preprocessing_path(name: str) -> None:
    style = get_style(name, "mixed")
    for sample in generate_samples(style, 0, 3):
        array = to_input(sample.image, style.preprocess)
        assert array.shape == (1, style.preprocess.height, style.preprocess.width)
        ink = array > (0 if style.preprocess.binarize else 0.5)  # binarized glyph ink may read 0.5
        assert 0.02 < float(ink.mean()) < 0.6  # some ink, mostly background


def test_generate_inputs_are_the_solvers_preprocessing_of_the_same_samples() -> None:
    from knucaptcha.generator import generate_inputs
    from knucaptcha.preprocess import to_batch

    style = get_style("knu2021", "mixed")
    images, labels = generate_inputs(style, seed=4, count=5, start=2)
    samples = list(generate_samples(style, 4, 5, start=2))
    assert labels == tuple(s.label for s in samples)
    assert images.shape == (5, 1, 40, 150) and (images == to_batch([s.image for s in samples], style.preprocess)).all()
