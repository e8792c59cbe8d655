"""Compare the ``seed`` and ``fast`` presets side by side: training speed, solving speed, size.

    python benchmarks/presets.py                 # the speed table (a few minutes)
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
from pathlib import Path

import numpy as np
import torch

from knucaptcha.generator import generate_inputs, generate_samples, get_style, write_dataset
from knucaptcha.inference import Solver
from knucaptcha.spec import ModelSpec
from knucaptcha.train import CRNN, FolderSource, TrainConfig, count_parameters, export_onnx, preset, start
from knucaptcha.train.trainer import ctc_loss


def training_rate(model: CRNN, spec: ModelSpec, batch_size: int, steps: int, repeats: int) -> float:
    """Training images per second (forward, CTC loss, backward, Adam step) on generated batches."""
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
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch_size / (time.perf_counter() - started))
    return statistics.median(rates)


def solve_timings(path: Path, threads: int, repeats: int) -> tuple[float, float, float]:
    """Single-image latency median and p90 (ms), and batch throughput (images/s), through Solver."""
    solver = Solver.load(path, threads=threads)
    images = [s.image for s in generate_samples(get_style("knu"), seed=1, count=256)]
    for image in images[:10]:
        solver.solve(image)  # warm-up
    latencies = []
    for image in images[:200]:
        started = time.perf_counter()
        solver.solve(image)
        latencies.append((time.perf_counter() - started) * 1000)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        solver.solve_batch(images, batch_size=64)
        rates.append(len(images) / (time.perf_counter() - started))
    return statistics.median(latencies), float(np.percentile(latencies, 90)), statistics.median(rates)


def speed_table(args: argparse.Namespace) -> None:
    style = get_style("knu")
    spec = ModelSpec(style.charset, style.preprocess, style.max_length)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in ("seed", "fast"):
            torch.manual_seed(0)
            model = CRNN(preset(name), spec)
            train = training_rate(model, spec, args.batch_size, args.steps, args.repeats)
            path = export_onnx(model.eval(), spec, Path(folder) / f"{name}.onnx")
            median, p90, batch = solve_timings(path, args.threads, args.repeats)
            rows[name] = {
                "parameters": count_parameters(model),
                "onnx_kb": path.stat().st_size / 1024,
                "train": train,
                "median": median,
                "p90": p90,
                "batch": batch,
            }
    seed, fast = rows["seed"], rows["fast"]
    print(f"torch threads {torch.get_num_threads()}, ONNX Runtime threads {args.threads or 'default'}, "
          f"batch {args.batch_size}; medians of {args.repeats} repeats\n")
    print("| | seed | fast | fast vs seed |")
    print("|---|---:|---:|---:|")
    print(f"| parameters | {seed['parameters']:,.0f} | {fast['parameters']:,.0f} | "
          f"{seed['parameters'] / fast['parameters']:.1f}x smaller |")
    print(f"| ONNX size (KB) | {seed['onnx_kb']:,.0f} | {fast['onnx_kb']:,.0f} | "
          f"{seed['onnx_kb'] / fast['onnx_kb']:.1f}x smaller |")
    print(f"| training (images/s) | {seed['train']:,.0f} | {fast['train']:,.0f} | "
          f"{fast['train'] / seed['train']:.1f}x faster |")
    print(f"| solve 1 image, median (ms) | {seed['median']:.2f} | {fast['median']:.2f} | "
          f"{seed['median'] / fast['median']:.1f}x faster |")
    print(f"| solve 1 image, p90 (ms) | {seed['p90']:.2f} | {fast['p90']:.2f} | "
          f"{seed['p90'] / fast['p90']:.1f}x faster |")
    print(f"| solve batches of 64 (images/s) | {seed['batch']:,.0f} | {fast['batch']:,.0f} | "
          f"{fast['batch'] / seed['batch']:.1f}x faster |")


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
