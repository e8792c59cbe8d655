"""What every response's headers say: security headers on pages, and HEAD answered wherever GET is.

FastAPI routes answer only the methods they name, so ``HEAD /`` was a 405
although ``GET /`` works; :class:`HeadAsGet` answers it as the GET with the
body dropped. :class:`SecurityHeaders` tells browsers not to guess content
types, never to show the pages in a frame (clickjacking), and, through a
Content Security Policy, to run only the service's own scripts and styles:
the pages carry no inline code, so an injected ``<script>`` would not run.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The CSP of the service's own pages: everything from the service itself; ``blob:`` images are the demo's uploads."""

DOCS_POLICY = "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
"""The CSP of FastAPI's ``/docs`` and ``/redoc``, which load their scripts from a CDN and start them inline."""


class SecurityHeaders:
    """Adds ``X-Content-Type-Options: nosniff`` to every response, and to HTML ones a CSP and ``X-Frame-Options``.

    ``docs_paths`` get :data:`DOCS_POLICY` instead of :data:`PAGE_POLICY`.
    """

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str]):
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"] in self.docs_paths else PAGE_POLICY

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = policy
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, headed)


class HeadAsGet:
    """Answers ``HEAD`` as the app would answer ``GET``, headers (``Content-Length`` too) without the body.

    A path that has no GET answers 405 as before.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of the body is dropped; the final, empty part ends the response
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
