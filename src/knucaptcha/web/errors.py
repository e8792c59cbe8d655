"""Errors at the HTTP edge: every failure answers ``{"error": {"code": ..., "message": ...}}``.

The library raises specific :class:`~knucaptcha.errors.KnucaptchaError`
subclasses; here, and only here, they become status codes. Framework errors
(unknown route, bad query parameter, body over the size limit) get the same
JSON shape, so a client parses one kind of error body. So does an error no one
foresaw (a bug): :class:`ServerErrors` answers it with a JSON 500 that names a
request id, and logs the traceback under that id.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ChannelMismatchError, ConfigError, ImageError, ImageTooLargeError, KnucaptchaError, ModelError

# Most specific first: the first class an error is an instance of decides.
_LIBRARY_ERRORS: tuple[tuple[type[KnucaptchaError], int, str], ...] = (
    (ImageTooLargeError, 400, "image_too_large"),
    (ChannelMismatchError, 422, "channel_mismatch"),
    (ImageError, 400, "invalid_image"),
    (ConfigError, 400, "invalid_option"),
    (ModelError, 500, "model_error"),
    (KnucaptchaError, 500, "internal_error"),
)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "upload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A request the service refuses, with its status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


LOGGER = logging.getLogger("knucaptcha.web")
"""Where unexpected errors are logged, each with its request id and traceback."""


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def too_large_message(limit: int) -> str:
    return f"the request body is over the limit of {limit:,} bytes"


def describe(error: KnucaptchaError) -> tuple[int, str]:
    """The status and code a library error is answered with."""
    return next((status, code) for cls, status, code in _LIBRARY_ERRORS if isinstance(error, cls))


def install_error_handlers(app: FastAPI, max_upload_bytes: int) -> None:
    """Register the handlers that give every error response the one JSON shape."""

    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    async def library_error(_: Request, error: KnucaptchaError) -> JSONResponse:
        status, code = describe(error)
        return error_response(status, code, str(error))

    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = str(error.detail)
        if error.status_code == 413:
            message = too_large_message(max_upload_bytes)
        response = error_response(error.status_code, code, message)
        if error.headers:
            response.headers.update(error.headers)
        return response

    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        return error_response(422, "invalid_request", problems)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(KnucaptchaError, library_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


class ServerErrors:
    """Answers an exception no handler took with a JSON 500 naming a request id, and logs its traceback.

    Without it Starlette answers such a bug with a plain-text ``Internal Server
    Error`` that a client cannot parse as the service's errors and that cannot
    be matched to a log line. The id goes in the body's message and in an
    ``X-Request-ID`` header; the traceback in the ``knucaptcha.web`` log. If the
    response had already started, nothing more can be sent: the error is
    raised on for the server to log and close the connection.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise
            request_id = uuid.uuid4().hex
            LOGGER.exception("request %s failed: %s %s", request_id, scope["method"], scope["path"])
            message = f"an unexpected error on the server; the log of request {request_id} has the details"
            response = error_response(500, "internal_error", message)
            response.headers["X-Request-ID"] = request_id
            await response(scope, receive, send)
