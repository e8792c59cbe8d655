"""Held-out accuracy of a model on freshly generated captchas, per difficulty level.

The test images come from a seed no training run uses (``HELDOUT_SEED``), in
memory, as PNG bytes: the same path a downloaded captcha takes through the
solver (decode, preprocess, ONNX Runtime, greedy CTC).

    python benchmarks/heldout.py                       # the shipped default model, knu style
    python benchmarks/heldout.py --model runs/x/model.onnx --count 2000 --style knu
"""

from __future__ import annotations

import argparse
import json
import os
import time

from knucaptcha.generator import DIFFICULTIES, encode_png, generate_samples, get_style
from knucaptcha.inference import Solver
from knucaptcha.metrics import score

HELDOUT_SEED = 770001
"""Seed of the test images; keep it out of every training command."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="Model file or bundled name (default: default).")
    parser.add_argument("--style", default="knu", help="Generator style of the test images (default: knu).")
    parser.add_argument("--count", type=int, default=2000, help="Images per difficulty level (default 2000).")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help=f"Test seed (default {HELDOUT_SEED}).")
    parser.add_argument("--json", dest="json_out", help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    solver = Solver.load(args.model)
    rows = []
    for difficulty in DIFFICULTIES:
        samples = list(generate_samples(get_style(args.style, difficulty), args.seed, args.count))
        images = [encode_png(sample.image) for sample in samples]
        started = time.perf_counter()
        readings = [prediction.text for prediction in solver.solve_batch(images)]
        seconds = time.perf_counter() - started
        scores = score([sample.label for sample in samples], readings)
        rows.append(
            {
                "difficulty": difficulty,
                "count": scores.count,
                "sequence_accuracy": scores.sequence_accuracy,
                "char_accuracy": scores.char_accuracy,
                "images_per_second": len(images) / seconds,
                "top_confusions": scores.confusions[:3],
            }
        )

    print(f"model {args.model} ({solver.metadata.get('knucaptcha.preset', '?')}), style {args.style}, "
          f"seed {args.seed}, {args.count} images per level, load average {os.getloadavg()[0]:.1f}\n")
    print("| difficulty | images | sequence accuracy | character accuracy | top confusions |")
    print("|---|---|---|---|---|")
    for row in rows:
        confusions = ", ".join(f"{a}→{b} ×{n}" for (a, b), n in row["top_confusions"])
        print(f"| {row['difficulty']} | {row['count']} | {row['sequence_accuracy']:.2%} | "
              f"{row['char_accuracy']:.2%} | {confusions} |")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({"model": args.model, "style": args.style, "seed": args.seed, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
