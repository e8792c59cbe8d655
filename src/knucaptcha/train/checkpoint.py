"""Checkpoints: weights together with their ModelSpec, ArchConfig and preset, in one file.

Two kinds share one layout: a run's ``checkpoint.pt`` (current and best
weights, optimizer, epoch, early-stopping state, history, configuration: all
that ``--resume`` needs) and a model file ``model.pt`` (the best weights only,
for ``--init`` and the other exporters). :func:`load_checkpoint` reads both.
Files are written atomically, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..charset import BLANK, Charset
from ..errors import ConfigError, MissingFileError, ModelError, TrainingError
from ..inference import bundled_path
from ..spec import ModelSpec, PreprocessSpec
from .config import ArchConfig
from .model import CRNN

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
BUNDLED = {"default": "default.pt", "knu2021": "knu2021.pt", "opaque": "opaque.pt"}
"""Models shipped in the package, by the name ``--init`` accepts."""


class LoadedModel(NamedTuple):
    """A model rebuilt from a checkpoint (best weights, eval mode) with its description."""

    model: CRNN
    spec: ModelSpec
    arch: ArchConfig
    preset: str
    state: dict[str, Any]


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temp_path)`` on a temporary file in ``path``'s folder, then move it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); these should get the usual umask permissions.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def save(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint dictionary atomically."""
    atomic_write(path, lambda temp: torch.save({"format": FORMAT, **state}, temp))


def describe(model: CRNN, spec: ModelSpec, arch: ArchConfig, preset: str) -> dict[str, Any]:
    """The part every checkpoint carries: weights and everything needed to rebuild the model."""
    return {"model": model.state_dict(), "spec": spec.to_metadata(), "arch": arch.to_dict(), "preset": preset}


def resolve(reference: str | os.PathLike[str]) -> Path:
    """The file behind ``--init``: a bundled name, a run folder (its ``model.pt``, else its checkpoint) or a file."""
    if isinstance(reference, str) and reference in BUNDLED:
        return bundled_path(reference, BUNDLED[reference])
    path = Path(reference)
    if path.is_dir():
        for name in (MODEL_NAME, CHECKPOINT_NAME):
            if (path / name).is_file():
                return path / name
        raise MissingFileError(f"{path} holds neither {MODEL_NAME} nor {CHECKPOINT_NAME}")
    if not path.is_file():
        raise MissingFileError(f"no such checkpoint: {path}")
    return path


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dictionary stored in a checkpoint file; :class:`ModelError` if it is not one of ours."""
    path = resolve(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike on a bad file
        raise ModelError(f"{path} is not a readable checkpoint: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict) or not {"format", "model", "spec", "arch"} <= set(state):
        raise ModelError(f"{path} is not a knucaptcha checkpoint")
    if state["format"] > FORMAT:
        raise ModelError(f"{path} has checkpoint format {state['format']}, newer than this knucaptcha reads")
    return state


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedModel:
    """Rebuild the model a checkpoint holds, with its best weights, in eval mode.

    Args:
        path: a ``.pt`` file, a run folder, or a bundled model's name (``default``).
    """
    state = read(path)
    try:
        spec = ModelSpec.from_metadata(state["spec"])
        arch = ArchConfig.from_dict(state["arch"])
    except ConfigError as error:
        raise ModelError(f"{path}: {error}") from None
    model = CRNN(arch, spec)
    model.load_state_dict(state.get("best_model", state["model"]))
    return LoadedModel(model.eval(), spec, arch, state.get("preset", "custom"), state)


def adaptable(model: PreprocessSpec, data: PreprocessSpec) -> bool:
    """Whether a model reading ``model`` can be fine-tuned on data read as ``data``: the same but for the
    input width (the CRNN reads any) and the background treatment (an image-wise normalization its
    layers adapt to, as they do to another site's paper)."""
    return replace(data, width=model.width, background=model.background) == model


def adapt(
    loaded: LoadedModel,
    charset: Charset,
    max_length: int,
    *,
    keep_symbols: bool = True,
    preprocess: PreprocessSpec | None = None,
    arch: ArchConfig | None = None,
) -> tuple[CRNN, ModelSpec]:
    """A copy of ``loaded`` that reads ``charset``, for fine-tuning on data with another vocabulary.

    With ``keep_symbols`` the new charset keeps the old symbols in their
    classes and appends the data's new ones (a site's model learning a symbol
    more); without it the new charset is exactly ``charset`` (a broad reader
    narrowed to a folder's symbols, which should never answer with one the
    folder does not use, nor read more symbols than its labels hold). Either
    way the blank's and every kept symbol's output row is copied; new rows
    start from fresh initialization. ``preprocess`` is the data's reading where
    it differs from the model's in what the weights do not fix
    (:func:`adaptable`): the input width, the background treatment.

    ``arch`` builds another architecture around what it shares with the
    model's (:func:`shared_weights`): a ``wide-conv`` model started from a
    ``wide`` one keeps its feature extractor and column projection and learns
    only its new sequence stage and output layer.

    Raises:
        TrainingError: the data shares no symbol with the model, or ``arch``
            shares no weights with it (nothing to fine-tune from).
    """
    old = loaded.spec.charset
    shared = [s for s in charset.symbols if s in old]
    if not shared:
        raise TrainingError(
            f"the data's vocabulary {charset.symbols!r} shares no symbol with the model's {old.symbols!r}; "
            "train from scratch with --init none"
        )
    merged = Charset(old.symbols + "".join(s for s in charset.symbols if s not in old)) if keep_symbols else charset
    spec = ModelSpec(merged, preprocess or loaded.spec.preprocess, max(max_length, loaded.spec.max_length) if keep_symbols else max_length)
    model = CRNN(arch or loaded.arch, spec)
    weights = shared_weights(loaded.model, model)
    if not weights:
        raise TrainingError(
            f"the architecture asked for shares no layer with the model's (preset {loaded.preset}): nothing to start "
            "from; train from scratch with --init none"
        )
    model.load_state_dict(weights, strict=False)
    if model.classifier.in_features != loaded.model.classifier.in_features:
        return model, spec  # a new sequence stage: its output layer starts fresh
    # Class 0 is the blank in both; symbol i is class i + 1.
    carried = [s for s in merged.symbols if s in old]
    rows = [(BLANK, BLANK)] + [(merged.symbols.index(s) + 1, old.symbols.index(s) + 1) for s in carried]
    new_rows, old_rows = (list(side) for side in zip(*rows))
    with torch.no_grad():
        model.classifier.weight[new_rows] = loaded.model.classifier.weight[old_rows]
        model.classifier.bias[new_rows] = loaded.model.classifier.bias[old_rows]
    return model, spec


def shared_weights(source: CRNN, target: CRNN) -> dict[str, torch.Tensor]:
    """The weights of ``source`` that ``target`` holds under the same name and shape, but for the
    output layer (whose rows :func:`adapt` maps symbol by symbol) and BatchNorm's batch counters
    (scalars that every model has, and no weights)."""
    wanted = target.state_dict()
    return {
        name: tensor
        for name, tensor in source.state_dict().items()
        if tensor.dim() and not name.startswith("classifier.") and name in wanted and wanted[name].shape == tensor.shape
    }
