"""One row per epoch: what the trainer measured, kept in the checkpoint and written to ``history.csv``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .checkpoint import atomic_write


@dataclass(frozen=True)
class EpochRecord:
    """Measurements of one epoch (1-based), on the validation set after its last step."""

    epoch: int
    loss: float
    val_loss: float
    val_accuracy: float
    val_cer: float
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def write_history(history: Sequence[EpochRecord], path: Path) -> Path:
    """Write ``history`` as CSV with a header row, atomically."""
    names = [f.name for f in fields(EpochRecord)]

    def write(temp: Path) -> None:
        with open(temp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(record.to_dict() for record in history)

    atomic_write(path, write)
    return path
