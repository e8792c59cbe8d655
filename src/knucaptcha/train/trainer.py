"""The training loop: AdamW on CTC loss, early stopping on validation accuracy after take-off, a checkpoint every epoch.

A run lives in one folder::

    checkpoint.pt   everything --resume needs (written atomically every epoch)
    history.csv     one row per epoch
    model.pt        best weights with spec and architecture (for --init and other exporters)
    model.onnx      the self-describing exported model
    curves.png      the training curves

Every epoch starts from RNG states derived from (seed, epoch), so a resumed
run continues exactly as an uninterrupted one would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..charset import BLANK
from ..ctc import greedy_decode_batch, softmax
from ..errors import TrainingError
from ..metrics import score
from ..spec import ModelSpec
from . import checkpoint
from .checkpoint import CHECKPOINT_NAME, MODEL_NAME, LoadedModel, adapt, adaptable
from .config import DEFAULT_PRESET, ArchConfig, TrainConfig, preset as preset_arch
from .data import DataSource, LabelledTensors, augment, encode_targets, open_source
from .export import export_onnx, run_metadata
from .history import EpochRecord, write_history
from .model import CRNN

ONNX_NAME = "model.onnx"
HISTORY_NAME = "history.csv"
CURVES_NAME = "curves.png"
GRADIENT_CLIP = 5.0  # LSTMs on CTC occasionally see a gradient spike that would undo the take-off
EVAL_BATCH = 256


class Observer:
    """Hooks for showing progress (the CLI draws a Rich bar); the defaults do nothing."""

    def epoch_started(self, epoch: int, steps: int) -> None:
        """Epoch ``epoch`` (1-based) begins and will take ``steps`` steps."""

    def step_done(self) -> None:
        """One optimizer step finished."""

    def epoch_done(self, record: EpochRecord, improved: bool) -> None:
        """Epoch ``record.epoch`` was validated; ``improved`` if it is the new best."""


@dataclass
class Stopping:
    """Early stopping and learning-rate decay state (saved in the checkpoint)."""

    best_loss: float = math.inf
    best_epoch: int = 0
    best_accuracy: float = 0.0
    best_cer: float = math.inf
    wait: int = 0
    lr_wait: int = 0
    took_off: bool = False


@dataclass(frozen=True)
class TrainResult:
    """How a run ended. ``stopped`` is ``early stopping``, ``max epochs`` or ``interrupted``."""

    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    stopped: str
    seconds: float


def ctc_loss(logits: torch.Tensor, labels: tuple[str, ...], spec: ModelSpec) -> torch.Tensor:
    """Mean per-image CTC loss (the seed's Keras ``ctc_batch_cost``, averaged) of logits ``(N, T, K)``."""
    targets, target_lengths = encode_targets(labels, spec.charset)
    n, steps, _ = logits.shape
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (N, T, K) -> (T, N, K), as CTCLoss wants
    input_lengths = torch.full((n,), steps, dtype=torch.long)
    total = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=BLANK, reduction="sum", zero_infinity=True)
    return total / n


class Trainer:
    """Trains one model in one run folder. Build it with :func:`start` or :meth:`Trainer.resume`."""

    def __init__(
        self,
        run_dir: Path,
        model: CRNN,
        spec: ModelSpec,
        arch: ArchConfig,
        preset: str,
        config: TrainConfig,
        source: DataSource,
        notes: dict[str, Any] | None = None,
        observer: Observer | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.model = model
        self.spec = spec
        self.arch = arch
        self.preset = preset
        self.config = config
        self.source = source
        self.notes = dict(notes or {})
        self.observer = observer or Observer()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self.stopping = Stopping()
        self.best_weights = _copy(model.state_dict())

    @classmethod
    def resume(
        cls, run_dir: Path, *, max_epochs: int | None = None, observer: Observer | None = None, prefetch: bool = False
    ) -> Trainer:
        """Continue the run in ``run_dir`` from its last checkpoint (optionally with a new epoch limit).

        ``prefetch``: draw generated epochs ahead in a worker process (see :class:`GeneratedSource`).
        """
        path = Path(run_dir) / CHECKPOINT_NAME
        if not path.is_file():
            raise TrainingError(f"{run_dir} holds no {CHECKPOINT_NAME} to resume from")
        state = checkpoint.read(path)
        spec = ModelSpec.from_metadata(state["spec"])
        arch = ArchConfig.from_dict(state["arch"])
        config = TrainConfig.from_dict(state["config"])
        if max_epochs is not None:
            config = replace(config, max_epochs=max_epochs)
        model = CRNN(arch, spec)
        model.load_state_dict(state["model"])
        source = open_source(state["data"], prefetch=prefetch)
        trainer = cls(run_dir, model, spec, arch, state["preset"], config, source, state["notes"], observer)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.epoch = state["epoch"]
        trainer.history = [EpochRecord(**record) for record in state["history"]]
        trainer.stopping = Stopping(**state["stopping"])
        trainer.best_weights = state["best_model"]
        return trainer

    # -- the loop ---------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until early stopping or ``max_epochs``, then export the best weights.

        Ctrl-C ends the run cleanly: the last completed epoch's checkpoint is
        already on disk, and the result says ``interrupted``.
        """
        if not self.history:
            self._save()  # a run folder always holds a checkpoint, even if stopped in epoch 1
        try:
            while not self.finished:
                self.run_epoch()
        except KeyboardInterrupt:
            return self._result("interrupted")
        finally:
            self.source.close()
        self.finish()
        return self._result(
            "early stopping" if self._should_stop() else "time limit" if self._out_of_time() else "max epochs"
        )

    @property
    def finished(self) -> bool:
        """Whether early stopping has triggered, ``max_epochs`` are done, or one more epoch would overrun ``max_minutes``."""
        return self.epoch >= self.config.max_epochs or self._should_stop() or self._out_of_time()

    def _out_of_time(self) -> bool:
        """Whether one more epoch as long as the last would end past ``max_minutes``."""
        if not self.config.max_minutes or not self.history:
            return False
        return sum(r.seconds for r in self.history) + self.history[-1].seconds > self.config.max_minutes * 60

    def run_epoch(self) -> EpochRecord:
        """Train one epoch, validate, update early stopping and save the checkpoint."""
        started = time.perf_counter()
        data = self.source.epoch(self.epoch)
        seed = self.config.seed * 1_000_003 + self.epoch
        torch.manual_seed(seed)  # dropout masks
        generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation
        steps = math.ceil(len(data) / self.config.batch_size)
        self.observer.epoch_started(self.epoch + 1, steps)
        self.model.train()
        total = 0.0
        for step, batch in enumerate(data.batches(self.config.batch_size, generator), start=self.epoch * steps):
            if step < self.config.warmup:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.config.lr * (step + 1) / self.config.warmup
            images = batch.images
            if self.config.augment:
                images = augment(images, generator, self.spec.preprocess)
            loss = ctc_loss(self.model(images), batch.labels, self.spec)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRADIENT_CLIP)
            self.optimizer.step()
            total += loss.item() * len(batch)
            self.observer.step_done()
        val_loss, val_accuracy, val_cer = self.validate(self.source.valid)
        self.epoch += 1
        record = EpochRecord(
            epoch=self.epoch,
            loss=total / len(data),
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            val_cer=val_cer,
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - started,
        )
        self.history.append(record)
        self.observer.epoch_done(record, self._update_stopping(record))
        self._save()
        return record

    def validate(self, data: LabelledTensors) -> tuple[float, float, float]:
        """Loss, sequence accuracy and CER of the current weights on ``data`` (greedy decoding)."""
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.model(batch.images) for batch in data.batches(EVAL_BATCH)])  # (N, T, K)
            loss = ctc_loss(logits, data.labels, self.spec).item()
        predictions = greedy_decode_batch(softmax(logits.numpy()), self.spec.charset)
        scores = score(list(data.labels), [p.text for p in predictions])
        return loss, scores.sequence_accuracy, scores.cer

    def _update_stopping(self, record: EpochRecord) -> bool:
        s = self.stopping
        if not s.took_off and record.val_accuracy > 0:
            s.took_off, s.wait = True, 0  # the plateau's patience is spent; the real one starts now
        improved = _better(record, s)
        if improved:
            s.best_loss, s.best_epoch = record.val_loss, record.epoch
            s.best_accuracy, s.best_cer = record.val_accuracy, record.val_cer
            s.wait = s.lr_wait = 0
            self.best_weights = _copy(self.model.state_dict())
        elif record.epoch > self.config.min_epochs:
            s.wait += 1
            if s.took_off:
                s.lr_wait += 1
        if self.config.lr_patience and s.lr_wait >= self.config.lr_patience:
            for group in self.optimizer.param_groups:
                group["lr"] /= 2
            s.lr_wait = 0
        return improved

    def _should_stop(self) -> bool:
        s = self.stopping
        return s.wait >= (self.config.patience if s.took_off else self.config.plateau_patience)

    # -- files --------------------------------------------------------------

    def _save(self) -> None:
        state = checkpoint.describe(self.model, self.spec, self.arch, self.preset)
        state.update(
            best_model=self.best_weights,
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            stopping=asdict(self.stopping),
            history=[record.to_dict() for record in self.history],
            config=self.config.to_dict(),
            data=self.source.describe(),
            notes=self.notes,
        )
        checkpoint.save(state, self.run_dir / CHECKPOINT_NAME)
        write_history(self.history, self.run_dir / HISTORY_NAME)

    def summary(self) -> dict[str, Any]:
        """What the exported model records about its training (``knucaptcha.training``)."""
        from .. import __version__

        s = self.stopping
        return {
            "epochs": self.epoch,
            "best_epoch": s.best_epoch,
            "best_val_loss": s.best_loss,
            "best_val_accuracy": s.best_accuracy,
            "best_val_cer": s.best_cer,
            "data": self.source.describe(),
            "seed": self.config.seed,
            "config": self.config.to_dict(),
            "duration_seconds": round(sum(r.seconds for r in self.history), 1),
            "knucaptcha_version": __version__,
            **self.notes,
        }

    def finish(self) -> None:
        """Restore the best weights; write ``model.pt``, ``model.onnx`` (parity-checked) and ``curves.png``."""
        from .plots import plot_curves

        self.model.load_state_dict(self.best_weights)
        summary = self.summary()
        state = checkpoint.describe(self.model, self.spec, self.arch, self.preset)
        checkpoint.save({**state, "training": summary}, self.run_dir / MODEL_NAME)
        export_onnx(self.model, self.spec, self.run_dir / ONNX_NAME, run_metadata(self.preset, self.arch, summary))
        if self.history:
            plot_curves(self.history, self.run_dir / CURVES_NAME)

    def _result(self, stopped: str) -> TrainResult:
        s = self.stopping
        seconds = sum(r.seconds for r in self.history)
        return TrainResult(self.run_dir, self.epoch, s.best_epoch, s.best_loss, s.best_accuracy, stopped, seconds)


def start(
    run_dir: Path,
    source: DataSource,
    config: TrainConfig,
    *,
    preset: str | None = None,
    init: tuple[str, LoadedModel] | None = None,
    keep_symbols: bool = True,
    observer: Observer | None = None,
) -> Trainer:
    """A trainer for a new run in ``run_dir`` (which must not hold one yet).

    Args:
        source: the data; its vocabulary and preprocessing define the model's spec.
        preset: the architecture (None: ``fast``, or with ``init`` the model's own).
        init: ``(reference, loaded model)`` to fine-tune from; its preprocessing
            is kept (but for the input width and background treatment, which
            the data may change), its vocabulary is mapped onto the data's, and
            with a ``preset`` of another architecture the weights the two share
            are carried over (:func:`~knucaptcha.train.checkpoint.adapt`).
        keep_symbols: with ``init``, keep the model's symbols the data lacks
            (see :func:`~knucaptcha.train.checkpoint.adapt`).

    Raises:
        TrainingError: the folder already holds a run, or ``init`` preprocesses
            images differently from the data.
    """
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_NAME).exists():
        raise TrainingError(f"{run_dir} already holds a training run; pass --resume or choose another --out")
    charset, max_length = source.vocabulary()
    torch.manual_seed(config.seed)  # weight initialization
    notes: dict[str, Any] = {}
    if init is None:
        preset = preset or DEFAULT_PRESET
        arch = preset_arch(preset)
        spec = ModelSpec(charset, source.preprocess, max_length)
        model = CRNN(arch, spec)
    else:
        reference, loaded = init
        if not adaptable(loaded.spec.preprocess, source.preprocess):
            raise TrainingError(
                f"{reference} reads images as {loaded.spec.preprocess}, but the data needs {source.preprocess}"
            )
        if preset is None or preset == loaded.preset:
            arch, preset = loaded.arch, loaded.preset
        else:
            arch = preset_arch(preset)
        model, spec = adapt(
            loaded, charset, max_length, keep_symbols=keep_symbols, preprocess=source.preprocess, arch=arch
        )
        notes["init"] = str(reference)
    return Trainer(run_dir, model, spec, arch, preset, config, source, notes, observer)


def _better(record: EpochRecord, best: Stopping) -> bool:
    """Whether ``record`` beats the best epoch so far.

    Before take-off every accuracy is 0, so only the loss can show progress.
    After it, what counts is what the user is after: a higher sequence
    accuracy, with the loss breaking ties. The loss alone is a poor judge
    there: on the small validation splits of fine-tuning it wanders while the
    accuracy still climbs, and stopping on it ended runs after a dozen epochs.
    """
    if record.val_accuracy > best.best_accuracy:
        return True
    return record.val_accuracy == best.best_accuracy and record.val_loss < best.best_loss


def _copy(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in weights.items()}
