"""How many captchas per second the generator draws on one core.

Prints images/s for rendering to a PIL image in memory, and for rendering
plus PNG encoding (what ``knucaptcha generate`` does before writing), as the
median of several runs after a warm-up run that fills the font and glyph
caches. Time is this process's CPU time, so other work on a shared machine
does not distort the figure; the wall-clock rate is printed alongside.

    python benchmarks/generator_speed.py [--style knu] [--difficulty mixed] [--count 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from knucaptcha.generator import STYLE_NAMES, Style, encode_png, get_style, render_sample


def rates(style: Style, count: int, runs: int, work: Callable[[int], object]) -> tuple[float, float]:
    """Median images per CPU second and per wall second over ``runs`` runs of ``count`` images."""
    cpu_rates, wall_rates = [], []
    for run in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        for index in range(run * count, (run + 1) * count):
            work(index)
        cpu_rates.append(count / (time.process_time() - cpu))
        wall_rates.append(count / (time.perf_counter() - wall))
    return statistics.median(cpu_rates), statistics.median(wall_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="knu", choices=STYLE_NAMES)
    parser.add_argument("--difficulty", default="mixed")
    parser.add_argument("--count", type=int, default=2000, help="images per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    style = get_style(args.style, args.difficulty)

    def render(index: int) -> object:
        return render_sample(style, 1, index)

    def render_and_encode(index: int) -> object:
        return encode_png(render_sample(style, 1, index).image)

    rates(style, args.count, 1, render)  # warm-up: fonts and glyph masks into their caches
    print(f"style {args.style}, difficulty {args.difficulty}, {args.runs} runs of {args.count} images, one core")
    for name, work in (("render", render), ("render+png", render_and_encode)):
        cpu, wall = rates(style, args.count, args.runs, work)
        print(f"{name:<11} {cpu:7.0f} images/s (CPU time)   {wall:7.0f} images/s (wall clock)")


if __name__ == "__main__":
    main()
