"""The web service through FastAPI's TestClient: every endpoint, every refusal, the settings, the layering."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from knucaptcha.cli import app as cli
from knucaptcha.ctc import ReadOptions
from knucaptcha.errors import ConfigError, MissingFileError
from knucaptcha.generator import encode_png, get_style, label_for, render_sample
from knucaptcha.inference import Solver
from knucaptcha.web import ServeSettings, create_app, parse_model_option
from knucaptcha.web.captchas import AnswerStore

SEED = 7


@pytest.fixture(scope="module")
def settings(linear_model: Path) -> ServeSettings:
    return ServeSettings(models=(("linear", str(linear_model)), ("second", str(linear_model))), captcha_seed=SEED)


@pytest.fixture
def client(settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def captcha() -> bytes:
    return encode_png(render_sample(get_style("knu", "mixed"), seed=1, index=0).image)


@pytest.fixture(scope="module")
def expected(linear_model: Path, captcha: bytes) -> str:
    return Solver.load(linear_model).solve(captcha).text


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of ``width`` × ``height`` zero pixels: some 50 KB on disk, 400 M pixels decoded."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return body["error"]["code"]


# --- /v1/solve ------------------------------------------------------------------------------------


def test_solve_multipart_answers_the_prediction(client: TestClient, captcha: bytes, expected: str) -> None:
    response = client.post("/v1/solve", files={"file": ("captcha.png", captcha, "image/png")})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"text", "confidence", "char_confidences", "model", "elapsed_ms", "warnings"}
    assert body["text"] == expected and body["model"] == "linear"
    assert len(body["char_confidences"]) == len(expected) and 0 <= body["confidence"] <= 1
    assert body["elapsed_ms"] >= 0


@pytest.mark.parametrize("content_type", [None, "image/png", "application/octet-stream", "text/plain"])
def test_solve_raw_body_of_any_content_type(
    client: TestClient, captcha: bytes, expected: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/v1/solve", content=captcha, headers=headers)
    assert response.status_code == 200 and response.json()["text"] == expected


def test_format_is_judged_by_content_not_by_name(client: TestClient, captcha: bytes, expected: str) -> None:
    named_txt = client.post("/v1/solve", files={"file": ("notes.txt", captcha, "text/plain")})
    assert named_txt.status_code == 200 and named_txt.json()["text"] == expected
    fake_png = client.post("/v1/solve", files={"file": ("x.png", b"just some text", "image/png")})
    assert fake_png.status_code == 400 and error_of(fake_png) == "invalid_image"
    assert "x.png" in fake_png.json()["error"]["message"]


def test_other_formats_are_read_too(client: TestClient, captcha: bytes, expected: str) -> None:
    webp = io.BytesIO()
    Image.open(io.BytesIO(captcha)).save(webp, format="WEBP", lossless=True)
    response = client.post("/v1/solve", content=webp.getvalue())
    assert response.status_code == 200 and response.json()["text"] == expected


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_image"),
        (b"hello, this is text", "invalid_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "invalid_image"),
        ("truncated", "invalid_image"),
        ("bomb", "image_too_large"),
    ],
)
def test_solve_refuses_what_is_not_a_readable_image(client: TestClient, captcha: bytes, body, code: str) -> None:
    data = {"truncated": captcha[: len(captcha) // 2], "bomb": bomb_png()}.get(body, body)
    response = client.post("/v1/solve", content=data)
    assert response.status_code == 400 and error_of(response) == code


def test_too_many_pixels_is_a_400_naming_the_size(client: TestClient) -> None:
    wide = io.BytesIO()
    Image.new("L", (2048, 1024)).save(wide, format="PNG")  # 2 M pixels, over the default 1 M
    response = client.post("/v1/solve", files={"file": ("wide.png", wide.getvalue())})
    assert response.status_code == 400 and error_of(response) == "image_too_large"
    assert "2048x1024" in response.json()["error"]["message"]


def test_oversized_body_is_413_by_content_length(linear_model: Path) -> None:
    app = create_app(ServeSettings(models=(("linear", str(linear_model)),), max_upload_bytes=1000, captcha_seed=0))
    with TestClient(app) as small:
        response = small.post("/v1/solve", content=b"\0" * 1001)
        assert response.status_code == 413 and error_of(response) == "upload_too_large"
        multipart = small.post("/v1/solve", files={"file": ("big.png", b"\0" * 2000)})
        assert multipart.status_code == 413 and error_of(multipart) == "upload_too_large"
        assert small.post("/api", files={"upload_file": ("big.png", b"\0" * 2000)}).status_code == 413


def test_oversized_chunked_body_is_413_while_streaming(linear_model: Path) -> None:
    app = create_app(ServeSettings(models=(("linear", str(linear_model)),), max_upload_bytes=1000, captcha_seed=0))

    def chunks() -> Iterator[bytes]:
        yield from [b"\0" * 300] * 100

    with TestClient(app) as small:
        response = small.post("/v1/solve", content=chunks())  # no Content-Length: chunked
    assert response.status_code == 413 and error_of(response) == "upload_too_large"


def test_a_body_just_under_the_limit_is_read(linear_model: Path, captcha: bytes) -> None:
    app = create_app(
        ServeSettings(models=(("linear", str(linear_model)),), max_upload_bytes=len(captcha), captcha_seed=0)
    )
    with TestClient(app) as exact:
        assert exact.post("/v1/solve", content=captcha).status_code == 200


def test_model_and_beam_are_per_request(client: TestClient, captcha: bytes, expected: str) -> None:
    second = client.post("/v1/solve?model=second&beam=4", content=captcha)
    assert second.status_code == 200 and second.json()["model"] == "second"
    assert client.post("/v1/solve", content=captcha).json()["model"] == "linear"  # nothing stuck


def test_unknown_model_is_404(client: TestClient, captcha: bytes) -> None:
    response = client.post("/v1/solve?model=nope", content=captcha)
    assert response.status_code == 404 and error_of(response) == "unknown_model"
    assert "linear" in response.json()["error"]["message"]


@pytest.mark.parametrize(("query", "status"), [("beam=-1", 422), ("beam=x", 422), ("beam=33", 400)])
def test_bad_beam_is_refused(client: TestClient, captcha: bytes, query: str, status: int) -> None:
    response = client.post(f"/v1/solve?{query}", content=captcha)
    assert response.status_code == status and error_of(response) in {"invalid_request", "invalid_option"}


def test_symbols_restrict_a_reading_per_request(client: TestClient, linear_model: Path, captcha: bytes) -> None:
    digits = "0123456789"
    want = Solver.load(linear_model).solve(captcha, symbols=digits)
    told = client.post(f"/v1/solve?symbols={digits}", content=captcha)
    assert told.status_code == 200 and told.json()["text"] == want.text and set(want.text) <= set(digits)
    batch = client.post(f"/v1/solve/batch?symbols={digits}", files=[("files", ("a.png", captcha))])
    assert batch.json()[0]["text"] == want.text
    refused = client.post("/v1/solve?symbols=AB%21", content=captcha)
    assert refused.status_code == 400 and error_of(refused) == "invalid_option"
    assert "cannot read '!'" in refused.json()["error"]["message"]


def test_length_fixes_the_number_of_symbols_per_request(client: TestClient, linear_model: Path, captcha: bytes) -> None:
    solver = Solver.load(linear_model)
    length = 1 if len(solver.solve(captcha).text) != 1 else 2  # a length the untold reading does not have
    want = solver.solve(captcha, length=length)
    told = client.post(f"/v1/solve?length={length}", content=captcha)
    assert told.status_code == 200 and told.json()["text"] == want.text and len(want.text) == length
    batch = client.post(f"/v1/solve/batch?length={length}", files=[("files", ("a.png", captcha))])
    assert batch.json()[0]["text"] == want.text
    assert client.post("/v1/solve?length=0", content=captcha).json()["text"] == solver.solve(captcha).text  # any
    refused = client.post("/v1/solve?length=5", content=captcha)
    assert refused.status_code == 400 and error_of(refused) == "invalid_option"
    assert "reads 1 to 4 symbols" in refused.json()["error"]["message"]
    refused = client.post("/v1/solve?length=-1", content=captcha)
    assert refused.status_code == 400 and error_of(refused) == "invalid_option"


def test_the_sites_alphabet_and_length_are_the_services_defaults(linear_model: Path, captcha: bytes) -> None:
    solver = Solver.load(linear_model)
    site = {"beam_width": 4, "symbols": "0123456789", "length": 2}
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=0, site=ReadOptions(**site))
    want = solver.solve(captcha, **site).text
    assert want != solver.solve(captcha).text  # telling the model changes what it reads
    with TestClient(create_app(settings)) as told:
        assert told.post("/v1/solve", content=captcha).json()["text"] == want
        assert told.post("/api", files={"upload_file": ("a.png", captcha)}).text == want
        own = told.post("/v1/solve?length=3&symbols=AB", content=captcha).json()["text"]  # a request's own replace them
        assert own == solver.solve(captcha, beam_width=4, symbols="AB", length=3).text
        assert told.get("/v1/defaults").json() == {"beam": 4, "symbols": "0123456789", "length": 2}
    with pytest.raises(ConfigError, match="model 'linear': .*cannot read 'a'"):
        create_app(replace(settings, site=ReadOptions(symbols="a")))
    with pytest.raises(ConfigError, match="beam width 40 is over max_beam_width"):
        replace(settings, site=ReadOptions(beam_width=40))


def test_each_option_a_request_leaves_out_is_the_sites(
    linear_model: Path, captcha: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[ReadOptions] = []
    read = Solver.read

    def recording(self: Solver, images: list[object], options: ReadOptions = ReadOptions(), **kwargs: int) -> list:
        asked.append(options)
        return read(self, images, options, **kwargs)

    monkeypatch.setattr(Solver, "read", recording)
    site = ReadOptions(beam_width=3, symbols="0123456789", length=2)
    settings = ServeSettings(models=(("linear", str(linear_model)),), captcha_seed=0, site=site)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/solve", content=captcha)
        client.post("/v1/solve?beam=0", content=captcha)
        client.post("/v1/solve/batch?symbols=AB&length=3", files=[("files", ("a.png", captcha))])
        client.post("/api", files={"upload_file": ("a.png", captcha)})
    assert asked == [
        site,
        ReadOptions(0, "0123456789", 2),
        ReadOptions(3, "AB", 3),
        site,
    ]


def test_a_model_that_stores_a_reading_length_reads_it_unless_the_request_or_the_site_says_otherwise(
    stamped_model: Path, linear_model: Path, captcha: bytes
) -> None:
    plain = Solver.load(linear_model)  # the same weights, no reading length
    want = {length: plain.solve(captcha, length=length).text for length in (None, 2, 3)}
    assert len(want[None]) != 3  # so that reading 3 shows
    settings = ServeSettings(models=(("stamped", str(stamped_model)), ("linear", str(linear_model))), captcha_seed=0)
    with TestClient(create_app(settings)) as client:
        assert [model["read_length"] for model in client.get("/v1/models").json()] == [3, None]
        assert client.post("/v1/solve", content=captcha).json()["text"] == want[3]
        assert client.post("/v1/solve?model=linear", content=captcha).json()["text"] == want[None]
        assert client.post("/api", files={"upload_file": ("a.png", captcha)}).text == want[3]
        assert client.post("/v1/solve?length=0", content=captcha).json()["text"] == want[None]
        assert client.post("/v1/solve?length=2", content=captcha).json()["text"] == want[2]
        batch = client.post("/v1/solve/batch", files=[("files", ("a.png", captcha))]).json()
        assert batch[0]["text"] == want[3]
    with TestClient(create_app(replace(settings, site=ReadOptions(length=0)))) as client:  # serve --length 0
        assert client.get("/v1/defaults").json()["length"] == 0
        assert client.post("/v1/solve", content=captcha).json()["text"] == want[None]
        assert client.post("/api", files={"upload_file": ("a.png", captcha)}).text == want[None]
        assert client.post("/v1/solve?length=2", content=captcha).json()["text"] == want[2]


def test_read_options_and_settings_refuse_values_of_the_wrong_type() -> None:
    for bad in ({"beam_width": -1}, {"beam_width": True}, {"beam_width": "8"}, {"symbols": 7}, {"length": "4"}):
        with pytest.raises(ConfigError):
            ReadOptions(**bad)  # type: ignore[arg-type]
    settings = ServeSettings.from_dict({"site": {"symbols": "AB12", "length": 4}})
    assert settings.site == ReadOptions(symbols="AB12", length=4)
    with pytest.raises(ConfigError, match="unknown ReadOptions keys: beam"):
        ServeSettings.from_dict({"site": {"beam": 8}})
    with pytest.raises(ConfigError, match="site must be ReadOptions"):
        ServeSettings(site={"symbols": "AB"})  # type: ignore[arg-type]


def test_multipart_without_the_file_field_is_400(client: TestClient, captcha: bytes) -> None:
    response = client.post("/v1/solve", files={"image": ("a.png", captcha)})
    assert response.status_code == 400 and error_of(response) == "missing_field"


# --- /v1/solve/batch ------------------------------------------------------------------------------


def test_batch_reports_a_bad_file_on_its_own(client: TestClient, captcha: bytes, expected: str) -> None:
    files = [("files", ("a.png", captcha)), ("files", ("b.png", b"not an image")), ("files", ("c.bin", captcha))]
    response = client.post("/v1/solve/batch?model=second", files=files)
    assert response.status_code == 200
    first, bad, third = response.json()
    assert (first["filename"], first["text"], first["model"]) == ("a.png", expected, "second")
    assert bad["filename"] == "b.png" and bad["error"]["code"] == "invalid_image" and "text" not in bad
    assert third["text"] == expected


def test_batch_needs_files_and_bounds_their_count(linear_model: Path, captcha: bytes) -> None:
    app = create_app(ServeSettings(models=(("linear", str(linear_model)),), max_batch_files=2, captcha_seed=0))
    with TestClient(app) as small:
        assert error_of(small.post("/v1/solve/batch", content=captcha)) == "missing_field"
        assert small.post("/v1/solve/batch", files={"other": ("a.png", captcha)}).status_code == 400
        too_many = small.post("/v1/solve/batch", files=[("files", (f"{i}.png", captcha)) for i in range(3)])
        assert too_many.status_code == 400 and error_of(too_many) == "bad_request"


# --- /api (the original system's) -----------------------------------------------------------------


def test_api_answers_plain_text(client: TestClient, captcha: bytes, expected: str) -> None:
    response = client.post("/api", files={"upload_file": ("captcha.png", captcha)})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text == expected


@pytest.mark.parametrize("as_multipart", [True, False])
def test_api_checkonline_is_a_liveness_probe(client: TestClient, as_multipart: bool) -> None:
    if as_multipart:
        response = client.post("/api", files={"checkonline": (None, "1")})
    else:
        response = client.post("/api", data={"checkonline": "1"})
    assert response.status_code == 200 and response.text == "success"


def test_api_refuses_text_and_a_missing_field(client: TestClient) -> None:
    text = client.post("/api", files={"upload_file": ("x.png", b"GIF89a but not really")})
    assert text.status_code == 400 and error_of(text) == "invalid_image"
    assert error_of(client.post("/api", data={"other": "1"})) == "missing_field"


# --- /captcha -------------------------------------------------------------------------------------


def test_captcha_is_fresh_on_every_get(client: TestClient) -> None:
    first, second = client.get("/captcha"), client.get("/captcha")
    for response in (first, second):
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "no-store"
        assert Image.open(io.BytesIO(response.content)).size == (140, 35)
    assert first.content != second.content
    assert first.headers["x-captcha-id"] != second.headers["x-captcha-id"]
    # The stream is the generator's (seed, counter): reproducible with a fixed seed.
    assert first.content == encode_png(render_sample(get_style("knu", "exact"), SEED, 0).image)


def test_verify_accepts_the_answer_once_and_rejects_a_wrong_one(client: TestClient) -> None:
    style = get_style("knu", "exact")
    right = client.get("/captcha").headers["x-captcha-id"]
    wrong = client.get("/captcha").headers["x-captcha-id"]
    answer = label_for(style, SEED, 0)
    assert client.post("/captcha/verify", json={"id": right, "answer": answer.lower()}).json() == {"correct": True}
    assert client.post("/captcha/verify", json={"id": wrong, "answer": "????"}).json() == {"correct": False}
    again = client.post("/captcha/verify", json={"id": right, "answer": answer})
    assert again.status_code == 404 and error_of(again) == "unknown_captcha"


def test_verify_takes_a_form_and_the_cookie(client: TestClient) -> None:
    client.get("/captcha")  # sets the captcha_id cookie (path /captcha)
    response = client.post("/captcha/verify", data={"answer": label_for(get_style("knu", "exact"), SEED, 0)})
    assert response.status_code == 200 and response.json() == {"correct": True}


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"answer": "AB12"}}, 400, "missing_field"),
        ({"json": {"id": "x"}}, 400, "invalid_request"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_request"),
        ({"json": {"id": "never-issued", "answer": "AB12"}}, 404, "unknown_captcha"),
    ],
)
def test_verify_refuses_bad_requests(client: TestClient, kwargs: dict, status: int, code: str) -> None:
    response = client.post("/captcha/verify", **kwargs)
    assert response.status_code == status and error_of(response) == code


def test_answer_store_is_bounded_and_expires() -> None:
    now = [0.0]
    store = AnswerStore(capacity=3, ttl=10.0, clock=lambda: now[0])
    keys = [store.add(f"L{i}") for i in range(5)]
    assert len(store) == 3 and store.take(keys[0]) is None and store.take(keys[4]) == "L4"
    now[0] = 10.0
    assert store.take(keys[3]) is None  # expired
    store.add("new")
    assert len(store) == 1  # expired entries go when a new one comes


# --- models, health, docs, pages ------------------------------------------------------------------


def test_models_lists_names_charset_and_input(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert [model["name"] for model in models] == ["linear", "second"]
    assert [model["default"] for model in models] == [True, False]
    first = models[0]
    assert first["charset"] == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" and first["max_length"] == 4
    assert first["read_length"] is None  # its file stores none
    assert first["input"] == {"channels": 1, "height": 35, "width": 140}
    assert first["preprocess"]["mode"] == "alpha" and first["metadata"] == {"format": "1"}


def test_defaults_are_none_when_the_service_was_not_told_the_site(client: TestClient) -> None:
    assert client.get("/v1/defaults").json() == {"beam": 0, "symbols": None, "length": None}


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "models": ["linear", "second"]}


def test_openapi_describes_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/solve", "/v1/solve/batch", "/api", "/v1/models", "/v1/defaults", "/healthz", "/captcha", "/captcha/verify"
    } <= set(schema["paths"])
    solve = schema["paths"]["/v1/solve"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(solve["requestBody"]["content"])
    assert {"model", "beam", "symbols", "length"} <= {parameter["name"] for parameter in solve["parameters"]}
    assert client.get("/docs").status_code == 200


def test_demo_page_and_its_assets_are_served_with_the_agreed_ids(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="file"', 'id="result-text"', 'id="sample"', 'id="new-sample"'):
        assert element in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from the internet
    for asset, kind in (("demo.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "https://" not in response.text


@pytest.mark.parametrize(("method", "path", "status"), [("get", "/nope", 404), ("get", "/v1/solve", 405)])
def test_framework_errors_have_the_same_shape(client: TestClient, method: str, path: str, status: int) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status and error_of(response) in {"not_found", "method_not_allowed"}


def test_concurrent_requests_all_answer(client: TestClient, captcha: bytes, expected: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: client.post("/v1/solve", content=captcha).json()["text"], range(32)))
    assert texts == [expected] * 32


# --- settings and start-up ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"models": ()},
        {"models": (("a", "x.onnx"), ("a", "y.onnx"))},
        {"models": (("bad name", "x.onnx"),)},
        {"port": 70000},
        {"max_upload_bytes": 0},
        {"max_pixels": -1},
        {"threads": True},
        {"captcha_style": "nope"},
        {"captcha_difficulty": "impossible"},
        {"captcha_ttl_seconds": 0},
        {"label_write": "delete"},
        {"host": ""},
    ],
)
def test_settings_refuse_bad_values(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        ServeSettings(**overrides)


def test_settings_from_a_mapping_reject_unknown_keys(tmp_path: Path) -> None:
    values = {"models": [["a", "x.onnx"], ["b", "y.onnx"]], "captcha_seed": 3, "label_dir": str(tmp_path)}
    settings = ServeSettings.from_dict(values)
    assert settings == ServeSettings(models=(("a", "x.onnx"), ("b", "y.onnx")), captcha_seed=3, label_dir=tmp_path)
    assert settings.default_model == "a"
    with pytest.raises(ConfigError, match="unknown ServeSettings keys: debug"):
        ServeSettings.from_dict({"debug": True})


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("default", ("default", "default")),
        ("knu2021=path/to/m.onnx", ("knu2021", "path/to/m.onnx")),
        ("models/fast-v2.onnx", ("fast-v2", "models/fast-v2.onnx")),
    ],
)
def test_model_option_parsing(text: str, entry: tuple[str, str]) -> None:
    assert parse_model_option(text) == entry


@pytest.mark.parametrize("text", ["=x.onnx", "a b=x.onnx", "name=", "models/white space.onnx"])
def test_model_option_refuses_what_it_cannot_name(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_model_option(text)


def test_a_missing_model_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        create_app(ServeSettings(models=(("gone", str(tmp_path / "gone.onnx")),)))


def test_serve_command_builds_the_settings_and_runs_loopback_by_default(
    linear_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    args = ["serve", "--model", f"main={linear_model}", "--model", str(linear_model), "--captcha-seed", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000) and "reload" not in served
    with TestClient(served["app"]) as client:
        assert client.get("/healthz").json()["models"] == ["main", "linear"]


def test_serve_command_without_models_serves_every_bundled_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    result = CliRunner().invoke(cli, ["serve", "--captcha-seed", "1"])
    assert result.exit_code == 0, result.output
    with TestClient(served["app"]) as client:
        assert client.get("/healthz").json()["models"] == ["default", "knu2021", "opaque"]
        models = client.get("/v1/models").json()
        assert [(model["name"], model["default"]) for model in models] == [
            ("default", True), ("knu2021", False), ("opaque", False)
        ]
        assert [model["read_length"] for model in models] == [4, 4, None]  # each reads its own unless told


def test_serve_command_takes_the_sites_length_and_beam_and_refuses_an_alphabet_a_model_cannot_read(
    linear_model: Path, captcha: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    arguments = ["serve", "--model", str(linear_model), "--length", "3", "--beam", "2", "--captcha-seed", "1"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    with TestClient(served["app"]) as client:
        assert client.get("/v1/defaults").json() == {"beam": 2, "symbols": None, "length": 3}
        assert client.post("/v1/solve", content=captcha).json()["text"] == Solver.load(linear_model).solve(
            captcha, beam_width=2, length=3
        ).text
    refused = CliRunner().invoke(cli, ["serve", "--symbols", "ABC"])  # knu2021, also served, reads lowercase only
    assert refused.exit_code == 2 and refused.output.startswith("error: model 'knu2021': the model cannot read")
    assert len(refused.output.splitlines()) == 1


def test_serve_command_reports_a_bad_model_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and result.output.startswith("error: no such model file")
    assert len(result.output.splitlines()) == 1


def test_web_app_never_imports_torch() -> None:
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.partition('.')[0] == 'torch': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import knucaptcha.web.app, knucaptcha.cli.serve\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
