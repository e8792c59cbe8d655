"""Collecting captchas over loopback HTTP: the service's /captcha, plus flaky, HTML, duplicate and failing routes,
and hostile ones (an endless body, a slow drip, a redirect loop, a redirect to another host)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from typer.testing import CliRunner

from knucaptcha.cli import app as cli
from knucaptcha.collect import CollectConfig, collect
from knucaptcha.errors import ConfigError
from knucaptcha.generator import encode_png, get_style, render_sample
from knucaptcha.labels import label_from_name, survey_folder
from knucaptcha.prelabels import PRELABELS_NAME, read_prelabels
from live_server import running

SAME = encode_png(render_sample(get_style("knu"), seed=99, index=0).image)
FAST = {"delay": 0.0, "backoff": 0.01, "timeout": 5.0}


def add_test_routes(app: FastAPI) -> FastAPI:
    """Routes that misbehave in the ways a real captcha host does."""
    calls = {"flaky": 0, "busy": 0}

    @app.get("/test/flaky")
    def flaky() -> Response:
        calls["flaky"] += 1
        if calls["flaky"] % 3:  # fails twice, then answers, and again
            return Response("try later", status_code=503)
        return Response(encode_png(render_sample(get_style("knu"), 1, calls["flaky"]).image), media_type="image/png")

    @app.get("/test/busy")
    def busy() -> Response:
        calls["busy"] += 1
        if calls["busy"] == 1:
            return Response("slow down", status_code=429, headers={"Retry-After": "0"})
        return Response(SAME, media_type="image/png")

    @app.get("/test/html")
    def html() -> Response:
        return Response("<html>login first</html>", media_type="text/html")

    @app.get("/test/lying")
    def lying() -> Response:
        return Response(b"\x89PNG\r\n\x1a\nnot really", media_type="image/png")

    @app.get("/test/same")
    def same() -> Response:
        return Response(SAME, media_type="image/png")

    @app.get("/test/gone")
    def gone() -> Response:
        return Response("no", status_code=404)

    return add_hostile_routes(app)


HOSTILE_SENT = {"endless": 0}
"""Bytes the endless route has handed to the server so far (all tests together)."""


def add_hostile_routes(app: FastAPI) -> FastAPI:
    """Routes of a server that means harm, or is broken in ways that would hold a careless client forever."""

    @app.get("/hostile/endless")
    def endless() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            chunk = b"\x89PNG\r\n\x1a\n" + bytes(65_528)
            while True:
                HOSTILE_SENT["endless"] += len(chunk)
                yield chunk
                await asyncio.sleep(0)

        return StreamingResponse(body(), media_type="image/png")

    @app.get("/hostile/drip")
    def drip() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for byte in SAME:  # a real PNG, a byte every 0.2 s: each read is quick, the whole is not
                yield bytes([byte])
                await asyncio.sleep(0.2)

        return StreamingResponse(body(), media_type="image/png")

    @app.get("/hostile/big")
    def big() -> Response:
        return Response(SAME + bytes(200_000), media_type="image/png")  # declares its length

    @app.get("/hostile/loop")
    def loop() -> RedirectResponse:
        return RedirectResponse("/hostile/loop")

    @app.get("/hostile/hop")
    def hop() -> RedirectResponse:
        return RedirectResponse("/test/same")

    @app.get("/hostile/away")
    def away(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url.replace(hostname="localhost", path="/test/same")))

    return app


@pytest.fixture(scope="module")
def server(linear_model: Path) -> Iterator[str]:
    from knucaptcha.web.app import create_app
    from knucaptcha.web.settings import ServeSettings

    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=0)
    with running(add_test_routes(create_app(settings))) as url:
        yield url


def test_collects_fresh_captchas_from_the_service(server: str, tmp_path: Path) -> None:
    done = []
    report = collect(CollectConfig(f"{server}/captcha", 6, concurrency=3, **FAST), tmp_path, on_progress=done.append)
    assert len(report.saved) == 6 == sum(done)
    assert (report.rejected, report.failed) == (0, 0)
    assert sorted(tmp_path.iterdir()) == sorted(report.saved)
    assert all(path.suffix == ".png" and label_from_name(path) is None for path in report.saved)
    assert len(survey_folder(tmp_path).unlabelled) == 6
    hashes = {hashlib.sha256(path.read_bytes()).hexdigest() for path in report.saved}
    assert len(hashes) == 6


def test_retries_a_flaky_endpoint_with_backoff(server: str, tmp_path: Path) -> None:
    report = collect(CollectConfig(f"{server}/test/flaky", 2, concurrency=1, retries=2, **FAST), tmp_path)
    assert len(report.saved) == 2 and report.failed == 0


def test_gives_up_after_the_retries_and_says_why(server: str, tmp_path: Path) -> None:
    config = CollectConfig(f"{server}/test/flaky", 1, concurrency=1, retries=1, patience=1, **FAST)
    report = collect(config, tmp_path)
    assert report.saved == () and report.failed == 1
    assert report.problems == ("HTTP 503 (after 2 attempts)",)


def test_honours_429_then_keeps_the_image(server: str, tmp_path: Path) -> None:
    report = collect(CollectConfig(f"{server}/test/busy", 1, concurrency=1, **FAST), tmp_path)
    assert len(report.saved) == 1


def test_duplicates_are_skipped_and_counted_also_against_the_folder(server: str, tmp_path: Path) -> None:
    report = collect(CollectConfig(f"{server}/test/same", 3, concurrency=2, patience=4, **FAST), tmp_path)
    assert len(report.saved) == 1 and report.duplicates >= 4 - 1
    again = collect(CollectConfig(f"{server}/test/same", 1, concurrency=1, patience=2, **FAST), tmp_path)
    assert again.saved == () and again.duplicates == 2
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    ("route", "problem"),
    [("html", "content type 'text/html' is not an image"), ("lying", "damaged image"), ("gone", "HTTP 404")],
)
def test_non_images_and_client_errors_are_not_kept(server: str, tmp_path: Path, route: str, problem: str) -> None:
    report = collect(CollectConfig(f"{server}/test/{route}", 1, concurrency=1, patience=2, **FAST), tmp_path)
    assert report.saved == () and report.rejected + report.failed == 2
    assert problem in report.problems[0]
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    config = CollectConfig(f"http://127.0.0.1:{port}/", 1, retries=1, patience=1, concurrency=1, **FAST)
    report = collect(config, tmp_path)
    assert report.failed == 1 and "ConnectError" in report.problems[0]


def test_never_replaces_an_existing_file(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import knucaptcha.collect as module

    monkeypatch.setattr(module.time, "strftime", lambda *_: "FIXED")
    first = collect(CollectConfig(f"{server}/captcha", 2, concurrency=1, **FAST), tmp_path)
    contents = {path: path.read_bytes() for path in first.saved}
    second = collect(CollectConfig(f"{server}/captcha", 2, concurrency=1, **FAST), tmp_path)
    assert not set(second.saved) & set(first.saved)
    assert all(path.read_bytes() == data for path, data in contents.items())


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "ftp://x"},
        {"url": "http://"},
        {"url": "http://[::1"},
        {"count": 0},
        {"concurrency": 0},
        {"delay": -1},
        {"timeout": 0},
        {"patience": 0},
        {"max_bytes": 0},
        {"max_redirects": -1},
    ],
)
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        CollectConfig(**{"url": "http://127.0.0.1/", "count": 1, **bad})


def test_cli_collects_and_prelabels(server: str, tmp_path: Path, linear_model: Path) -> None:
    from knucaptcha.inference import Solver

    out = tmp_path / "new"
    args = ["collect", f"{server}/captcha", "-n", "3", "--out", str(out), "--delay", "0", "--prelabel"]
    result = CliRunner().invoke(cli, [*args, "--model", str(linear_model)])
    assert result.exit_code == 0, result.output
    images = sorted(out.glob("*.png"))
    guesses = read_prelabels(out / PRELABELS_NAME)
    assert set(guesses) == {path.name for path in images} and len(images) == 3
    solver = Solver.load(linear_model)
    assert all(guesses[path.name].text == solver.solve(path).text for path in images)


@pytest.mark.parametrize(
    ("option", "value", "told", "bad", "message"),
    [
        ("--symbols", "0123456789", {"symbols": "0123456789"}, "0!", "cannot read '!'"),
        ("--length", "3", {"length": 3}, "7", "reads 1 to 4"),
    ],
)
def test_cli_prelabels_told_about_the_site_and_checks_it_before_downloading(
    server: str, tmp_path: Path, linear_model: Path, option: str, value: str, told: dict, bad: str, message: str
) -> None:
    from knucaptcha.inference import Solver

    out = tmp_path / "new"
    args = ["collect", f"{server}/captcha", "-n", "2", "--out", str(out), "--delay", "0", "--model", str(linear_model)]
    result = CliRunner().invoke(cli, [*args, "--prelabel", option, value])
    assert result.exit_code == 0, result.output
    guesses = read_prelabels(out / PRELABELS_NAME)
    solver = Solver.load(linear_model)
    images = list(out.glob("*.png"))
    assert all(guesses[path.name].text == solver.solve(path, **told).text for path in images)
    assert any(solver.solve(path, **told).text != solver.solve(path).text for path in images)  # telling matters
    for extra, refusal in (([option, value], "add --prelabel"), (["--prelabel", option, bad], message)):
        refused = CliRunner().invoke(cli, [*args[:5], str(tmp_path / "never"), *args[6:], *extra])
        assert refused.exit_code == 2 and refusal in refused.output and not (tmp_path / "never").exists()


def test_cli_exits_1_when_short_and_2_on_a_bad_url(server: str, tmp_path: Path) -> None:
    short = CliRunner().invoke(cli, ["collect", f"{server}/test/html", "-n", "1", "-o", str(tmp_path), "--delay", "0"])
    assert short.exit_code == 1
    bad = CliRunner().invoke(cli, ["collect", "file:///etc/passwd", "-n", "1", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "error: the URL must start with http" in bad.output


# --- hostile servers: every test bounded in time, nothing leaves loopback -----------------------------


@pytest.mark.timeout(30)
def test_an_endless_body_is_abandoned_at_the_size_cap_without_buffering_it(server: str, tmp_path: Path) -> None:
    config = CollectConfig(f"{server}/hostile/endless", 1, concurrency=1, retries=0, max_bytes=100_000, **FAST)
    sent_before = HOSTILE_SENT["endless"]
    report = collect(config, tmp_path)
    assert report.saved == () and report.rejected == 1
    assert report.problems == ("too large: the answer is over 100,000 bytes",)
    time.sleep(0.5)  # what the server still pushes once the client has hung up
    assert HOSTILE_SENT["endless"] - sent_before < 20_000_000  # socket buffers' worth, not an endless stream


def test_a_declared_length_over_the_cap_is_refused_before_reading(server: str, tmp_path: Path) -> None:
    report = collect(CollectConfig(f"{server}/hostile/big", 1, concurrency=1, max_bytes=100_000, **FAST), tmp_path)
    assert report.problems == ("too large: the answer is over 100,000 bytes",)
    assert list(tmp_path.iterdir()) == []
    kept = collect(CollectConfig(f"{server}/hostile/big", 1, concurrency=1, max_bytes=300_000, **FAST), tmp_path)
    assert len(kept.saved) == 1  # the cap is the limit, not a ban on large answers


@pytest.mark.timeout(30)
def test_a_slow_drip_is_cut_off_by_the_whole_requests_deadline(server: str, tmp_path: Path) -> None:
    config = CollectConfig(f"{server}/hostile/drip", 1, concurrency=1, retries=1, backoff=0.01, timeout=0.6, delay=0)
    started = time.monotonic()
    report = collect(config, tmp_path)
    assert time.monotonic() - started < 3.0  # two attempts of 0.6 s, though no single read ever waited that long
    assert report.saved == () and report.failed == 1
    assert report.problems == ("timed out after 0.6 s (after 2 attempts)",)


@pytest.mark.timeout(30)
def test_a_redirect_loop_is_one_reason_line(server: str, tmp_path: Path) -> None:
    report = collect(CollectConfig(f"{server}/hostile/loop", 1, concurrency=1, max_redirects=3, **FAST), tmp_path)
    assert report.failed == 1 and report.problems == ("too many redirects (more than 3)",)


def test_redirects_are_followed_on_the_same_host_only_unless_told(server: str, tmp_path: Path) -> None:
    same = collect(CollectConfig(f"{server}/hostile/hop", 1, concurrency=1, **FAST), tmp_path / "same")
    assert len(same.saved) == 1
    away = collect(CollectConfig(f"{server}/hostile/away", 1, concurrency=1, **FAST), tmp_path / "away")
    assert away.saved == () and away.failed == 1
    assert away.problems == ("redirected to another host, localhost (--follow-redirects-anywhere follows it)",)
    config = CollectConfig(f"{server}/hostile/away", 1, concurrency=1, follow_redirects_anywhere=True, **FAST)
    assert len(collect(config, tmp_path / "anywhere").saved) == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("route", "options", "reason"),
    [
        ("loop", [], "too many redirects (more than 5)"),
        ("endless", ["--max-bytes", "50000"], "too large: the answer is over 50,000 bytes"),
        ("drip", ["--timeout", "0.5", "--retries", "0"], "timed out after 0.5 s"),
        ("away", [], "redirected to another host, localhost"),
    ],
)
def test_cli_reports_a_hostile_server_in_one_line_each(
    server: str, tmp_path: Path, route: str, options: list[str], reason: str
) -> None:
    args = ["collect", f"{server}/hostile/{route}", "-n", "1", "-o", str(tmp_path), "--delay", "0", *options]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"skipped: {reason}" in result.output and "Traceback" not in result.output
    if route == "away":
        followed = CliRunner().invoke(cli, [*args, "--follow-redirects-anywhere"])
        assert followed.exit_code == 0, followed.output
