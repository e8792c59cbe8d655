"""Compare the presets side by side with the seed's: training speed, solving speed, size.

    python benchmarks/presets.py                 # the speed table (a few minutes)
    python benchmarks/presets.py --speed-presets seed fast   # only these two
    python benchmarks/presets.py --time-to-98    # also: how long fast needs to reach 98% (long)
    python benchmarks/presets.py --time-to-98 --presets fast seed --max-epochs 60   # accuracy, equal epochs

Solving goes through :class:`knucaptcha.Solver` on ONNX Runtime, exactly as
users solve. The machine is shared, so every timing is the median of
repeats; compare the ratios rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from knucaptcha.generator import generate_inputs, generate_samples, get_style, write_dataset
from knucaptcha.inference import Solver
from knucaptcha.spec import ModelSpec
from knucaptcha.train import CRNN, FolderSource, TrainConfig, count_parameters, export_onnx, preset, start
from knucaptcha.train.trainer import ctc_loss


def training_steps(model: CRNN, spec: ModelSpec, batch_size: int) -> Callable[[], None]:
    """One training step (forward, CTC loss, backward, Adam) of ``model`` on a fixed generated batch."""
    images, labels = generate_inputs(get_style("knu"), seed=0, count=batch_size)
    images = torch.from_numpy(images)
    optimizer = torch.optim.Adam(model.parameters())
    model.train()

    def step() -> None:
        loss = ctc_loss(model(images), labels, spec)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    return step


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def speed_table(args: argparse.Namespace) -> None:
    """Time both presets in turns (blocks of images, repeat by repeat), so both see the same machine.

    The box is shared: timing one preset after the other let a busy minute
    land on one of them and swing the ratio by a third.
    """
    style = get_style("knu")
    spec = ModelSpec(style.charset, style.preprocess, style.max_length)
    names = args.speed_presets
    images = [s.image for s in generate_samples(style, seed=1, count=256)]
    rows: dict[str, dict[str, float]] = {name: {} for name in names}
    steps, solvers = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            torch.manual_seed(0)
            model = CRNN(preset(name), spec)
            rows[name]["parameters"] = count_parameters(model)
            steps[name] = training_steps(model, spec, args.batch_size)
            path = export_onnx(model.eval(), spec, Path(folder) / f"{name}.onnx")
            rows[name]["onnx_kb"] = path.stat().st_size / 1024
            solvers[name] = Solver.load(path, threads=args.threads)
        train = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                seconds = timed(lambda: [steps[name]() for _ in range(args.steps)])
                train[name].append(args.steps * args.batch_size / seconds)
        latency = {name: [] for name in names}
        for first in range(0, 200, 25):  # blocks of 25 images: turns, yet warm caches as in a solving loop
            for name in names:
                solvers[name].solve(images[first])  # warm-up
                for image in images[first : first + 25]:
                    latency[name].append(timed(lambda: solvers[name].solve(image)) * 1000)
        batch = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                batch[name].append(len(images) / timed(lambda: solvers[name].solve_batch(images, batch_size=64)))
    for name in names:
        rows[name].update(
            train=statistics.median(train[name]),
            median=statistics.median(latency[name]),
            p90=float(np.percentile(latency[name], 90)),
            batch=statistics.median(batch[name]),
        )
    print(f"torch threads {torch.get_num_threads()}, ONNX Runtime threads {args.threads or 'default'}, "
          f"batch {args.batch_size}; medians of {args.repeats} repeats\n")
    print(speed_markdown(rows))


SPEED_ROWS = (  # key, label, number format, whether smaller is better, the ratio's word
    ("parameters", "parameters", ",.0f", True, "smaller"),
    ("onnx_kb", "ONNX size (KB)", ",.0f", True, "smaller"),
    ("train", "training (images/s)", ",.0f", False, "faster"),
    ("median", "solve 1 image, median (ms)", ".2f", True, "faster"),
    ("p90", "solve 1 image, p90 (ms)", ".2f", True, "faster"),
    ("batch", "solve batches of 64 (images/s)", ",.0f", False, "faster"),
)


def speed_markdown(rows: dict[str, dict[str, float]]) -> str:
    """The figures of each preset, then each later preset's ratio against the first (the baseline)."""
    base, *others = rows
    lines = [
        "| | " + " | ".join(rows) + " | " + " | ".join(f"{name} vs {base}" for name in others) + " |",
        "|---|" + "---:|" * (len(rows) + len(others)),
    ]
    for key, label, fmt, lower_is_better, word in SPEED_ROWS:
        values = [format(row[key], fmt) for row in rows.values()]
        ratios = []
        for name in others:
            ratio = rows[base][key] / rows[name][key] if lower_is_better else rows[name][key] / rows[base][key]
            worse = "larger" if word == "smaller" else "slower"
            ratios.append(f"{ratio:.1f}x {word}" if ratio >= 1 else f"{1 / ratio:.1f}x {worse}")
        lines.append(f"| {label} | " + " | ".join(values + ratios) + " |")
    return "\n".join(lines)


def time_to_98(args: argparse.Namespace) -> None:
    """Train each preset on the same 4,000 generated knu images (10% held out) until 98% validation accuracy.

    A preset stops at 98%, at ``--budget`` seconds of training, or after
    ``--max-epochs`` epochs; with an epoch cap, the table compares the
    presets' accuracy on equal data and equal epochs.
    """
    style = get_style("knu", args.difficulty)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        write_dataset(data, style, 4000, seed=args.data_seed, workers=2)
        source = FolderSource(data, style.preprocess, case="keep", valid_fraction=0.1, seed=0)
        for name in args.presets:
            config = TrainConfig(augment=True, max_epochs=args.max_epochs, batch_size=args.train_batch_size)
            trainer = start(Path(folder) / name, source, config, preset=name)
            elapsed, reached = 0.0, None
            while not trainer.finished:
                record = trainer.run_epoch()
                elapsed += record.seconds
                print(f"  {name} epoch {record.epoch}: val accuracy {record.val_accuracy:.1%} "
                      f"after {elapsed:.0f} s", flush=True)
                if record.val_accuracy >= 0.98:
                    reached = (record.epoch, elapsed)
                    break
                if elapsed > args.budget:
                    break
            best = max(r.val_accuracy for r in trainer.history)
            to_98 = f"{reached[1] / 60:.1f} min (epoch {reached[0]})" if reached else "not reached"
            rows.append(f"| {name} | {to_98} | {trainer.epoch} | {elapsed / 60:.1f} min | {best:.1%} |")
    print(f"\n{args.difficulty} knu, 4,000 images (data seed {args.data_seed}), batch {args.train_batch_size}, "
          f"augmented, torch threads {torch.get_num_threads()}\n")
    print("| preset | time to 98% | epochs | training time | best val. accuracy |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-to-98", action="store_true", help="also train to 98%% on 4,000 images (long)")
    parser.add_argument("--speed-presets", nargs="+", default=["seed", "fast", "wide", "wide-conv"],
                        help="presets for the speed table; ratios are against the first")
    parser.add_argument("--presets", nargs="+", default=["fast"], help="presets for --time-to-98")
    parser.add_argument("--difficulty", default="medium", help="knu difficulty for --time-to-98")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=3600, help="seconds of training per preset, at most")
    parser.add_argument("--max-epochs", type=int, default=500, help="epochs per preset, at most (for --time-to-98)")
    parser.add_argument("--train-batch-size", type=int, default=16, help="batch size for --time-to-98")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed_table(args)
    if args.time_to_98:
        print()
        time_to_98(args)


if __name__ == "__main__":
    main()
