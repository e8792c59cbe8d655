"""The ``knucaptcha`` command line. Each command group lives in its own module.

Heavy dependencies (torch, FastAPI) are imported inside the commands that
need them, so ``knucaptcha solve`` works from the base install.
"""

from __future__ import annotations

from . import collect  # noqa: F401  (registers commands)
from . import data  # noqa: F401  (registers commands)
from . import evaluate  # noqa: F401  (registers commands)
from . import export  # noqa: F401  (registers commands)
from . import generate  # noqa: F401  (registers commands)
from . import label  # noqa: F401  (registers commands)
from . import serve  # noqa: F401  (registers commands)
from . import solve  # noqa: F401  (registers commands)
from . import train  # noqa: F401  (registers commands)
from .app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="knucaptcha")
