"""Latency of ``affseg serve``: first segmentation, slider moves and clicks over HTTP.

Starts a real server (``--threads 2``) on a free loopback port, then per example image:

* ``first_request_s``: ``POST /api/segment`` (upload, the method's whole run, answer) for
  ndd and slic, against ``method_alone_s``: the same method called in-process as
  ``affseg segment`` runs it (after one warm-up run in this process);
* ``slider_first_render``: ``GET /api/overlay/...`` of every level right after the
  segmentation answered, while the server prerenders the levels in the background (each
  answer is a cache hit or a render racing that prerender);
* ``slider_cached``: the same once the background work is done (cache hits);
* ``click``: ``GET /api/similarity/...`` of 30 random pixels (the cached diffusion
  embedding and interpolation weights: one kernel row, two 5 x 5 stencils, colouring, PNG);
* ``overlay_render_uncached``: in this process, the overlay render + PNG encode of each
  level (what a slider move costs before the background prerender reached that level).

Wall-clock times at the client, including HTTP. Writes
``benchmarks/results/serve_latency.json``::

    python benchmarks/bench_serve_latency.py [--examples coffee astronaut] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import affseg  # noqa: F401  - before torch: OMP_WAIT_POLICY=PASSIVE (README, busy machine)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from serve_util import Server  # noqa: E402


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def timed(srv: Server, path: str) -> float:
    t0 = time.perf_counter()
    status, _, body = srv.request(path, timeout=120)
    dt = (time.perf_counter() - t0) * 1000
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status} {body[:200]!r}")
    return dt


def on_demand_render_ms(srv: Server, image_id: str, method: str, ex: str, n: int) -> list[float]:
    """In this process: the server's overlay render + PNG encode of every level (the cost
    of a slider move to a level that is not prerendered yet)."""
    import io

    from PIL import Image

    from affseg.cli.segment import load_example
    from affseg.serve.render import encode_png, fast_overlay

    _, res = srv.post_form({"id": image_id, "method": method})
    rgb = load_example(ex)
    if rgb.shape[:2] != (res["height"], res["width"]):
        rgb = np.asarray(Image.fromarray(rgb).resize((res["width"], res["height"])))
    out = []
    for lv in range(n):
        body = srv.request(f"/api/labels/{image_id}/{method}/{lv}.png")[2]
        lab = np.asarray(Image.open(io.BytesIO(body))).astype(np.int32)
        t0 = time.perf_counter()
        encode_png(fast_overlay(rgb, lab), level=0)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def method_alone_s(examples: list[str], methods: list[str], threads: int) -> dict:
    """Seconds of ``run_method`` in this process (as ``affseg segment`` runs it), per
    (example, method), at the server's working size, after one warm-up run."""
    import torch
    from PIL import Image

    from affseg.cli.segment import load_example
    from affseg.methods import run_method
    from affseg.serve.limits import Settings

    torch.set_num_threads(threads)
    side = Settings().max_side
    out = {}
    for ex in examples:
        rgb = load_example(ex)
        if max(rgb.shape[:2]) > side:
            s = side / max(rgb.shape[:2])
            size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
        for m in methods:
            if not out:
                run_method(rgb, m)  # warm-up: model load, compilation
            t0 = time.perf_counter()
            run_method(rgb, m)
            out[(ex, m)] = round(time.perf_counter() - t0, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", nargs="+", default=["coffee", "astronaut"])
    ap.add_argument("--methods", nargs="+", default=["ndd", "slic"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_latency.json")
    args = ap.parse_args()
    alone = method_alone_s(args.examples, args.methods, args.threads)
    srv = Server("--threads", str(args.threads))
    rng = np.random.default_rng(0)
    runs = []
    try:
        for ex in args.examples:
            for method in args.methods:
                t0 = time.perf_counter()
                status, res = srv.post_form({"example": ex, "method": method})
                first = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"{ex}/{method}: {res}")
                i, h, w = res["id"], res["height"], res["width"]
                # wait for the background similarity field of this image
                t1 = time.perf_counter()
                timed(srv, f"/api/similarity/{i}.png?y=0&x=0")
                field_wait = time.perf_counter() - t1
                levels = range(len(res["levels"]))
                url = f"/api/overlay/{i}/{method}/{{}}.png"
                slider_first = [timed(srv, url.format(lv)) for lv in levels]
                for _ in range(600):  # the background prerender of every level
                    if srv.get_json("/api/health")["jobs"]["background"] == 0:
                        break
                    time.sleep(0.1)
                slider_cached = [timed(srv, url.format(lv)) for lv in levels]
                ys, xs = rng.integers(0, h, args.clicks), rng.integers(0, w, args.clicks)
                pts = zip(ys, xs, strict=True)
                clicks = [timed(srv, f"/api/similarity/{i}.png?y={y}&x={x}") for y, x in pts]
                render = on_demand_render_ms(srv, i, method, ex, len(res["levels"]))
                row = {
                    "example": ex,
                    "method": method,
                    "size": [h, w],
                    "levels": len(res["levels"]),
                    "first_request_s": round(first, 2),
                    "method_seconds": res["seconds"],
                    "method_alone_s": alone[(ex, method)],
                    "first_click_wait_s": round(field_wait, 2),
                    "slider_first_render": _stats(slider_first),
                    "slider_cached": _stats(slider_cached),
                    "click": _stats(clicks),
                    "overlay_render_uncached": _stats(render),
                }
                runs.append(row)
                print(json.dumps(row))
    finally:
        srv.stop()
    out = {
        "command": "python benchmarks/bench_serve_latency.py " + " ".join(sys.argv[1:]),
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "runs": runs,
        "worst_interactive_p95_ms": max(
            max(
                r["slider_first_render"]["p95_ms"],
                r["click"]["p95_ms"],
                r["overlay_render_uncached"]["p95_ms"],
            )
            for r in runs
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
