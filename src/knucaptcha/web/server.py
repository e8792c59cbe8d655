"""Running the app under uvicorn: what ``knucaptcha serve`` (and ``knucaptcha label``) call."""

from __future__ import annotations

from .app import create_app
from .settings import ServeSettings


def serve(settings: ServeSettings, *, access_log: bool = True) -> None:
    """Build the app (loading its models, so a bad model fails before the port opens) and serve it
    until interrupted. No debugger, no reloader."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        server_header=False,
        log_level="info",
    )
