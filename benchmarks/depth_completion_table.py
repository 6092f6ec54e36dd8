"""Depth completion table (500 samples): HAM vs naive vs the colour-guided FGS baseline.

Usage::

    python benchmarks/depth_completion_table.py --tune \
        [--json benchmarks/results/depth_completion_fgs_tuning.json]
    python benchmarks/depth_completion_table.py [--ham W1.pt W2.pt] [--naive W1.pt W2.pt] \
        [--seeds 0 1 2] [--json benchmarks/results/depth_completion.json]

``--tune`` grid-searches the fast-global-smoother baseline's (lambda, sigma_color) on the
30 ``RGBD_depth_train`` scenes (500-sample density, sampling seed 0, mean RMSE) and prints
the best pair (set it as ``FGS_PARAMS`` in :mod:`affseg.methods.depth_baselines`).
Without ``--tune`` it evaluates on the validation scenes art_big, books_big, dolls_big of
``Middlebury_depth_sr`` at 1/3 resolution (458 x 362), each over the sampling seeds, and
prints markdown rows ``mean +- std`` of RMSE, MAE, REL and delta_1.25 per scene (the std
is over sampling seeds x training seeds).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from affseg.data.io import write_json
from affseg.evaluation.depth import evaluate_depth_completion
from affseg.methods import depth_completion as dc
from affseg.methods.depth_baselines import FGS_PARAMS, fgs_complete
from affseg.metrics.depth import depth_metrics
from affseg.train.depth_completion import load_train_scenes

LAMBDAS = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
SIGMAS = (2.0, 4.0, 8.0, 16.0, 32.0)
NAMES = {"fgs": "FGS interpolation (classical)", "naive": "naive (Euclidean)", "ham": "HAM"}


def tune() -> dict[str, object]:
    """Mean RMSE of the FGS baseline over the training scenes for each parameter pair."""
    scenes = load_train_scenes()
    samples = [
        (rgb, gt, dc.sample_sparse(gt, max(1, round(dc.DENSITY * gt.size)), seed=0))
        for rgb, gt in scenes
    ]
    grid = {}
    for lam, sig in itertools.product(LAMBDAS, SIGMAS):
        rmse = [depth_metrics(fgs_complete(rgb, s, lam, sig), gt)["rmse"] for rgb, gt, s in samples]
        grid[f"{lam:g},{sig:g}"] = float(np.mean(rmse))
        print(f"lambda {lam:g} sigma {sig:g}: mean RMSE {np.mean(rmse):.3f}", flush=True)
    best = min(grid, key=grid.__getitem__)
    print(f"best (lambda, sigma) = ({best}) RMSE {grid[best]:.3f}")
    return {"grid_mean_rmse": grid, "best": best, "scenes": len(scenes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--ham", nargs="+", default=[dc.DEFAULT_WEIGHTS["ham"]])
    ap.add_argument("--naive", nargs="+", default=[dc.DEFAULT_WEIGHTS["naive"]])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenes", nargs="+", default=list(dc.VAL_SCENES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.tune:
        res = tune()
    else:
        res = evaluate_depth_completion(
            tuple(args.scenes),
            tuple(args.seeds),
            {"ham": args.ham, "naive": args.naive},
            threads=args.threads,
        )
        res["weights"] = {"ham": args.ham, "naive": args.naive}
        res["protocol"] = {
            "samples": dc.N_SAMPLES,
            "stride": dc.EVAL_STRIDE,
            "sampling_seeds": args.seeds,
            "fgs_params": list(FGS_PARAMS),
        }
        summ = res["summary"]
        print("| scene | method | RMSE | MAE | REL | delta_1.25 | s / image |")
        print("|---|---|---|---|---|---|---|")
        for scene in args.scenes:
            for name in ("fgs", "naive", "ham"):
                m = summ[name][scene]  # type: ignore[index]
                cells = " | ".join(
                    f"{m[k]['mean']:.{p}f} +- {m[k]['std']:.{p}f}"
                    for k, p in (("rmse", 2), ("mae", 2), ("rel", 4), ("delta1", 4))
                )
                print(f"| {scene} | {NAMES[name]} | {cells} | {m['seconds']['mean']:.2f} |")
        print("\nper training seed (RMSE / MAE, mean over sampling seeds):")
        runs = res["runs"]
        for scene in args.scenes:
            for name in ("naive", "ham"):
                rs = runs[name][scene]  # type: ignore[index]
                per = [
                    (
                        np.mean([r["rmse"] for r in rs if r["weights"] == i]),
                        np.mean([r["mae"] for r in rs if r["weights"] == i]),
                    )
                    for i in sorted({r["weights"] for r in rs})
                ]
                cells = ", ".join(f"{r:.2f} / {e:.2f}" for r, e in per)
                print(f"  {scene} {name}: {cells}")
    if args.json:
        write_json(args.json, res)


if __name__ == "__main__":
    main()
