"""Training with PyTorch: the CRNN presets, the trainer, checkpoints and ONNX export.

Needs the ``train`` extra (torch, onnx). Nothing outside this package imports
torch; the CLI imports it inside the ``train`` command only.
"""

from __future__ import annotations

from .checkpoint import LoadedModel, adapt, load_checkpoint
from .config import DEFAULT_PRESET, PRESETS, ArchConfig, TrainConfig, preset
from .data import FolderSource, GeneratedSource, augment
from .export import check_parity, export_checkpoint_onnx, export_onnx
from .history import EpochRecord
from .model import CRNN, Probabilities, count_parameters
from .trainer import Observer, Trainer, TrainResult, start

__all__ = [
    "CRNN",
    "DEFAULT_PRESET",
    "PRESETS",
    "Probabilities",
    "ArchConfig",
    "EpochRecord",
    "FolderSource",
    "GeneratedSource",
    "LoadedModel",
    "Observer",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "adapt",
    "augment",
    "check_parity",
    "count_parameters",
    "export_checkpoint_onnx",
    "export_onnx",
    "load_checkpoint",
    "preset",
    "start",
]
