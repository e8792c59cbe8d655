"""Inferring how to read a labelled folder from its images: channel, size, levels; and refusing what contradicts them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from knucaptcha.errors import ConfigError, TrainingError
from knucaptcha.folder_spec import (
    FOLDER_READER,
    MAX_HEIGHT,
    PreprocessRequest,
    infer_input,
    init_input,
    input_size,
    reader_input,
    starting_point,
)
from knucaptcha.folder_stats import folder_stats
from knucaptcha.spec import PreprocessSpec


def write(folder: Path, label: str, size: tuple[int, int], transparent: bool, index: int = 0) -> None:
    """One captcha-like image: dark text on white (opaque RGB) or on nothing (transparent RGBA)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", size, (0, 0, 0, 0)) if transparent else Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((4, size[1] // 3), label, fill=(0, 0, 0, 255))
    image.save(folder / f"{label}_{index}.png")


def folder_of(tmp_path: Path, specs: list[tuple[str, tuple[int, int], bool]]) -> Path:
    for index, (label, size, transparent) in enumerate(specs):
        write(tmp_path / "data", label, size, transparent, index)
    return tmp_path / "data"


def test_a_transparent_folder_reads_the_alpha_channel_binarized_at_its_own_size(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("AB12", (140, 35), True), ("CD34", (140, 35), True), ("EF5", (140, 35), True)])
    found = infer_input(folder_stats(folder), stride=8)
    # 35 px tall: not upscaled; 35 x 4 = 140 columns, rounded to a multiple of 8.
    assert found.preprocess == PreprocessSpec(mode="alpha", height=35, width=144, binarize=True, threshold=0)
    assert "3 of 3 images transparent" in found.reasons["channel"]


def test_an_opaque_folder_reads_gray_linear_levels(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("ab12", (150, 40), False), ("cd34", (150, 40), False)])
    found = infer_input(folder_stats(folder), stride=8)
    assert found.preprocess == PreprocessSpec(mode="gray", height=40, width=152, binarize=False, background="flatten")
    assert "0 of 2 images transparent" in found.reasons["channel"]
    assert found.reasons["background"] == "inferred for gray"


def test_an_rgba_file_whose_alpha_is_all_opaque_counts_as_opaque(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    Image.new("RGBA", (120, 40), (255, 255, 255, 255)).save(tmp_path / "data" / "AB_0.png")
    Image.new("RGBA", (120, 40), (255, 255, 255, 255)).save(tmp_path / "data" / "CD_1.png")
    stats = folder_stats(tmp_path / "data")
    assert stats.modes == {"RGBA": 2} and stats.transparent == 0
    assert infer_input(stats, stride=8).preprocess.mode == "gray"


def test_a_mixed_size_folder_takes_the_median_aspect_and_caps_the_height(tmp_path: Path) -> None:
    folder = folder_of(
        tmp_path,
        [("A1", (250, 75), False), ("B2", (250, 75), False), ("C3", (250, 75), False),
         ("D4", (137, 47), False), ("E5", (137, 47), False)],
    )
    found = infer_input(folder_stats(folder), stride=8)
    # Median height 75 > 48: height 48; median aspect 250/75 -> 160 columns, 20 frames of 8.
    assert (found.preprocess.width, found.preprocess.height) == (160, MAX_HEIGHT)
    assert "median image 250x75" in found.reasons["size"]


def test_width_is_a_multiple_of_the_stride_with_two_frames_per_symbol() -> None:
    assert input_size({(140, 35): 1}, stride=4, max_length=4) == (140, 35)
    assert input_size({(100, 50): 3}, stride=8, max_length=4) == (96, 48)
    # A long label in a narrow image: 8 symbols need 16 frames of 8 columns.
    assert input_size({(60, 30): 1}, stride=8, max_length=8) == (128, 30)
    # Tiny images are upscaled to the minimum height.
    assert input_size({(40, 10): 1}, stride=8, max_length=2)[1] == 16


def test_a_mixed_mode_folder_reads_gray_and_refuses_alpha(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("AB", (120, 40), True), ("CD", (120, 40), False), ("EF", (120, 40), False)])
    stats = folder_stats(folder)
    assert stats.transparent == 1
    assert infer_input(stats, stride=8).preprocess.mode == "gray"
    with pytest.raises(ConfigError, match=r"--channel alpha: 2 of 3 images are opaque .* blank input; use --channel gray"):
        infer_input(stats, PreprocessRequest(channel="alpha"), stride=8)
    assert infer_input(stats, PreprocessRequest(channel="auto"), stride=8).preprocess.mode == "auto"


def test_explicit_fields_win_and_levels_imply_binarization(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("AB", (120, 40), False), ("CD", (120, 40), False)])
    stats = folder_stats(folder)
    found = infer_input(stats, PreprocessRequest(size=(200, 50), threshold=100, background="keep"), stride=8)
    assert found.preprocess == PreprocessSpec(mode="gray", height=50, width=200, binarize=True, threshold=100)
    assert found.reasons["size"] == "--size" and found.reasons["levels"] == "given"
    assert found.reasons["background"] == "--background"
    assert infer_input(stats, PreprocessRequest(channel="auto"), stride=8).preprocess.background == "keep"
    with pytest.raises(ConfigError, match="drop them or --no-binarize"):
        PreprocessRequest(binarize=False, threshold=100)
    with pytest.raises(ConfigError, match="--channel must be one of"):
        PreprocessRequest(channel="rgb")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--background must be one of keep, flatten"):
        PreprocessRequest(background="subtract")  # type: ignore[arg-type]


def test_init_keeps_the_models_preprocessing_and_refuses_alpha_on_opaque_images(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("AB", (120, 40), False), ("CD", (120, 40), False)])
    stats = folder_stats(folder)
    gray = PreprocessSpec(mode="gray", height=40, width=150, binarize=False)
    assert init_input("knu2021", gray, stats, PreprocessRequest()).preprocess == gray  # background kept, as it was
    with pytest.raises(TrainingError, match=r"--init default reads the alpha channel .* drop --init to start from "
                       r"the bundled opaque reader .* --init none"):  # fmt: skip
        init_input("default", PreprocessSpec(opaque_at=250), stats, PreprocessRequest())
    with pytest.raises(ConfigError, match="brings its own preprocessing .* drop --size"):
        init_input("knu2021", gray, stats, PreprocessRequest(size=(100, 40)))


def test_a_folder_without_a_readable_labelled_image_is_a_training_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "AB_0.png").write_bytes(b"not a png")
    with pytest.raises(TrainingError, match="no readable labelled image"):
        infer_input(folder_stats(tmp_path / "data"), stride=8)


READER = PreprocessSpec(mode="gray", height=48, width=160, binarize=False)


def test_an_opaque_folder_starts_from_the_reader_unless_init_says_otherwise(tmp_path: Path) -> None:
    opaque = folder_stats(folder_of(tmp_path / "o", [("AB", (120, 40), False), ("CD", (120, 40), True)]))
    transparent = folder_stats(folder_of(tmp_path / "t", [("AB", (120, 40), True)]))
    assert starting_point(None, opaque) == FOLDER_READER
    assert starting_point(None, transparent) is None  # alpha folders train from scratch, as before
    assert starting_point("none", opaque) is None
    assert starting_point("runs/site", opaque) == "runs/site"


def test_the_reader_keeps_its_height_and_levels_and_takes_the_folders_width(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [("A1", (250, 75), False), ("B2", (250, 75), False), ("C3", (137, 47), False)])
    found = reader_input(FOLDER_READER, READER, folder_stats(folder), PreprocessRequest(), stride=8)
    # 48 px high, as the reader; 48 x 250/75 = 160 columns, 20 frames of 8; the background flattened, as for gray.
    assert found.preprocess == replace(READER, background="flatten")
    assert found.reasons["background"] == "inferred for gray"
    kept = reader_input(FOLDER_READER, READER, folder_stats(folder), PreprocessRequest(background="keep"), stride=8)
    assert kept.preprocess == READER and kept.reasons["background"] == "--background"
    assert found.reasons["size"] == "height from the opaque reader, width from the median aspect ratio, a multiple of 8"
    square = folder_of(tmp_path / "square", [("ABCDEFGH", (60, 60), False)])
    # 48 columns would be 6 frames; 8 symbols need 16.
    assert reader_input(FOLDER_READER, READER, folder_stats(square), PreprocessRequest(), stride=8).preprocess.width == 128
    given = PreprocessRequest(channel="gray", size=(200, 48), binarize=False)
    assert reader_input(FOLDER_READER, READER, folder_stats(folder), given, stride=8).preprocess.width == 200


@pytest.mark.parametrize(
    ("request_", "refused"),
    [
        (PreprocessRequest(channel="auto"), "--channel auto"),
        (PreprocessRequest(size=(150, 40)), "--size 150x40"),
        (PreprocessRequest(binarize=True), "--binarize"),
        (PreprocessRequest(threshold=0), "--threshold"),
        (PreprocessRequest(opaque_at=200), "--opaque-at"),
    ],
)
def test_the_reader_refuses_a_format_it_cannot_read_naming_init_none(
    tmp_path: Path, request_: PreprocessRequest, refused: str
) -> None:
    stats = folder_stats(folder_of(tmp_path, [("AB", (120, 40), False)]))
    with pytest.raises(ConfigError, match=rf"^{refused}: the opaque reader this run starts from reads gray input "
                       rf"48 px high with linear levels; drop {refused}, or train from scratch with --init none$"):  # fmt: skip
        reader_input(FOLDER_READER, READER, stats, request_, stride=8)
