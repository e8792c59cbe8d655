"""``knucaptcha label``: label a folder of captchas in the browser, starting from the model's guesses."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..ctc import ReadOptions
from ..labelling import WRITE_MODES
from .app import app, console
from .solve import Length, Symbols, Verify

WriteMode = Enum("WriteMode", {mode: mode for mode in WRITE_MODES}, type=str)  # type: ignore[misc]
"""The ``--write`` choices, built from :data:`knucaptcha.labelling.WRITE_MODES` so they cannot drift."""


@app.command()
def label(
    folder: Annotated[Path, typer.Argument(help="The folder of images to label (e.g. from 'knucaptcha collect').")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model whose guesses are pre-filled: a .onnx file or a bundled name.")
    ] = "default",
    host: Annotated[str, typer.Option(help="Interface to listen on; loopback keeps the folder private.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    write: Annotated[
        WriteMode,
        typer.Option(help="csv: add rows to labels.csv; rename: rename files LABEL_<n>.ext; both."),
    ] = WriteMode.csv,  # type: ignore[attr-defined]
    symbols: Symbols = None,
    length: Length = None,
    verify: Verify = True,
) -> None:
    """Serve the labelling page for FOLDER at http://HOST:PORT/label.

    Shows the images training would find no label for (not listed in
    labels.csv; without one, named without a label: nothing before the
    first '_', as collect names them), least confident guess first. Enter saves,
    typing corrects, Esc skips, Ctrl+Z undoes. Files are never overwritten or
    deleted. The model's guesses are cached in FOLDER/prelabels.csv, and made
    again for images another model (or other --symbols/--length) guessed.
    """
    import uvicorn  # FastAPI and uvicorn load only for this command

    from ..web.app import create_app
    from ..web.server import uvicorn_options
    from ..web.settings import ServeSettings, parse_model_option

    settings = ServeSettings(
        models=(parse_model_option(model),),
        host=host,
        port=port,
        label_dir=folder,
        label_write=write.value,
        site=ReadOptions(symbols=symbols, length=length),
        verify_models=verify,
    )
    application = create_app(settings)  # scans FOLDER and guesses its labels (once) before the port opens
    console.print(f"labelling {folder}: open http://{host}:{port}/label  (Ctrl+C stops)", highlight=False)
    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,
        server_header=False,
        log_level="warning",
        **uvicorn_options(settings.header_timeout_seconds),
    )
