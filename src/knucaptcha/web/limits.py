"""The request body limit, enforced before and while a body is read, never after.

FastAPI's own ``max_body_size`` answers an over-long ``Content-Length`` with a
plain-text 413 that no exception handler can reshape; this middleware gives
that case the service's JSON error body as well.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response, too_large_message


class BodyLimit:
    """Answers 413 to a request whose body is over ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before any of the
    body is read. Otherwise the bytes are counted as the app reads them
    (chunked uploads, clients that do not declare a length), and the read that
    passes the limit raises a 413 ``HTTPException`` for the error handlers.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(413, "upload_too_large", too_large_message(self.limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)
