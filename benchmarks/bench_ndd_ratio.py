"""Speed of ``ndd`` as a ratio to a 10-scale Felzenszwalb sweep, interleaved in one run.

For each of the first ``--images`` BSDS500 val images, every grouping's whole
``ndd_hierarchy`` (model loaded once beforehand, hierarchy at image resolution) and the
sweep (skimage ``felzenszwalb`` at 10 scales geometrically spaced from 50 to 5000) are timed
back to back, so that load changes on a shared machine hit both alike. Reports the summed
times and their ratios.

Usage::

    python benchmarks/bench_ndd_ratio.py --images 20 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--groupings", nargs="+", default=["leaves", "paper", "snap"])
    parser.add_argument("--weights", default=None, help="default: the shipped weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from skimage.segmentation import felzenszwalb

    from affseg.data import bsds
    from affseg.methods.ndd import ndd_hierarchy, shipped_model

    t0 = time.perf_counter()
    net = shipped_model(args.weights)
    load = time.perf_counter() - t0
    scales = np.geomspace(50, 5000, 10)
    ids = bsds.list_split(None, "val")[: args.images]
    totals = {g: 0.0 for g in args.groupings}
    sweep = 0.0
    ndd_hierarchy(bsds.load_image(None, "val", ids[0]), model=net)  # warm-up (compiles)
    for image_id in ids:
        img = bsds.load_image(None, "val", image_id)
        for g in args.groupings:
            t0 = time.perf_counter()
            ndd_hierarchy(img, model=net, grouping=g)
            totals[g] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in scales:
            felzenszwalb(img, scale=float(s))
        sweep += time.perf_counter() - t0
    n = len(ids)
    print(f"{n} val images, torch threads {torch.get_num_threads()}, model load {load:.2f} s")
    print("| | s per image | ratio to the sweep |")
    print("|---|---:|---:|")
    for g, t in totals.items():
        print(f"| `ndd_hierarchy`, grouping `{g}` | {t / n:.3f} | {t / sweep:.2f} |")
    print(f"| 10-scale Felzenszwalb sweep (50 ... 5000) | {sweep / n:.3f} | 1.00 |")


if __name__ == "__main__":
    main()
