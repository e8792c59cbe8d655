"""``knucaptcha train``: train a model on a labelled folder or on generated captchas, export it to ONNX.

A folder's input format (channel, size, levels) is read from its images unless
given (:mod:`knucaptcha.folder_spec`) and printed on the first line, with the
charset and length from its labels; generated data brings its style's.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import typer

from ..errors import ConfigError, TrainingError
from ..spec import BACKGROUNDS, CHANNEL_MODES, Background, ChannelMode
from .app import app, console, progress

if TYPE_CHECKING:
    from ..folder_spec import PreprocessRequest
    from ..train import CRNN, LoadedModel
    from ..train.data import FolderSource

EXIT_INTERRUPTED = 130
RESUMABLE = {"max_epochs", "threads"}
"""Options that may change when resuming; the rest come from the run's checkpoint."""
Channel = Enum("Channel", {mode: mode for mode in CHANNEL_MODES}, type=str)  # type: ignore[misc]
"""The ``--channel`` choices, built from :data:`knucaptcha.spec.CHANNEL_MODES` so they cannot drift."""
BackgroundChoice = Enum("BackgroundChoice", {name: name for name in BACKGROUNDS}, type=str)  # type: ignore[misc]
"""The ``--background`` choices, from :data:`knucaptcha.spec.BACKGROUNDS`."""
FOLDER_ONLY = ("channel", "size", "binarize", "threshold", "opaque_at", "background", "symbols", "strict_images")
"""Options that describe how a --data folder is read; generated data brings its style's."""


@app.command()
def train(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint, history.csv, curves.png, model.onnx."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Labelled image folder; without it, train on freshly generated captchas."
    ),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Architecture: fast (default), wide (1.5x slower, more capacity), wide-conv (the shipped "
        "model's: wide's features read by convolutions instead of an LSTM) or seed (the notebook's). With --init: "
        "the model's own, or another whose shared layers start from it."
    ),
    style: str = typer.Option(
        "knu", "--style", help="Generated data style (knu, knu-varied, knu2021, knu-unseen); not with --data."
    ),
    difficulty: str = typer.Option("mixed", "--difficulty", help="Generated data difficulty."),
    mix: Optional[str] = typer.Option(
        None, "--mix", help="STYLE:SHARE: draw that share of the generated data from a second style (e.g. knu-varied:0.25)."
    ),
    fonts: Optional[Path] = typer.Option(
        None, "--fonts", help="Folder of .ttf/.otf fonts to draw generated data with instead of the style's."
    ),
    mix_fonts: Optional[Path] = typer.Option(
        None, "--mix-fonts", help="Folder of fonts to draw the --mix style with instead of its own (scripts/setup_training_fonts.sh)."
    ),
    max_epochs: int = typer.Option(500, "--max-epochs", help="Upper bound on epochs."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per step."),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Adam learning rate (default: 1e-3; 1e-4 with --init, gentle enough for fine-tuning; "
        "1e-3 from the bundled opaque reader)."
    ),
    patience: int = typer.Option(
        10, "--patience", help="Stop after this many epochs without a better validation accuracy (ties: loss; counted after take-off)."
    ),
    plateau_patience: int = typer.Option(
        50, "--plateau-patience", help="Before take-off, give up after this many epochs without a better validation loss."
    ),
    min_epochs: int = typer.Option(0, "--min-epochs", help="Epochs always trained."),
    lr_patience: int = typer.Option(5, "--lr-patience", help="Halve the learning rate after this many epochs without progress (0: never)."),
    seed: int = typer.Option(0, "--seed", help="Seeds initialization, split, shuffling, augmentation, generated data."),
    augment: Optional[bool] = typer.Option(
        None, "--augment/--no-augment", help="Affine jitter and noise on training images (default: on with --data, off for generated data)."
    ),
    noise_overlay: Optional[float] = typer.Option(
        None, "--noise-overlay", help="Share of --data training images drawn over with fresh generated noise each epoch (default: 0.5)."
    ),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction", help="Share of --data held out for validation."),
    epoch_size: int = typer.Option(4000, "--epoch-size", help="Images per epoch: generated ones, or a smaller --data training split repeated (augmented anew) to about this many."),
    valid_size: int = typer.Option(400, "--valid-size", help="Generated validation images."),
    valid_data: Optional[Path] = typer.Option(
        None, "--valid-data", help="Validate generated training on this labelled folder instead (e.g. real captchas, when training in their font)."
    ),
    case: str = typer.Option("keep", "--case", help="Label case for --data and --valid-data: keep, upper or lower."),
    channel: Optional[Channel] = typer.Option(
        None, "--channel", help="--data: read the alpha channel, gray (darkness on white) or auto (alpha where an "
        "image is transparent). Default: alpha if every image is transparent, else gray."
    ),
    size: Optional[str] = typer.Option(
        None, "--size", help="--data: input WxH. Default: height 48 (the images' own if smaller), width from the "
        "median aspect ratio, a multiple of the model's time stride."
    ),
    binarize: Optional[bool] = typer.Option(
        None, "--binarize/--no-binarize", help="--data: map ink to 0/1 before resizing (default: for alpha only)."
    ),
    threshold: Optional[int] = typer.Option(
        None, "--threshold", help="--data: ink above this (0..254) binarizes to 1 (default 0; implies --binarize)."
    ),
    opaque_at: Optional[int] = typer.Option(
        None, "--opaque-at", help="--data: a third level: ink from this (up to 255) is 1, fainter ink 0.5 "
        "(default off; implies --binarize)."
    ),
    background: Optional[BackgroundChoice] = typer.Option(
        None, "--background", help="--data: flatten (take out the paper's tint or gradient, turn light-on-dark "
        "round, stretch the drawing to full ink) or keep. Default: flatten for gray, keep for alpha and auto."
    ),
    symbols: Optional[str] = typer.Option(
        None, "--symbols", help="--data: the charset, in class order (default: the labels' symbols, sorted); "
        "must hold every symbol of the labels."
    ),
    strict_images: bool = typer.Option(
        False, "--strict-images", help="--data: refuse a folder with unreadable images instead of skipping them."
    ),
    init: Optional[str] = typer.Option(
        None, "--init", help="Fine-tune from a checkpoint, a run folder, or a bundled model ('default', 'knu2021', "
        "'opaque'); 'none' trains from scratch. Default: from scratch, but a --data folder of opaque images starts "
        "from the bundled 'opaque' reader."
    ),
    warmup: Optional[int] = typer.Option(
        None, "--warmup", help="Steps of linear learning-rate warm-up (default: 200 with --data, else 0)."
    ),
    max_minutes: Optional[float] = typer.Option(
        None, "--max-minutes", help="Stop before an epoch that would end past this many minutes of training "
        "(default: 10 with --data, else no limit; 0: no limit)."
    ),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help="AdamW weight decay (default: 0.01 with --data, else 0)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint, with its own settings (only --max-epochs and --threads may change)."),
    threads: int = typer.Option(0, "--threads", help="PyTorch CPU threads (0: PyTorch's default)."),
) -> None:
    """Train a CRNN with CTC loss; write RUN/model.onnx, ready for `knucaptcha solve --model`."""
    import torch

    from ..train import TrainConfig, count_parameters, load_checkpoint, start
    from ..folder_spec import FOLDER_READER, NO_INIT
    from ..train.config import FINE_TUNE_LR, FOLDER_MAX_MINUTES, FOLDER_WARMUP, FOLDER_WEIGHT_DECAY
    from ..train.data import NOISE_OVERLAY, GeneratedSource
    from ..train.trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    observer = _bar_observer()
    if resume:
        fixed = sorted(
            f"--{name.replace('_', '-')}"
            for name in ctx.params
            if name not in RESUMABLE | {"out", "resume"} and _given(ctx, name)
        )
        if fixed:
            raise TrainingError(f"--resume continues with the run's own settings; drop {', '.join(fixed)}")
        trainer = Trainer.resume(
            out, max_epochs=max_epochs if _given(ctx, "max_epochs") else None, observer=observer, prefetch=True
        )
        console.print(f"resuming {out} after epoch {trainer.epoch}")
        carried = ""
    else:
        if data is not None and fonts is not None:
            raise ConfigError("--fonts draws generated captchas; a --data folder brings its own images")
        if data is None and noise_overlay is not None:
            raise ConfigError("--noise-overlay draws over a --data folder's images; generated captchas have their own noise")
        if data is not None and mix is not None:
            raise ConfigError("--mix mixes generated styles; a --data folder brings its own images")
        if mix is None and mix_fonts is not None:
            raise ConfigError("--mix-fonts draws the --mix style; give --mix STYLE:SHARE too")
        if data is not None and valid_data is not None:
            raise ConfigError("--valid-data validates generated training; --data holds out its own --valid-fraction")
        if data is not None and _given(ctx, "style"):
            raise ConfigError(
                "--style draws generated captchas; a --data folder is read in its own format "
                "(inferred, or --channel, --size, --binarize, --threshold, --background)"
            )
        folder_only = [f"--{name.replace('_', '-')}" for name in FOLDER_ONLY if _given(ctx, name)]
        if data is None and folder_only:
            raise ConfigError(
                f"{', '.join(folder_only)}: how a --data folder is read; generated captchas come in their --style's "
                "format"
            )
        if data is not None:
            from ..folder_spec import PreprocessRequest

            mode = None if channel is None else cast(ChannelMode, channel.value)
            treatment = None if background is None else cast(Background, background.value)
            request = PreprocessRequest(mode, _size(size), binarize, threshold, opaque_at, treatment)
            source, loaded = _folder_source(
                data,
                request,
                init,
                preset=preset,
                case=case,
                valid_fraction=valid_fraction,
                seed=seed,
                epoch_size=epoch_size,
                noise_overlay=NOISE_OVERLAY if noise_overlay is None else noise_overlay,
                symbols=symbols,
                strict_images=strict_images,
            )
        else:
            with console.status("reading the validation folder" if valid_data else "generating the validation set"):
                source = GeneratedSource(
                    style,
                    difficulty,
                    seed=seed,
                    epoch_size=epoch_size,
                    valid_size=valid_size,
                    prefetch=True,
                    font_dir=fonts,
                    valid_folder=valid_data,
                    case=case,
                    mix=None if mix is None else _style_share(mix),
                    mix_font_dir=mix_fonts,
                )
            loaded = None if init in (None, NO_INIT) else (init, load_checkpoint(init))
        folder = data is not None
        # A broad reader is narrowed to the folder's symbols and has more to learn than a site's model.
        from_reader = loaded is not None and loaded[0] == FOLDER_READER
        if lr is None:
            lr = FINE_TUNE_LR if loaded and not from_reader else TrainConfig.lr
        config = TrainConfig(
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience,
            plateau_patience=plateau_patience,
            min_epochs=min_epochs,
            lr_patience=lr_patience,
            seed=seed,
            augment=folder if augment is None else augment,
            valid_fraction=valid_fraction,
            epoch_size=epoch_size,
            valid_size=valid_size,
            warmup=(FOLDER_WARMUP if folder else 0) if warmup is None else warmup,
            weight_decay=(FOLDER_WEIGHT_DECAY if folder else 0.0) if weight_decay is None else weight_decay,
            max_minutes=(FOLDER_MAX_MINUTES if folder else 0.0) if max_minutes is None else max_minutes,
        )
        trainer = start(out, source, config, preset=preset, init=loaded, keep_symbols=not from_reader, observer=observer)
        carried = "" if loaded is None else _carried(loaded, trainer.model, trainer.preset)
    spec = trainer.spec
    console.print(
        f"model: preset {trainer.preset}, {count_parameters(trainer.model):,} parameters; "
        f"{len(spec.charset)} symbols + blank, up to {spec.max_length} long; "
        f"input {spec.preprocess.width}x{spec.preprocess.height} {spec.preprocess.mode}"
        + carried,
        soft_wrap=True,
    )
    with observer.bar:
        result = trainer.fit()
    if result.stopped == "interrupted":
        console.print(
            f"interrupted: the checkpoint after epoch {result.epochs} is in {out / 'checkpoint.pt'}; "
            f"continue with: knucaptcha train --out {out} --resume",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    console.print(
        f"{result.stopped} after {result.epochs} epochs ({result.seconds:.0f} s); best epoch {result.best_epoch}: "
        f"validation loss {result.best_val_loss:.4f}, sequence accuracy {result.best_val_accuracy:.1%}",
        soft_wrap=True,
    )
    typer.echo(str(out / "model.onnx"))


def _carried(loaded: tuple[str, LoadedModel], model: CRNN, preset: str) -> str:
    """What a model of another preset than its ``--init`` takes from it, for the model line ("" when the same)."""
    from ..train.checkpoint import shared_weights

    reference, source = loaded
    if preset == source.preset:
        return ""
    carried = sum(tensor.numel() for tensor in shared_weights(source.model, model).values())
    return f"; {carried:,} of them from {reference} (preset {source.preset}: the layers both have), the rest new"


def _folder_source(
    data: Path,
    request: PreprocessRequest,
    init: str | None,
    *,
    preset: str | None,
    case: str,
    valid_fraction: float,
    seed: int,
    epoch_size: int,
    noise_overlay: float,
    symbols: str | None,
    strict_images: bool,
) -> tuple[FolderSource, tuple[str, LoadedModel] | None]:
    """The folder read in the format its images (or ``request``, or the model it starts from) call for,
    and that model (:func:`~knucaptcha.folder_spec.starting_point`: ``init``, or the opaque reader).

    Prints the first line, the format and where each choice came from, and
    then what was skipped.
    """
    from ..folder_spec import FOLDER_READER, infer_input, init_input, reader_input, starting_point
    from ..folder_stats import folder_stats, listed, unreadable_entries
    from ..train import DEFAULT_PRESET, load_checkpoint, preset as preset_arch
    from ..train.data import FolderSource

    stats = folder_stats(data, case=case)
    reference = starting_point(init, stats)
    loaded = None if reference is None else (reference, load_checkpoint(reference))
    if loaded is None:
        found = infer_input(stats, request, stride=preset_arch(preset or DEFAULT_PRESET).time_stride)
        origin = "from scratch"
    elif reference == FOLDER_READER:
        found = reader_input(reference, loaded[1].spec.preprocess, stats, request, stride=loaded[1].arch.time_stride)
        origin = f"from the bundled {reference} reader"
        if init is None:
            origin += " (the default for opaque images; --init none trains from scratch)"
    else:
        found = init_input(reference, loaded[1].spec.preprocess, stats, request)
        origin = f"from --init {reference}"
    source = FolderSource(
        data,
        found.preprocess,
        case=case,
        valid_fraction=valid_fraction,
        seed=seed,
        epoch_size=epoch_size,
        noise_overlay=noise_overlay,
        symbols=symbols,
        strict_images=strict_images,
        stats=stats,
    )
    charset, max_length = source.vocabulary()
    line = found.describe(charset, max_length, "--symbols" if symbols else "from the labels")
    _plain(f"{data}: {len(source.train) + len(source.valid)} images; {line}; {origin}")
    if stats.unreadable:
        _plain(
            f"skipped {len(stats.unreadable)} unreadable image(s) (--strict-images refuses them): "
            f"{listed(unreadable_entries(stats.unreadable))}"
        )
    if stats.unlabelled:
        _plain(f"skipped {len(stats.unlabelled)} unlabelled file(s): {listed(list(stats.unlabelled))}")
    return source, loaded


def _plain(line: str) -> None:
    """``line`` on stderr as it is: file names may hold brackets that Rich would take for markup."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _size(value: str | None) -> tuple[int, int] | None:
    """``WxH`` of ``--size`` as ``(width, height)``; :class:`ConfigError` when malformed."""
    if value is None:
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ConfigError(f"--size takes WIDTHxHEIGHT such as 160x48, not {value!r}")
    return int(width), int(height)


def _style_share(value: str) -> tuple[str, float]:
    """``STYLE:SHARE`` of ``--mix`` as a pair; :class:`ConfigError` when malformed."""
    name, _, share = value.rpartition(":")
    try:
        return name, float(share)
    except ValueError:
        raise ConfigError(f"--mix takes STYLE:SHARE such as knu-varied:0.25, not {value!r}") from None


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not left at its default)."""
    # By name: Typer vendors its own copy of click, whose ParameterSource enum is not click's.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _bar_observer():  # type: ignore[no-untyped-def]
    """A trainer observer drawing one Rich progress bar per epoch and a line per finished epoch."""
    from ..train import Observer

    class BarObserver(Observer):
        def __init__(self) -> None:
            self.bar = progress()
            self.task: Optional[int] = None

        def epoch_started(self, epoch: int, steps: int) -> None:
            self.task = self.bar.add_task(f"epoch {epoch}", total=steps)

        def step_done(self) -> None:
            if self.task is not None:
                self.bar.advance(self.task)

        def epoch_done(self, record, improved: bool) -> None:  # type: ignore[no-untyped-def]
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.bar.console.print(
                f"epoch {record.epoch:3d}  loss {record.loss:8.4f}  val loss {record.val_loss:8.4f}  "
                f"val acc {record.val_accuracy:6.1%}  val CER {record.val_cer:6.3f}  lr {record.lr:.1e}  "
                f"{record.seconds:5.1f}s{'  *' if improved else ''}",
                soft_wrap=True,
            )

    return BarObserver()
