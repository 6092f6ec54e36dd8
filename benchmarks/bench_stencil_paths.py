"""Time every execution path of the local k x k stencil (one operator application A X).

The paths of :class:`affseg.affinity.graph.LocalOperator`:

- ``unfold``: the pure torch reference (``backend="torch"``; any device, any dtype);
- ``generic-parallel`` / ``generic-serial``: the generic compiled kernel on torch's threads
  and on one (the path for float64, k < 5 and ``AFFSEG_NATIVE=0``; the serial one runs
  below ``PARALLEL_MIN_WORK``);
- ``LocalOperator.apply (dispatch)``: what :meth:`LocalOperator.apply` costs (C kernel when
  available, plus the padding copy);
- ``c-kernel``: the compiled C kernel of :mod:`affseg.affinity.native`, one application;
- ``c-kernel-power``: the C kernel running ``n`` applications in one call
  (``apply_power``), time per application.

    python benchmarks/bench_stencil_paths.py --threads 1 2 --reps 7 \\
        --json benchmarks/results/stencil_paths.json

Problems: a tiny test-size grid, the grid of the main job (``affseg segment`` on a 321 x 481
image: 40 x 60 nodes, k = 17, 56 columns = Ne 50 padded) and the 81 x 81 benchmark grid;
float32. Reported: best and median milliseconds per application over ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import affseg  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads)
from affseg.affinity import _kernels, native
from affseg.affinity.graph import gaussian_affinity, normalized_operator

PROBLEMS = {
    "tiny 16x20 k5 M8": (16, 20, 5, 8),
    "main job 40x60 k17 M56": (40, 60, 17, 56),
    "benchmark 81x81 k17 M56": (81, 81, 17, 56),
}


def _time(fn, reps: int) -> tuple[float, float]:
    fn()  # warm-up (compilation, caches)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def measure(h: int, w: int, k: int, m: int, reps: int, power: int) -> dict[str, dict]:
    """Milliseconds per application of each path on one problem."""
    g = torch.Generator().manual_seed(0)
    op = normalized_operator(gaussian_affinity(torch.randn(1, 8, h, w, generator=g), 0.05, k))
    x = torch.randn(1, h, w, m, generator=g)
    cl = op.coef.permute(0, 2, 3, 1).contiguous()
    r = k // 2
    xpad = F.pad(x, (0, 0, r, r, r, r)).contiguous().numpy()
    out = np.empty_like(x.numpy())
    cln = cl.numpy()
    paths = {
        "unfold": lambda: op.apply_maps(x.permute(0, 3, 1, 2)),
        "LocalOperator.apply (dispatch)": lambda: op.apply(x),
    }
    n_threads = torch.get_num_threads()
    paths["generic-parallel"] = lambda: _kernels.stencil(cln, xpad, out, k, n_threads)
    paths["generic-serial"] = lambda: _kernels.stencil(cln, xpad, out, k, 1)
    if native.supports(k, np.dtype("float32")):
        xn = x.numpy()
        paths["c-kernel"] = lambda: native.stencil_power(cln, xn, k, 1, n_threads)
        paths[f"c-kernel-power (n={power}, per application)"] = lambda: native.stencil_power(
            cln, xn, k, power, n_threads
        )
    res = {}
    with torch.no_grad():
        for name, fn in paths.items():
            best, med = _time(fn, reps)
            per = power if name.startswith("c-kernel-power") else 1
            res[name] = {"best_ms": 1e3 * best / per, "median_ms": 1e3 * med / per}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--power", type=int, default=20, help="applications per apply_power call")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    out = {
        "reps": args.reps,
        "native_available": native.supports(17, np.dtype("float32")),
        "load_average_at_start": os.getloadavg()[0],
        "runs": {},
    }
    for n_threads in args.threads:
        torch.set_num_threads(n_threads)
        run = out["runs"][f"{n_threads} threads"] = {}
        for name, (h, w, k, m) in PROBLEMS.items():
            res = measure(h, w, k, m, args.reps, args.power)
            run[name] = res
            print(f"## {n_threads} threads, {name}")
            for path, t in res.items():
                print(f"  {path:42s} best {t['best_ms']:9.3f} ms   median {t['median_ms']:9.3f} ms")
    out["load_average_at_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
