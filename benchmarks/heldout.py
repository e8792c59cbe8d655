"""Held-out accuracy of a model on freshly generated captchas, per difficulty level.

The test images come from a seed no training run uses (``HELDOUT_SEED``), in
memory, as PNG bytes: the same path a downloaded captcha takes through the
solver (decode, preprocess, ONNX Runtime, greedy CTC).

    python benchmarks/heldout.py                       # the shipped default model, knu style
    python benchmarks/heldout.py --model runs/x/model.onnx --count 2000 --style knu
    python benchmarks/heldout.py --charset ABCDEFGHJKLMNPQRSTUVWXYZ23456789   # a site's own alphabet
    python benchmarks/heldout.py --length 4                                   # told every captcha has 4
    python benchmarks/heldout.py --wild-at 0.5        # a tamer generator: its wild end where medium is
    python benchmarks/heldout.py --style knu-varied --fonts /usr/share/fonts/truetype/lato   # unseen families

``--charset`` draws the test labels from that alphabet instead of the style's
and scores two readings: as the model reads them, and told the alphabet
(``Solver.solve_batch(symbols=...)``, ``knucaptcha solve --symbols``).
``--length`` likewise scores a second reading told the number of symbols
(``Solver.solve_batch(length=...)``, ``knucaptcha solve --length``); with both,
the second reading is told both.

Two more tables split the ``mixed`` level, whose images each draw their own
difficulty from [0, 1]: by tenths of that difficulty (with the accuracy of a
generator whose difficulty stopped there), and by font. They show where the
errors are, which is what recalibrating the generator would have to know.
``--fonts DIR`` (with ``--font-pattern``) draws with the fonts of that folder
instead of the style's: font families no training run used measure how a
model reads a redesign (``benchmarks/setup_fonts.sh`` installs the ones the
model card names). ``--wild-at D`` measures one such recalibration: the style's ``wild`` knobs
moved to where difficulty ``D`` puts them today, so every level shrinks toward
``calm`` (``hard`` becomes today's ``D``; ``mixed`` draws from 0 to ``D``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from knucaptcha.generator import (
    DIFFICULTIES,
    Knobs,
    Sample,
    Style,
    encode_png,
    generate_samples,
    get_style,
    with_font_folder,
)
from knucaptcha.generator.styles import blend
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
    parser.add_argument("--charset", help="Draw the labels from these symbols; also score readings told them.")
    parser.add_argument("--length", type=int, help="Also score readings told every label has this many symbols.")
    parser.add_argument("--wild-at", type=float, help="Move the style's wild end to this difficulty (0 to 1).")
    parser.add_argument("--fonts", help="Draw with the fonts of this folder instead of the style's.")
    parser.add_argument("--font-pattern", default="*", help="With --fonts: file stems to take (default: all).")
    parser.add_argument("--json", dest="json_out", help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.wild_at is not None and not 0 <= args.wild_at <= 1:
        raise SystemExit(f"error: --wild-at must lie in [0, 1], not {args.wild_at}")

    solver = Solver.load(args.model)
    rows = []
    mixed: tuple[list[Sample], list[str]] = ([], [])
    overrides = {} if args.charset is None else {"charset": args.charset}
    told_options = {"symbols": args.charset, "length": args.length}
    told_what = " and ".join(what for what, given in (("the alphabet", args.charset), ("the length", args.length)) if given)
    for difficulty in DIFFICULTIES:
        style = get_style(args.style, difficulty, **overrides)
        if args.wild_at is not None:
            style = wild_at(style, args.wild_at)
        if args.fonts is not None:
            style = with_font_folder(style, args.fonts, args.font_pattern)
        samples = list(generate_samples(style, args.seed, args.count))
        images = [encode_png(sample.image) for sample in samples]
        started = time.perf_counter()
        readings = [prediction.text for prediction in solver.solve_batch(images)]
        seconds = time.perf_counter() - started
        scores = score([sample.label for sample in samples], readings)
        if difficulty == "mixed":
            mixed = (samples, readings)
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
        if told_what:
            told = [prediction.text for prediction in solver.solve_batch(images, **told_options)]
            rows[-1]["told_sequence_accuracy"] = score([sample.label for sample in samples], told).sequence_accuracy

    alphabet = "" if args.charset is None else f", labels from {args.charset}"
    alphabet += "" if args.wild_at is None else f", wild end at {args.wild_at}"
    alphabet += "" if args.fonts is None else f", fonts {args.fonts}/{args.font_pattern}"
    print(f"model {args.model} ({solver.metadata.get('knucaptcha.preset', '?')}), style {args.style}{alphabet}, "
          f"seed {args.seed}, {args.count} images per level, load average {os.getloadavg()[0]:.1f}\n")
    told_header = f" told {told_what} |" if told_what else ""
    print(f"| difficulty | images | sequence accuracy | character accuracy | top confusions |{told_header}")
    print("|---|---|---|---|---|" + ("---|" if told_header else ""))
    for row in rows:
        confusions = ", ".join(f"{a}→{b} ×{n}" for (a, b), n in row["top_confusions"])
        told = f" {row['told_sequence_accuracy']:.2%} |" if told_header else ""
        print(f"| {row['difficulty']} | {row['count']} | {row['sequence_accuracy']:.2%} | "
              f"{row['char_accuracy']:.2%} | {confusions} |{told}")
    by_tenth, by_font = split_mixed(*mixed)
    print("\nmixed, by the difficulty each image drew:\n")
    print("| difficulty | images | sequence accuracy | all images up to here |")
    print("|---|---|---|---|")
    seen = right = 0
    for tenth, (count, correct) in sorted(by_tenth.items()):
        seen, right = seen + count, right + correct
        print(f"| {tenth / 10:.1f}–{(tenth + 1) / 10:.1f} | {count} | {correct / count:.2%} | {right / seen:.2%} |")
    print("\nmixed, by font:\n")
    print("| font | images | sequence accuracy |")
    print("|---|---|---|")
    for font, (count, correct) in sorted(by_font.items()):
        print(f"| {font} | {count} | {correct / count:.2%} |")
    if args.json_out:
        report = {
            "model": args.model,
            "style": args.style,
            "charset": args.charset,
            "length": args.length,
            "seed": args.seed,
            "wild_at": args.wild_at,
            "fonts": None if args.fonts is None else f"{args.fonts}/{args.font_pattern}",
            "rows": rows,
            "mixed_by_difficulty_tenth": {f"{tenth / 10:.1f}": list(counts) for tenth, counts in by_tenth.items()},
            "mixed_by_font": {font: list(counts) for font, counts in by_font.items()},
        }
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


def wild_at(style: Style, difficulty: float) -> Style:
    """``style`` with its ``wild`` knobs where ``difficulty`` (0 to 1) puts them now."""
    return replace(style, wild=Knobs(**blend(style.calm, style.wild, difficulty)))


def split_mixed(
    samples: Sequence[Sample], readings: Sequence[str]
) -> tuple[dict[int, list[int]], dict[str, list[int]]]:
    """``[images, right readings]`` per tenth of the drawn difficulty and per font."""
    by_tenth: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_font: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for sample, reading in zip(samples, readings):
        for counts in (by_tenth[min(int(sample.difficulty * 10), 9)], by_font[sample.font]):
            counts[0] += 1
            counts[1] += reading == sample.label
    return by_tenth, by_font


if __name__ == "__main__":
    main()
