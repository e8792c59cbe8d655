"""knucaptcha side by side with the captcha solvers a user would pick instead (issue 4).

Every solver reads the same PNG bytes: a freshly generated ``knu`` test set whose
seed no training run uses, and any labelled folder passed with ``--data``. The
test set is drawn at ``--difficulty``: ``exact`` (the default) is the real
captcha's look, ``mixed`` varies around it and is also split into thirds of
drawn difficulty. For
each it prints sequence accuracy (case-sensitive and not), character accuracy
(1 - CER), single-image latency (median and p90, warm, PNG bytes to text),
batch throughput, and install size, as a Markdown table; ``--json`` keeps it all.

Set up the peers first (they are never dependencies of knucaptcha)::

    benchmarks/setup_peers.sh
    .bench-venv/bin/python benchmarks/compare_peers.py --json out/peers.json
    .bench-venv/bin/python benchmarks/compare_peers.py --difficulty mixed --json out/peers-mixed.json
    .bench-venv/bin/python benchmarks/compare_peers.py --tflite out/default.tflite   # + a LiteRT row
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from install_size import install_size
from peers import Peer
from peers.ddddocr_peer import DdddocrPeer
from peers.knucaptcha_peer import KnucaptchaPeer
from peers.tesseract_peer import TesseractPeer
from peers.whisperer_peer import WhispererPeer

from knucaptcha.errors import KnucaptchaError
from knucaptcha.generator import DIFFICULTIES
from knucaptcha.metrics import score

TEST_SEED = 990001  # never used by a training run: keep it out of every training command
WARMUP = 5
BATCH = 64
DIFFICULTY_BANDS = ("difficulty 0-1/3", "difficulty 1/3-2/3", "difficulty 2/3-1")
DIFFICULTY_NOTES = {"exact": "the real captcha's look", "mixed": "drawn uniformly from [0, 1] per image"}
FAIRNESS = (
    "The peers are general captcha models: none was trained on KNU-style images, while knucaptcha's "
    "default was trained on the same generator (with other seeds), so the generated rows measure fit to "
    "this captcha, not general OCR quality. ddddocr tends to answer in lowercase, hence the "
    "case-insensitive column. Transparent images are composited onto white for every peer "
    "(ddddocr with its own png_fix switch); Tesseract gets black-on-white pages with a border, "
    "--psm 7 and a whitelist of the alphabet, the best of the set-ups tried (see benchmarks/peers/tesseract_peer.py)."
)


@dataclass(frozen=True)
class TestSet:
    """Labelled PNG bytes; ``groups`` names each image's subset (difficulty band), or is empty."""

    name: str
    pngs: list[bytes]
    labels: list[str]
    groups: list[str]


def generated_set(style_name: str, difficulty: str, count: int, seed: int) -> TestSet:
    """``count`` ``style_name`` captchas at ``difficulty``; only ``mixed`` is split into bands, since a
    fixed level draws every image at one difficulty (the whole set is its one band)."""
    from knucaptcha.generator import encode_png, generate_samples, get_style

    samples = list(generate_samples(get_style(style_name, difficulty=difficulty), seed, count))
    note = f" ({DIFFICULTY_NOTES[difficulty]})" if difficulty in DIFFICULTY_NOTES else ""
    bands = [DIFFICULTY_BANDS[min(2, int(sample.difficulty * 3))] for sample in samples]
    return TestSet(
        f"generated {style_name}, difficulty {difficulty}{note}, {count} images, seed {seed}",
        [encode_png(sample.image) for sample in samples],
        [sample.label for sample in samples],
        bands if difficulty == "mixed" else [],
    )


def folder_set(folder: Path) -> TestSet:
    from knucaptcha.labels import scan_folder

    items = scan_folder(folder)
    if not items:
        raise SystemExit(f"error: no labelled images in {folder}")
    return TestSet(f"folder {folder}, {len(items)} images", [item.path.read_bytes() for item in items],
                   [item.label for item in items], [])


def int8_model(fp32: str | None, style: str, workdir: Path) -> Path:
    """An int8 copy of ``fp32`` (default: the shipped model), made as ``knucaptcha export --format onnx-int8``
    makes it: convolutions calibrated on generated ``style`` captchas of their own seed.

    Raises:
        ImportError: this knucaptcha has no ``quantize`` module.
        ModelError: the model cannot be quantized, or ``onnx`` is missing.
    """
    from knucaptcha.generator import generate_samples, get_style
    from knucaptcha.inference import resolve_model
    from knucaptcha.quantize import CALIBRATION_COUNT, CALIBRATION_SEED, quantize_int8

    source = resolve_model(fp32)
    calibration = generate_samples(get_style(style, "mixed"), CALIBRATION_SEED, CALIBRATION_COUNT)
    return quantize_int8(source, workdir / f"{source.stem}.int8.onnx", [sample.image for sample in calibration])


def model_alphabet(model: str | None) -> str:
    """The symbols the knucaptcha model reads; the KNU alphabet when the model does not load."""
    from knucaptcha.charset import DIGITS_UPPER
    from knucaptcha.inference import Solver

    try:
        return Solver.load(model).spec.charset.symbols
    except KnucaptchaError:
        return DIGITS_UPPER


def build_peers(args: argparse.Namespace, workdir: Path) -> tuple[list[Peer], dict[str, str]]:
    """Every solver that loads here, and for each one that does not, why."""
    fp32_name = "knucaptcha" if args.model is None else f"knucaptcha ({Path(args.model).name})"

    def knucaptcha_int8(name: str) -> Peer:
        model = Path(args.int8) if args.int8 else int8_model(args.model, args.style, workdir)
        return KnucaptchaPeer(name, model, args.threads)

    alphabet = args.alphabet or model_alphabet(args.model)
    both_cases = "".join(dict.fromkeys(alphabet + alphabet.lower()))
    makers: dict[str, Callable[[str], Peer]] = {  # row name -> how to build that solver
        fp32_name: lambda name: KnucaptchaPeer(name, args.model, args.threads),
        f"{fp32_name} int8": knucaptcha_int8,
        f"{fp32_name} tflite": lambda name: KnucaptchaPeer(name, args.tflite, args.threads),
        "ddddocr": lambda name: DdddocrPeer(name),
        "ddddocr, set_ranges": lambda name: DdddocrPeer(name, both_cases),
        "ddddocr beta, set_ranges": lambda name: DdddocrPeer(name, both_cases, beta=True),
        "captcha-whisperer": lambda name: WhispererPeer(name, args.threads),
        "Tesseract": lambda name: TesseractPeer(name, alphabet),
    }
    if args.tflite is None:
        del makers[f"{fp32_name} tflite"]
    peers, unavailable = [], {}
    for name, make in makers.items():
        if args.only and not any(part.lower() in name.lower() for part in args.only):
            continue
        try:
            peers.append(make(name))
        except (ImportError, OSError, RuntimeError, KnucaptchaError) as error:
            unavailable[name] = f"{type(error).__name__}: {error}"
    return peers, unavailable


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(peer: Peer, test_set: TestSet) -> dict[str, Any]:
    """Accuracy and single-image latency from one warm pass, then throughput from a batch pass."""
    print(f"  {test_set.name}: {peer.name} ...", file=sys.stderr, flush=True)
    for png in test_set.pngs[:WARMUP]:
        peer.solve(png)
    texts, seconds = [], []
    for png in test_set.pngs:
        start = time.perf_counter()
        texts.append(peer.solve(png))
        seconds.append(time.perf_counter() - start)
    if peer.batched:
        peer.solve_batch(test_set.pngs[:BATCH])
        start = time.perf_counter()
        batch_texts = peer.solve_batch(test_set.pngs)
        batch_seconds = time.perf_counter() - start
        batch_disagreements = sum(a != b for a, b in zip(texts, batch_texts))
    else:
        batch_seconds, batch_disagreements = sum(seconds), 0  # no batch API: the sequential pass is its batch
    sensitive = score(test_set.labels, texts)
    groups: dict[str, Any] = {}
    for group in sorted(set(test_set.groups)):
        picked = [i for i, name in enumerate(test_set.groups) if name == group]
        groups[group] = score([test_set.labels[i] for i in picked], [texts[i] for i in picked]).sequence_accuracy
    return {
        "solver": peer.name,
        "sequence_accuracy": sensitive.sequence_accuracy,
        "sequence_accuracy_case_insensitive": score(test_set.labels, texts, case_sensitive=False).sequence_accuracy,
        "char_accuracy": sensitive.char_accuracy,
        "latency_ms_median": 1000 * statistics.median(seconds),
        "latency_ms_p90": 1000 * percentile(seconds, 0.9),
        "throughput_per_s": len(texts) / batch_seconds,
        "throughput_mode": f"batch of {BATCH}" if peer.batched else "sequential",
        "batch_disagreements": batch_disagreements,
        "sequence_accuracy_by_group": groups,
        "examples": [{"label": label, "read": text} for label, text in zip(test_set.labels[:8], texts[:8])],
    }


def environment(peers: Sequence[Peer]) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for name in ("knucaptcha", "onnxruntime", "numpy", "pillow", "ddddocr", "captcha-whisperer", "pytesseract"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    tesseract = next((peer for peer in peers if isinstance(peer, TesseractPeer)), None)
    if tesseract is not None:
        versions["tesseract"] = str(tesseract.pytesseract.get_tesseract_version())
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],  # the machine is shared
        "versions": versions,
        "command": " ".join(["python", *sys.argv]),
    }


def sizes_mib(peers: Sequence[Peer]) -> dict[str, float]:
    distributions = {peer.distribution for peer in peers}
    return {name: sum(install_size(name).values()) / 2**20 for name in sorted(distributions)}


def markdown(rows: Sequence[dict[str, Any]], unavailable: dict[str, str], sizes: dict[str, float],
             distribution_of: dict[str, str]) -> str:
    lines = [
        "| solver | seq. acc. | seq. acc. (any case) | char. acc. | latency median / p90 (ms) "
        "| throughput (img/s) | install (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        size = sizes.get(distribution_of[row["solver"]], float("nan"))
        lines.append(
            f"| {row['solver']} | {row['sequence_accuracy']:.2%} | {row['sequence_accuracy_case_insensitive']:.2%} "
            f"| {row['char_accuracy']:.2%} | {row['latency_ms_median']:.2f} / {row['latency_ms_p90']:.2f} "
            f"| {row['throughput_per_s']:,.0f} ({row['throughput_mode']}) | {size:.0f} |"
        )
    for name, reason in unavailable.items():
        lines.append(f"| {name} | not available: {reason} | | | | | |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="knucaptcha model to compare (default: the shipped default model)")
    parser.add_argument("--int8", help="an int8 model to compare (default: --model quantized by knucaptcha.quantize)")
    parser.add_argument("--tflite", help="also a .tflite export on LiteRT (needs knucaptcha's litert extra)")
    parser.add_argument("--data", type=Path, action="append", default=[], help="a labelled folder (repeatable)")
    parser.add_argument("--style", default="knu", help="generator style of the test set (default: knu)")
    parser.add_argument("--difficulty", default="exact", choices=DIFFICULTIES,
                        help="generator difficulty of the test set (default: exact, the real captcha's look; "
                             "mixed adds a split by difficulty band)")
    parser.add_argument("--count", type=int, default=2000, help="generated test images; 0 for none (default 2000)")
    parser.add_argument("--seed", type=int, default=TEST_SEED, help=f"test-set seed (default {TEST_SEED})")
    parser.add_argument("--alphabet", help="Tesseract whitelist and ddddocr range (default: the model's charset)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX Runtime threads for knucaptcha and captcha-whisperer (ddddocr has no such "
                             "option); default 0: each tool's own choice")
    parser.add_argument("--only", nargs="+", help="run only solvers whose name contains one of these words")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    test_sets = [generated_set(args.style, args.difficulty, args.count, args.seed)] if args.count > 0 else []
    test_sets += [folder_set(folder) for folder in args.data]
    if not test_sets:
        raise SystemExit("error: nothing to test on: --count is 0 and no --data given")
    with tempfile.TemporaryDirectory() as workdir:
        peers, unavailable = build_peers(args, Path(workdir))
        env = environment(peers)
        sizes = sizes_mib(peers)
        distribution_of = {peer.name: peer.distribution for peer in peers}
        load = ", ".join(map(str, env["load_average_1_5_15"]))
        print(f"{env['date']} · {env['cpu']} · {env['cores']} cores · load average {load} · Python {env['python']}")
        print("versions: " + ", ".join(f"{name} {version}" for name, version in env["versions"].items()))
        print(f"command: {env['command']}")
        print(f"ONNX Runtime threads: {args.threads or 'each tool decides'}")
        if args.count > 0:
            note = DIFFICULTY_NOTES.get(args.difficulty)
            print(f"generated test set: style {args.style}, difficulty {args.difficulty}"
                  + (f" ({note})" if note else ""))
        results = []
        for test_set in test_sets:
            rows = [measure(peer, test_set) for peer in peers]
            print(f"\n### {test_set.name}\n\n{markdown(rows, unavailable, sizes, distribution_of)}")
            for row in rows:
                if row["sequence_accuracy_by_group"]:
                    parts = ", ".join(f"{group} {value:.2%}" for group, value in row["sequence_accuracy_by_group"].items())
                    print(f"- {row['solver']}, sequence accuracy by difficulty: {parts}")
            results.append({"test_set": test_set.name, "threads": args.threads, "rows": rows})
    env["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    print(f"\nLoad average at the end: {', '.join(map(str, env['load_average_at_end']))} (2 cores, shared: "
          "latency and throughput move with it; accuracy does not).")
    print(f"\nInstall size: the installed files of each tool's pip dependency closure, measured in this venv "
          f"(benchmarks/install_size.py); Tesseract adds its Debian packages.\n\n{FAIRNESS}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"environment": env, "install_size_mib": sizes, "unavailable": unavailable,
                  "fairness": FAIRNESS, "results": results}
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    try:
        main()
    except KnucaptchaError as error:  # a bad --data folder or --model: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
