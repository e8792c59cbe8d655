"""Collecting captchas over loopback HTTP: the service's /captcha, plus flaky, HTML, duplicate and failing routes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Response
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
    "bad", [{"url": "ftp://x"}, {"count": 0}, {"concurrency": 0}, {"delay": -1}, {"timeout": 0}, {"patience": 0}]
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
