"""The training curves as a PNG: losses on the left, validation accuracy and CER on the right."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .checkpoint import atomic_write
from .history import EpochRecord


def plot_curves(history: Sequence[EpochRecord], path: Path) -> Path:
    """Draw ``history`` to ``path`` (matplotlib's Agg backend: no display needed)."""
    from matplotlib.figure import Figure

    epochs = [r.epoch for r in history]
    figure = Figure(figsize=(10, 4), dpi=100)
    losses, scores = figure.subplots(1, 2)
    losses.plot(epochs, [r.loss for r in history], label="training loss")
    losses.plot(epochs, [r.val_loss for r in history], label="validation loss")
    losses.set_xlabel("epoch")
    losses.set_ylabel("CTC loss")
    losses.set_yscale("log")
    losses.legend()
    scores.plot(epochs, [r.val_accuracy for r in history], label="sequence accuracy")
    scores.plot(epochs, [r.val_cer for r in history], label="CER")
    scores.set_xlabel("epoch")
    scores.set_ylim(0, 1)
    scores.legend()
    figure.tight_layout()
    atomic_write(path, lambda temp: figure.savefig(temp, format="png"))
    return path
