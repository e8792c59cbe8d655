"""The web service, built by :func:`create_app` from a :class:`ServeSettings`.

Models are loaded once, when the app is built; requests share them read-only
and pass their options as arguments. This module imports FastAPI, ONNX Runtime
(through :mod:`knucaptcha.inference`) and the numpy/Pillow core, never torch.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..labelling import LabellingSession
from .captchas import PracticeCaptchas, captcha_router
from .errors import ServerErrors, install_error_handlers
from .headers import HeadAsGet, SecurityHeaders
from .labelling import labelling_router
from .limits import BodyLimit
from .registry import ModelRegistry
from .schemas import Health, ModelInfo, ReadDefaults
from .settings import ServeSettings
from .solve import solve_router

STATIC_DIR = Path(str(resources.files("knucaptcha") / "web" / "static"))


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The service as an ASGI app, its models loaded.

    Raises:
        MissingFileError, ModelError: a model in ``settings`` cannot be loaded.
        ConfigError: the practice captcha style has no fonts to draw with.
        MissingFileError, LabelError: ``settings.label_dir`` is not a folder, or its label files are malformed.
    """
    settings = ServeSettings() if settings is None else settings
    models = ModelRegistry.load(settings)
    captchas = PracticeCaptchas(settings)
    app = FastAPI(
        title="knucaptcha",
        version=__version__,
        description="Reads text captchas. Errors answer `{\"error\": {\"code\": ..., \"message\": ...}}`.",
    )
    # The last added is the outermost: HEAD becomes GET first, headers are added to every answer
    # (a 500 too), an unexpected error is answered before it reaches Starlette's plain-text 500.
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes, timeout=settings.body_timeout_seconds)
    app.add_middleware(ServerErrors)
    docs = frozenset(path for path in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if path)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    app.add_middleware(HeadAsGet)
    install_error_handlers(app, settings.max_upload_bytes)
    app.include_router(solve_router(models, settings))
    app.include_router(_info_router(models, settings))
    app.include_router(captcha_router(captchas))
    if settings.label_dir is not None:
        session = LabellingSession.open(
            settings.label_dir,
            write=settings.label_write,
            solver=models.get()[1],
            options=settings.site,
        )
        app.include_router(labelling_router(session))
    app.include_router(_page_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _info_router(models: ModelRegistry, settings: ServeSettings) -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get("/v1/models", response_model=list[ModelInfo])
    async def list_models() -> list[ModelInfo]:
        """The loaded models: name, charset, input size, preprocessing and the rest of their metadata."""
        return models.describe()

    @router.get("/v1/defaults", response_model=ReadDefaults)
    async def read_defaults() -> ReadDefaults:
        """The site's beam width, alphabet and length (`serve --beam/--symbols/--length`): what a request
        that gives no `beam`, `symbols` or `length` is read with, and what `/api` always uses."""
        site = settings.site
        return ReadDefaults(beam=site.beam_width, symbols=site.symbols, length=site.length)

    @router.get("/healthz", response_model=Health)
    async def health() -> Health:
        """Liveness: answers 200 once the models are loaded."""
        return Health(status="ok", models=models.names)

    return router


def _page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def demo() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return router
