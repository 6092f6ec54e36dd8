"""Speed, memory and accuracy of the diffusion engine (issue 3).

Forward only, float32, k = 17, Ne = 50, T = 2, t = 10 on h x h grids of smooth random
64-channel features (a Gaussian-blurred noise field: a realistic, slowly decaying spectrum).

    python benchmarks/bench_diffusion.py --threads 2 [--dense] [--accuracy]

- time: median of ``--reps`` runs of :func:`affseg.affinity.diffusion.diffusion_map`
  (graph + iteration + Rayleigh-Ritz + embedding) for 41, 81, 121 grids;
- memory: peak RSS increase of a fresh subprocess during one forward pass (high-water mark
  reset after imports and warm-up);
- ``--dense``: dense ``torch.linalg.eigh`` of S for the 81 x 81 (N = 6561) problem;
- ``--accuracy``: on 41 x 41, relative error of the top-50 eigenvalues vs dense eigh and of
  D_t (Ne = 50) vs the full-spectrum D_t, for several inner counts m and outer counts T;
  and the truncation error of D_t with the exact top-Ne eigenvectors (Ne = 10, 25, 50) for
  t = 1, 3, 10 (max |error| / max D_t over all pairs).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from affseg.affinity.diffusion import diffusion_map
from affseg.affinity.graph import gaussian_affinity, normalized_operator


def features(h: int, c: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random features (1, c, h, h), unit variance per channel."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, h, h, generator=g)
    ker = torch.exp(-(torch.arange(-6, 7.0) ** 2) / (2 * 3.0**2))
    ker = ker / ker.sum()
    x = F.conv2d(
        F.pad(x, (6, 6, 0, 0), mode="reflect"), ker.view(1, 1, 1, 13).repeat(c, 1, 1, 1), groups=c
    )
    x = F.conv2d(
        F.pad(x, (0, 0, 6, 6), mode="reflect"), ker.view(1, 1, 13, 1).repeat(c, 1, 1, 1), groups=c
    )
    return (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)


MU = 0.02  # squared distances between neighbours of these features are ~1-30


def run(h: int | torch.Tensor, n_inner: int = 40, n_outer: int = 2, qr_every: int | None = 10):
    """One forward pass on an h x h grid (or on given features (1, C, h, w))."""
    f = features(h) if isinstance(h, int) else h
    with torch.no_grad():
        return diffusion_map(
            f, MU, 10.0, k=17, n_eig=50, n_outer=n_outer, n_inner=n_inner, qr_every=qr_every
        )


def time_grid(h: int, reps: int, **kw) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of one forward pass
    (features made beforehand: graph + iteration + Rayleigh-Ritz + embedding timed)."""
    f = features(h)
    run(f, **kw)  # warm-up
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        run(f, **kw)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def peak_memory_child(h: int, threads: int) -> float:
    """Peak RSS increase (MB) of one forward pass on an h x h grid, in a fresh process.

    After imports and a JIT warm-up the kernel's high-water mark is reset
    (``/proc/self/clear_refs`` = 5); the result is VmHWM after the pass minus VmRSS before.
    """
    code = (
        "import torch, sys; sys.path.insert(0, 'benchmarks');"
        f"torch.set_num_threads({threads});"
        "import bench_diffusion as b; b.run(9);"
        f"f = b.features({h});"
        "kb = lambda key: int([l for l in open('/proc/self/status') if l.startswith(key)][0]"
        ".split()[1]);"
        "open('/proc/self/clear_refs', 'w').write('5'); base = kb('VmRSS:');"
        "b.run(f);"
        "print((kb('VmHWM:') - base) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def dense_eigh_time(h: int) -> tuple[float, float]:
    with torch.no_grad():
        s = normalized_operator(gaussian_affinity(features(h), MU, 17)).dense()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        torch.linalg.eigh(s)
        return time.perf_counter() - t0, time.process_time() - c0


def accuracy(h: int = 41) -> list[dict]:
    f64 = features(h).double()
    with torch.no_grad():
        s = normalized_operator(gaussian_affinity(f64, MU, 17)).dense()[0]
    lam, vec = torch.linalg.eigh(s)
    order = lam.abs().argsort(descending=True)
    lam, vec = lam[order], vec[:, order]
    full = diffusion_map(
        f64, MU, 10.0, k=17, n_eig=h * h, n_outer=1, n_inner=1, init=vec
    ).distances()[0]
    rows = []
    for n_outer, n_inner in ((1, 20), (1, 40), (2, 10), (2, 20), (2, 40), (3, 40), (10, 40)):
        r = run(h, n_inner=n_inner, n_outer=n_outer)
        ev_err = float(((r.eigenvalues[0].double() - lam[:50]).abs() / lam[:50].abs()).max())
        d = r.distances()[0].double()
        rows.append(
            {
                "T": n_outer,
                "m": n_inner,
                "eig_rel_err_max": ev_err,
                "eig_rel_err_top10": float(
                    ((r.eigenvalues[0, :10].double() - lam[:10]).abs() / lam[:10].abs()).max()
                ),
                "Dt_rel_err": float((d - full).abs().max() / full.max()),
            }
        )
    rows.append(
        {
            "lambda_10": float(lam[9]),
            "lambda_25": float(lam[24]),
            "lambda_50": float(lam[49]),
            "lambda_51": float(lam[50]),
        }
    )
    # truncation: exact top-Ne eigenvectors vs all N, for several t
    for t in (1.0, 3.0, 10.0):
        full_t = diffusion_map(
            f64, MU, t, k=17, n_eig=h * h, n_outer=1, n_inner=1, init=vec
        ).distances()[0]
        for ne in (10, 25, 50):
            trunc = diffusion_map(
                f64, MU, t, k=17, n_eig=ne, n_outer=1, n_inner=1, init=vec[:, :ne]
            ).distances()[0]
            rows.append(
                {
                    "truncation_t": t,
                    "Ne": ne,
                    "Dt_rel_err": float((trunc - full_t).abs().max() / full_t.max()),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--grids", type=int, nargs="+", default=[41, 81, 121])
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict = {
        "threads": args.threads,
        "load_avg_start": list(np.round(np.array(__import__("os").getloadavg()), 2)),
    }
    for h in args.grids:
        wall, cpu = time_grid(h, args.reps)
        entry = {"N": h * h, "forward_s": round(wall, 4), "cpu_s": round(cpu, 4)}
        if not args.no_memory:
            entry["peak_rss_MB"] = round(peak_memory_child(h, args.threads), 1)
        res[f"{h}x{h}"] = entry
        print(h, entry, flush=True)
    if args.dense:
        wall, cpu = dense_eigh_time(81)
        res["dense_eigh_81x81_s"], res["dense_eigh_81x81_cpu_s"] = round(wall, 3), round(cpu, 3)
        if "81x81" in res:
            res["speedup_81_wall"] = round(wall / res["81x81"]["forward_s"], 1)
            res["speedup_81_cpu"] = round(cpu / res["81x81"]["cpu_s"], 1)
        print("dense", res["dense_eigh_81x81_s"], flush=True)
    if args.accuracy:
        res["accuracy_41"] = accuracy(41)
    res["load_avg_end"] = list(np.round(np.array(__import__("os").getloadavg()), 2))
    res["peak_rss_self_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
