"""How well a person reads the same captchas as a model: a blind reading sheet, then its score.

The held-out target asks for nearly every generated captcha to be read; this
measures how many of them a person can read at all, so a model's remaining
errors can be told apart from images that no longer show their label.

    python benchmarks/person_reading.py sheet out/read-hard --difficulty hard --count 96
    python benchmarks/person_reading.py sheet out/read-mixed --difficulty mixed --errors-plus 18
    # look at out/read-*/sheet-*.png and type what each numbered image shows, in order,
    # whitespace-separated, ? for a symbol you cannot make out, into a text file; then
    python benchmarks/person_reading.py score out/read-mixed benchmarks/readings/default-mixed-770001.txt

``sheet`` shows the images as the model sees them (the preprocessed, binarized
input, enlarged 3×), numbered, shuffled and without labels. They are generated
captchas, or with ``--data DIR`` the first ``--count`` images of a labelled
folder (real captchas, or a benchmark's test set such as
``benchmarks/adaptation.py``'s ``WORK/test``). With
``--errors-plus K`` it shows only the model's misreadings among ``--count``
images, plus K of its right readings shuffled in, so the person cannot tell
which are which; ``score`` then estimates the person's accuracy on all
``--count`` images from the two groups. The answer key is written next to the
sheets (``key.json``): score before opening it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from heldout import HELDOUT_SEED
from knucaptcha.errors import KnucaptchaError, LabelError
from knucaptcha.generator import encode_png, generate_samples, get_style
from knucaptcha.inference import Solver
from knucaptcha.labels import scan_folder
from knucaptcha.preprocess import ImageSource, to_input

SCALE = 3
"""Enlargement of each image on the sheet (nearest neighbour, so pixels stay pixels)."""
PER_SHEET = 16
"""Images per sheet: two columns of eight, small enough to read in one view."""
SHUFFLE_SEED = 1
"""Fixes which right readings are shown and the order, so a readings file stays valid."""


def make_sheet(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: {out} is not empty; choose a new folder (nothing is overwritten)")
    try:
        solver = Solver.load(args.model)
        images, labels, notes, source = _captchas(args)
        readings = [p.text for p in solver.solve_batch(images)]  # an unreadable image is an ImageError
    except KnucaptchaError as error:
        sys.exit(f"error: {error}")
    wrong = [i for i, (label, text) in enumerate(zip(labels, readings)) if text != label]
    right = [i for i, (label, text) in enumerate(zip(labels, readings)) if text == label]
    shuffler = random.Random(SHUFFLE_SEED)
    if args.errors_plus is None:
        shown = list(range(len(images)))
    else:
        shown = wrong + shuffler.sample(right, min(args.errors_plus, len(right)))
    shuffler.shuffle(shown)
    if not shown:
        sys.exit("error: nothing to show: the model read every image right and --errors-plus is 0")

    out.mkdir(parents=True, exist_ok=True)
    planes = [to_input(images[i], solver.spec.preprocess)[0] for i in shown]
    for first in range(0, len(shown), PER_SHEET):
        _draw_sheet(planes[first : first + PER_SHEET], first).save(out / f"sheet-{first // PER_SHEET:02d}.png")
    key = {
        "model": args.model,
        "source": source,
        "count": len(images),
        "model_right": len(right),
        "errors_only": args.errors_plus is not None,
        "shown": [
            {"n": n, "index": i, "label": labels[i], "model": readings[i], "note": notes[i]}
            for n, i in enumerate(shown)
        ],
    }
    (out / "key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")
    print(f"{len(shown)} images on {(len(shown) + PER_SHEET - 1) // PER_SHEET} sheets in {out} "
          f"(the model misreads {len(wrong)} of {len(images)})")


def _captchas(args: argparse.Namespace) -> tuple[list[ImageSource], list[str], list[str], str]:
    """The images to read, their labels, a note on each (font or file name) and where they came from."""
    if args.data is not None:
        items = scan_folder(args.data)[: args.count]
        if not items:
            raise LabelError(f"{args.data} holds no labelled image")
        return [item.path for item in items], [item.label for item in items], [item.path.name for item in items], (
            f"the first {len(items)} labelled images of {args.data}"
        )
    samples = list(generate_samples(get_style(args.style, args.difficulty), args.seed, args.count))
    return [encode_png(sample.image) for sample in samples], [sample.label for sample in samples], [
        sample.font for sample in samples
    ], f"{args.count} generated {args.style} captchas, {args.difficulty}, seed {args.seed}"


def _draw_sheet(planes: list[np.ndarray], first: int) -> Image.Image:
    """Model inputs ``(H, W)`` (ink 1) as black on white, numbered from ``first``."""
    height, width = planes[0].shape[0] * SCALE, planes[0].shape[1] * SCALE
    cell_height, cell_width = height + 16, width + 10
    sheet = Image.new("L", (2 * cell_width, cell_height * ((len(planes) + 1) // 2)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, plane in enumerate(planes):
        ink = Image.fromarray(((1 - plane) * 255).astype(np.uint8)).resize((width, height), Image.NEAREST)
        x, y = (k % 2) * cell_width, (k // 2) * cell_height
        sheet.paste(ink, (x, y + 16))
        draw.text((x + 2, y + 2), f"#{first + k}", fill=0)
    return sheet


def score_sheet(args: argparse.Namespace) -> None:
    key_path = Path(args.folder) / "key.json"
    try:
        key = json.loads(key_path.read_text(encoding="utf-8"))
        person = Path(args.readings).read_text(encoding="utf-8").split()
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    shown = key["shown"]
    if len(person) != len(shown):
        sys.exit(f"error: {args.readings} has {len(person)} readings for {len(shown)} images")

    groups = {"model wrong": [0, 0], "model right": [0, 0]}  # [images, read right by the person]
    saved = []
    for item, reading in zip(shown, person):
        group = groups["model right" if item["model"] == item["label"] else "model wrong"]
        group[0] += 1
        group[1] += reading == item["label"]
        if reading == item["label"] != item["model"]:
            saved.append(f"#{item['n']} {item['label']} (model {item['model']}, {item['note']})")

    count = key["count"]
    wrong_shown, wrong_read = groups["model wrong"]
    right_shown, right_read = groups["model right"]
    # Every model error is shown; the right readings shown are a random share of all of them.
    right_rate = right_read / right_shown if right_shown else 1.0
    person_estimate = (wrong_read + right_rate * key["model_right"]) / count if key["errors_only"] else None
    print(f"model {key['model']}; {key['source']}\n")
    print("| images shown | count | the person reads |")
    print("|---|---:|---:|")
    print(f"| the model misreads | {wrong_shown} | {wrong_read} ({_share(wrong_read, wrong_shown)}) |")
    print(f"| the model reads | {right_shown} | {right_read} ({_share(right_read, right_shown)}) |")
    print(f"\nthe model reads {key['model_right'] / count:.2%} of the {count} images;", end=" ")
    if person_estimate is None:
        print(f"the person {(wrong_read + right_read) / count:.2%}")
    else:
        print(f"the person, estimated from the right readings shown, {person_estimate:.1%}")
    if saved:
        print(f"\nread by the person, misread by the model ({len(saved)}):\n  " + "\n  ".join(saved))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sheet = commands.add_parser("sheet", help="Write numbered reading sheets and their answer key.")
    sheet.add_argument("out", help="New (or empty) folder for sheet-NN.png and key.json.")
    sheet.add_argument("--model", default="default", help="Model file or bundled name (default: default).")
    sheet.add_argument("--style", default="knu", help="Generator style (default: knu).")
    sheet.add_argument("--difficulty", default="mixed", help="easy, medium, hard or mixed (default: mixed).")
    sheet.add_argument("--seed", type=int, default=HELDOUT_SEED, help=f"Image seed (default {HELDOUT_SEED}).")
    sheet.add_argument("--count", type=_positive, default=2000, help="Images generated or taken from --data (default 2000).")
    sheet.add_argument("--data", help="A labelled folder to read instead of generated captchas (sorted by name).")
    sheet.add_argument("--errors-plus", type=int, metavar="K",
                       help="Show only the model's misreadings plus K of its right readings.")
    sheet.set_defaults(run=make_sheet)
    score = commands.add_parser("score", help="Compare a person's readings with the answer key.")
    score.add_argument("folder", help="The folder `sheet` wrote.")
    score.add_argument("readings", help="Text file: one reading per image, in sheet order, whitespace-separated.")
    score.set_defaults(run=score_sheet)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
