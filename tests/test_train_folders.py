"""``train --data`` reads a folder in its own format: inferred and shown on the first line, contradictions refused,
broken images skipped with a report, and an opaque folder trained with default flags actually learns.

Before, every folder was read as the generated ``knu`` style (alpha channel,
140×35): on opaque images that is blank input, and runs ended at 0% without a word.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import write_captchas  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from knucaptcha.cli import app  # noqa: E402
from knucaptcha.errors import TrainingError  # noqa: E402
from knucaptcha.generator import get_style, write_dataset  # noqa: E402
from knucaptcha.inference import Solver  # noqa: E402
from knucaptcha.labels import scan_folder  # noqa: E402
from knucaptcha.spec import PreprocessSpec  # noqa: E402
from knucaptcha.train import FolderSource, checkpoint  # noqa: E402
from knucaptcha.train.data import open_source  # noqa: E402

runner = CliRunner()
SYMBOLS = "abcd2345"
READER_BAR = 0.8  # it reads 98% of them, from scratch 0%


def opaque_folder(path: Path, count: int, seed: int) -> Path:
    """Easy ``knu2021`` captchas (opaque RGB, 150×40) of 4 symbols from 8."""
    style = get_style("knu2021", "easy", charset=SYMBOLS, min_length=4, max_length=4)
    write_dataset(path, style, count, seed)
    return path


@pytest.fixture(scope="module")
def opaque(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return opaque_folder(tmp_path_factory.mktemp("data") / "opaque", 40, seed=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["train", "--max-epochs", "1", "--epoch-size", "32", "--threads", "1", *args])


def accuracy(run: Path, test: Path) -> float:
    items = scan_folder(test)
    predictions = Solver.load(run / "model.onnx").solve_batch([item.path for item in items])
    assert not any(p.warnings for p in predictions)
    return sum(p.text == item.label for p, item in zip(predictions, items)) / len(items)


def test_an_opaque_folder_starts_from_the_bundled_reader_and_reads_held_out_captchas(tmp_path: Path) -> None:
    data, test = opaque_folder(tmp_path / "train", 200, seed=3), opaque_folder(tmp_path / "test", 100, seed=4)
    budget = ["--max-epochs", "2", "--epoch-size", "640", "--threads", "1"]  # 80 steps, all of them warming up
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "reader"), *budget])
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{data}: 200 images; channel gray (from the opaque reader), input 176x48 (height from "
                            "the opaque reader, width from the median aspect ratio, a multiple of 8)")  # fmt: skip
    assert "background flattened (inferred for gray), charset 2345abcd (8 symbols, from the labels), max length 4" in first
    assert first.endswith("; from the bundled opaque reader (the default for opaque images; --init none trains from scratch)")
    solver = Solver.load(tmp_path / "reader" / "model.onnx")
    assert solver.spec.preprocess == PreprocessSpec(mode="gray", height=48, width=176, binarize=False, background="flatten")
    assert solver.spec.charset.symbols == "2345abcd"  # narrowed to the folder's symbols
    config = checkpoint.read(tmp_path / "reader" / "checkpoint.pt")["config"]  # the folder recipe's defaults
    assert (config["lr"], config["warmup"], config["weight_decay"], config["max_minutes"]) == (1e-3, 200, 0.01, 10.0)
    scratch = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "scratch"), "--init", "none",
                                  *budget])  # fmt: skip
    assert scratch.exit_code == 0, scratch.output
    assert scratch.stderr.splitlines()[0].endswith("; from scratch") and "input 152x40 (inferred" in scratch.stderr
    # The same steps from the reader read held-out captchas; from scratch they are still on the CTC plateau.
    assert accuracy(tmp_path / "reader", test) >= READER_BAR > accuracy(tmp_path / "scratch", test)


def test_a_transparent_folder_is_read_through_its_alpha_channel(tmp_path: Path) -> None:
    data = write_captchas(tmp_path / "alpha", ["AB12", "CD34", "EF56", "GH78", "AB34", "CD12"])
    result = train("--data", str(data), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "channel alpha (inferred: 6 of 6 images transparent), input 144x35" in result.stderr.splitlines()[0]
    assert "binarized above 0 (inferred for alpha)" in result.stderr.splitlines()[0]


def test_explicit_preprocessing_flags_are_stored_in_the_model(tmp_path: Path, opaque: Path) -> None:
    run = tmp_path / "run"
    result = train("--data", str(opaque), "--out", str(run), "--channel", "auto", "--size", "96x32", "--threshold", "60",
                   "--init", "none")
    assert result.exit_code == 0, result.output
    assert "channel auto (--channel), input 96x32 (--size), binarized above 60 (given)" in result.stderr
    assert Solver.load(run / "model.onnx").spec.preprocess == PreprocessSpec(
        mode="auto", height=32, width=96, binarize=True, threshold=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "alpha"], "error: --channel alpha: 40 of 40 images are opaque (no transparency), and the "
         "alpha channel of an opaque image is solid ink: a blank input; use --channel gray (or auto)"),
        (["--init", "default"], "error: --init default reads the alpha channel (a model of transparent captchas), "
         "but 40 of 40 images are opaque"),
        (["--init", "knu2021", "--size", "100x40"], "error: --init knu2021 brings its own preprocessing "
         "(gray 150x40, linear levels); drop --size"),
        (["--size", "100x40"], "error: --size 100x40: the opaque reader this run starts from reads gray input 48 px "
         "high with linear levels; drop --size 100x40, or train from scratch with --init none"),
        (["--init", "opaque", "--channel", "auto", "--threshold", "50"], "error: --channel auto, --threshold: the "
         "opaque reader this run starts from reads gray input 48 px high with linear levels; drop --channel auto, "
         "--threshold, or train from scratch with --init none"),
        (["--symbols", "abcd234"], "error: the labels use '5', which --symbols 'abcd234' lacks; add them to --symbols"),
        (["--style", "knu2021"], "error: --style draws generated captchas; a --data folder is read in its own format"),
        (["--size", "150"], "error: --size takes WIDTHxHEIGHT such as 160x48, not '150'"),
        (["--no-binarize", "--threshold", "9"], "error: --threshold and --opaque-at set binarization levels"),
        (["--init", "knu2021", "--background", "keep"], "error: --init knu2021 brings its own preprocessing "
         "(gray 150x40, linear levels); drop --background"),
    ],
)
def test_choices_that_contradict_the_folder_are_refused_naming_the_fix(
    tmp_path: Path, opaque: Path, args: list[str], message: str
) -> None:
    result = train("--data", str(opaque), "--out", str(tmp_path / "run"), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "run").exists()


def test_folder_flags_without_a_folder_are_refused(tmp_path: Path) -> None:
    result = train("--out", str(tmp_path / "run"), "--channel", "gray", "--strict-images")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --channel, --strict-images: how a --data folder is read")


def test_unreadable_images_are_skipped_with_a_report_or_refused_with_strict_images(tmp_path: Path) -> None:
    data = write_captchas(tmp_path / "data", ["AB12", "CD34", "EF56", "GH78", "AB34", "CD12"])
    (data / "ZZ99_0.png").write_bytes(b"")
    (data / "YY88_0.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    result = train("--data", str(data), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{data}: 6 images;")
    assert lines[1].startswith("skipped 2 unreadable image(s) (--strict-images refuses them): YY88_0.png (")
    assert "ZZ99_0.png (" in lines[1] and "is empty (0 bytes)" in lines[1]
    refused = train("--data", str(data), "--out", str(tmp_path / "strict"), "--strict-images")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"error: 2 image(s) in {data} cannot be read: YY88_0.png (")
    assert "drop --strict-images to skip them" in refused.stderr


def test_the_folder_source_skips_broken_images_refuses_blank_input_and_resumes_alike(tmp_path: Path) -> None:
    data = write_captchas(tmp_path / "data", ["AB12", "CD34", "EF56", "GH78"])
    (data / "ZZ99_0.png").write_bytes(b"not an image")
    source = FolderSource(data, PreprocessSpec(), case="keep", valid_fraction=0.25, seed=0, symbols="0123456789ABCDEFGHZ")
    assert [file.name for file in source.skipped] == ["ZZ99_0.png"]
    assert len(source.train) + len(source.valid) == 4
    assert source.vocabulary()[0].symbols == "0123456789ABCDEFGHZ"  # the given order, even symbols no label uses
    again = open_source(source.describe())
    assert again.vocabulary() == source.vocabulary() and again.describe() == source.describe()
    with pytest.raises(TrainingError, match="cannot be read: ZZ99_0.png"):
        FolderSource(data, PreprocessSpec(), case="keep", valid_fraction=0.25, seed=0, strict_images=True)
    opaque = opaque_folder(tmp_path / "opaque", 4, seed=0)
    with pytest.raises(TrainingError, match="4 of 4 images are opaque .* read the folder as gray"):
        FolderSource(opaque, PreprocessSpec(), case="keep", valid_fraction=0.25, seed=0)
