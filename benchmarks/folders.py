"""Dev folders from two captcha generators websites use, and what ``knucaptcha train --data`` makes of them (issue 17).

    benchmarks/setup_folders.sh          # once: captcha and CairoSVG into .bench-venv, svg-captcha into .bench-venv/node
    .bench-venv/bin/python benchmarks/folders.py --work out/folders --json out/folders.json
    .bench-venv/bin/python benchmarks/folders.py --work out/scratch --sizes 200,500 --init none   # the same from scratch

For each generator the script writes a test folder of 1,000 captchas and, from
another seed, training folders of 200, 500 and 1,000 (each the first images of
one stream, so the smaller folders are prefixes of the larger). It trains on
each folder with ``knucaptcha train --data DIR --out RUN`` and nothing else
(default flags: an opaque folder starts from the bundled ``opaque`` reader,
with the folder recipe's 10-minute limit) but ``--threads 1`` (and ``--init``
when given: ``--init none`` shows what the reader adds), one run at a time,
and scores every model on the test folder. The generators:

``captcha``
    The PyPI package's ``ImageCaptcha()`` at its defaults (160×60 RGB, its
    bundled font, one noise curve and dots in the text colour), 4 symbols
    of ``0-9A-Z``. It draws from :mod:`secrets`, which cannot be seeded; the
    script hands it a seeded :class:`random.Random` instead, so a seed gives
    the same folder.
``svg-captcha``
    The npm package's ``create()`` at its defaults (150×50, 4 symbols of
    ``0-9a-zA-Z`` as glyph paths in its Comismsh font, grey text, one noise
    line, no background), with ``Math.random`` seeded; rasterized to PNG by
    CairoSVG on white, as a page shows it (its own background is transparent).

A third folder, ``knu2021`` (``--libraries knu2021``), is no library's: it is
knucaptcha's own ``knu2021`` style at ``mixed`` difficulty (150×40, 4 lower-case
symbols, a diagonal dark-grey-to-white gradient behind each), the check for the
background flattening that gray folders get by default (``--background keep``
turns it off, for a side-by-side run).

Labels are case-sensitive as the generators draw them. Both packages live only
in the benchmark environment, never in knucaptcha's dependencies; training
runs the ``knucaptcha`` of ``--trainer`` (default: the development venv's,
which has the ``train`` extra; the benchmark venv has none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from unittest import mock

from knucaptcha.evaluate import evaluate_folder
from knucaptcha.inference import Solver
from knucaptcha.labels import scan_folder

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("captcha", "svg-captcha")
TEST_SEED = 170_001  # the test folders; used nowhere else
POOL_SEED = 170_002  # the training folders
CAPTCHA_SYMBOLS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CAPTCHA_LENGTH = 4
NODE_MODULES = ROOT / ".bench-venv" / "node" / "node_modules"

# Math.random seeded (mulberry32) before svg-captcha draws; one JSON line per captcha.
SVG_SCRIPT = r"""
let state = Number(process.argv[1]) >>> 0;
Math.random = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = Math.imul(state ^ (state >>> 15), state | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const svgCaptcha = require("svg-captcha");
for (let i = 0; i < Number(process.argv[2]); i++) {
  const captcha = svgCaptcha.create();
  process.stdout.write(JSON.stringify({ text: captcha.text, svg: captcha.data }) + "\n");
}
"""


@dataclass(frozen=True)
class Run:
    """One training run on one folder, scored on the library's test folder."""

    library: str
    labels: int
    start: str
    sequence_accuracy: float
    char_accuracy: float
    epochs: int
    best_epoch: int
    seconds: float
    first_line: str
    command: str


class _SeededSecrets:
    """What ``captcha.image`` calls of :mod:`secrets`, drawn from a seeded generator instead."""

    def __init__(self, rng: random.Random):
        self.randbelow = rng.randrange
        self.randbits = rng.getrandbits
        self.choice = rng.choice


def captcha_images(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` (label, PNG) pairs from the PyPI ``captcha`` package's ``ImageCaptcha()``."""
    from captcha import image

    rng = random.Random(seed)
    generator = image.ImageCaptcha()
    with mock.patch.object(image, "secrets", _SeededSecrets(rng)):
        for _ in range(count):
            label = "".join(rng.choice(CAPTCHA_SYMBOLS) for _ in range(CAPTCHA_LENGTH))
            yield label, generator.generate(label).getvalue()


def svg_captcha_images(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` (label, PNG) pairs from the npm ``svg-captcha`` package, rasterized on white."""
    import cairosvg

    environment = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    done = subprocess.run(
        ["node", "-e", SVG_SCRIPT, str(seed), str(count)], capture_output=True, text=True, env=environment, check=True
    )
    for line in done.stdout.splitlines():
        captcha = json.loads(line)
        png = BytesIO()
        cairosvg.svg2png(bytestring=captcha["svg"].encode(), write_to=png, background_color="white")
        yield captcha["text"], png.getvalue()


def knu2021_images(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` (label, PNG) pairs of knucaptcha's ``knu2021`` style at ``mixed`` difficulty (gradient backgrounds)."""
    from knucaptcha.generator import encode_png, generate_samples, get_style

    for sample in generate_samples(get_style("knu2021", "mixed"), seed, count):
        yield sample.label, encode_png(sample.image)


GENERATORS = {"captcha": captcha_images, "svg-captcha": svg_captcha_images, "knu2021": knu2021_images}


def write_folder(folder: Path, images: Iterator[tuple[str, bytes]]) -> Path:
    """Write each image as ``LABEL_<index>.png`` (the label in the name: no manifest needed)."""
    folder.mkdir(parents=True)
    for index, (label, png) in enumerate(images):
        (folder / f"{label}_{index:05d}.png").write_bytes(png)
    return folder


def train_and_score(args: argparse.Namespace, library: str, size: int, data: Path, run: Path, test: Path) -> Run:
    """``knucaptcha train --data`` on ``data`` with default flags (one thread) in a child process; score the model."""
    command = [str(args.trainer), "train", "--data", str(data), "--out", str(run), "--threads", "1"]
    if args.init is not None:
        command += ["--init", args.init]
    if args.background is not None:
        command += ["--background", args.background]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    solver = Solver.load(run / "model.onnx", threads=1)
    scores = evaluate_folder(solver, scan_folder(test)).scores
    training = json.loads(solver.metadata["knucaptcha.training"])
    first = re.sub(r"^\S+: ", "", done.stderr.splitlines()[0])  # without the folder's path
    start = first.rsplit("; from ", 1)[1].split(" (")[0]  # the first line ends with where training started
    shown = " ".join(["knucaptcha", *command[1:]])
    return Run(library, size, start, scores.sequence_accuracy, scores.char_accuracy, training["epochs"],
               training["best_epoch"], seconds, first, shown)  # fmt: skip


def table(runs: list[Run]) -> str:
    """The runs as a Markdown table."""
    lines = [
        "| generator | labelled images | start | sequence accuracy | char accuracy | epochs (best) | training time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.library} | {r.labels} | {r.start} | {r.sequence_accuracy:.1%} | {r.char_accuracy:.1%} | "
            f"{r.epochs} ({r.best_epoch}) | {r.seconds / 60:.1f} min |"
        )
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a new or empty folder for the data and runs")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated, of: " + ", ".join(GENERATORS) + " (default: the two libraries)")  # fmt: skip
    parser.add_argument("--sizes", default="200,500,1000", help="training folder sizes, comma-separated")
    parser.add_argument("--test-count", type=int, default=1000, help="test images per generator")
    parser.add_argument("--trainer", type=Path, default=ROOT / ".venv" / "bin" / "knucaptcha",
                        help="the knucaptcha executable that trains (needs the train extra)")  # fmt: skip
    parser.add_argument("--init", help="passed to knucaptcha train (default: none given; 'none' trains from scratch)")
    parser.add_argument("--background", choices=("flatten", "keep"),
                        help="passed to knucaptcha train (default: none given, so gray folders are flattened)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    args.libraries = args.libraries.split(",")
    unknown = sorted(set(args.libraries) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown --libraries {', '.join(unknown)}; choose from {', '.join(GENERATORS)}")
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} is not empty")
    if not os.access(args.trainer, os.X_OK):
        parser.error(f"--trainer {args.trainer} is not an executable (make the dev venv, or point at one)")
    return args


def main() -> None:
    args = parse_args()
    runs = []
    tests = {}
    for library in args.libraries:
        log(f"{library}: writing {args.test_count} test images (seed {TEST_SEED})")
        tests[library] = write_folder(args.work / library / "test", GENERATORS[library](args.test_count, TEST_SEED))
    for size in args.sizes:  # smallest first, for every library: a run cut short has the small folders
        for library in args.libraries:
            work = args.work / library
            data = write_folder(work / f"train-{size}", GENERATORS[library](size, POOL_SEED))
            log(f"{library}: training on {size} labelled images (seed {POOL_SEED})")
            runs.append(train_and_score(args, library, size, data, work / f"run-{size}", tests[library]))
            log(f"{library}, {size}: {runs[-1].sequence_accuracy:.1%} after {runs[-1].seconds / 60:.1f} min")
            if args.json is not None:  # after every run: a long benchmark cut short keeps what it measured
                args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
    setting = (
        f"{args.test_count} test images per generator (seed {TEST_SEED}), training folders from seed {POOL_SEED}; "
        f"knucaptcha train --data DIR --out RUN --threads 1{'' if args.init is None else ' --init ' + args.init}"
        f"{'' if args.background is None else ' --background ' + args.background}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}"
    )
    print(setting)
    print(table(runs))


if __name__ == "__main__":
    main()
