"""An image of another kind than the model reads: a warning by default, an error in strict mode, everywhere one solves.

An opaque image on a model of transparent captchas (alpha channel) is a blank
input; before this check it read ``""`` at confidence 0.70 with exit status 0.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from knucaptcha.charset import DIGITS_UPPER, Charset
from knucaptcha.cli import app
from knucaptcha.errors import ChannelMismatchError
from knucaptcha.generator import encode_png, get_style, render_sample
from knucaptcha.inference import Solver
from knucaptcha.preprocess import channel_mismatch, ink, load_image
from knucaptcha.spec import ModelSpec, PreprocessSpec
from knucaptcha.web import ServeSettings, create_app

from conftest import build_linear_onnx

runner = CliRunner()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def transparent() -> bytes:
    """A generated KNU captcha: transparent, what an alpha model was trained on."""
    return encode_png(render_sample(get_style("knu", "mixed"), seed=1, index=0).image)


@pytest.fixture(scope="module")
def opaque() -> bytes:
    """A generated 2021 captcha: opaque RGB."""
    return encode_png(render_sample(get_style("knu2021", "mixed"), seed=1, index=0).image)


def light_on_transparent() -> Image.Image:
    """White text on a transparent background: on white it vanishes."""
    image = Image.new("RGBA", (150, 40), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((20, 10, 120, 30), fill=(255, 255, 255, 255))
    return image


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(mode="gray", height=40, width=150, binarize=False), 4)
    return build_linear_onnx(tmp_path_factory.mktemp("models") / "gray.onnx", spec)


def mismatch(image: Image.Image | bytes, mode: str) -> str | None:
    decoded = load_image(image)
    return channel_mismatch(decoded, ink(decoded, mode), mode)


def test_the_check_flags_opaque_images_for_alpha_and_vanishing_ones_for_gray(transparent: bytes, opaque: bytes) -> None:
    assert mismatch(transparent, "alpha") is None
    assert "the image is opaque, but the model reads the alpha channel" in mismatch(opaque, "alpha")
    # An RGBA file whose alpha is all 255 is opaque too.
    assert mismatch(Image.open(io.BytesIO(opaque)).convert("RGBA"), "alpha") is not None
    assert mismatch(opaque, "gray") is None
    assert mismatch(transparent, "gray") is None  # dark drawing composited onto white stays
    assert "vanishes on white" in mismatch(light_on_transparent(), "gray")
    assert mismatch(opaque, "auto") is None and mismatch(transparent, "auto") is None


def test_the_solver_warns_and_in_strict_mode_refuses(linear_model: Path, transparent: bytes, opaque: bytes) -> None:
    solver = Solver.load(linear_model)
    fitting, blank = solver.solve_batch([transparent, opaque])
    assert fitting.warnings == () and len(blank.warnings) == 1 and "opaque" in blank.warnings[0]
    assert blank.to_dict()["warnings"] == list(blank.warnings)
    # The warning does not change what is read.
    assert blank.text == solver.solve(np.asarray(Image.open(io.BytesIO(opaque)))).text
    assert solver.solve(transparent, strict=True).warnings == ()
    with pytest.raises(ChannelMismatchError, match="^image 2 of 2: the image is opaque"):
        solver.solve_batch([transparent, opaque], strict=True)
    with pytest.raises(ChannelMismatchError, match="^the image is opaque"):
        solver.solve(opaque, strict=True)


def test_a_gray_model_warns_only_when_a_transparent_drawing_vanishes(gray_model: Path, transparent: bytes) -> None:
    solver = Solver.load(gray_model)
    assert solver.solve(transparent).warnings == ()
    assert "vanishes on white" in solver.solve(light_on_transparent()).warnings[0]


def test_cli_solve_warns_on_stderr_and_strict_makes_it_an_error(
    tmp_path: Path, linear_model: Path, transparent: bytes, opaque: bytes
) -> None:
    (tmp_path / "fits.png").write_bytes(transparent)
    (tmp_path / "blank.png").write_bytes(opaque)
    one = runner.invoke(app, ["solve", "-m", str(linear_model), str(tmp_path / "blank.png")])
    assert one.exit_code == 0, one.stderr
    assert one.stderr.startswith(f"warning: {tmp_path / 'blank.png'}: the image is opaque")
    assert one.stdout.startswith(str(tmp_path / "blank.png"))
    quiet = runner.invoke(app, ["solve", "-m", str(linear_model), str(tmp_path / "fits.png")])
    assert quiet.exit_code == 0 and quiet.stderr == ""

    both = runner.invoke(app, ["solve", "-m", str(linear_model), str(tmp_path), "--json"])
    assert both.exit_code == 0, both.stderr
    assert "warning: 1 of 2 images (" in both.stderr
    assert [len(item["warnings"]) for item in json.loads(both.stdout)] == [1, 0]

    strict_one = runner.invoke(app, ["solve", "-m", str(linear_model), str(tmp_path / "blank.png"), "--strict"])
    assert strict_one.exit_code == 2 and strict_one.stdout == ""
    assert strict_one.stderr.startswith(f"error: {tmp_path / 'blank.png'}: the image is opaque")
    # Among several files a refused one is reported like an unreadable one; the others are still read.
    strict_many = runner.invoke(app, ["solve", "-m", str(linear_model), str(tmp_path), "--strict"])
    assert strict_many.exit_code == 1
    assert strict_many.stdout.startswith(str(tmp_path / "fits.png")) and "blank.png" not in strict_many.stdout
    assert "error: 1 of 2 images could not be read" in strict_many.stderr


@pytest.fixture
def client(linear_model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(models=(("linear", str(linear_model)),)))) as test_client:
        yield test_client


def test_service_answers_warnings_and_refuses_in_strict_mode(client: TestClient, transparent: bytes, opaque: bytes) -> None:
    fits = client.post("/v1/solve", files={"file": ("fits.png", transparent, "image/png")})
    assert fits.status_code == 200 and fits.json()["warnings"] == []
    blank = client.post("/v1/solve", files={"file": ("blank.png", opaque, "image/png")})
    assert blank.status_code == 200 and "the image is opaque" in blank.json()["warnings"][0]

    refused = client.post("/v1/solve?strict=true", files={"file": ("blank.png", opaque, "image/png")})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "channel_mismatch"
    assert refused.json()["error"]["message"].startswith("file 'blank.png': the image is opaque")

    files = [("files", ("fits.png", transparent, "image/png")), ("files", ("blank.png", opaque, "image/png"))]
    loose = client.post("/v1/solve/batch", files=files).json()
    assert loose[0]["warnings"] == [] and len(loose[1]["warnings"]) == 1
    strict = client.post("/v1/solve/batch?strict=true", files=files).json()
    assert "text" in strict[0] and strict[1]["error"]["code"] == "channel_mismatch"
