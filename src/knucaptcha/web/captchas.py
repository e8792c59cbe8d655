"""Practice captchas: ``GET /captcha`` draws a fresh one, ``POST /captcha/verify`` checks an answer.

Like the real registration page, every GET of the one URL gives a new image.
Images come from the generator with a per-app seed and a counter, so they are
fresh yet reproducible when the seed is fixed. Answers are kept in a bounded,
expiring store; each can be checked once.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Union

from fastapi import APIRouter, Cookie, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from ..generator import encode_png, fonts_for, get_style, render_sample
from .errors import ApiError
from .schemas import ErrorBody, Verdict
from .settings import ServeSettings

ID_HEADER = "X-Captcha-Id"
ID_COOKIE = "captcha_id"


class AnswerStore:
    """The answers of the last ``capacity`` captchas, each forgotten after ``ttl`` seconds. Thread-safe."""

    def __init__(self, capacity: int, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._capacity = capacity
        self._ttl = ttl
        self._clock = clock
        self._answers: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id → (answer, expiry), oldest first
        self._lock = threading.Lock()

    def add(self, answer: str) -> str:
        """Remember ``answer`` under a new unguessable id, and return the id."""
        key = secrets.token_urlsafe(16)
        now = self._clock()
        with self._lock:
            self._answers[key] = (answer, now + self._ttl)
            while len(self._answers) > self._capacity or self._expired(next(iter(self._answers)), now):
                self._answers.popitem(last=False)
        return key

    def take(self, key: str) -> str | None:
        """The answer stored under ``key``, forgotten as it is returned; None if unknown or expired."""
        with self._lock:
            entry = self._answers.pop(key, None)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def __len__(self) -> int:
        return len(self._answers)

    def _expired(self, key: str, now: float) -> bool:
        return self._answers[key][1] <= now


class PracticeCaptchas:
    """Draws captchas from the generator and checks answers for them."""

    def __init__(self, settings: ServeSettings):
        self.style = get_style(settings.captcha_style, settings.captcha_difficulty)
        fonts_for(self.style)  # no fonts to draw with is a start-up error, not a 500 on the first GET
        self.seed = secrets.randbits(63) if settings.captcha_seed is None else settings.captcha_seed
        self._indices = itertools.count()
        self._store = AnswerStore(settings.captcha_store_size, settings.captcha_ttl_seconds)
        # A charset without lower-case letters reads answers case-insensitively, as a person would type them.
        self._fold_case = self.style.charset.symbols == self.style.charset.symbols.upper()

    def issue(self) -> tuple[str, bytes]:
        """A new captcha: its id and its PNG bytes."""
        sample = render_sample(self.style, self.seed, next(self._indices))
        return self._store.add(sample.label), encode_png(sample.image)

    def check(self, key: str, answer: str) -> bool | None:
        """Whether ``answer`` is right for captcha ``key``; None if the id is unknown, expired or used."""
        label = self._store.take(key)
        if label is None:
            return None
        return self._normalize(answer) == self._normalize(label)

    def _normalize(self, text: str) -> str:
        text = text.strip()
        return text.upper() if self._fold_case else text


class Attempt(BaseModel):
    id: Union[str, None] = None
    answer: str


def captcha_router(captchas: PracticeCaptchas) -> APIRouter:
    router = APIRouter(tags=["practice"])

    @router.get(
        "/captcha",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "A new captcha; its id is in X-Captcha-Id"}},
    )
    async def captcha() -> Response:
        """A freshly drawn captcha PNG, new on every request (`Cache-Control: no-store`). Its id comes in
        the `X-Captcha-Id` header and the `captcha_id` cookie; check an answer with POST /captcha/verify."""
        key, png = await run_in_threadpool(captchas.issue)
        response = Response(png, media_type="image/png", headers={ID_HEADER: key, "Cache-Control": "no-store"})
        response.set_cookie(ID_COOKIE, key, httponly=True, samesite="strict", path="/captcha")
        return response

    @router.post(
        "/captcha/verify",
        response_model=Verdict,
        responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": Attempt.model_json_schema()},
                    "application/x-www-form-urlencoded": {"schema": Attempt.model_json_schema()},
                }
            }
        },
    )
    async def verify(
        request: Request, cookie_id: Annotated[Union[str, None], Cookie(alias=ID_COOKIE)] = None
    ) -> Verdict:
        """Check an answer: JSON or form `{id, answer}`; without `id`, the `captcha_id` cookie names the
        captcha. Each captcha can be checked once; an unknown, expired or used id is answered 404."""
        attempt = await _attempt(request)
        key = attempt.id or cookie_id
        if key is None:
            raise ApiError(400, "missing_field", "say which captcha: an 'id' field or the captcha_id cookie")
        correct = captchas.check(key, attempt.answer)
        if correct is None:
            raise ApiError(404, "unknown_captcha", "no such captcha, or it expired or was already checked")
        return Verdict(correct=correct)

    return router


async def _attempt(request: Request) -> Attempt:
    content_type = request.headers.get("content-type", "").lower()
    try:
        if content_type.startswith("application/json"):
            return Attempt.model_validate_json(await request.body())
        async with request.form(max_files=0, max_fields=2) as form:
            return Attempt.model_validate(dict(form))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in error.errors())
        raise ApiError(400, "invalid_request", problems) from None
