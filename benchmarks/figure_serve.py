"""Screenshot of the ``affseg serve`` page for the README (docs/figures/serve.png).

Starts the server on a free loopback port, opens the page in Debian's headless chromium
(Playwright, ``executable_path=/usr/bin/chromium``), loads the coffee example with ndd
beside slic, moves nothing, clicks one pixel of the saucer and saves the screenshot::

    python benchmarks/figure_serve.py [--out docs/figures/serve.png]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from serve_util import Server  # noqa: E402

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/figures/serve.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    srv = Server("--threads", "2")
    profile = tempfile.mkdtemp(prefix="affseg-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=args.chromium, args=ARGS, headless=True,
                viewport={"width": 1400, "height": 560}, bypass_csp=True,
            )  # fmt: skip
            pg = ctx.new_page()
            pg.set_default_timeout(180_000)
            pg.goto(srv.url + "/")
            pg.wait_for_selector("body[data-ready='1']")
            pg.select_option("#method-b", "slic")
            pg.select_option("#example", "coffee")
            pg.click("#load-example")
            for key in ("a", "b"):
                pg.wait_for_function(
                    "k => document.querySelector('#count-' + k).textContent.includes('seg')",
                    arg=key,
                )
            box = pg.locator("#overlay-a").bounding_box()
            pg.mouse.click(box["x"] + 0.28 * box["width"], box["y"] + 0.75 * box["height"])
            pg.wait_for_function(
                "() => { const i = document.querySelector('#sim');"
                " return i.complete && i.naturalWidth > 0 &&"
                " document.querySelector('#progress-sim').hidden; }"
            )
            pg.wait_for_timeout(300)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(args.out))
            ctx.close()
        from PIL import Image  # 256 colours: a third of the bytes, same look

        im = Image.open(args.out).convert("RGB")
        im = im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        im.save(args.out, optimize=True)
    finally:
        srv.stop()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
