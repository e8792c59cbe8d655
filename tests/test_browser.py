"""The pages in a real browser: Playwright driving Debian's Chromium against the app served on loopback,
and ``examples/fill_knu_captcha.py`` against a replica of the registration page.

Playwright cannot download its own browsers here, so the test uses the system
Chromium (``apt-get install -y chromium``, which the README's test command
runs). Without it the test fails and says so; it does not skip.

Set ``KNUCAPTCHA_SCREENSHOTS=docs`` to save both pages as
``docs/screenshot_demo.png`` and ``docs/screenshot_label.png``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from knucaptcha.generator import encode_png, get_style, render_sample
from knucaptcha.ctc import ReadOptions
from knucaptcha.errors import LabelError
from knucaptcha.inference import Solver, resolve_model
from knucaptcha.labelling import check_label
from knucaptcha.labels import read_manifest
from knucaptcha.prelabels import PRELABELS_NAME, read_prelabels
from knucaptcha.web.app import create_app
from knucaptcha.web.settings import ServeSettings
from live_server import running

CHROMIUM = Path(os.environ.get("KNUCAPTCHA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("KNUCAPTCHA_SCREENSHOTS")
VIEWPORT = {"width": 1100, "height": 760}
UNLABELLED = 4


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; install it with 'apt-get install -y chromium' "
            "(the README's test command does) or point KNUCAPTCHA_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    yield opened
    context.close()


def readable_samples(solver: Solver, count: int) -> list[bytes]:
    """Generated captchas the model reads as distinct valid labels (so each guess can be accepted as it is)."""
    found: dict[str, bytes] = {}
    for index in range(200):
        data = encode_png(render_sample(get_style("knu"), seed=5, index=index).image)
        text = solver.solve(data).text
        try:
            check_label(text)
        except LabelError:
            continue
        found.setdefault(text, data)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("the test model reads too few samples as distinct texts")


@pytest.fixture(scope="module")
def shipped_model() -> Path:
    """The bundled default model: the pages are tested (and pictured) with the model users get."""
    return resolve_model("default")


@pytest.fixture
def site(tmp_path: Path, shipped_model: Path) -> Iterator[tuple[str, Path]]:
    """The app on loopback, labelling a folder of four unlabelled captchas and one already labelled."""
    folder = tmp_path / "collected"
    folder.mkdir()
    for index, data in enumerate(readable_samples(Solver.load(shipped_model), UNLABELLED)):
        (folder / f"_k{index}.png").write_bytes(data)
    (folder / "OLD1_1.png").write_bytes(encode_png(render_sample(get_style("knu"), seed=6, index=0).image))
    settings = ServeSettings(
        models=(("default", str(shipped_model)),), captcha_seed=0, label_dir=folder, label_write="both"
    )
    with running(create_app(settings)) as url:
        yield url, folder


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"screenshot_{name}.png"), full_page=True)


def test_demo_page_solves_an_uploaded_captcha(
    page: Page, site: tuple[str, Path], shipped_model: Path, tmp_path: Path
) -> None:
    url, _ = site
    page.goto(f"{url}/")
    expect(page.locator("#sample")).to_be_visible()
    before = page.locator("#result-text").inner_text()
    solver = Solver.load(shipped_model)
    uploads = []
    for index, data in enumerate(readable_samples(solver, 2)):
        uploads.append(tmp_path / f"upload{index}.png")
        uploads[-1].write_bytes(data)
    upload = next(path for path in uploads if solver.solve(path).text != before)  # so the answer must change
    page.set_input_files("#file", str(upload))
    expect(page.locator("#result-text")).to_have_text(solver.solve(upload).text)
    screenshot(page, "demo")


def show_a_readable_captcha(page: Page, url: str, solver: Solver, tmp_path: Path) -> tuple[Path, str]:
    """Open the demo page, upload a captcha the model reads as a valid label; the file and that reading."""
    page.goto(f"{url}/")
    upload = tmp_path / "upload.png"
    upload.write_bytes(readable_samples(solver, 1)[0])
    reading = solver.solve(upload).text
    page.set_input_files("#file", str(upload))
    expect(page.locator("#result-text")).to_have_text(reading)
    return upload, reading


def test_demo_page_reads_within_the_alphabet_typed(
    page: Page, site: tuple[str, Path], shipped_model: Path, tmp_path: Path
) -> None:
    solver = Solver.load(shipped_model)
    upload, reading = show_a_readable_captcha(page, site[0], solver, tmp_path)

    alphabet = solver.spec.charset.symbols.replace(reading[0], "")  # the first symbol read is not allowed
    told = solver.solve(upload, symbols=alphabet).text
    assert reading[0] not in told
    page.fill("#symbols", alphabet)
    page.press("#symbols", "Enter")
    expect(page.locator("#result-text")).to_have_text(told)

    page.fill("#symbols", "ab?")  # not symbols this model reads: the server's 400 is shown
    page.press("#symbols", "Enter")
    expect(page.locator("#error")).to_contain_text("the model cannot read")
    expect(page.locator("#result-text")).to_have_text("")


def test_a_late_practice_sample_never_replaces_the_users_own_image(
    page: Page, site: tuple[str, Path], shipped_model: Path, tmp_path: Path
) -> None:
    held: list[Route] = []  # the page's first GET /captcha, answered only after the upload has been read

    def hold(route: Route) -> None:
        held.append(route)

    page.route(re.compile(r".*/captcha$"), hold)
    solver = Solver.load(shipped_model)
    upload, reading = show_a_readable_captcha(page, site[0], solver, tmp_path)
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#source")).to_contain_text("upload.png")
    expect(page.locator("#result-text")).to_have_text(reading)
    page.fill("#length", "2")  # read again: still the upload, not the late sample
    page.press("#length", "Enter")
    expect(page.locator("#result-text")).to_have_text(solver.solve(upload, length=2).text)


def test_demo_page_reads_the_length_typed_up_to_the_models_maximum(
    page: Page, site: tuple[str, Path], shipped_model: Path, tmp_path: Path
) -> None:
    solver = Solver.load(shipped_model)
    upload, _ = show_a_readable_captcha(page, site[0], solver, tmp_path)
    expect(page.locator("#length")).to_have_attribute("max", str(solver.spec.max_length))
    # Left empty, it reads the model's own length (the service was told none) and says so.
    expect(page.locator("#length")).to_have_attribute("placeholder", f"model: {solver.read_length}")

    told = solver.solve(upload, length=2).text
    assert len(told) == 2
    page.fill("#length", "2")
    page.press("#length", "Enter")
    expect(page.locator("#result-text")).to_have_text(told)


def test_demo_page_names_the_services_alphabet_and_length_in_the_empty_fields(
    page: Page, shipped_model: Path, tmp_path: Path
) -> None:
    settings = ServeSettings(
        models=(("default", str(shipped_model)),), captcha_seed=0, site=ReadOptions(symbols="ABC123", length=4)
    )
    with running(create_app(settings)) as url:
        page.goto(f"{url}/")
        expect(page.locator("#symbols")).to_have_attribute("placeholder", "site: ABC123")
        expect(page.locator("#length")).to_have_attribute("placeholder", "site: 4")


def test_label_page_labels_skips_and_undoes_on_disk(page: Page, site: tuple[str, Path]) -> None:
    url, folder = site
    guesses = read_prelabels(folder / PRELABELS_NAME)
    order = sorted(guesses, key=lambda name: (guesses[name].confidence, name))
    assert len(order) == UNLABELLED
    image, field, counter = page.locator("#label-image"), page.locator("#label-input"), page.locator("#counter")

    def shows(position: int) -> None:
        expect(image).to_have_attribute("data-file", order[position])
        expect(field).to_have_value(guesses[order[position]].text)
        expect(field).to_be_focused()

    page.goto(f"{url}/label")
    expect(counter).to_have_text(f"1 / {UNLABELLED + 1} labelled")
    shows(0)
    page.keyboard.type("AB12")  # the guess is selected, so typing replaces it
    page.keyboard.press("Enter")
    expect(counter).to_have_text(f"2 / {UNLABELLED + 1} labelled")
    screenshot(page, "label")
    shows(1)
    page.keyboard.press("Enter")  # accept the model's guess
    expect(counter).to_have_text(f"3 / {UNLABELLED + 1} labelled")
    shows(2)
    page.keyboard.press("Escape")
    expect(page.locator("#session")).to_contain_text("1 skipped")
    shows(3)
    field.fill("CD34")
    page.keyboard.press("Enter")
    expect(counter).to_have_text(f"4 / {UNLABELLED + 1} labelled")
    assert (folder / "CD34_1.png").exists() and not (folder / order[3]).exists()
    manifest_before_undo = read_manifest(folder / "labels.csv")

    page.keyboard.press("Control+z")
    expect(counter).to_have_text(f"3 / {UNLABELLED + 1} labelled")
    shows(3)
    assert (folder / order[3]).exists() and not (folder / "CD34_1.png").exists()
    assert "CD34_1.png" not in read_manifest(folder / "labels.csv")
    assert manifest_before_undo.keys() - read_manifest(folder / "labels.csv").keys() == {"CD34_1.png"}

    field.fill("EF56")
    page.click("#accept")
    expect(counter).to_have_text(f"4 / {UNLABELLED + 1} labelled")
    shows(2)  # the skipped image comes back last

    accepted = guesses[order[1]].text
    expected = {"OLD1_1.png": "OLD1", "AB12_1.png": "AB12", f"{accepted}_1.png": accepted, "EF56_1.png": "EF56"}
    assert read_manifest(folder / "labels.csv") == expected
    images = sorted(path.name for path in folder.glob("*.png"))
    assert images == sorted([*expected, order[2]])  # every file still there, three of them renamed


def test_both_pages_work_under_their_content_security_policy(page: Page, site: tuple[str, Path]) -> None:
    url, _ = site
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective));"
    )
    for path, loaded in (("/", "#sample"), ("/label", "#label-image")):
        response = page.goto(f"{url}{path}")
        assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        expect(page.locator(loaded)).to_have_attribute("src", re.compile("."))
        # A locator assertion, not wait_for_function: its polling predicate is an eval in the page, which this CSP refuses.
        expect(page.locator(loaded)).to_have_js_property("complete", True)
        assert page.evaluate("window.violations") == [], path
    expect(page.locator("#label-input")).to_have_css("font-family", re.compile("monospace"))  # label.css applied


# --- the example for the real page: examples/fill_knu_captcha.py ---------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fill_knu_captcha.py"

REPLICA_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>수강신청</title></head>
<body><form>
  <img id="schCapcha" src="/captcha.png?0" alt="자동입력방지문자">
  <button type="button" id="btnChange">새로고침</button>
  <input id="schCapcha2" name="schCapcha2" maxlength="4">
</form>
<script>
  let drawn = 0;
  document.getElementById("btnChange").addEventListener("click", () => {
    document.getElementById("schCapcha").src = "/captcha.png?" + ++drawn;
  });
</script></body></html>"""


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fill_knu_captcha", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def replica() -> Iterator[tuple[str, list[bytes]]]:
    """A stand-in for the registration page on loopback, and every captcha PNG it has served, in order.

    Like the real server, each GET of the image draws a new captcha (a generated
    ``knu`` one: 140×35, transparent, ink in alpha) and forbids caching it.
    """
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, Response

    served: list[bytes] = []
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    def form() -> str:
        return REPLICA_PAGE

    @app.get("/captcha.png")
    def captcha() -> Response:
        served.append(encode_png(render_sample(get_style("knu"), seed=11, index=len(served)).image))
        return Response(served[-1], media_type="image/png", headers={"Cache-Control": "no-store"})

    with running(app) as url:
        yield url, served


def shown_captcha(page: Page) -> str:
    return page.evaluate("document.querySelector('#schCapcha').currentSrc")


def test_the_example_fills_the_real_pages_field_with_the_solvers_reading_of_the_png_served(
    page: Page, replica: tuple[str, list[bytes]], shipped_model: Path
) -> None:
    example = load_example()
    url, served = replica
    page.goto(f"{url}/")
    expect(page.locator("#schCapcha")).to_have_js_property("complete", True)
    assert len(served) == 1

    png = example.captcha_png(page)
    assert png == served[-1] and shown_captcha(page).endswith("?1")  # the bytes on screen, not a second GET
    with Image.open(io.BytesIO(png)) as image:  # intact: RGBA, the ink in the alpha channel
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (140, 35))
        clear, darkest = image.getchannel("A").getextrema()
        assert clear == 0 < darkest

    solver = Solver.load(shipped_model)
    answer = example.fill_captcha(page, solver)
    assert len(served) == 3 and shown_captcha(page).endswith("?2")
    assert answer == solver.solve(served[-1]).text and len(answer) == 4  # the default model reads 4
    expect(page.locator("#schCapcha2")).to_have_value(answer)


def test_the_example_reads_through_the_service_too(
    page: Page, replica: tuple[str, list[bytes]], shipped_model: Path
) -> None:
    example = load_example()
    url, served = replica
    settings = ServeSettings(models=(("default", str(shipped_model)),), captcha_seed=0)
    with running(create_app(settings)) as service:
        page.goto(f"{url}/")
        answer = example.fill_captcha_via_service(page, service)
    assert answer == Solver.load(shipped_model).solve(served[-1]).text
    expect(page.locator("#schCapcha2")).to_have_value(answer)


def test_the_example_runs_as_a_script(replica: tuple[str, list[bytes]], shipped_model: Path) -> None:
    url, served = replica
    run = [sys.executable, str(EXAMPLE), f"{url}/", "--chromium", str(CHROMIUM), "--headless"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{Solver.load(shipped_model).solve(served[-1]).text}\n"
