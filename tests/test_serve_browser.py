"""End-to-end test of the ``affseg serve`` page in a real headless browser.

Debian's chromium driven by Playwright: load the page, pick an example, move the slider,
click pixels, and check that the overlay and the similarity image change; upload a
non-image, a decompression bomb and a file over the byte limit and see the refusals. The
screenshot is kept under pytest's tmp dir (and written to ``$AFFSEG_SCREENSHOT`` if set).

Skips (with the reason) when chromium or playwright is missing; CI installs both
(``apt-get install chromium``, ``pip install playwright``; never ``playwright install``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="affseg serve needs pip install 'affseg[serve]'")
pytest.importorskip("uvicorn", reason="affseg serve needs pip install 'affseg[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install playwright)"
)

from serve_util import Server, bomb_png, zeros_png  # noqa: E402


def _chromium() -> str:
    for cand in (os.environ.get("AFFSEG_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if cand and (path := shutil.which(cand)):
            return path
    pytest.skip("chromium not found (Debian: apt-get install chromium; or set AFFSEG_CHROMIUM)")


ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def page():
    exe = _chromium()
    srv = Server("--max-upload-mb", "1", "--max-pixels", "1e6", "--max-side", "240")
    profile = tempfile.mkdtemp(prefix="affseg-chromium-")
    try:
        with sync_api.sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile,
                executable_path=exe,
                args=ARGS,
                headless=True,
                viewport={"width": 1280, "height": 720},
                bypass_csp=True,  # lets Playwright evaluate its wait predicates
            )
            try:
                pg = ctx.new_page()
                pg.set_default_timeout(60_000)
                pg.goto(srv.url + "/")
                pg.wait_for_selector("body[data-ready='1']")
                yield pg, srv
            finally:
                ctx.close()
    finally:
        srv.stop()
        shutil.rmtree(profile, ignore_errors=True)


def _loaded(pg, selector: str) -> None:
    pg.wait_for_function(
        "s => { const i = document.querySelector(s); return i.complete && i.naturalWidth > 0; }",
        arg=selector,
    )


def _src(pg, selector: str) -> str:
    return pg.eval_on_selector(selector, "i => i.getAttribute('src') || ''")


def test_explore_example(page, tmp_path):
    pg, srv = page
    pg.select_option("#method-a", "slic")
    pg.select_option("#method-b", "felzenszwalb")
    pg.select_option("#example", "coffee")
    pg.click("#load-example")
    for key in ("a", "b"):
        pg.wait_for_function(
            "k => document.querySelector('#count-' + k).textContent.includes('segment')",
            arg=key,
        )
        _loaded(pg, f"#overlay-{key}")
    assert "/api/overlay/" in _src(pg, "#overlay-a") and "/slic/" in _src(pg, "#overlay-a")
    assert "/felzenszwalb/" in _src(pg, "#overlay-b")
    before_src = _src(pg, "#overlay-a")
    before_count = pg.text_content("#count-a")
    before_png = pg.locator("#overlay-a").screenshot()
    # move the slider to the finest level: the overlay follows
    finest = pg.eval_on_selector("#slider-a", "s => s.max")
    pg.locator("#slider-a").fill(str(finest))
    pg.wait_for_function("s => document.querySelector('#overlay-a').getAttribute('src') !== s",
                         arg=before_src)  # fmt: skip
    _loaded(pg, "#overlay-a")
    assert pg.text_content("#count-a") != before_count
    assert pg.locator("#overlay-a").screenshot() != before_png
    href = pg.get_attribute("#dl-labels-a", "href")
    assert href and href.startswith("/api/labels/")
    assert pg.get_attribute("#dl-ucm-a", "href").endswith("/slic.mat")
    # click a pixel of the cup, then one of the table: two different similarity maps
    box = pg.locator("#overlay-a").bounding_box()
    pg.mouse.click(box["x"] + 0.47 * box["width"], box["y"] + 0.35 * box["height"])
    pg.wait_for_function("document.querySelector('#sim').getAttribute('src')")
    _loaded(pg, "#sim")
    first_src, first_png = _src(pg, "#sim"), pg.locator("#sim").screenshot()
    assert "/api/similarity/" in first_src
    assert "row" in pg.text_content("#sim-caption")
    pg.mouse.click(box["x"] + 0.05 * box["width"], box["y"] + 0.9 * box["height"])
    pg.wait_for_function("s => document.querySelector('#sim').getAttribute('src') !== s",
                         arg=first_src)  # fmt: skip
    _loaded(pg, "#sim")
    pg.wait_for_function("document.querySelector('#progress-sim').hidden")
    assert pg.locator("#sim").screenshot() != first_png
    assert pg.is_visible("#panel-a .marker")
    shot = tmp_path / "serve.png"
    pg.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("AFFSEG_SCREENSHOT"):
        Path(os.environ["AFFSEG_SCREENSHOT"]).write_bytes(shot.read_bytes())
    assert srv.alive()


@pytest.mark.parametrize(
    ("name", "payload", "words"),
    [
        ("notes.png", b"plain text, not an image", "not an image"),
        ("bomb.png", bomb_png(), "pixels"),
        ("black.png", zeros_png(2000), "pixels"),
        ("huge.bmp", b"BM" + bytes(1_300_000), "MB"),
    ],
)
def test_refusals_shown(page, name, payload, words):
    pg, srv = page
    pg.evaluate("document.getElementById('message').hidden = true")
    pg.set_input_files("#file", files=[{"name": name, "mimeType": "image/png", "buffer": payload}])
    pg.wait_for_function(
        "document.querySelector('#message').textContent.startsWith('Refused')"
        " && !document.querySelector('#message').hidden"
    )
    text = pg.text_content("#message")
    assert words in text, text
    pg.set_input_files("#file", files=[])
    assert srv.alive() and srv.get_json("/api/health")["ok"]
