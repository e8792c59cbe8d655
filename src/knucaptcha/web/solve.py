"""Solving endpoints: ``/v1/solve``, ``/v1/solve/batch`` and the original system's ``/api``.

Bodies are read here, under the app's size limit; decoding and inference run
in the event loop's thread pool, never on the loop itself. The format of an
upload is judged by its bytes (Pillow), never by its file name or content type.
Per-request options (model, beam width, allowed symbols, reading length, strict) are arguments to the solver,
never state. An image of another kind than the model reads is answered with a ``warnings`` entry, or with
``strict=true`` refused (422 ``channel_mismatch``; in a batch, an error item).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar, Union

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from PIL import Image
from starlette.datastructures import FormData, UploadFile

from ..ctc import Prediction, ReadOptions
from ..errors import ChannelMismatchError, ImageError
from ..inference import Solver
from ..preprocess import load_image
from .errors import ApiError, describe
from .registry import ModelRegistry
from .schemas import BatchFailed, BatchItem, BatchSolved, ErrorBody, ErrorDetail, SolveResult
from .settings import ServeSettings

_MULTIPART = "multipart/form-data"
_TEXT_FIELDS = 8
"""Text fields a form may carry besides its files: a few strays get "no field 'file'", not "Too many fields"."""
_T = TypeVar("_T")

_IMAGE = {"type": "string", "format": "binary"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Not a readable image, too many pixels, or a missing field"),
        (404, "No model with that name"),
        (413, "The request body is over the size limit"),
        (422, "With strict=true, an image of another kind than the model reads (code channel_mismatch)"),
    )
}


def _image_body(field: str, schema: dict[str, Any], raw_types: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI extras for a required body: a form with the one required field ``field`` (``schema``),
    or, for each of ``raw_types``, the bare image bytes."""
    form = {"type": "object", "properties": {field: schema}, "required": [field]}
    content = {_MULTIPART: {"schema": form}, **{raw: {"schema": _IMAGE} for raw in raw_types}}
    return {"requestBody": {"required": True, "content": content}}


ModelName = Annotated[
    Union[str, None], Query(description="A loaded model's name (GET /v1/models); default: the first.")
]
Beam = Annotated[
    Union[int, None],
    Query(ge=0, description="Beam search width; 0 decodes greedily (fastest). Default: the site's (GET /v1/defaults)."),
]
Symbols = Annotated[
    Union[str, None],
    Query(description="Read only these symbols (the site's alphabet, e.g. without 0/O and 1/I); default: all the model's."),
]
Length = Annotated[
    Union[int, None],
    Query(
        description="Read exactly this many symbols (a site whose captchas always show that many); 0: any number. "
        "Default: the site's (GET /v1/defaults), else the model's reading length (GET /v1/models), else any."
    ),
]

Strict = Annotated[
    Union[bool, None],
    Query(
        description="Refuse an image of another kind than the model reads (an opaque one for a model of "
        "transparent captchas) instead of reading it with a warning: 422 channel_mismatch, or in a batch an "
        "error item. Default: the site's (false unless the service was set up otherwise)."
    ),
]


def _check(options: ReadOptions, solver: Solver, beam_limit: int) -> None:
    """Refuse bad options before the body is read: a beam over the limit, symbols or a length the model cannot read."""
    if options.beam_width > beam_limit:
        raise ApiError(400, "invalid_option", f"beam must be at most {beam_limit}, not {options.beam_width}")
    solver.check_options(options)  # a ConfigError is answered 400 invalid_option


@dataclass(frozen=True)
class Upload:
    """One uploaded image's bytes and what to call it in messages."""

    data: bytes
    filename: str | None

    @property
    def label(self) -> str:
        return "the request body" if self.filename is None else f"file {self.filename!r}"


def solve_router(models: ModelRegistry, settings: ServeSettings) -> APIRouter:
    """The solving endpoints over ``models``, with the limits and the site's defaults in ``settings``."""
    router = APIRouter()
    site = settings.site

    def read_options(
        beam: Beam = None, symbols: Symbols = None, length: Length = None, strict: Strict = None
    ) -> ReadOptions:
        """The query's decoding options, gathered once for every solving endpoint; the site's where it gives none."""
        return ReadOptions(
            site.beam_width if beam is None else beam,
            site.symbols if symbols is None else symbols,
            site.length if length is None else length,
            site.strict if strict is None else strict,
        )

    @router.post(
        "/v1/solve",
        response_model=SolveResult,
        responses=_ERRORS,
        tags=["solve"],
        openapi_extra=_image_body("file", _IMAGE, raw_types=("application/octet-stream", "image/*")),
    )
    async def solve(
        request: Request, model: ModelName = None, options: ReadOptions = Depends(read_options)
    ) -> SolveResult:
        """Read one image: a multipart field `file`, or the raw request body (any content type)."""
        name, solver = models.get(model)
        _check(options, solver, settings.max_beam_width)
        if _is_multipart(request):
            async with request.form(max_files=1, max_fields=_TEXT_FIELDS) as form:
                upload = await _form_file(form, "file")
        else:
            upload = Upload(await request.body(), None)
        started = time.perf_counter()
        prediction = await _off_loop(_solve_one, solver, upload, settings.max_pixels, options)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return SolveResult(**prediction.to_dict(), model=name, elapsed_ms=round(elapsed_ms, 3))

    @router.post(
        "/v1/solve/batch",
        response_model=list[BatchItem],
        responses=_ERRORS,
        tags=["solve"],
        openapi_extra=_image_body("files", {"type": "array", "items": _IMAGE}),
    )
    async def solve_batch(
        request: Request, model: ModelName = None, options: ReadOptions = Depends(read_options)
    ) -> list[BatchItem]:
        """Read several images (multipart field `files`, repeated). Answers one item per file, in order;
        a file that is not a readable image (with `strict`, or not of the kind the model reads) gets an
        `error` item and the others are still read."""
        name, solver = models.get(model)
        _check(options, solver, settings.max_beam_width)
        if not _is_multipart(request):
            raise ApiError(400, "missing_field", f"send the images as {_MULTIPART} fields named 'files'")
        async with request.form(max_files=settings.max_batch_files, max_fields=_TEXT_FIELDS) as form:
            uploads = [await _read(item) for item in form.getlist("files")]
        if not uploads:
            raise ApiError(400, "missing_field", "the form has no field 'files'")
        return await _off_loop(_solve_many, solver, name, uploads, settings.max_pixels, options)

    @router.post("/api", response_class=PlainTextResponse, responses=_ERRORS, tags=["compatibility"])
    async def legacy(request: Request) -> PlainTextResponse:
        """The original system's API: multipart field `upload_file` → the text it reads, as text/plain.
        A form field `checkonline` answers `success` instead (a liveness probe). Uses the default model,
        read with the site's options (`serve --beam/--symbols/--length`, GET /v1/defaults)."""
        async with request.form(max_files=1, max_fields=_TEXT_FIELDS) as form:
            if "checkonline" in form:
                return PlainTextResponse("success")
            upload = await _form_file(form, "upload_file")
        _, solver = models.get()
        prediction = await _off_loop(_solve_one, solver, upload, settings.max_pixels, site)
        return PlainTextResponse(prediction.text)

    return router


async def _off_loop(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` run in the event loop's default thread pool.

    Not Starlette's ``run_in_threadpool``: anyio's capacity limiter and cancel
    scope cost event-loop time on every call, about 15% of the server's CPU per
    ``/v1/solve`` under load (``benchmarks/serve_load.py``).
    """
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith(_MULTIPART)


async def _form_file(form: FormData, field: str) -> Upload:
    if field not in form:
        raise ApiError(400, "missing_field", f"the form has no field {field!r}")
    return await _read(form[field])


async def _read(item: UploadFile | str) -> Upload:
    if isinstance(item, str):
        raise ApiError(400, "missing_field", "images must be sent as file fields (with a filename), not text fields")
    return Upload(await item.read(), item.filename)


def _decode(upload: Upload, max_pixels: int) -> Image.Image:
    try:
        return load_image(upload.data, max_pixels=max_pixels)
    except ImageError as error:
        # Keep the class (it decides the status) but say which upload it was.
        raise type(error)(f"{upload.label}: {error}") from None


def _solve_one(solver: Solver, upload: Upload, max_pixels: int, options: ReadOptions) -> Prediction:
    try:
        return solver.read([_decode(upload, max_pixels)], options)[0]
    except ChannelMismatchError as error:
        raise ChannelMismatchError(f"{upload.label}: {error}") from None


def _solve_many(
    solver: Solver, name: str, uploads: list[Upload], max_pixels: int, options: ReadOptions
) -> list[BatchItem]:
    images: dict[int, Image.Image] = {}
    failures: dict[int, ErrorDetail] = {}
    for index, upload in enumerate(uploads):
        try:
            images[index] = _decode(upload, max_pixels)
        except ImageError as error:
            failures[index] = ErrorDetail(code=describe(error)[1], message=str(error))
    predictions = dict(zip(images, solver.read(list(images.values()), replace(options, strict=False))))
    if options.strict:
        for index, prediction in predictions.items():
            if prediction.warnings:
                mismatch = ChannelMismatchError(f"{uploads[index].label}: {prediction.warnings[0]}")
                failures[index] = ErrorDetail(code=describe(mismatch)[1], message=str(mismatch))
    return [
        BatchFailed(filename=upload.filename, error=failures[index])
        if index in failures
        else BatchSolved(**predictions[index].to_dict(), model=name, filename=upload.filename)
        for index, upload in enumerate(uploads)
    ]
