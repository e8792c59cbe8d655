"""Fill the KNU course-registration page's captcha from a Playwright script, with knucaptcha.

The page shows the captcha as ``<img id="schCapcha">``, a 140×35 PNG whose
symbols are drawn in the alpha channel over full transparency, takes the
answer in ``<input id="schCapcha2">`` and draws a new captcha when
``#btnChange`` is clicked. In your own script, once the page is open::

    from fill_knu_captcha import fill_captcha
    answer = fill_captcha(page)             # the bundled default model, 4 symbols
    answer = fill_captcha_via_service(page) # or a running `knucaptcha serve`

Or try it on its own (it opens the page, fills the field, prints the answer
and leaves the browser open until you press Enter)::

    python examples/fill_knu_captcha.py URL [--chromium /usr/bin/chromium] [--headless]

Why the image is taken from the network response and not otherwise: an
element screenshot composites the transparent PNG onto the page's background,
so the alpha channel, where the ink is, is gone; a second GET of the image's
URL makes most captcha servers draw a new captcha and expect its answer
instead, so the screen and the answer disagree; a canvas re-encodes the
pixels (and refuses a cross-origin image). Clicking ``#btnChange`` and keeping
the response the browser receives gives the server's PNG byte for byte, the
one on the screen, the one whose answer the server expects.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from playwright.sync_api import Page, Response, sync_playwright

if TYPE_CHECKING:
    from knucaptcha import Solver

IMAGE = "#schCapcha"
ANSWER = "#schCapcha2"
REFRESH = "#btnChange"


def captcha_png(page: Page, timeout_ms: float = 10_000) -> bytes:
    """Draw a fresh captcha on ``page`` (click ``#btnChange``) and return its PNG as the server sent it."""

    def is_image(response: Response) -> bool:
        return response.request.resource_type == "image"

    with page.expect_response(is_image, timeout=timeout_ms) as loaded:
        page.click(REFRESH)
    response = loaded.value
    # The bytes read are the ones on the screen: wait until the <img> shows that response.
    page.wait_for_function(
        "([selector, url]) => { const img = document.querySelector(selector);"
        " return img.complete && img.currentSrc === url; }",
        arg=[IMAGE, response.url],
        timeout=timeout_ms,
    )
    if not response.ok:
        raise RuntimeError(f"the captcha request failed: {response.status} {response.url}")
    return response.body()


def fill_captcha(page: Page, solver: Solver | None = None) -> str:
    """Read a fresh captcha on ``page`` with ``solver`` (default: the bundled model) and type it into ``#schCapcha2``.

    The bundled default model reads exactly 4 symbols, as the page's captcha
    always has. Returns the answer typed.
    """
    if solver is None:
        from knucaptcha import Solver

        solver = Solver.load()
    answer = solver.solve(captcha_png(page)).text
    page.fill(ANSWER, answer)
    return answer


def fill_captcha_via_service(page: Page, service: str = "http://127.0.0.1:8000") -> str:
    """As :func:`fill_captcha`, reading with a running ``knucaptcha serve`` (``POST /v1/solve``) instead.

    Nothing of knucaptcha needs to be installed where this runs. Returns the answer typed.
    """
    solved = page.request.post(
        f"{service.rstrip('/')}/v1/solve", data=captcha_png(page), headers={"content-type": "image/png"}
    )
    if not solved.ok:
        raise RuntimeError(f"{service} could not read the captcha: {solved.status} {solved.text()}")
    answer = solved.json()["text"]
    page.fill(ANSWER, answer)
    return answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Open URL, fill its captcha with knucaptcha, print the answer.")
    parser.add_argument("url")
    parser.add_argument("--chromium", help="a Chromium binary to run (default: Playwright's own)")
    parser.add_argument("--headless", action="store_true", help="no window; exit once the field is filled")
    args = parser.parse_args(argv)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=args.headless)
        page = browser.new_page()
        page.goto(args.url)
        print(fill_captcha(page), flush=True)
        if not args.headless:
            input("Filled. Press Enter to close the browser. ")
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
