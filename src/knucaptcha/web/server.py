"""Running the app under uvicorn with deadlines for slow clients: ``knucaptcha serve`` and ``knucaptcha label``.

Uvicorn closes a connection that idles between requests (``timeout_keep_alive``)
but not one that sends its request headers a byte at a time: its keep-alive
timer stops at the first byte, so a few hundred such clients (slowloris) hold
every connection the server will take. :func:`header_deadline_protocol` adds
that deadline; the body's is :class:`~knucaptcha.web.limits.BodyLimit`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

KEEP_ALIVE_SECONDS = 5
"""How long a connection may idle between requests before it is closed (uvicorn's ``timeout_keep_alive``)."""


class _HeaderDeadline:
    """Closes the connection when a request's headers are not complete ``header_timeout`` seconds after it
    opened, or after the previous response ended.

    Mixed into uvicorn's HTTP protocol class, whose ``connection_made``,
    ``on_response_complete`` and ``connection_lost`` it extends; ``cycle``
    (the request being handled, new once a request's headers are complete),
    ``loop`` and ``transport`` are uvicorn's own. ``tests/test_web_reliability.py``
    drives this against the installed uvicorn, so a change there fails a test.
    """

    header_timeout: float
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expire, self.cycle)

    def _expire(self, cycle_when_armed: Any) -> None:
        waiting = self.cycle is cycle_when_armed  # no request's headers have completed since
        idle = self.cycle is None or self.cycle.response_complete  # and none is being answered
        if waiting and idle and not self.transport.is_closing():
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP protocol (httptools when installed, else h11) with a ``seconds`` deadline for request headers."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return type("HeaderDeadlineProtocol", (_HeaderDeadline, AutoHTTPProtocol), {"header_timeout": seconds})


def uvicorn_options(header_timeout: float) -> dict[str, Any]:
    """The options of ``uvicorn.run`` that bound how long a slow client can hold a connection."""
    return {"http": header_deadline_protocol(header_timeout), "timeout_keep_alive": KEEP_ALIVE_SECONDS}
