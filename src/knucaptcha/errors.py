"""The exceptions knucaptcha raises.

Every error the library raises on purpose is a :class:`KnucaptchaError`, so a
caller can catch one class. The CLI turns them into one readable line and a
non-zero exit; the web service into a 4xx JSON body. Subclasses also derive
from the matching built-in (``ValueError``, ``FileNotFoundError``) so generic
handlers keep working.
"""

from __future__ import annotations


class KnucaptchaError(Exception):
    """Base class of every error knucaptcha raises on purpose."""


class ConfigError(KnucaptchaError, ValueError):
    """A configuration value is out of range, or an unknown key was given."""


class CharsetError(KnucaptchaError, ValueError):
    """A charset is malformed, or a label holds a symbol the charset lacks."""


class ImageError(KnucaptchaError, ValueError):
    """Input could not be read as an image (empty, truncated, not an image)."""


class ImageTooLargeError(ImageError):
    """The image's dimensions exceed the allowed limit (decompression bombs)."""


class ChannelMismatchError(ImageError):
    """In strict mode, an image of another kind than the model reads: an opaque image
    for a model of transparent captchas (alpha channel), or a transparent one whose
    drawing vanishes on white for a model of opaque ones (gray)."""


class MissingFileError(KnucaptchaError, FileNotFoundError):
    """A file or folder the caller named does not exist."""


class OutputExistsError(KnucaptchaError, FileExistsError):
    """Writing would replace an existing file; knucaptcha never overwrites."""


class LabelError(KnucaptchaError, ValueError):
    """A labelled folder or manifest is malformed."""


class ModelError(KnucaptchaError):
    """A model file is missing, corrupt, or not a knucaptcha model."""


class TrainingError(KnucaptchaError):
    """Training cannot start or continue (bad data, incompatible checkpoint)."""
