"""Shared fixtures. Module-specific fixtures live in the test file that uses them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from knucaptcha.charset import DIGITS_UPPER, Charset
from knucaptcha.generator import Style, get_style
from knucaptcha.spec import ModelSpec, PreprocessSpec


def build_linear_onnx(
    path: Path, spec: ModelSpec, seed: int = 0, extra_metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a tiny real ONNX model with knucaptcha metadata (and ``extra_metadata``): each image column is a frame.

    Its weights are random (seeded), so it reads nonsense, but it exercises the
    whole solve path (metadata, preprocessing, session, decoding) without torch.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = spec.preprocess.height, spec.preprocess.width
    classes = spec.charset.num_classes
    weights = np.random.default_rng(seed).normal(0, 1, (height, classes)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["image", "axis1"], ["plane"]),  # (N, H, W)
            helper.make_node("Transpose", ["plane"], ["columns"], perm=[0, 2, 1]),  # (N, W, H)
            helper.make_node("MatMul", ["columns", "weights"], ["logits"]),  # (N, W, C)
        ],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", width, classes])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array([1], np.int64), "axis1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {**spec.to_metadata(), **(extra_metadata or {})})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def linear_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a random-weight ONNX model over the KNU charset (see :func:`build_linear_onnx`)."""
    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
    return build_linear_onnx(tmp_path_factory.mktemp("models") / "linear.onnx", spec)


@pytest.fixture(scope="session")
def stamped_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`linear_model`, the same weights, in a file that stores a reading length of 3."""
    from knucaptcha.ctc import READ_LENGTH_KEY

    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
    return build_linear_onnx(tmp_path_factory.mktemp("models") / "stamped.onnx", spec, 0, {READ_LENGTH_KEY: "3"})


@pytest.fixture(scope="session")
def other_linear_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`linear_model` with other random weights: another model of the same spec (say, a fine-tuned one)."""
    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
    return build_linear_onnx(tmp_path_factory.mktemp("models") / "other.onnx", spec, seed=1)


def write_captchas(folder: Path, labels: list[str]) -> Path:
    """Write one 140×35 transparent PNG per label, text in the alpha channel, named ``LABEL_i.png``."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for index, label in enumerate(labels):
        image = Image.new("RGBA", (140, 35), (0, 0, 0, 0))
        ImageDraw.Draw(image).text((20 + 3 * (index % 7), 10), label, fill=(0, 0, 0, 255))
        image.save(folder / f"{label}_{index}.png")
    return folder


@pytest.fixture(scope="session")
def captcha_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled folder of 20 simple KNU-shaped captchas (read-only: copy it before breaking files)."""
    rng = np.random.default_rng(0)
    labels = ["".join(rng.choice(list(DIGITS_UPPER), 4)) for _ in range(20)]
    return write_captchas(tmp_path_factory.mktemp("captchas"), labels)


@pytest.fixture(scope="session")
def trained_style() -> Style:
    """The generator style :func:`trained_model` learned: easy ``knu`` captchas of 3 symbols from 0-3."""
    return get_style("knu", "easy", charset="0123", min_length=3, max_length=3)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, trained_style: Style) -> Path:
    """Path of a ``fast`` model trained briefly on 320 images of :func:`trained_style`.

    It reads most unseen captchas of that style right: a real model for tests
    where random weights prove nothing (agreement between solve paths). A
    tiny vocabulary and a high learning rate make it take off within 15
    epochs; one torch thread because the suite shares two cores. Skipped
    without torch (the ``train`` extra).
    """
    torch = pytest.importorskip("torch")
    from knucaptcha.generator import write_dataset
    from knucaptcha.train import FolderSource, TrainConfig, start
    from knucaptcha.train.trainer import ONNX_NAME

    root = tmp_path_factory.mktemp("trained")
    write_dataset(root / "data", trained_style, 320, seed=0)
    source = FolderSource(root / "data", trained_style.preprocess, case="keep", valid_fraction=0.1, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = start(root / "run", source, TrainConfig(max_epochs=15, batch_size=16, lr=3e-3, seed=0))
        return trainer.fit().run_dir / ONNX_NAME
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight ``fast`` CRNN over the KNU charset, written by :func:`knucaptcha.train.export_onnx`
    as training writes ``model.onnx`` (so it stores the SHA-256 of its weights). Skipped without torch."""
    torch = pytest.importorskip("torch")
    from knucaptcha.train import CRNN, export_onnx, preset

    spec = ModelSpec(Charset(DIGITS_UPPER), PreprocessSpec(), max_length=4)
    torch.manual_seed(0)
    model = CRNN(preset("fast"), spec).eval()
    return export_onnx(model, spec, tmp_path_factory.mktemp("exported") / "model.onnx", {"knucaptcha.preset": "fast"})


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a training module: the suite shares two cores, and small models gain nothing from more."""
    import torch  # here, not at the top: most test modules run without torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
