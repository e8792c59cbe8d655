"""Downloading captchas from a URL that serves a fresh one per request, politely and without duplicates.

The original downloader fetched images one after another, named them by
timestamp, and kept whatever came back. Here a few requests run at once (never
more than ``concurrency``), each worker waits ``delay`` seconds between
requests, connection errors, timeouts, 5xx and 429 answers are retried with
exponential backoff (honouring a numeric ``Retry-After``), and an answer is
kept only if its content type is ``image/*``, it decodes as an image, and its
bytes were not seen before (in this run or already in the folder).

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
from dataclasses import dataclass, field
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

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class CollectConfig:
    """How to collect: from where, how many, and how gently.

    Attributes:
        url: an ``http://`` or ``https://`` URL that answers each GET with a new image.
        count: images to save.
        concurrency: requests in flight at most.
        delay: seconds each worker waits between its requests.
        timeout: seconds before one request is abandoned (then retried).
        retries: extra attempts after a failed one; waits ``backoff``, ``2 * backoff``, ...
        backoff: seconds before the first retry.
        patience: fetches that add nothing (duplicates, rejects, failures) tolerated
            before giving up; ``None`` means as many as ``count``.
    """

    url: str
    count: int
    concurrency: int = 4
    delay: float = 0.2
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    patience: int | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"the URL must start with http:// or https://, not {self.url!r}")
        if self.count < 1 or self.concurrency < 1:
            raise ConfigError("count and concurrency must be at least 1")
        if min(self.delay, self.retries, self.backoff) < 0 or self.timeout <= 0:
            raise ConfigError("delay, retries and backoff must be non-negative and timeout positive")
        if self.patience is not None and self.patience < 1:
            raise ConfigError("patience must be at least 1")


@dataclass(frozen=True)
class CollectReport:
    """What a collection run did.

    Attributes:
        saved: the new image files, in the order they were saved.
        duplicates: images skipped because the same bytes were seen before.
        rejected: answers that were not an image (content type, or undecodable).
        failed: requests that failed for good (4xx, or retries exhausted).
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


async def _collect(run: _Run) -> None:
    config = run.config
    async with httpx.AsyncClient(
        timeout=config.timeout,
        limits=httpx.Limits(max_connections=config.concurrency),
        headers={"User-Agent": f"knucaptcha/{__version__} (collect)"},
        follow_redirects=True,
    ) as client:
        await asyncio.gather(*(_worker(run, client) for _ in range(config.concurrency)))


async def _worker(run: _Run, client: httpx.AsyncClient) -> None:
    while run.wanted():
        outcome = await _fetch(client, run.config)
        if run.wanted():  # another worker may have finished the job while this one waited
            _keep(run, outcome)
        await asyncio.sleep(run.config.delay)


async def _fetch(client: httpx.AsyncClient, config: CollectConfig) -> httpx.Response | str:
    """The answer to one GET, retried as configured; a string says why it failed for good."""
    problem = ""
    for attempt in range(config.retries + 1):
        wait = config.backoff * 2**attempt
        try:
            response = await client.get(config.url)
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}".rstrip(": ")
        else:
            if response.status_code not in _RETRY_STATUSES:
                return response if response.is_success else f"HTTP {response.status_code}"
            problem = f"HTTP {response.status_code}"
            wait = max(wait, _retry_after(response))
        if attempt < config.retries:
            await asyncio.sleep(wait)
    return f"{problem} (after {config.retries + 1} attempts)"


def _retry_after(response: httpx.Response) -> float:
    """The server's ``Retry-After`` in seconds when it is a number, capped; else 0."""
    try:
        return min(float(response.headers.get("retry-after", "0")), MAX_RETRY_AFTER)
    except ValueError:  # an HTTP date: rare for captcha servers, so fall back to our own backoff
        return 0.0


def _keep(run: _Run, outcome: httpx.Response | str) -> None:
    """Tally one fetch and save its image if it is a new, readable one."""
    if isinstance(outcome, str):
        run.failed += 1
        run.problems.append(outcome)
        return
    content_type = outcome.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        _reject(run, f"content type {content_type or 'missing'!r} is not an image")
        return
    data = outcome.content
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

