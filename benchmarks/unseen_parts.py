"""Which of ``knu-unseen``'s differences from ``knu`` a model fails on: zero-shot accuracy, one difference at a time.

    python benchmarks/unseen_parts.py                    # the shipped default
    python benchmarks/unseen_parts.py --model runs/x/model.onnx

The adaptation benchmark scores a model on ``knu-unseen`` as a whole; this
one takes it apart. Each row draws the same labels (one seed) at the same
difficulty: plain ``knu``, ``knu`` in ``knu-unseen``'s fonts, ``knu-unseen``
without its grid, and ``knu-unseen`` itself. No torch needed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from knucaptcha.generator import Style, generate_samples, get_style
from knucaptcha.inference import Solver
from knucaptcha.metrics import score

TEST_SEED = 440_003  # used by no training run


def variants(difficulty: str) -> dict[str, Style]:
    """The styles between ``knu`` and ``knu-unseen``, by name."""
    knu, unseen = get_style("knu", difficulty), get_style("knu-unseen", difficulty)
    no_grid = replace(unseen, calm=replace(unseen.calm, grid=(0, 0)), wild=replace(unseen.wild, grid=(0, 0)))
    return {
        "knu": knu,
        "knu, in knu-unseen's fonts": replace(knu, fonts=unseen.fonts),
        "knu-unseen without its grid": no_grid,
        "knu-unseen": unseen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="model file or bundled name (default: default)")
    parser.add_argument("--difficulty", default="medium", help="difficulty of every variant (default: medium)")
    parser.add_argument("--count", type=int, default=500, help="images per variant (default 500)")
    parser.add_argument("--seed", type=int, default=TEST_SEED, help=f"test seed (default {TEST_SEED})")
    args = parser.parse_args()
    solver = Solver.load(args.model)
    print(f"model {args.model}, {args.count} images per row at {args.difficulty}, seed {args.seed}\n")
    print("| test images | sequence accuracy | character accuracy |")
    print("|---|---:|---:|")
    for name, style in variants(args.difficulty).items():
        samples = list(generate_samples(style, args.seed, args.count))
        predictions = solver.solve_batch([s.image for s in samples])
        scores = score([s.label for s in samples], [p.text for p in predictions])
        print(f"| {name} | {scores.sequence_accuracy:.1%} | {scores.char_accuracy:.1%} |")


if __name__ == "__main__":
    main()
