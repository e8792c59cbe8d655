"""The Typer application every command module registers on, and its shared helpers.

Library errors are turned into one ``error: ...`` line on stderr and exit
code 2 here, in one place, so no command needs its own handling.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.core import TyperGroup

from ..errors import KnucaptchaError

EXIT_ERROR = 2


class _KnucaptchaGroup(TyperGroup):
    """A command group that reports :class:`KnucaptchaError` as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KnucaptchaError as error:
            message = " ".join(str(error).split())  # one line, whatever the message held
            click.echo(f"error: {message}", err=True)
            raise typer.Exit(EXIT_ERROR) from None


app = typer.Typer(
    name="knucaptcha",
    cls=_KnucaptchaGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Read text captchas: generate data, train, evaluate, export, solve and serve.",
)

console = Console(stderr=True)
"""Progress and status go to stderr so stdout stays parseable (``--json``)."""


def progress() -> Progress:
    """A progress bar in the project's style; use as a context manager."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not sys.stderr.isatty(),
    )
