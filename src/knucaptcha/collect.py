"""Downloading captchas from a URL that serves a fresh one per request, politely and without duplicates.

The original downloader fetched images one after another, named them by
timestamp, and kept whatever came back. Here a few requests run at once (never
more than ``concurrency``), each worker waits ``delay`` seconds between
requests, connection errors, timeouts, 5xx and 429 answers are retried with
exponential backoff (honouring a numeric ``Retry-After``), and an answer is
kept only if its content type is ``image/*``, it decodes as an image, and its
bytes were not seen before (in this run or already in the folder).

A hostile or broken server cannot hold a run: each request, redirects and
body included, has one wall-clock deadline (a per-read timeout lets a server
that sends a byte a second run forever); a body is streamed and abandoned as
soon as it passes ``max_bytes``, so an endless one costs that much memory at
most; redirects are followed ``max_redirects`` times and only on the URL's own
host unless told otherwise. Every httpx failure becomes one line of the report.

Files are named ``_<UTC time>-<n>-<hash>.<ext>``, created exclusively so that
nothing is ever replaced. The leading ``_`` means the name carries no label
(:func:`knucaptcha.labels.label_from_name`), so ``knucaptcha label`` sees them
as unlabelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from PIL import Image

from . import __version__
from .errors import ConfigError, ImageError
from .evaluate import ProgressCallback
from .fileops import create_exclusively, file_digest
from .labels import IMAGE_EXTENSIONS
from .preprocess import load_image

FORMAT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}
"""Image formats kept, with the extension each is saved under (all in :data:`~knucaptcha.labels.IMAGE_EXTENSIONS`)."""

MAX_RETRY_AFTER = 30.0
"""Longest ``Retry-After`` wait honoured, in seconds; a server asking for more is waited on this long."""

DEFAULT_MAX_BYTES = 1_000_000
"""Largest answer kept unless told otherwise, in bytes: ``knucaptcha serve``'s upload limit (captchas are a few KB)."""

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class CollectConfig:
    """How to collect: from where, how many, and how gently.

    Attributes:
        url: an ``http://`` or ``https://`` URL that answers each GET with a new image.
        count: images to save.
        concurrency: requests in flight at most.
        delay: seconds each worker waits between its requests.
        timeout: seconds one request may take, from connecting to its last byte
            and across its redirects, before it is abandoned (then retried).
        retries: extra attempts after a failed one; waits ``backoff``, ``2 * backoff``, ...
        backoff: seconds before the first retry.
        patience: fetches that add nothing (duplicates, rejects, failures) tolerated
            before giving up; ``None`` means as many as ``count``.
        max_bytes: largest answer body kept; reading stops as soon as a body is longer.
        max_redirects: redirects followed per request at most.
        follow_redirects_anywhere: follow redirects to other hosts too; by
            default only the URL's own host is followed to.
    """

    url: str
    count: int
    concurrency: int = 4
    delay: float = 0.2
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    patience: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 5
    follow_redirects_anywhere: bool = False

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"the URL must start with http:// or https://, not {self.url!r}")
        try:
            host = httpx.URL(self.url).host  # parsed as the client will, so it cannot fail later
        except httpx.InvalidURL as bad:  # an unclosed [IPv6 bracket, a port that is not a number
            raise ConfigError(f"{self.url!r} is not a URL: {bad}") from None
        if not host:
            raise ConfigError(f"the URL names no host: {self.url!r}")
        if self.count < 1 or self.concurrency < 1:
            raise ConfigError("count and concurrency must be at least 1")
        if min(self.delay, self.retries, self.backoff) < 0 or self.timeout <= 0:
            raise ConfigError("delay, retries and backoff must be non-negative and timeout positive")
        if self.patience is not None and self.patience < 1:
            raise ConfigError("patience must be at least 1")
        if self.max_bytes < 1 or self.max_redirects < 0:
            raise ConfigError("max_bytes must be at least 1 and max_redirects non-negative")


@dataclass(frozen=True)
class CollectReport:
    """What a collection run did.

    Attributes:
        saved: the new image files, in the order they were saved.
        duplicates: images skipped because the same bytes were seen before.
        rejected: answers that were not an image to keep (content type, undecodable, too large).
        failed: requests that failed for good (4xx, a refused redirect, or retries exhausted).
        problems: one line per rejected or failed fetch, oldest first.
    """

    saved: tuple[Path, ...]
    duplicates: int
    rejected: int
    failed: int
    problems: tuple[str, ...]


@dataclass
class _Run:
    """The shared, mutable tally of one run (asyncio is single-threaded, so no lock)."""

    config: CollectConfig
    out: Path
    seen: set[str]
    on_progress: ProgressCallback | None
    saved: list[Path] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def wasted(self) -> int:
        return self.duplicates + self.rejected + self.failed

    def wanted(self) -> bool:
        patience = self.config.patience or self.config.count
        return len(self.saved) < self.config.count and self.wasted < patience


def collect(
    config: CollectConfig, out_dir: str | Path, *, on_progress: ProgressCallback | None = None
) -> CollectReport:
    """Fetch ``config.count`` new images from ``config.url`` into ``out_dir`` (created if needed).

    Stops early, with fewer files, once ``config.patience`` fetches have added
    nothing; the report says why. Images already in ``out_dir`` count as seen.

    Raises:
        ConfigError: ``out_dir`` exists and is not a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(config, out, _hashes_in(out), on_progress)
    asyncio.run(_collect(run))
    return CollectReport(tuple(run.saved), run.duplicates, run.rejected, run.failed, tuple(run.problems))


def _hashes_in(folder: Path) -> set[str]:
    return {
        file_digest(path)
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    }


@dataclass(frozen=True)
class _Image:
    """A successful answer with an ``image/*`` content type: its whole body."""

    data: bytes


@dataclass(frozen=True)
class _Failure:
    """Why a fetch brought no image: one line for the report.

    ``rejected`` marks an answer that came but was not an image to keep (it
    counts as rejected, not failed); ``retry`` one worth asking again, after at
    least ``wait`` seconds.
    """

    problem: str
    rejected: bool = False
    retry: bool = False
    wait: float = 0.0


async def _collect(run: _Run) -> None:
    config = run.config
    async with httpx.AsyncClient(
        timeout=None,  # the one deadline per request is _attempt's: httpx's own apply per read
        limits=httpx.Limits(max_connections=config.concurrency),
        headers={"User-Agent": f"knucaptcha/{__version__} (collect)"},
        follow_redirects=False,  # followed by _get, which checks where each one leads
    ) as client:
        await asyncio.gather(*(_worker(run, client) for _ in range(config.concurrency)))


async def _worker(run: _Run, client: httpx.AsyncClient) -> None:
    while run.wanted():
        outcome = await _fetch(client, run.config)
        if run.wanted():  # another worker may have finished the job while this one waited
            _keep(run, outcome)
        await asyncio.sleep(run.config.delay)


async def _fetch(client: httpx.AsyncClient, config: CollectConfig) -> _Image | _Failure:
    """The image one GET brings, retried as configured, or why there is none."""
    for attempt in range(config.retries + 1):
        outcome = await _attempt(client, config)
        if isinstance(outcome, _Image) or not outcome.retry:
            return outcome
        if attempt < config.retries:
            await asyncio.sleep(max(config.backoff * 2**attempt, outcome.wait))
    return replace(outcome, problem=f"{outcome.problem} (after {config.retries + 1} attempts)")


async def _attempt(client: httpx.AsyncClient, config: CollectConfig) -> _Image | _Failure:
    """One GET, redirects and body included, within ``config.timeout`` seconds of wall-clock time."""
    try:
        return await asyncio.wait_for(_get(client, config), config.timeout)
    except asyncio.TimeoutError:
        return _Failure(f"timed out after {config.timeout:g} s", retry=True)
    except httpx.TransportError as error:  # refused, reset, a broken answer: maybe better next time
        return _Failure(_describe(error), retry=True)
    except httpx.HTTPError as error:  # the answer arrived and cannot be read (a damaged gzip body)
        return _Failure(_describe(error))


def _describe(error: httpx.HTTPError) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ")


async def _get(client: httpx.AsyncClient, config: CollectConfig) -> _Image | _Failure:
    """GET ``config.url``, following redirects as allowed, and read the answer's body within the size cap."""
    url = httpx.URL(config.url)
    for _ in range(config.max_redirects + 1):
        async with client.stream("GET", url) as response:
            if response.next_request is None:  # not a redirect
                return await _read(response, config)
            url = response.next_request.url
            if url.host != httpx.URL(config.url).host and not config.follow_redirects_anywhere:
                return _Failure(f"redirected to another host, {url.host} (--follow-redirects-anywhere follows it)")
    return _Failure(f"too many redirects (more than {config.max_redirects})")


async def _read(response: httpx.Response, config: CollectConfig) -> _Image | _Failure:
    """The body of an image answer, streamed and abandoned once it passes ``config.max_bytes``."""
    status = response.status_code
    if status in _RETRY_STATUSES:
        return _Failure(f"HTTP {status}", retry=True, wait=_retry_after(response))
    if not response.is_success:
        return _Failure(f"HTTP {status}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):  # not even read: a login page is no captcha
        return _Failure(f"content type {content_type or 'missing'!r} is not an image", rejected=True)
    too_large = _Failure(f"too large: the answer is over {config.max_bytes:,} bytes", rejected=True)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > config.max_bytes:
        return too_large
    data = bytearray()
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts at its unpacked size
        data += chunk
        if len(data) > config.max_bytes:
            return too_large
    return _Image(bytes(data))


def _retry_after(response: httpx.Response) -> float:
    """The server's ``Retry-After`` in seconds when it is a number, capped; else 0."""
    try:
        return min(float(response.headers.get("retry-after", "0")), MAX_RETRY_AFTER)
    except ValueError:  # an HTTP date: rare for captcha servers, so fall back to our own backoff
        return 0.0


def _keep(run: _Run, outcome: _Image | _Failure) -> None:
    """Tally one fetch and save its image if it is a new, readable one."""
    if isinstance(outcome, _Failure):
        if outcome.rejected:
            _reject(run, outcome.problem)
        else:
            run.failed += 1
            run.problems.append(outcome.problem)
        return
    data = outcome.data
    try:
        load_image(data)
    except ImageError as error:
        _reject(run, str(error))
        return
    image_format = Image.open(io.BytesIO(data)).format  # header only; load_image may have dropped it (EXIF turn)
    if image_format not in FORMAT_EXTENSIONS:
        _reject(run, f"{image_format} images are not kept (only {', '.join(FORMAT_EXTENSIONS)})")
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest in run.seen:
        run.duplicates += 1
        return
    run.seen.add(digest)
    run.saved.append(create_exclusively(run.out, _names(run, digest, FORMAT_EXTENSIONS[image_format]), data))
    if run.on_progress is not None:
        run.on_progress(1)


def _reject(run: _Run, problem: str) -> None:
    run.rejected += 1
    run.problems.append(problem)


def _names(run: _Run, digest: str, extension: str) -> Iterator[str]:
    """Candidate file names: unlabelled (leading ``_``), unique by time, counter and content."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return (f"_{stamp}-{number:05d}-{digest[:10]}{extension}" for number in run.numbers)

