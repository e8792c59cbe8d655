"""The request body limits, size and time, enforced before and while a body is read, never after.

FastAPI's own ``max_body_size`` answers an over-long ``Content-Length`` with a
plain-text 413 that no exception handler can reshape; this middleware gives
that case the service's JSON error body as well. Uvicorn has no deadline for a
body at all: a client that declares a length and then sends a byte a minute
holds a connection and a request for as long as it likes.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response, too_large_message


class BodyLimit:
    """Answers 413 to a request whose body is over ``limit`` bytes, 408 to one not sent within ``timeout`` seconds.

    A declared ``Content-Length`` over the limit is refused before any of the
    body is read. Otherwise the bytes are counted as the app reads them
    (chunked uploads, clients that do not declare a length), and the read that
    passes the limit raises a 413 ``HTTPException`` for the error handlers.
    The whole body must arrive within ``timeout`` seconds of the request's
    headers; a read still waiting then raises a 408 that closes the connection.
    Once the body is complete, reads (which then only wait for the client to
    disconnect) pass through untimed.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float):
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(413, "upload_too_large", too_large_message(self.limit))(scope, receive, send)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def counted() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                detail = f"the request body was not sent within {self.timeout:g} s"
                raise HTTPException(408, detail, headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)
