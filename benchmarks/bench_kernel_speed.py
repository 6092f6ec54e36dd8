"""Per-call speed of the paths that run the compiled kernels, warm (after one call).

Run it with the Python of each install to compare (e.g. before / after a change of the
kernels), alternating:

    python benchmarks/bench_kernel_speed.py --repeats 5 --json out.json

Paths: the default ``ndd`` hierarchy of scikit-image's coffee photo (stencil, leaf merge,
watershed, UCM), the boundary benchmark's counts of two Felzenszwalb maps against two
SLIC "annotators" (matching, thinning), the UCM's nested labels, KwikCluster, the HAM
inference affinities and the spatial propagation. Median seconds per call; the load
average is recorded. Results: BENCHMARKS.md, "First run".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import affseg  # first: sets OMP_WAIT_POLICY before torch loads


def _paths() -> dict[str, Callable[[], object]]:
    import torch
    from skimage import data
    from skimage.segmentation import felzenszwalb, slic

    from affseg.affinity.propagation import propagate
    from affseg.grouping.kwikcluster import kwikcluster
    from affseg.grouping.ucm import ucm_nested_labels
    from affseg.metrics.boundary import boundary_counts, seg_to_boundaries
    from affseg.models.ham import HAMAffinity
    from affseg.models.ham_fast import ham_affinity_fast

    image = data.coffee()
    small = image[::2, ::2]
    gts = [seg_to_boundaries(slic(small, n_segments=n, start_label=1)) for n in (40, 120)]
    maps = [seg_to_boundaries(felzenszwalb(small, scale=s)) for s in (50, 300)]
    ucm2 = affseg.hierarchy(small, method="felzenszwalb").to_ucm()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20000, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    torch.manual_seed(0)
    ham = HAMAffinity("hyperbolic", stable_rank=True)
    e, s = torch.randn(1, 8, 256, 320), torch.rand(1, 1, 256, 320)
    h = torch.rand(1, 3, 256, 320)
    a = torch.rand(1, 8, 256, 320) / 8

    def ham_call() -> object:
        with torch.no_grad():
            return ham_affinity_fast(ham, e, s, 1)

    def prop_call() -> object:
        with torch.no_grad():
            return propagate(h, a, 3, iterations=10)

    return {
        "ndd hierarchy (coffee 400x600)": lambda: affseg.hierarchy(image),
        "boundary counts (2 maps x 2 annotators, 200x300)": lambda: boundary_counts(
            maps, gts, 0.0075, True
        ),
        "ucm nested labels (99 thresholds)": lambda: ucm_nested_labels(ucm2),
        "kwikcluster (20000 x 16)": lambda: kwikcluster(emb, 0.5),
        "ham affinities (256x320, D=8)": ham_call,
        "propagation (3 x 256x320, 10 steps)": prop_call,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    res = {}
    for name, fn in _paths().items():
        fn()  # warm-up
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        res[name] = statistics.median(ts)
        print(f"{name}: {res[name]:.4f} s", flush=True)
    out["median_s"] = res
    out["load_average_at_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
