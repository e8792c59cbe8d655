"""``knucaptcha serve``: the web API, the demo page and practice captchas (FastAPI + uvicorn)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..ctc import ReadOptions
from .app import app, console
from .solve import Beam, Length, Symbols, Verify


@app.command()
def serve(
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            "-m",
            help="A model to load: NAME=PATH, a PATH (named after the file), or a bundled model's name. "
            "Repeat to load several; the first is the default. [default: every bundled model, default first]",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 exposes the service to the network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_upload_bytes: Annotated[int, typer.Option(help="Largest request body; more is answered 413.")] = 1_000_000,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads per inference (0: the runtime decides).")] = 1,
    captcha_seed: Annotated[
        Optional[int], typer.Option(help="Seed of /captcha's image stream (default: random at start-up).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    beam: Beam = 0,
    symbols: Symbols = None,
    length: Length = None,
    verify: Verify = True,
) -> None:
    """Serve the solving API, the demo page, practice captchas and the API docs.

    The API is POST /v1/solve, /v1/solve/batch and /api; the demo page is /,
    practice captchas /captcha, the docs /docs. Stop with Ctrl+C.

    --beam, --symbols and --length say how the site's captchas are read: every
    reading uses them unless a request gives its own (?beam=, ?symbols=,
    ?length=); /api, which takes no options, always does. Without --length,
    each model reads its own reading length (4 for the bundled default);
    --length 0 reads any number."""
    import uvicorn  # FastAPI and uvicorn load only for this command

    from ..inference import BUNDLED_MODELS
    from ..web.app import create_app
    from ..web.server import uvicorn_options
    from ..web.settings import ServeSettings, parse_model_option

    settings = ServeSettings(
        models=tuple(parse_model_option(text) for text in model or list(BUNDLED_MODELS)),
        host=host,
        port=port,
        max_upload_bytes=max_upload_bytes,
        threads=threads,
        captcha_seed=captcha_seed,
        site=ReadOptions(beam, symbols, length),
        verify_models=verify,
    )
    application = create_app(settings)  # loads the models: a bad one fails here, before the port opens
    names = ", ".join(name for name, _ in settings.models)
    url = f"http://{settings.host}:{settings.port}/"
    console.print(f"serving {names} on {url}  (Ctrl+C stops)", highlight=False)
    # No reloader, no debugger; uvicorn uses uvloop and httptools when they are installed (the serve extra).
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        server_header=False,
        log_level="info",
        **uvicorn_options(settings.header_timeout_seconds),
    )
