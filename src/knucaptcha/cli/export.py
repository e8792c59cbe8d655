"""``knucaptcha export``: copies of a model (int8 ONNX, TFLite, fp32 ONNX), with their size and accuracy change.

int8 quantization starts from the ONNX file and needs no torch; TFLite
conversion and the fp32 ONNX export start from the PyTorch checkpoint and
import torch (and litert-torch) inside the command only. ``--read-length``
sets the number of symbols the copy reads by default, e.g. to stamp a model
for a site whose captchas always show four.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from ..spec import METADATA_PREFIX
from .app import app, console

if TYPE_CHECKING:
    from ..generator import Sample
    from ..inference import Solver

ONNX_NAME = "model.onnx"
CHECKPOINT_NAMES = ("model.pt", "checkpoint.pt")
"""A run folder's files, in the order they are preferred."""


class Format(str, Enum):
    onnx_int8 = "onnx-int8"
    tflite = "tflite"
    onnx = "onnx"


SUFFIXES = {Format.onnx_int8: ".int8.onnx", Format.tflite: ".tflite", Format.onnx: ".fp32.onnx"}


def onnx_source(model: str) -> Path | None:
    """The ONNX file behind MODEL: the file itself, a run folder's model.onnx, the bundled default's."""
    from ..inference import BUNDLED_MODELS, resolve_model

    if model in BUNDLED_MODELS:
        return resolve_model(model)
    path = Path(model)
    if path.is_dir() or path.suffix == ".pt":
        folder = path if path.is_dir() else path.parent
        return folder / ONNX_NAME if (folder / ONNX_NAME).is_file() else None
    return resolve_model(path)


def checkpoint_source(model: str) -> Path:
    """The PyTorch checkpoint behind MODEL: the file itself, a run folder's, the bundled default's.

    An ONNX file stands for the run folder it lies in.
    """
    from ..train.checkpoint import BUNDLED, resolve

    path = Path(model)
    if model not in BUNDLED and path.suffix == ".onnx":
        found = [path.parent / name for name in CHECKPOINT_NAMES if (path.parent / name).is_file()]
        if not found:
            raise ConfigError(
                f"TFLite and ONNX export start from the PyTorch checkpoint; {path.parent} holds none: pass a .pt file"
            )
        return found[0]
    return resolve(model)


def default_out(source: Path, fmt: Format, bundled: bool) -> Path:
    """Beside the source file (in the working folder for a bundled model), named after it."""
    folder = Path.cwd() if bundled else source.parent
    return folder / f"{source.stem}{SUFFIXES[fmt]}"


@app.command()
def export(
    model: Annotated[
        str, typer.Argument(help="A .onnx file, a run folder, a checkpoint (.pt) or a bundled model's name.")
    ],
    fmt: Annotated[
        Format,
        typer.Option(
            "--format", help="onnx-int8 (ONNX Runtime), tflite (LiteRT) or onnx (fp32, from the PyTorch checkpoint)."
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Output file; default: beside the source.")] = None,
    samples: Annotated[
        int, typer.Option(min=0, help="Generated images to measure the accuracy change on; 0 skips it.")
    ] = 500,
    style: Annotated[
        str | None, typer.Option(help="Style of those images; default: the one the model was trained on, else knu.")
    ] = None,
    difficulty: Annotated[str, typer.Option(help="Their difficulty.")] = "mixed",
    seed: Annotated[int, typer.Option(help="Their seed (keep it apart from training seeds).")] = 9001,
    calibration: Annotated[
        int,
        typer.Option(
            min=0,
            help="onnx-int8: generated images (of --style, --difficulty) the int8 convolutions are calibrated on; "
            "0 leaves the convolutions float.",
        ),
    ] = 256,  # knucaptcha.quantize.CALIBRATION_COUNT, spelled out for the help text
    read_length: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            help="Symbols the copy reads when a caller gives no --length (0: any number); "
            "default: the source's (a checkpoint's: its generated style's length, if all its labels have one).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Write an int8-quantized ONNX, a TFLite or an fp32 ONNX copy of MODEL, then compare it with the original.

    Every copy carries the model's metadata, so `knucaptcha solve --model`
    reads it as it reads the original (a .tflite file needs the litert extra).
    The fp32 ONNX copy is exported anew from the PyTorch checkpoint, as
    training exports; with --read-length it stamps how many symbols it reads.
    """
    from ..inference import BUNDLED_MODELS, Solver

    bundled = model in BUNDLED_MODELS
    reference_path = onnx_source(model)
    reference = Solver.load(reference_path) if reference_path is not None else None
    if fmt is Format.onnx_int8:
        from ..quantize import CALIBRATION_SEED, quantize_int8

        if reference_path is None or reference is None:
            raise ConfigError(f"int8 quantization starts from an ONNX file; no {ONNX_NAME} beside {model}")
        target = out or default_out(reference_path, fmt, bundled)
        _refuse_overwrite(target, reference_path)
        with console.status("quantizing"):
            name = style or _trained_style(reference.metadata)
            images = _generated(name, difficulty, CALIBRATION_SEED, calibration)
            written = quantize_int8(reference_path, target, [sample.image for sample in images], read_length)
    else:
        from ..train.export import checkpoint_export_args, export_onnx

        checkpoint = checkpoint_source(model)
        target = out or default_out(checkpoint, fmt, bundled)
        _refuse_overwrite(target, checkpoint)
        if reference_path is not None:
            _refuse_overwrite(target, reference_path)
        loaded, spec, metadata = checkpoint_export_args(checkpoint, read_length)
        if fmt is Format.tflite:
            from ..train.litert import export_tflite

            console.print(f"converting {checkpoint} with litert-torch", markup=False)
            written = export_tflite(loaded, spec, target, metadata)
        else:
            with console.status(f"exporting {checkpoint}"):
                written = export_onnx(loaded, spec, target, metadata)
    candidate = Solver.load(written)
    report: dict[str, Any] = {
        "format": fmt.value,
        "file": str(written),
        "bytes": os.path.getsize(written),
        "read_length": candidate.read_length,
        "reference": str(reference_path) if reference_path is not None else None,
        "reference_bytes": os.path.getsize(reference_path) if reference_path is not None else None,
    }
    if samples:
        report["comparison"] = _measure(candidate, reference, samples, style, difficulty, seed)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report, Console())


def _refuse_overwrite(target: Path, source: Path) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise ConfigError(f"--out {target} is the model being exported")


def _measure(
    candidate: Solver, reference: Solver | None, count: int, style: str | None, difficulty: str, seed: int
) -> dict[str, Any]:
    from ..agreement import compare

    name = style or _trained_style(candidate.metadata)
    chosen = _generated(name, difficulty, seed, count)
    with console.status(f"reading {count} generated {name} images"):
        result = compare(candidate, reference, [s.image for s in chosen], [s.label for s in chosen])
    return {"style": name, "difficulty": difficulty, "seed": seed, **result.to_dict()}


def _generated(style: str, difficulty: str, seed: int, count: int) -> list[Sample]:
    """``count`` generated captchas of ``style`` at ``difficulty``, drawn from ``seed``."""
    from ..generator import generate_samples, get_style

    return list(generate_samples(get_style(style, difficulty), seed=seed, count=count))


def _trained_style(metadata: dict[str, str]) -> str:
    """The generator style the model was trained on, if its training summary names one; else ``knu``."""
    try:
        data = json.loads(metadata[f"{METADATA_PREFIX}training"])["data"]
        return str(data["style"]) if data.get("kind") == "generated" else "knu"
    except (KeyError, TypeError, ValueError):
        return "knu"


def _print_report(report: dict[str, Any], out: Console) -> None:
    table = Table("model", "file", "size", "sequence accuracy", title=f"export --format {report['format']}")
    comparison = report.get("comparison")
    if report["reference"] is not None:
        accuracy = f"{comparison['reference_accuracy']:.2%}" if comparison else "-"
        table.add_row("original", report["reference"], _size(report["reference_bytes"]), accuracy)
    accuracy = f"{comparison['accuracy']:.2%}" if comparison else "-"
    table.add_row(report["format"], report["file"], _size(report["bytes"]), accuracy)
    out.print(table)
    length = report["read_length"]
    out.print(f"reads {length} symbols unless told otherwise" if length else "reads any number of symbols unless told")
    if comparison:
        line = (
            f"{comparison['count']} generated {comparison['style']} images "
            f"({comparison['difficulty']}, seed {comparison['seed']})"
        )
        if comparison["agreement"] is not None:
            line += f"; both read the same text on {comparison['agreement']:.2%}"
        out.print(line, markup=False)


def _size(count: int) -> str:
    return f"{count / 1024:.1f} KiB"
