"""The service under careless and hostile clients: unexpected errors, models that do not match themselves, HEAD,
security headers, stray form fields, bombs, and slow clients (headers and bodies sent a byte at a time) against a
real uvicorn on loopback."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from knucaptcha.cli import app as cli
from knucaptcha.charset import DIGITS_UPPER
from knucaptcha.errors import ConfigError, ImageTooLargeError, ModelError
from knucaptcha.inference import Solver
from knucaptcha.preprocess import MAX_PIXELS, load_image
from knucaptcha.web import ServeSettings, create_app
from knucaptcha.web.headers import DOCS_POLICY, PAGE_POLICY
from knucaptcha.web.server import KEEP_ALIVE_SECONDS, header_deadline_protocol
from live_server import running
from model_files import flip_weight_bit, with_metadata
from test_web_api import bomb_png, error_of


@pytest.fixture(scope="module")
def settings(linear_model: Path, tmp_path_factory: pytest.TempPathFactory) -> ServeSettings:
    folder = tmp_path_factory.mktemp("unlabelled")
    (folder / "_a.png").write_bytes(open_png())
    return ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=1, label_dir=folder)


def open_png() -> bytes:
    from knucaptcha.generator import encode_png, get_style, render_sample

    return encode_png(render_sample(get_style("knu"), seed=3, index=0).image)


@pytest.fixture
def client(settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


# --- unexpected errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/solve", "/v1/solve/batch"])
def test_an_unexpected_error_is_a_json_500_with_a_request_id_and_a_logged_traceback(
    client: TestClient, path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("operands could not be broadcast together")  # what a bad model did

    monkeypatch.setattr(Solver, "read", broken)
    with caplog.at_level(logging.ERROR, logger="knucaptcha.web"):
        response = client.post(path, files={"files" if "batch" in path else "file": ("a.png", open_png())})
    assert response.status_code == 500 and error_of(response) == "internal_error"
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32 and request_id in response.json()["error"]["message"]
    assert "broadcast" not in response.text  # the details go to the log, not to the client
    (record,) = [record for record in caplog.records if request_id in record.getMessage()]
    assert record.exc_info is not None and "broadcast" in str(record.exc_info[1])
    assert response.headers["x-content-type-options"] == "nosniff"


# --- models that do not match themselves ---------------------------------------------------------


@pytest.fixture
def bad_models(exported_model: Path, tmp_path: Path) -> dict[str, Path]:
    """The issue's crafted files: a charset one symbol short of the output, and one flipped weight bit."""
    return {
        "charset": with_metadata(exported_model, tmp_path / "short.onnx", {"knucaptcha.charset": DIGITS_UPPER[:-1]}),
        "weights": flip_weight_bit(exported_model, tmp_path / "flipped.onnx"),
    }


@pytest.mark.parametrize("broken, message", [("charset", "outputs 37 classes per frame"), ("weights", "SHA-256")])
def test_the_service_refuses_to_start_with_a_model_that_does_not_match_itself(
    bad_models: dict[str, Path], broken: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    path = bad_models[broken]
    with pytest.raises(ModelError, match=rf"{path.name}: .*{message}"):
        create_app(ServeSettings(models=(("good", "default"), ("bad", str(path)))))
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: pytest.fail("the port opened"))
    result = CliRunner().invoke(cli, ["serve", "--model", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {path}") and message in result.stderr and result.stderr.count("\n") == 1


def test_with_verify_off_the_service_serves_a_model_whose_weights_changed(
    bad_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    settings = ServeSettings(models=(("flipped", str(bad_models["weights"])),), verify_models=False, captcha_seed=0)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/solve", files={"file": ("a.png", open_png())})
    assert response.status_code == 200 and response.json()["model"] == "flipped"
    runs: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: runs.append(app))
    result = CliRunner().invoke(cli, ["serve", "--model", str(bad_models["weights"]), "--no-verify"])
    assert result.exit_code == 0 and len(runs) == 1, result.output
    with pytest.raises(ConfigError, match="verify_models must be true or false"):
        ServeSettings(verify_models="no")  # type: ignore[arg-type]


# --- HEAD and security headers ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/healthz", "/v1/models", "/v1/defaults", "/static/demo.js", "/label", "/docs"])
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


def test_head_where_there_is_no_get_is_still_405(client: TestClient) -> None:
    assert client.head("/v1/solve").status_code == 405


@pytest.mark.parametrize(("path", "policy"), [("/", PAGE_POLICY), ("/label", PAGE_POLICY), ("/docs", DOCS_POLICY)])
def test_pages_carry_security_headers(client: TestClient, path: str, policy: str) -> None:
    headers = client.get(path).headers
    assert headers["content-security-policy"] == policy
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_the_pages_need_no_inline_script_or_style(client: TestClient) -> None:
    for path in ("/", "/label"):
        page = client.get(path).text
        assert "<style" not in page and " style=" not in page
        assert all(tag.startswith(" src=") for tag in page.split("<script")[1:])


def test_json_answers_are_nosniff_without_a_page_policy(client: TestClient) -> None:
    headers = client.get("/v1/models").headers
    assert headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in headers


# --- refusals that say what is wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        ("/v1/solve", {"other": "1"}, "the form has no field 'file'"),
        ("/v1/solve", {"file": "not a file"}, "file fields"),
        ("/v1/solve/batch", {"other": "1"}, "the form has no field 'files'"),
        ("/api", {"other": "1", "more": "2"}, "the form has no field 'upload_file'"),
    ],
)
def test_a_missing_file_field_is_named_whatever_else_the_form_holds(
    client: TestClient, path: str, form: dict, message: str
) -> None:
    response = client.post(path, data=form, files={"unrelated": ("x.txt", b"x")})  # a file makes it multipart
    assert response.status_code == 400 and error_of(response) == "missing_field"
    assert message in response.json()["error"]["message"]


def test_a_decompression_bomb_is_refused_quoting_the_documented_limit(client: TestClient) -> None:
    response = client.post("/v1/solve", content=bomb_png())  # 400 M pixels: over Pillow's own limit too
    assert response.status_code == 400 and error_of(response) == "image_too_large"
    assert "over the limit of 1,048,576 pixels" in response.json()["error"]["message"]  # the service's max_pixels
    with pytest.raises(ImageTooLargeError, match=f"over the limit of {MAX_PIXELS:,} pixels"):
        load_image(bomb_png())  # the library's: 16 M
    assert f"{MAX_PIXELS:,}" == "16,777,216"


# --- slow clients, against uvicorn itself -----------------------------------------------------------


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.timeout(30)
def test_a_body_not_sent_in_time_is_a_408_and_the_connection_closes(linear_model: Path) -> None:
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=1, body_timeout_seconds=0.5)
    with running(create_app(settings)) as url, connect(url) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/solve HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\x89PNG")
        answer = read_until_closed(sock)
        assert time.monotonic() - started < 4
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (checked without waiting)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.timeout(30)
def test_headers_sent_a_byte_at_a_time_are_cut_off(linear_model: Path) -> None:
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=1)
    with running(create_app(settings), http=header_deadline_protocol(0.5)) as url, connect(url) as sock:
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100:  # 14 s at this pace
            if closed_by_server(sock):
                break
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
        else:
            pytest.fail("the server kept taking headers a byte at a time")
        assert time.monotonic() - started < 3


@pytest.mark.timeout(30)
def test_the_header_deadline_spares_requests_being_answered_and_applies_again_after(linear_model: Path) -> None:
    import asyncio

    app = create_app(ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=1))

    @app.get("/test/slow")
    async def slow() -> dict:
        await asyncio.sleep(1.0)  # longer than the header deadline
        return {"ok": True}

    with running(app, http=header_deadline_protocol(0.5)) as url, connect(url) as sock:
        sock.sendall(b"GET /test/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"ok":true}')
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request's headers, never finished
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert time.monotonic() - started < 3


def test_serve_and_label_run_uvicorn_with_the_deadlines(
    linear_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    runs: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    (tmp_path / "_a.png").write_bytes(open_png())
    for args in (["serve", "--model", str(linear_model)], ["label", str(tmp_path), "--model", str(linear_model)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    for options in runs:
        assert options["timeout_keep_alive"] == KEEP_ALIVE_SECONDS
        assert options["http"].header_timeout == ServeSettings().header_timeout_seconds


@pytest.mark.parametrize("field", ["header_timeout_seconds", "body_timeout_seconds"])
@pytest.mark.parametrize("value", [0, -1, 4000, "10", True])
def test_timeouts_are_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})
