"""The one preprocessing path: the seed's result, every channel mode, every image mode, every bad input."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knucaptcha.errors import ImageError, ImageTooLargeError, MissingFileError
from knucaptcha.preprocess import flatten_background, has_alpha, load_image, to_batch, to_input
from knucaptcha.spec import PreprocessSpec

GRAY = PreprocessSpec(mode="gray", binarize=False)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def random_rgba(seed: int = 0, size: tuple[int, int] = (140, 35)) -> np.ndarray:
    """An (H, W, 4) uint8 image like the KNU captcha: colour anywhere, ink only where alpha > 0."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    pixels[..., 3] *= rng.random((size[1], size[0])) < 0.3  # mostly fully transparent, like the captcha
    return pixels


def seed_preprocessing(pixels: np.ndarray) -> np.ndarray:
    """The seed notebook's ``encode_single_sample`` in numpy, for a 140x35 RGBA image.

    Alpha channel, scaled to [0, 1], ``where(img > 0, 1, 0)``, resize to the
    same size (no change), transpose to (width, height, 1).
    """
    alpha = pixels[..., 3:4].astype(np.float32) / 255.0  # (H, W, 1)
    binary = np.where(alpha > 0, 1, 0).astype(np.float32)
    return np.transpose(binary, (1, 0, 2))  # (W, H, 1)


def test_default_spec_reproduces_the_seed_exactly() -> None:
    pixels = random_rgba()
    out = to_input(encode(Image.fromarray(pixels, "RGBA")))
    assert out.dtype == np.float32
    assert out.shape == (1, 35, 140)
    expected = seed_preprocessing(pixels)
    assert expected.shape == (140, 35, 1)
    np.testing.assert_array_equal(out[0].T[..., None], expected)


def test_every_source_type_gives_the_same_input(tmp_path: Path) -> None:
    pixels = random_rgba(1)
    image = Image.fromarray(pixels, "RGBA")
    data = encode(image)
    path = tmp_path / "AB12.png"
    path.write_bytes(data)
    expected = to_input(data)
    for source in (bytearray(data), memoryview(data), str(path), path, image, pixels):
        np.testing.assert_array_equal(to_input(source), expected)


def test_gray_without_binarization_is_darkness() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (35, 140, 3), dtype=np.uint8)
    out = to_input(pixels, GRAY)[0]
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(out, 1 - luminance / 255, atol=1.5 / 255)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_gray_with_binarization_thresholds_darkness() -> None:
    luminance = np.array([[0, 100, 127, 128, 200, 255, 255, 255]], np.uint8).repeat(8, axis=0)  # (8, 8)
    spec = PreprocessSpec(mode="gray", height=8, width=8, binarize=True, threshold=127)
    # ink = 255 - luminance = 255, 155, 128, 127, 55, 0, ...: strictly above 127 are the first three.
    np.testing.assert_array_equal(to_input(luminance, spec)[0, 0], [1, 1, 1, 0, 0, 0, 0, 0])


def test_opaque_at_keeps_half_transparent_glyphs_apart_from_an_opaque_curve() -> None:
    pixels = np.zeros((35, 140, 4), np.uint8)
    pixels[5, 5:10, 3] = 64  # glyph outline, half-transparent as the KNU server draws it
    pixels[6, 5:10, 3] = 128
    pixels[20, :, 3] = 255  # the noise curve's opaque core
    pixels[21, :, 3] = 249  # its antialiased edge, just under the cut
    three = to_input(pixels, PreprocessSpec(opaque_at=250))[0]
    assert set(np.unique(three).tolist()) == {0.0, 0.5, 1.0}
    assert (three[5:7, 5:10] == 0.5).all() and (three[20] == 1.0).all() and (three[21] == 0.5).all()
    seed = to_input(pixels, PreprocessSpec())[0]
    assert np.array_equal(seed, (three > 0).astype(np.float32))  # the seed's rule merges the two
    bigger = to_input(pixels, PreprocessSpec(opaque_at=250, height=70, width=280))[0]  # resized after the levels
    assert bigger.shape == (70, 280) and 0.0 <= bigger.min() and 0.75 < bigger.max() <= 1.0  # bilinear


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (PreprocessSpec(), lambda ink: (ink > 0) * 1.0),
        (PreprocessSpec(threshold=100), lambda ink: (ink > 100) * 1.0),
        (PreprocessSpec(opaque_at=250), lambda ink: (ink > 0) * 0.5 + (ink >= 250) * 0.5),
        (PreprocessSpec(threshold=9, opaque_at=10), lambda ink: (ink > 9) * 0.5 + (ink >= 10) * 0.5),
        (PreprocessSpec(binarize=False), lambda ink: ink / 255),
    ],
)
def test_every_ink_value_gets_its_level(spec: PreprocessSpec, expected: Callable[[np.ndarray], np.ndarray]) -> None:
    """All 256 alpha values in one image: each level's boundaries (strictly above the threshold,
    from ``opaque_at`` on) and the linear scale, exactly."""
    pixels = np.zeros((8, 256, 4), np.uint8)
    pixels[:, :, 3] = np.arange(256)
    wide = replace(spec, height=8, width=256)
    out = to_input(pixels, wide)[0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(expected(np.arange(256)), (8, 256)), rtol=0, atol=1e-7)


def test_gray_composites_transparency_onto_white() -> None:
    pixels = np.zeros((35, 140, 4), np.uint8)  # black but fully transparent: no ink
    pixels[10:20, 30:40] = (0, 0, 0, 255)  # one opaque black square: ink
    out = to_input(pixels, PreprocessSpec(mode="gray"))[0]
    assert out.sum() == 100
    assert out[10:20, 30:40].all()


def test_alpha_mode_on_an_opaque_image_is_all_ink() -> None:
    out = to_input(np.full((35, 140, 3), 255, np.uint8), PreprocessSpec(mode="alpha"))
    assert out.min() == 1.0


def test_auto_picks_alpha_for_transparent_and_gray_for_opaque() -> None:
    transparent = random_rgba(3)
    auto = PreprocessSpec(mode="auto")
    np.testing.assert_array_equal(to_input(transparent, auto), to_input(transparent, PreprocessSpec(mode="alpha")))
    opaque = transparent.copy()
    opaque[..., 3] = 255
    assert not has_alpha(Image.fromarray(opaque, "RGBA"))
    np.testing.assert_array_equal(to_input(opaque, auto), to_input(opaque, PreprocessSpec(mode="gray")))
    rgb = opaque[..., :3]
    np.testing.assert_array_equal(to_input(rgb, auto), to_input(rgb, PreprocessSpec(mode="gray")))


def test_palette_without_transparency_reads_like_rgb() -> None:
    rgb = Image.fromarray(np.random.default_rng(4).integers(0, 256, (35, 140, 3), dtype=np.uint8))
    palette = rgb.quantize(16)
    loaded = load_image(encode(palette))
    assert loaded.mode == "P"
    np.testing.assert_array_equal(to_input(loaded, GRAY), to_input(palette.convert("RGB"), GRAY))
    assert not has_alpha(loaded)


def test_palette_with_transparency_uses_the_transparent_index() -> None:
    indices = np.zeros((35, 140), np.uint8)
    indices[5:15, 50:60] = 1
    palette = Image.fromarray(indices, "P")
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    data = encode(palette, transparency=0)
    assert has_alpha(load_image(data))
    out = to_input(data, PreprocessSpec(mode="auto"))[0]
    np.testing.assert_array_equal(out, indices.astype(np.float32))


def test_sixteen_bit_grayscale_scales_to_eight_bits() -> None:
    levels = np.random.default_rng(5).integers(0, 256, (35, 140)).astype(np.uint16)
    sixteen = Image.fromarray(levels * 257)  # full 16-bit range
    loaded = load_image(encode(sixteen))
    assert loaded.mode in ("I;16", "I")
    np.testing.assert_allclose(to_input(loaded, GRAY), to_input(levels.astype(np.uint8), GRAY), atol=1e-6)


def test_gray_plus_alpha() -> None:
    pixels = np.zeros((35, 140, 2), np.uint8)
    pixels[..., 1] = np.random.default_rng(6).integers(0, 256, (35, 140))
    la = Image.fromarray(pixels, "LA")
    out = to_input(encode(la))[0]
    np.testing.assert_array_equal(out, (pixels[..., 1] > 0).astype(np.float32))


def test_cmyk_reads_like_its_rgb() -> None:
    rgb = Image.fromarray(np.random.default_rng(7).integers(0, 256, (35, 140, 3), dtype=np.uint8))
    cmyk = rgb.convert("CMYK")
    np.testing.assert_array_equal(to_input(cmyk, GRAY), to_input(cmyk.convert("RGB"), GRAY))
    from_jpeg = to_input(encode(cmyk, "JPEG", quality=100), GRAY)  # a CMYK JPEG: lossy, so close rather than equal
    np.testing.assert_allclose(from_jpeg, to_input(cmyk, GRAY), atol=12 / 255)


@pytest.mark.parametrize(("orientation", "turn"), [(6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)])
def test_exif_orientation_is_applied(orientation: int, turn: Image.Transpose) -> None:
    pixels = np.full((35, 140), 255, np.uint8)
    pixels[:, :40] = 0  # a black block on the left: its place shows the turn
    upright = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    loaded = load_image(encode(upright, "JPEG", quality=95, exif=exif.tobytes()))
    assert loaded.size == (35, 140)
    expected = np.asarray(upright.transpose(turn), np.float32)
    np.testing.assert_allclose(np.asarray(loaded.convert("L"), np.float32), expected, atol=40)


def test_animated_gif_reads_the_first_frame() -> None:
    black = Image.new("L", (140, 35), 0)
    white = Image.new("L", (140, 35), 255)
    data = encode(black, "GIF", save_all=True, append_images=[white], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert to_input(data, PreprocessSpec(mode="gray")).min() == 1.0  # black everywhere: all ink


@pytest.mark.parametrize(("height", "width"), [(20, 80), (64, 256)])
def test_resize_to_the_spec_size(height: int, width: int) -> None:
    pixels = np.zeros((35, 140, 4), np.uint8)
    pixels[:, :70, 3] = 255  # left half inked
    out = to_input(pixels, PreprocessSpec(height=height, width=width))
    assert out.shape == (1, height, width)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out[0, :, : width // 2 - 2].min() == 1.0
    assert out[0, :, width // 2 + 2 :].max() == 0.0


def test_to_batch_stacks_and_handles_empty() -> None:
    batch = to_batch([random_rgba(8), random_rgba(9)])
    assert batch.shape == (2, 1, 35, 140)
    np.testing.assert_array_equal(batch[1], to_input(random_rgba(9)))
    assert to_batch([]).shape == (0, 1, 35, 140)


def test_array_dtypes() -> None:
    mask = np.zeros((35, 140), bool)
    mask[:, :10] = True
    gray = PreprocessSpec(mode="gray")
    # A boolean array is white where True: no ink there.
    np.testing.assert_array_equal(to_input(mask, gray)[0], (~mask).astype(np.float32))
    np.testing.assert_array_equal(to_input(mask.astype(np.float64), gray), to_input(mask, gray))
    np.testing.assert_array_equal(to_input(mask[..., None].astype(np.uint8) * 255, gray), to_input(mask, gray))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of all-zero pixels: tens of kilobytes on disk, gigabytes once decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("side", "message"),
    # Pillow's own bomb check (its message, quoting its limit, is replaced by ours), then ours (below Pillow's limit)
    [(20000, "over the limit of 16,777,216 pixels"), (5000, "5000x5000")],
)
def test_decompression_bomb_is_refused_before_decoding(side: int, message: str) -> None:
    data = bomb_png(side, side)
    assert len(data) < 200_000
    with pytest.raises(ImageTooLargeError, match=message):
        load_image(data)


def test_pixel_limit_applies_to_every_source() -> None:
    small = Image.new("L", (100, 100))
    for source in (encode(small), small, np.zeros((100, 100), np.uint8)):
        with pytest.raises(ImageTooLargeError):
            load_image(source, max_pixels=1000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (encode(Image.new("RGBA", (140, 35), (0, 0, 0, 255)))[:60], "damaged"),
        (b"file,label\nAB12.png,AB12\n", "not an image"),
    ],
    ids=["zero-bytes", "truncated", "text"],
)
def test_bad_bytes_raise_image_error(data: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=message):
        to_input(data)
    path = tmp_path / "AB12.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="AB12.png"):  # the message names the file
        to_input(path)


def test_missing_path_directory_and_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingFileError):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)
    path = tmp_path / "locked.png"
    path.write_bytes(encode(Image.new("L", (4, 4))))

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod cannot lock out root, which the tests may run as
    with pytest.raises(ImageError, match="Permission denied"):
        load_image(path)


@pytest.mark.parametrize(
    "source",
    [
        42,
        None,
        np.zeros((35, 140, 2), np.uint8),
        np.zeros((1, 35, 140, 4), np.uint8),
        np.zeros((140,), np.uint8),
        np.zeros((35, 140), np.int64),
        np.zeros((0, 140), np.uint8),
    ],
    ids=["int", "none", "two-channels", "four-dims", "one-dim", "int64", "no-rows"],
)
def test_unsupported_sources_raise_image_error(source: object) -> None:
    with pytest.raises(ImageError):
        to_input(source)  # type: ignore[arg-type]


# --- background flattening (PreprocessSpec.background) ----------------------------------------------


def bars_on(paper: np.ndarray) -> np.ndarray:
    """``paper``, an (H, W) luminance, with two dark 10 px bars (bold strokes) and one 2 px line drawn on it."""
    image = paper.astype(np.uint8).copy()
    image[8:40, 20:30] = 20
    image[8:40, 90:100] = 20
    image[24:26, 40:80] = 20
    return image


def test_flattening_takes_a_gradient_away_and_keeps_bold_strokes_whole() -> None:
    gradient = np.tile(np.linspace(90, 255, 160), (48, 1))  # dark grey to white, as knu2021's paper
    flat = flatten_background(255 - bars_on(gradient))
    assert flat[8:40, 21:29].min() >= 200 and flat[8:40, 91:99].min() >= 200  # middles of the bars too
    assert flat[25, 40:80].min() >= 200
    paper = np.ones_like(flat, bool)
    paper[4:44, 16:104] = False  # around the drawing: nothing but the gradient, which is gone
    assert flat[paper].max() <= 51  # a fifth of full ink at most, at the dark edge where the tiles extrapolate
    assert (255 - bars_on(gradient))[paper].max() >= 160  # where the raw ink map had up to 165


def test_flattening_turns_light_text_on_dark_round() -> None:
    dark_on_light = 255 - bars_on(np.full((48, 160), 235))
    light_on_dark = 255 - dark_on_light  # the same picture in negative
    assert np.abs(flatten_background(light_on_dark).astype(int) - flatten_background(dark_on_light)).max() <= 2


def test_flattening_an_empty_picture_does_not_raise_its_noise_to_ink() -> None:
    noise = np.random.default_rng(0).integers(0, 12, (48, 160)).astype(np.uint8)  # a blank page, grain only
    assert flatten_background(noise).max() <= 4 * 12


def test_the_spec_flattens_before_its_levels_and_keeps_otherwise() -> None:
    picture = Image.fromarray(bars_on(np.tile(np.linspace(90, 255, 160), (48, 1))))
    keep = PreprocessSpec(mode="gray", height=48, width=160, binarize=False)
    flat = PreprocessSpec(mode="gray", height=48, width=160, binarize=False, background="flatten")
    assert np.allclose(to_input(picture, keep)[0], (255 - np.asarray(picture)) / 255)
    assert np.allclose(to_input(picture, flat)[0], flatten_background(255 - np.asarray(picture)) / 255)
