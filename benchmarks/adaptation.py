"""How fast a model adapts to a captcha it has not seen: accuracy against the number of labelled images (issue 4).

    python benchmarks/adaptation.py --init default --json out/adaptation.json
    python benchmarks/adaptation.py --style knu --fonts-from knu-unseen    # only the fonts are new
    python benchmarks/adaptation.py --style knu --fonts /usr/share/fonts/truetype/liberation
    python benchmarks/adaptation.py --style knu --fonts /usr/share/fonts/truetype/liberation \
        --font-pattern 'LiberationSans-*' --sizes 50,100,200,500,5000   # one family, and a ceiling

``knu-unseen`` stands in for real captchas: fonts, grid lines, speckle and
stroke widths that ``knu`` training never draws. The script writes a fixed test
set and, from another seed, training folders of each size. A stream's first
``n`` samples do not depend on how many follow, so the smaller folders are
prefixes of the larger ones and the curve is nested. It scores the ``--init``
model on the test set as it is (zero-shot), then fine-tunes it on each folder
with ``knucaptcha train --init`` exactly as a user would, one run at a time on
one thread, and scores every result on the same test set.

Both sets use one fixed difficulty (``medium`` unless ``--difficulty`` says
otherwise), because a real site draws its captchas from one configuration of
its generator; ``mixed`` would also include ``hard`` samples that people
misread too.

``--fonts-from`` draws the ``--style`` images in another style's fonts, the
smaller shift the issue names first ("a font family the generator does not
use by default"): ``--style knu --fonts-from knu-unseen`` changes nothing
but the fonts. ``--fonts DIR`` draws them in every font of a folder instead,
for a family no built-in style uses (Debian's ``fonts-liberation`` is one),
and ``--font-pattern`` keeps the fonts of that folder whose file name matches
(one family, as a real site would draw with).

A size far beyond what anyone labels by hand (``--sizes ...,5000``) measures
the ceiling: how well this model reads the shifted style at all. Where that
ceiling is below the target, no amount of labelling reaches it, and the gap
between the curve and the ceiling is what fine-tuning leaves on the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from knucaptcha.evaluate import evaluate_folder
from knucaptcha.generator import get_style, with_font_folder, write_dataset
from knucaptcha.inference import Solver
from knucaptcha.labels import LabelledImage, scan_folder
from knucaptcha.spec import METADATA_PREFIX

TEST_SEED = 440_001  # the test set; used nowhere else, keep it out of every training command
POOL_SEED = 440_002  # the labelled training images
TARGET = 0.98  # issue 4: sequence accuracy with 200 labels


@dataclass(frozen=True)
class Point:
    """One point of the curve; ``labels`` 0 is the model as it is (no fine-tuning)."""

    labels: int
    sequence_accuracy: float
    char_accuracy: float
    epochs: int | None = None
    best_epoch: int | None = None
    seconds: float | None = None
    command: str | None = None


def score(model: Path, test: list[LabelledImage]) -> tuple[float, float, dict[str, str]]:
    """Sequence and character accuracy of an ONNX model on the test set, and the model's metadata."""
    solver = Solver.load(model, threads=1)
    scores = evaluate_folder(solver, test).scores
    return scores.sequence_accuracy, scores.char_accuracy, solver.metadata


def export_init(init: str, path: Path) -> Path:
    """The ``--init`` checkpoint as ONNX, so zero-shot scores exactly the weights fine-tuning starts from."""
    import torch

    from knucaptcha.train import export_onnx, load_checkpoint

    torch.set_num_threads(1)
    loaded = load_checkpoint(init)
    return export_onnx(loaded.model, loaded.spec, path)


def fine_tune(args: argparse.Namespace, size: int, data: Path, run: Path, test: list[LabelledImage]) -> Point:
    """Run ``knucaptcha train --init`` on the ``size`` images in ``data`` in a child process; score the result."""
    command = [
        str(Path(sys.executable).with_name("knucaptcha")), "train",
        "--init", args.init, "--data", str(data), "--out", str(run),
        "--max-epochs", str(args.max_epochs), "--patience", str(args.patience), "--threads", "1",
    ]  # fmt: skip
    if args.lr is not None:
        command += ["--lr", str(args.lr)]
    if args.noise_overlay is not None:
        command += ["--noise-overlay", str(args.noise_overlay)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    sequence, char, metadata = score(run / "model.onnx", test)
    training = json.loads(metadata[f"{METADATA_PREFIX}training"])
    shown = " ".join(["knucaptcha", *command[1:]])
    return Point(size, sequence, char, training["epochs"], training["best_epoch"], seconds, shown)


def curve(args: argparse.Namespace, work: Path) -> list[Point]:
    """Write the data sets, score zero-shot, then fine-tune and score once per size."""
    style = get_style(args.style, args.difficulty)
    if args.fonts_from:
        style = replace(style, fonts=get_style(args.fonts_from).fonts)
    if args.fonts:
        style = with_font_folder(style, args.fonts, args.font_pattern)
    test_dir = work / "test"
    log(f"writing {args.test_count} test images (seed {TEST_SEED}) to {test_dir}")
    write_dataset(test_dir, style, args.test_count, seed=TEST_SEED)
    test = scan_folder(test_dir)
    sequence, char, _ = score(export_init(args.init, work / "init.onnx"), test)
    points = [Point(0, sequence, char)]
    log(f"zero-shot: {sequence:.1%}")
    for size in args.sizes:
        data = work / f"train-{size}"
        write_dataset(data, style, size, seed=POOL_SEED)
        log(f"fine-tuning on {size} labelled images")
        points.append(fine_tune(args, size, data, work / f"ft-{size}", test))
        log(f"{size} labels: {points[-1].sequence_accuracy:.1%} after {points[-1].seconds:.0f} s")
    return points


def table(points: list[Point]) -> str:
    """The curve as a Markdown table."""
    lines = [
        "| labelled images | sequence accuracy | char accuracy | epochs (best) | fine-tuning time |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        labels = f"{p.labels}" if p.labels else "0 (zero-shot)"
        epochs = f"{p.epochs} ({p.best_epoch})" if p.epochs is not None else "–"
        seconds = f"{p.seconds / 60:.1f} min" if p.seconds is not None else "–"
        lines.append(f"| {labels} | {p.sequence_accuracy:.1%} | {p.char_accuracy:.1%} | {epochs} | {seconds} |")
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="default", help="model to adapt: 'default', a run folder or a .pt file")
    parser.add_argument("--sizes", default="50,100,200,500", help="labelled training set sizes, comma-separated")
    parser.add_argument("--test-count", type=int, default=1000, help="test images")
    parser.add_argument("--style", default="knu-unseen", help="the style to adapt to")
    parser.add_argument("--fonts-from", help="draw the images in this other style's fonts (e.g. knu-unseen)")
    parser.add_argument("--fonts", type=Path, help="draw the images in every font of this folder")
    parser.add_argument("--font-pattern", default="*", help="with --fonts: only the fonts whose file stem matches")
    parser.add_argument("--difficulty", default="medium", help="difficulty of test and training images")
    parser.add_argument("--max-epochs", type=int, default=100, help="passed to knucaptcha train")
    parser.add_argument("--patience", type=int, default=10, help="passed to knucaptcha train")
    parser.add_argument("--lr", type=float, help="passed to knucaptcha train (default: its own, 1e-4 with --init)")
    parser.add_argument("--noise-overlay", type=float, help="passed to knucaptcha train (default: its own, 0.5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--work", type=Path, help="keep data and runs in this new or empty folder")
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.fonts_from and args.fonts:
        parser.error("--fonts-from and --fonts both choose the fonts; give one")
    if args.font_pattern != "*" and not args.fonts:
        parser.error("--font-pattern picks fonts of a --fonts folder; give that folder")
    if args.fonts and not args.fonts.is_dir():
        parser.error(f"--fonts {args.fonts} is not a folder")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} is not empty")
    return args


def main() -> None:
    args = parse_args()
    if args.work is None:
        with tempfile.TemporaryDirectory() as folder:
            points = curve(args, Path(folder))
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        points = curve(args, args.work)
    fonts = ""
    if args.fonts_from:
        fonts = f" in {args.fonts_from}'s fonts"
    elif args.fonts:
        fonts = f" in the fonts of {args.fonts}" + (f" matching {args.font_pattern}" if args.font_pattern != "*" else "")
    setting = (
        f"{args.style}{fonts} ({args.difficulty}): {args.test_count} test images (seed {TEST_SEED}), "
        f"training images from seed {POOL_SEED}; --init {args.init}, --max-epochs {args.max_epochs}, "
        f"--patience {args.patience}, --lr {args.lr or 'default'}, "
        f"--noise-overlay {'default' if args.noise_overlay is None else args.noise_overlay}, --threads 1; "
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}"
    )
    print(setting + "\n")
    print(table(points))
    reached = [p.labels for p in points if p.labels and p.sequence_accuracy >= TARGET]
    print(f"\ntarget {TARGET:.0%}: " + (f"first reached with {reached[0]} labels" if reached else "not reached"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"setting": setting, "target": TARGET, "points": [asdict(p) for p in points]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
