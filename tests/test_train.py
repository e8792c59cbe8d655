"""Training: it learns, it stops after take-off, it resumes where it stopped, it fine-tunes across vocabularies."""

from __future__ import annotations

import csv
import math
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from knucaptcha.charset import Charset  # noqa: E402
from knucaptcha.cli import app  # noqa: E402
from knucaptcha.errors import MissingFileError, TrainingError  # noqa: E402
from knucaptcha.generator import get_style, matplotlib_font_dir, write_dataset  # noqa: E402
from knucaptcha.generator.render import fonts_for  # noqa: E402
from knucaptcha.inference import Solver  # noqa: E402
from knucaptcha.labels import scan_folder, split  # noqa: E402
from knucaptcha.spec import PreprocessSpec  # noqa: E402
from knucaptcha.train import (  # noqa: E402
    EpochRecord,
    FolderSource,
    GeneratedSource,
    Observer,
    TrainConfig,
    Trainer,
    adapt,
    augment,
    load_checkpoint,
    preset,
    start,
)
from knucaptcha.train import checkpoint  # noqa: E402
from knucaptcha.train.config import FINE_TUNE_LR  # noqa: E402
from knucaptcha.train.data import open_source  # noqa: E402

KNU = PreprocessSpec()


def easy_folder(path: Path, symbols: str, count: int, seed: int = 0) -> Path:
    style = get_style("knu", "easy", charset=symbols, min_length=3, max_length=3)
    write_dataset(path, style, count, seed)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320 easy 3-character KNU captchas over the symbols 0-3."""
    return easy_folder(tmp_path_factory.mktemp("data") / "easy", "0123", 320)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def history_epochs(run: Path) -> list[int]:
    with open(run / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def quick(**changes: object) -> TrainConfig:
    return replace(TrainConfig(batch_size=16, lr=3e-3, patience=50, seed=0), **changes)


def test_training_learns_easy_captchas(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path / "run", source, quick(max_epochs=15, augment=False))  # 15 x 18 = 270 steps
    result = trainer.fit()
    losses = [r.loss for r in trainer.history]
    assert losses[-1] < losses[0] / 3
    assert result.best_val_accuracy >= 0.6, trainer.history
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "checkpoint.pt", "history.csv", "model.pt", "model.onnx", "curves.png"
    }
    # The exported model reads the validation files as well as PyTorch did.
    solver = Solver.load(tmp_path / "run" / "model.onnx")
    assert solver.metadata["knucaptcha.preset"] == "fast"
    _, valid = split(scan_folder(folder), 0.1, 0)
    assert tuple(item.label for item in valid) == source.valid.labels
    predictions = solver.solve_batch([item.path for item in valid])
    correct = sum(p.text == item.label for p, item in zip(predictions, valid))
    assert correct / len(valid) == pytest.approx(result.best_val_accuracy)


def test_resume_after_a_killed_run_continues_from_the_last_epoch(tmp_path: Path, folder: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "knucaptcha", "train", "--data", str(folder), "--out", str(run),
               "--max-epochs", "100", "--patience", "100", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ((run / "history.csv").exists() and history_epochs(run)):
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = load_checkpoint(run / "checkpoint.pt").state["epoch"]
    before = (run / "history.csv").read_text().splitlines()
    assert done >= 1 and len(before) == done + 1

    result = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--max-epochs", str(done + 2)])
    assert result.exit_code == 0, result.output
    assert history_epochs(run) == list(range(1, done + 3))
    assert (run / "history.csv").read_text().splitlines()[: done + 1] == before
    assert load_checkpoint(run).state["training"]["epochs"] == done + 2


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    straight = start(tmp_path / "a", source, quick(max_epochs=2, augment=True))
    straight.fit()
    start(tmp_path / "b", source, quick(max_epochs=1, augment=True)).fit()
    resumed = Trainer.resume(tmp_path / "b", max_epochs=2)
    resumed.fit()
    assert resumed.history == [replace(r, seconds=s.seconds) for r, s in zip(straight.history, resumed.history)]
    for name, weights in straight.model.state_dict().items():
        assert torch.equal(weights, resumed.model.state_dict()[name]), name


class InterruptInEpoch(Observer):
    def __init__(self, epoch: int):
        self.epoch = epoch
        self.current = 0

    def epoch_started(self, epoch: int, steps: int) -> None:
        self.current = epoch

    def step_done(self) -> None:
        if self.current == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_last_finished_epoch(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    result = start(tmp_path, source, quick(max_epochs=5), observer=InterruptInEpoch(2)).fit()
    assert result.stopped == "interrupted" and result.epochs == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt").state["epoch"] == 1
    assert not (tmp_path / "model.onnx").exists()
    assert Trainer.resume(tmp_path).epoch == 1


def test_early_stopping_counts_only_after_take_off(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path, source, quick(patience=3, lr_patience=2, plateau_patience=40))
    lr = trainer.optimizer.param_groups[0]["lr"]

    def record(epoch: int, loss: float, accuracy: float) -> None:
        trainer._update_stopping(EpochRecord(epoch, loss, loss, accuracy, 1 - accuracy, lr, 1.0))

    record(1, 15.0, 0.0)
    for epoch in range(2, 30):  # a long plateau: no better loss, nothing read right
        record(epoch, 15.5, 0.0)
    assert not trainer._should_stop() and trainer.optimizer.param_groups[0]["lr"] == lr
    record(30, 9.0, 0.1)  # take-off
    for epoch in range(31, 33):
        record(epoch, 9.5, 0.1)
    assert not trainer._should_stop()
    assert trainer.optimizer.param_groups[0]["lr"] == lr / 2  # after lr_patience epochs
    record(33, 9.5, 0.1)
    assert trainer._should_stop()
    assert trainer.stopping.best_epoch == 30


def test_after_take_off_a_higher_accuracy_is_progress_even_when_the_loss_rises(tmp_path: Path, folder: Path) -> None:
    # Fine-tuning on a small split: the validation loss wanders up while the accuracy still climbs.
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path, source, quick(patience=2, lr_patience=0))
    lr = trainer.optimizer.param_groups[0]["lr"]
    for epoch, (loss, accuracy) in enumerate([(9.0, 0.5), (9.4, 0.6), (9.8, 0.7), (9.1, 0.7), (9.6, 0.65)], start=1):
        trainer._update_stopping(EpochRecord(epoch, loss, loss, accuracy, 1 - accuracy, lr, 1.0))
    assert trainer.stopping.best_epoch == 4  # 0.7 twice: the lower loss wins the tie
    assert trainer.stopping.best_accuracy == 0.7 and not trainer._should_stop()
    trainer._update_stopping(EpochRecord(6, 8.0, 8.0, 0.6, 0.4, lr, 1.0))  # lowest loss, lower accuracy
    assert trainer.stopping.best_epoch == 4 and trainer._should_stop()


def test_a_model_that_never_takes_off_stops_after_the_plateau_patience(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path, source, quick(patience=3, plateau_patience=5))
    lr = trainer.optimizer.param_groups[0]["lr"]
    for epoch, loss in enumerate([15.0, 15.2, 15.1, 15.3, 15.2, 15.1], start=1):
        assert not trainer._should_stop()
        trainer._update_stopping(EpochRecord(epoch, loss, loss, 0.0, 1.0, lr, 1.0))
    assert trainer._should_stop() and trainer.optimizer.param_groups[0]["lr"] == lr


def test_init_maps_shared_symbols_and_appends_new_ones(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    start(tmp_path / "base", source, quick(max_epochs=1)).fit()
    loaded = load_checkpoint(tmp_path / "base")
    model, spec = adapt(loaded, Charset("0125"), 5)
    assert spec.charset.symbols == "01235" and spec.max_length == 5
    old_rows = loaded.spec.charset.num_classes  # blank, 0, 1, 2, 3
    assert torch.equal(model.classifier.weight[:old_rows], loaded.model.classifier.weight)
    assert torch.equal(model.features.blocks[0][0].weight, loaded.model.features.blocks[0][0].weight)
    with pytest.raises(TrainingError, match="shares no symbol"):
        adapt(loaded, Charset("XYZ"), 4)


def test_init_narrowed_to_the_datas_symbols_carries_over_the_shared_rows_at_a_new_width(
    tmp_path: Path, folder: Path
) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    start(tmp_path / "base", source, quick(max_epochs=1)).fit()
    loaded = load_checkpoint(tmp_path / "base")  # blank, 0, 1, 2, 3; up to 3 long
    model, spec = adapt(loaded, Charset("35X1"), 2, keep_symbols=False, preprocess=replace(loaded.spec.preprocess, width=96))
    assert spec.charset.symbols == "35X1" and spec.max_length == 2 and spec.preprocess.width == 96
    weights, old = model.classifier.weight, loaded.model.classifier.weight
    # blank <- blank, 3 <- 3 (class 4), 1 <- 1 (class 2); 5 and X start fresh.
    for new_class, old_class in ((0, 0), (1, 4), (4, 2)):
        assert torch.equal(weights[new_class], old[old_class])
    assert not any(torch.equal(weights[2], row) or torch.equal(weights[3], row) for row in old)
    assert model(torch.zeros(1, 1, 35, 96)).shape == (1, 12, 5)  # 96 / 8 steps, 4 symbols + blank
    with pytest.raises(TrainingError, match="shares no symbol"):
        adapt(loaded, Charset("XYZ"), 4, keep_symbols=False)


def test_init_into_another_architecture_carries_the_layers_both_have(tmp_path: Path, folder: Path) -> None:
    """``--init wide-model --preset wide-conv``: the feature extractor and the column projection come
    over unchanged, the convolutional sequence stage and the output layer start fresh."""
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    start(tmp_path / "base", source, quick(max_epochs=1), preset="wide").fit()
    loaded = load_checkpoint(tmp_path / "base")
    trainer = start(tmp_path / "conv", source, quick(max_epochs=1), preset="wide-conv", init=("base", loaded))
    assert trainer.preset == "wide-conv" and trainer.arch.sequence == "conv"
    carried = checkpoint.shared_weights(loaded.model, trainer.model)
    assert {name.split(".")[0] for name in carried} == {"features", "projection"}
    for name, tensor in carried.items():
        assert torch.equal(trainer.model.state_dict()[name], tensor)
    assert trainer.model.classifier.in_features == 96 != loaded.model.classifier.in_features
    assert trainer.fit().epochs == 1  # and it trains
    with pytest.raises(TrainingError, match="shares no layer"):
        adapt(loaded, loaded.spec.charset, 3, arch=replace(preset("wide"), channels=(8, 16, 32), dense=32, hidden=(40,)))


def test_a_model_adapts_to_another_width_and_background_but_not_to_another_channel_or_levels() -> None:
    gray = PreprocessSpec(mode="gray", height=48, width=160, binarize=False)
    assert checkpoint.adaptable(gray, replace(gray, width=96, background="flatten"))
    assert not checkpoint.adaptable(gray, replace(gray, mode="alpha"))
    assert not checkpoint.adaptable(gray, replace(gray, height=40))
    assert not checkpoint.adaptable(gray, replace(gray, binarize=True, threshold=60))


def test_warmup_raises_the_learning_rate_linearly_then_holds_it(folder: Path, tmp_path: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path, source, quick(max_epochs=2, warmup=30, weight_decay=0.01, lr=1e-3))
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.01  # AdamW's decoupled decay
    rates = []
    trainer.observer = type("Rates", (Observer,), {"step_done": lambda self: rates.append(
        trainer.optimizer.param_groups[0]["lr"])})()  # fmt: skip
    trainer.fit()
    assert rates[0] == pytest.approx(1e-3 / 30) and rates[14] == pytest.approx(15e-3 / 30)
    assert rates[29:] == [1e-3] * (len(rates) - 29)  # 18 steps an epoch: warm-up spans both epochs


def test_a_time_limit_stops_before_an_epoch_that_would_overrun_it(folder: Path, tmp_path: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    trainer = start(tmp_path, source, quick(max_epochs=50, max_minutes=1.0))
    for epoch, seconds in enumerate([20.0, 25.0], start=1):
        assert not trainer.finished
        trainer.history.append(EpochRecord(epoch, 9.0, 9.0, 0.0, 1.0, 1e-3, seconds))
        trainer.epoch = epoch
    assert trainer.finished  # 45 s spent, and one more 25 s epoch would end at 70 s


def test_cli_fine_tunes_from_a_run_on_a_new_vocabulary(tmp_path: Path, folder: Path) -> None:
    runner = CliRunner()
    base = tmp_path / "base"
    assert runner.invoke(app, ["train", "--data", str(folder), "--out", str(base), "--max-epochs", "1"]).exit_code == 0
    other = easy_folder(tmp_path / "other", "0145", 40, seed=1)
    tuned = tmp_path / "tuned"
    result = runner.invoke(app, ["train", "--data", str(other), "--out", str(tuned), "--init", str(base),
                                 "--max-epochs", "1"])
    assert result.exit_code == 0, result.output
    solver = Solver.load(tuned / "model.onnx")
    assert solver.spec.charset.symbols == "012345"
    assert str(base) in solver.metadata["knucaptcha.training"]
    # Fine-tuning defaults to a gentler learning rate than training from scratch; --lr still wins.
    assert checkpoint.read(base / "checkpoint.pt")["config"]["lr"] == TrainConfig.lr
    assert checkpoint.read(tuned / "checkpoint.pt")["config"]["lr"] == FINE_TUNE_LR
    chosen = tmp_path / "chosen"
    assert runner.invoke(app, ["train", "--data", str(other), "--out", str(chosen), "--init", str(base),
                               "--max-epochs", "1", "--lr", "5e-4"]).exit_code == 0
    assert checkpoint.read(chosen / "checkpoint.pt")["config"]["lr"] == 5e-4


def test_cli_starts_another_preset_from_the_layers_it_shares_with_init(tmp_path: Path, folder: Path) -> None:
    runner = CliRunner()
    base = tmp_path / "base"
    assert runner.invoke(app, ["train", "--data", str(folder), "--out", str(base), "--max-epochs", "1",
                               "--preset", "wide"]).exit_code == 0
    result = runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / "conv"), "--init", str(base),
                                 "--preset", "wide-conv", "--max-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "model: preset wide-conv, " in result.output
    assert f"98,904 of them from {base} (preset wide: the layers both have), the rest new" in result.output
    assert Solver.load(tmp_path / "conv" / "model.onnx").metadata["knucaptcha.preset"] == "wide-conv"
    unrelated = runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / "fast"), "--init", str(base),
                                    "--preset", "fast", "--max-epochs", "1"])
    assert unrelated.exit_code != 0 and "error: the architecture asked for shares no layer with the model's (preset wide)" in unrelated.output
    assert "--init none" in unrelated.output


def test_init_with_other_preprocessing_is_a_training_error(tmp_path: Path, folder: Path) -> None:
    source = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    start(tmp_path / "base", source, quick(max_epochs=1)).fit()
    gray = FolderSource(folder, PreprocessSpec(mode="gray", height=40, width=150), case="keep",
                        valid_fraction=0.1, seed=0)
    with pytest.raises(TrainingError, match="reads images as"):
        start(tmp_path / "tuned", gray, quick(), init=("base", load_checkpoint(tmp_path / "base")))


def test_cli_refuses_to_overwrite_a_run_and_to_change_settings_on_resume(tmp_path: Path, folder: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path), "--max-epochs", "1"]).exit_code == 0
    again = runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path)])
    assert again.exit_code == 2 and "already holds a training run" in again.output
    changed = runner.invoke(app, ["train", "--out", str(tmp_path), "--resume", "--lr", "0.1"])
    assert changed.exit_code == 2 and "drop --lr" in changed.output


def test_augment_keeps_binary_images_binary_and_is_seeded() -> None:
    images = (torch.rand(6, 1, 35, 140, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    first = augment(images, torch.Generator().manual_seed(1), PreprocessSpec())
    again = augment(images, torch.Generator().manual_seed(1), PreprocessSpec())
    assert first.shape == images.shape and torch.equal(first, again)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, images)
    gray = augment(images * 0.5, torch.Generator().manual_seed(1), PreprocessSpec(mode="gray", binarize=False))
    assert 0.0 <= gray.min() and gray.max() <= 1.0
    varied = augment(images[:1].repeat(64, 1, 1, 1), torch.Generator().manual_seed(2), PreprocessSpec(mode="gray", binarize=False))
    assert len({round(image.sum().item()) for image in varied}) > 32  # strokes, blur, contrast, background each differ
    assert varied.min() >= 0.0 and varied.max() <= 1.0
    three = augment(images * 0.5 + (images > 0) * 0.5 * (torch.arange(140) < 70), torch.Generator().manual_seed(1),
                    PreprocessSpec(opaque_at=250))
    assert set(three.unique().tolist()) == {0.0, 0.5, 1.0}  # stays on the three levels


def test_a_mixed_source_draws_its_share_from_the_second_style_and_resumes_with_it() -> None:
    source = GeneratedSource("knu", "easy", seed=5, epoch_size=8, valid_size=4, mix=("knu-varied", 0.25))
    plain = GeneratedSource("knu", "easy", seed=5, epoch_size=6, valid_size=3)
    epoch = source.epoch(1)
    assert len(epoch) == 8 and epoch.labels[:6] == plain.epoch(1).labels  # 6 of knu, then 2 of knu-varied
    assert torch.equal(epoch.images[:6], plain.epoch(1).images)
    assert len(source.valid) == 4 and source.valid.labels[:3] == plain.valid.labels
    reopened = open_source(source.describe())
    assert torch.equal(reopened.epoch(1).images, epoch.images)
    with pytest.raises(TrainingError, match="cannot be mixed"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=8, valid_size=4, mix=("knu2021", 0.25))
    with pytest.raises(TrainingError, match="share"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=8, valid_size=4, mix=("knu-varied", 1.0))


def test_mix_fonts_draw_only_the_mixed_style_and_resume_with_it(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(matplotlib_font_dir() / "cmtt10.ttf", fonts)  # a font neither style draws with
    source = GeneratedSource(
        "knu", "easy", seed=5, epoch_size=8, valid_size=4, mix=("knu-varied", 0.5), mix_font_dir=fonts
    )
    plain = GeneratedSource("knu", "easy", seed=5, epoch_size=8, valid_size=4, mix=("knu-varied", 0.5))
    assert source.mix is not None and [path.name for path in fonts_for(source.mix[0])] == ["cmtt10.ttf"]
    assert fonts_for(source.style) == fonts_for(plain.style)  # knu keeps its own font
    epoch, plain_epoch = source.epoch(1), plain.epoch(1)
    assert torch.equal(epoch.images[:4], plain_epoch.images[:4])
    assert not torch.equal(epoch.images[4:], plain_epoch.images[4:])
    assert source.describe()["mix_font_dir"] == str(fonts.resolve())
    assert torch.equal(open_source(source.describe()).epoch(1).images, epoch.images)
    with pytest.raises(TrainingError, match="need a style to mix in"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=8, valid_size=4, mix_font_dir=fonts)


def test_cli_mix_takes_style_and_share_and_only_for_generated_data(tmp_path: Path, folder: Path) -> None:
    bad = CliRunner().invoke(app, ["train", "--mix", "knu-varied", "--out", str(tmp_path / "r")])
    assert bad.exit_code != 0 and "STYLE:SHARE" in bad.output
    folder_mix = CliRunner().invoke(app, ["train", "--data", str(folder), "--mix", "knu-varied:0.2", "--out", str(tmp_path / "s")])
    assert folder_mix.exit_code != 0 and "--mix mixes generated styles" in folder_mix.output
    lone_fonts = CliRunner().invoke(app, ["train", "--mix-fonts", str(tmp_path), "--out", str(tmp_path / "t")])
    assert lone_fonts.exit_code != 0 and "give --mix STYLE:SHARE too" in lone_fonts.output


def test_generated_epochs_are_reproducible_and_distinct_from_validation() -> None:
    source = GeneratedSource("knu", "easy", seed=5, epoch_size=6, valid_size=4)
    again = GeneratedSource("knu", "easy", seed=5, epoch_size=6, valid_size=4)
    assert again.epoch(1).labels == source.epoch(1).labels
    assert torch.equal(again.epoch(1).images, source.epoch(1).images)
    assert source.epoch(0).labels != source.epoch(1).labels
    assert not set(source.valid.labels) & set(source.epoch(0).labels)
    assert source.vocabulary() == (get_style("knu").charset, 4)
    assert math.isclose(float(source.valid.images.max()), 1.0)


def test_generated_data_can_be_drawn_with_a_font_folder_and_resumes_with_it(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(matplotlib_font_dir() / "cmtt10.ttf", fonts)  # a font the knu style never draws with
    source = GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, font_dir=fonts)
    assert [path.name for path in fonts_for(source.style)] == ["cmtt10.ttf"]
    plain = GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2)
    assert source.epoch(0).labels == plain.epoch(0).labels  # same labels, other glyphs
    assert not torch.equal(source.epoch(0).images, plain.epoch(0).images)
    description = source.describe()
    assert description["font_dir"] == str(fonts.resolve()) and plain.describe()["font_dir"] is None
    reopened = open_source(description)
    assert torch.equal(reopened.epoch(1).images, source.epoch(1).images)
    with pytest.raises(MissingFileError):
        GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, font_dir=tmp_path / "absent")


def test_cli_fonts_apply_to_generated_data_only(tmp_path: Path, folder: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(folder), "--fonts", str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "--fonts draws generated captchas" in result.output


def test_generated_training_can_validate_on_a_labelled_folder_and_resumes_with_it(folder: Path) -> None:
    source = GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, valid_folder=folder)
    labelled = scan_folder(folder)
    assert sorted(source.valid.labels) == sorted(item.label for item in labelled)
    assert source.valid.images.shape == (len(labelled), 1, KNU.height, KNU.width)
    assert source.epoch(0).labels == GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2).epoch(0).labels
    reopened = open_source(source.describe())
    assert reopened.valid.labels == source.valid.labels and torch.equal(reopened.valid.images, source.valid.images)


def test_a_validation_folder_the_generator_cannot_teach_is_a_training_error(tmp_path: Path, folder: Path) -> None:
    image = next(folder.glob("*.png"))
    lower, long = tmp_path / "lower", tmp_path / "long"
    for target, name in ((lower, "ab12_1.png"), (long, "ABCDE_1.png")):
        target.mkdir()
        shutil.copy(image, target / name)
    with pytest.raises(TrainingError, match="labels use 'ab'.*try --case"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, valid_folder=lower)
    assert GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, valid_folder=lower, case="upper").valid.labels == ("AB12",)
    with pytest.raises(TrainingError, match="longer than knu's 4 symbols"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, valid_folder=long)
    with pytest.raises(TrainingError, match="no labelled image"):
        GeneratedSource("knu", "easy", seed=5, epoch_size=4, valid_size=2, valid_folder=tmp_path)


def test_cli_validates_generated_training_on_a_folder(tmp_path: Path, folder: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--style", "knu", "--difficulty", "easy", "--epoch-size", "16", "--max-epochs", "1"]
    result = CliRunner().invoke(app, [*args, "--valid-data", str(folder), "--out", str(run), "--threads", "1"])
    assert result.exit_code == 0, result.output
    data = checkpoint.read(run / "checkpoint.pt")["data"]
    assert data["valid_folder"] == str(folder.resolve()) and data["valid_images"] == len(scan_folder(folder))
    refused = CliRunner().invoke(app, ["train", "--data", str(folder), "--valid-data", str(folder), "--out", str(tmp_path / "r")])
    assert refused.exit_code != 0 and "--valid-data validates generated training" in refused.output


def test_prefetched_epochs_equal_the_ones_drawn_in_process() -> None:
    plain = GeneratedSource("knu", "mixed", seed=9, epoch_size=5, valid_size=2)
    ahead = GeneratedSource("knu", "mixed", seed=9, epoch_size=5, valid_size=2, prefetch=True)
    try:
        for epoch in (0, 1, 2, 5):  # 1 and 2 come from the worker; 5 breaks the sequence and is drawn here
            got, want = ahead.epoch(epoch), plain.epoch(epoch)
            assert got.labels == want.labels and torch.equal(got.images, want.images)
    finally:
        ahead.close()
    assert ahead.epoch(3).labels == plain.epoch(3).labels  # closed: draws in process again


def test_a_small_folder_is_repeated_to_fill_an_epoch(folder: Path) -> None:
    plain = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0)
    filled = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0, epoch_size=5 * len(plain.train) + 3)
    assert len(plain.epoch(0)) == len(plain.train)
    assert len(filled.epoch(0)) == 5 * len(plain.train)
    assert filled.epoch(0).labels[: len(plain.train)] == filled.epoch(0).labels[-len(plain.train) :] == plain.train.labels
    assert torch.equal(filled.epoch(0).images[-len(plain.train) :], plain.train.images)
    assert filled.describe()["epoch_size"] == 5 * len(plain.train) + 3


def test_noise_overlay_adds_fresh_noise_to_a_share_of_each_epoch_only(folder: Path) -> None:
    plain = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0, epoch_size=1000)
    noisy = FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0, epoch_size=1000, noise_overlay=0.5)
    base, first = plain.epoch(0).images, noisy.epoch(0).images
    assert noisy.epoch(0).labels == plain.epoch(0).labels
    assert torch.all(first >= base) and set(first.unique().tolist()) <= {0.0, 1.0}  # ink is only added, still binary
    changed = (first != base).flatten(1).any(dim=1).float().mean().item()
    assert 0.4 < changed < 0.6  # about half the images
    assert torch.equal(noisy.epoch(0).images, first)  # the same epoch draws the same noise (so --resume does)
    assert not torch.equal(noisy.epoch(1).images, first)  # and the next epoch new noise
    assert torch.equal(noisy.valid.images, plain.valid.images)
    assert torch.equal(plain.epoch(3).images, base)
    reopened = open_source(noisy.describe())
    assert noisy.describe()["noise_overlay"] == 0.5 and torch.equal(reopened.epoch(1).images, noisy.epoch(1).images)
    with pytest.raises(TrainingError, match="noise_overlay"):
        FolderSource(folder, KNU, case="keep", valid_fraction=0.1, seed=0, noise_overlay=1.5)


def test_cli_overlays_noise_on_labelled_folders_by_default_and_only_there(tmp_path: Path, folder: Path) -> None:
    runner = CliRunner()
    for run, extra, share in (("default", [], 0.5), ("none", ["--noise-overlay", "0"], 0.0)):
        result = runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / run), "--max-epochs", "1", *extra])
        assert result.exit_code == 0, result.output
        assert checkpoint.read(tmp_path / run / "checkpoint.pt")["data"]["noise_overlay"] == share
    refused = runner.invoke(app, ["train", "--out", str(tmp_path / "generated"), "--noise-overlay", "0.5"])
    assert refused.exit_code == 2 and "--noise-overlay draws over a --data folder" in refused.output
