"""The service's configuration: one typed, frozen, validated value built once at start-up.

``knucaptcha serve`` only overrides fields; the app factory reads nothing else
(no globals, no environment), so a test builds an app from a ``ServeSettings``
exactly as the command does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ctc import ReadOptions
from ..errors import ConfigError
from ..generator import DIFFICULTIES, STYLE_NAMES
from ..labelling import WRITE_MODES
from ..spec import check_keys

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a model name may look like: it appears in URLs (``?model=NAME``) and in ``NAME=PATH``."""

ModelEntry = tuple[str, str]
"""A model to load: ``(name, reference)``, the reference a file path or a bundled model's name."""


def parse_model_option(text: str) -> ModelEntry:
    """``NAME=PATH`` → ``(NAME, PATH)``; a bundled name such as ``default`` → itself;
    any other ``PATH`` → named after the file's stem (``models/knu2021.onnx`` → ``knu2021``)."""
    name, separator, reference = text.partition("=")
    if separator:
        if not MODEL_NAME.fullmatch(name) or not reference:
            raise ConfigError(f"--model must be NAME=PATH, a bundled model's name or a path, not {text!r}")
        return name, reference
    if MODEL_NAME.fullmatch(text) and "." not in text:
        return text, text  # a bundled model's name
    stem = Path(text).stem
    if not MODEL_NAME.fullmatch(stem):
        raise ConfigError(f"cannot name a model after {text!r}; give it a name as NAME=PATH")
    return stem, text


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``knucaptcha serve`` can be told.

    Args:
        models: the models to load, ``(name, reference)`` each; the first is
            the default one (used when a request names none, and by ``/api``).
        host: interface to listen on; loopback unless told otherwise.
        port: TCP port.
        threads: ONNX Runtime intra-op threads per model; 1 suits a server,
            whose concurrency comes from serving several requests at once.
        max_upload_bytes: largest request body accepted (the whole body,
            multipart framing included); more is answered 413.
        max_pixels: largest image (width × height) decoded; more is answered 400.
        max_batch_files: most images in one ``/v1/solve/batch`` request.
        max_beam_width: largest ``beam`` a request may ask for.
        header_timeout_seconds: a connection whose request headers are not
            complete this long after it opened (or after its last response)
            is closed: slow clients cannot hold connections (slowloris).
        body_timeout_seconds: a request body not received in full this long
            after its headers is answered 408 and its connection closed.
        captcha_style: generator style ``/captcha`` draws.
        captcha_difficulty: its difficulty preset (``exact``: the real captcha's look; ``mixed`` varies per image).
        captcha_seed: seed of ``/captcha``'s image stream; None draws a random
            one at start-up (fix it for reproducible tests).
        captcha_store_size: most ``/captcha`` answers remembered at once (the oldest go first).
        captcha_ttl_seconds: how long an issued captcha can be verified.
        label_dir: a folder to serve the labelling page (``/label``) for.
        label_write: how that page writes labels: ``csv``, ``rename`` or ``both``
            (see :mod:`knucaptcha.labelling`).
        site: how the site's captchas are read when nothing else is said:
            its alphabet (``symbols``), the number of symbols its captchas
            always show (``length``) and the beam width. Solve requests give
            their own per field; ``/api`` and the labelling page's guesses
            always use these. Every model must be able to follow them. A
            ``length`` of None leaves it to each model's own reading length
            (:attr:`knucaptcha.Solver.read_length`); 0 reads any number.
        verify_models: check each model's weights against the SHA-256 stored
            in it at export (see :meth:`knucaptcha.Solver.load`); a corrupt
            model stops the service from starting.
    """

    models: tuple[ModelEntry, ...] = (("default", "default"),)
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 1
    max_upload_bytes: int = 1_000_000
    max_pixels: int = 1024 * 1024
    max_batch_files: int = 64
    max_beam_width: int = 32
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    captcha_style: str = "knu"
    captcha_difficulty: str = "exact"
    captcha_seed: int | None = None
    captcha_store_size: int = 10_000
    captcha_ttl_seconds: float = 600.0
    label_dir: Path | None = None
    label_write: str = "csv"
    site: ReadOptions = ReadOptions()
    verify_models: bool = True

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("at least one model is needed")
        names = [name for name, _ in self.models]
        for name in names:
            if not MODEL_NAME.fullmatch(name):
                raise ConfigError(f"model name {name!r} must be letters, digits, '_', '.' or '-' (at most 64)")
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ConfigError(f"model names must be unique; repeated: {', '.join(repeated)}")
        if not self.host:
            raise ConfigError("host must not be empty")
        _check_range("port", self.port, 0, 65535)
        _check_range("threads", self.threads, 0, 256)
        _check_range("max_upload_bytes", self.max_upload_bytes, 1, 1 << 30)
        _check_range("max_pixels", self.max_pixels, 1, 1 << 28)
        _check_range("max_batch_files", self.max_batch_files, 1, 10_000)
        _check_range("max_beam_width", self.max_beam_width, 0, 1024)
        if not isinstance(self.site, ReadOptions):
            raise ConfigError(f"site must be ReadOptions, not {type(self.site).__name__}")
        if self.site.beam_width > self.max_beam_width:
            raise ConfigError(
                f"the site's beam width {self.site.beam_width} is over max_beam_width ({self.max_beam_width})"
            )
        _check_range("captcha_store_size", self.captcha_store_size, 1, 10_000_000)
        if self.captcha_seed is not None:
            _check_range("captcha_seed", self.captcha_seed, 0, (1 << 63) - 1)
        if self.captcha_style not in STYLE_NAMES:
            raise ConfigError(f"captcha_style must be one of {', '.join(STYLE_NAMES)}, not {self.captcha_style!r}")
        if self.captcha_difficulty not in DIFFICULTIES:
            raise ConfigError(
                f"captcha_difficulty must be one of {', '.join(DIFFICULTIES)}, not {self.captcha_difficulty!r}"
            )
        _check_seconds("captcha_ttl_seconds", self.captcha_ttl_seconds, 86_400)
        _check_seconds("header_timeout_seconds", self.header_timeout_seconds, 3_600)
        _check_seconds("body_timeout_seconds", self.body_timeout_seconds, 3_600)
        if not isinstance(self.verify_models, bool):
            raise ConfigError(f"verify_models must be true or false, not {self.verify_models!r}")
        if self.label_write not in WRITE_MODES:
            raise ConfigError(f"label_write must be one of {', '.join(WRITE_MODES)}, not {self.label_write!r}")

    @property
    def default_model(self) -> str:
        """The name of the model used when a request names none."""
        return self.models[0][0]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ServeSettings:
        """Build from a JSON-friendly mapping (lists for tuples, strings for paths), rejecting unknown keys."""
        check_keys(cls, values)
        converted = dict(values)
        if "models" in converted:
            converted["models"] = tuple((str(name), str(ref)) for name, ref in converted["models"])
        if converted.get("label_dir") is not None:
            converted["label_dir"] = Path(converted["label_dir"])
        if "site" in converted:
            check_keys(ReadOptions, converted["site"])
            converted["site"] = ReadOptions(**converted["site"])
        return cls(**converted)


def _check_seconds(name: str, value: object, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if not 0 < value <= high:
        raise ConfigError(f"{name} must lie in (0, {high}], not {value}")


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must lie in {low}..{high}, not {value}")

