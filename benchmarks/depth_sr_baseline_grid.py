"""Grid search of the bilateral-solver and guided-filter parameters on the TRAINING scenes.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/depth_sr_baseline_grid.py \
        --json benchmarks/results/depth_sr_baseline_grid.json [--every 2]

For every factor 2, 4, 8, 16 and every ``--every``-th scene of ``RGBD_depth_train`` (never a
benchmark scene) the input is synthesised like the benchmark's
(:func:`affseg.train.depth_sr.synthesize_input`, noise std 5.5, seed = scene index) and
each parameter set is scored by the mean RMSE over the scenes; the best set per factor is
what :data:`affseg.methods.depth_baselines.GUIDED_PARAMS` holds (the bilateral solver's
``BILATERAL_PARAMS`` are now the paper's depth-SR set-up, not this search's result).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from affseg.data import rgbd_train
from affseg.data.io import write_json
from affseg.methods.depth_baselines import bilateral_upsample, guided_upsample
from affseg.methods.depth_sr import FACTORS, error_metrics
from affseg.train.depth_sr import synthesize_input

BILATERAL_GRID = {
    "sigma_spatial": (4.0, 8.0, 16.0),
    "sigma_luma": (4.0, 8.0, 16.0),
    "lam": (32.0, 128.0, 512.0),
}
GUIDED_GRID = {"radius": (2, 4, 8, 16), "eps": (1e-4, 1e-3, 1e-2, 1e-1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", default=None)
    ap.add_argument("--every", type=int, default=2, help="use every N-th training scene")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    names = rgbd_train.list_scenes(args.data)[:: args.every]
    scenes = [rgbd_train.load_pair(n, args.data) for n in names]
    results: dict[str, object] = {"scenes": names, "noise_std": 5.5, "bilateral": {}, "guided": {}}
    t0 = time.time()
    for f in FACTORS.values():
        inputs = [synthesize_input(gt, f, 5.5, seed=i) for i, (_, gt) in enumerate(scenes)]
        for method, grid, fn in (
            ("bilateral", BILATERAL_GRID, bilateral_upsample),
            ("guided", GUIDED_GRID, guided_upsample),
        ):
            rows = []
            for values in itertools.product(*grid.values()):
                p = dict(zip(grid, values, strict=True))
                if method == "bilateral":
                    p["sigma_chroma"] = p["sigma_luma"]
                rmse = [
                    error_metrics(fn(rgb, lr, f, p), gt)["rmse"]
                    for (rgb, gt), lr in zip(scenes, inputs, strict=True)
                ]
                rows.append({"params": p, "rmse": float(np.mean(rmse))})
            rows.sort(key=lambda r: r["rmse"])
            results[method][f"x{f}"] = {"best": rows[0], "all": rows}  # type: ignore[index]
            print(f"x{f} {method}: best {rows[0]} ({time.time() - t0:.0f}s)", flush=True)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
