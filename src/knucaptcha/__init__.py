"""knucaptcha: read text captchas, first of all Kyungpook National University's.

The public API::

    from knucaptcha import Solver
    solver = Solver.load()                  # the shipped default model
    prediction = solver.solve("captcha.png")
    prediction.text, prediction.confidence, prediction.char_confidences

:class:`Solver` is imported lazily, so importing the numpy/Pillow core (the
generator, preprocessing) never loads ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .charset import Charset
from .ctc import Prediction, ReadOptions
from .errors import (
    ChannelMismatchError,
    CharsetError,
    ConfigError,
    ImageError,
    ImageTooLargeError,
    KnucaptchaError,
    LabelError,
    MissingFileError,
    ModelError,
    OutputExistsError,
    TrainingError,
)
from .preprocess import load_image, to_input
from .spec import ModelSpec, PreprocessSpec

if TYPE_CHECKING:
    from .inference import Solver

__version__ = "0.1.0"

__all__ = [
    "ChannelMismatchError",
    "Charset",
    "CharsetError",
    "ConfigError",
    "ImageError",
    "ImageTooLargeError",
    "KnucaptchaError",
    "LabelError",
    "MissingFileError",
    "ModelError",
    "ModelSpec",
    "OutputExistsError",
    "Prediction",
    "PreprocessSpec",
    "ReadOptions",
    "Solver",
    "TrainingError",
    "load_image",
    "to_input",
]


def __getattr__(name: str) -> Any:
    if name == "Solver":
        from .inference import Solver

        return Solver
    raise AttributeError(f"module 'knucaptcha' has no attribute {name!r}")
