"""Test accuracy after every epoch of fine-tuning on a labelled folder: a fine-tuning recipe judged without early stopping's luck.

    python benchmarks/fine_tune_trace.py --data out/adapt-libsans-v6/train-200 --test out/adapt-libsans-v6/test
    python benchmarks/fine_tune_trace.py ... --noise-overlay 0 --seed 1      # the same without the overlay

The adaptation benchmark fine-tunes as a user would, and early stopping picks
the epoch on the folder's own validation split: 20 images for 200 labels, so
one run's figure moves by about a point with the epoch it happens to pick.
This trains for a fixed number of epochs (``--init`` as ``knucaptcha train``
would, its fine-tuning learning rate, augmentation and ``--noise-overlay``) and
scores every epoch on a separate labelled test folder; the mean over epochs
compares two recipes with far less noise than two early-stopped runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from knucaptcha.labels import scan_folder
from knucaptcha.preprocess import to_batch
from knucaptcha.train import EpochRecord, Observer, TrainConfig, Trainer, load_checkpoint, start
from knucaptcha.train.config import FINE_TUNE_LR
from knucaptcha.train.data import NOISE_OVERLAY, FolderSource, LabelledTensors


class TestScores(Observer):
    """Scores the trainer's current weights on ``test`` after each epoch and prints the curve."""

    def __init__(self, test: LabelledTensors):
        self.test = test
        self.accuracies: list[float] = []
        self.trainer: Trainer | None = None  # set once built: the trainer needs its observer first

    def epoch_done(self, record: EpochRecord, improved: bool) -> None:
        assert self.trainer is not None
        _, accuracy, _ = self.trainer.validate(self.test)
        self.accuracies.append(accuracy)
        picked = "  (early stopping's pick so far)" if improved else ""
        print(f"epoch {record.epoch:3d}  validation {record.val_accuracy:6.1%}  test {accuracy:6.2%}{picked}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled folder to fine-tune on")
    parser.add_argument("--test", type=Path, required=True, help="labelled folder to score every epoch on")
    parser.add_argument("--init", default="default", help="model to fine-tune (default: default)")
    parser.add_argument("--noise-overlay", type=float, default=NOISE_OVERLAY, help=f"default {NOISE_OVERLAY}")
    parser.add_argument("--epochs", type=int, default=30, help="epochs to train, none skipped (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="split, shuffling, augmentation and noise (default 0)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    torch.set_num_threads(1)
    loaded = load_checkpoint(args.init)
    source = FolderSource(args.data, loaded.spec.preprocess, case="keep", valid_fraction=0.1, seed=args.seed,
                          epoch_size=TrainConfig.epoch_size, noise_overlay=args.noise_overlay)
    items = scan_folder(args.test)
    if not items:
        parser.error(f"--test {args.test} holds no labelled image")
    test = LabelledTensors(torch.from_numpy(to_batch([i.path for i in items], loaded.spec.preprocess)),
                           tuple(i.label for i in items))
    config = TrainConfig(max_epochs=args.epochs, patience=args.epochs, lr=FINE_TUNE_LR, seed=args.seed, augment=True)
    observer = TestScores(test)
    print(f"--init {args.init}, {args.data} ({len(source.train)} training, {len(source.valid)} validation images), "
          f"--noise-overlay {args.noise_overlay}, --seed {args.seed}; test: {len(items)} images in {args.test}")
    with tempfile.TemporaryDirectory() as run:
        observer.trainer = start(Path(run) / "run", source, config, init=(args.init, loaded), observer=observer)
        observer.trainer.fit()
    print(f"mean test accuracy over {args.epochs} epochs: {statistics.mean(observer.accuracies):.2%}")


if __name__ == "__main__":
    main()
