"""affseg's fast bilateral solver vs the published Barron-Poole outputs (Middlebury depth SR).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_bilateral_solver.py [--interpolation nearest]
        [--repeat 3] [--json out.json]

For art_big and books_big at x2, x4, x8, x16 it prints the RMSE of
:func:`affseg.methods.depth_baselines.bilateral_upsample` (the paper's depth-SR set-up,
scored by :func:`affseg.methods.depth_sr.error_metrics`, exactly as ``affseg depth-sr eval``
scores ``bilateral_solver``), the RMSE of the published outputs (``barron_poole``), their
ratio, and the best-of-``--repeat`` seconds per call. OpenCV's
``ximgproc.fastBilateralSolverFilter`` is timed on the same input when the installed OpenCV
was built with Eigen (the pip wheels are not; the script says so). Data: ``$AFFSEG_DATA`` or
``../shared/data``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from affseg.methods.depth_baselines import (
    BILATERAL_PARAMS,
    bicubic_upsample,
    bilateral_upsample,
    depth_sr_confidence,
)
from affseg.methods.depth_sr import FACTORS, error_metrics, load_scene

SCENES = ("art_big", "books_big")


def _opencv_seconds(rgb: np.ndarray, lr: np.ndarray, f: int, repeat: int) -> float | None:
    """Best-of time of OpenCV's solver with the same parameters, or None if unavailable."""
    import cv2

    if not hasattr(cv2, "ximgproc"):
        return None
    p = BILATERAL_PARAMS[f]
    up = bicubic_upsample(lr, f).astype(np.float32)
    conf = depth_sr_confidence(*up.shape, f).astype(np.float32)
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            cv2.ximgproc.fastBilateralSolverFilter(
                rgb, up, conf, p["sigma_spatial"], p["sigma_luma"], p["sigma_chroma"], p["lam"]
            )
        except cv2.error:
            return None
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interpolation", default="bilinear", choices=("bilinear", "nearest"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    print(
        f"{'scene':10s} {'factor':>6s} {'ours':>8s} {'published':>9s} {'ratio':>7s} "
        f"{'s/call':>7s} {'opencv s':>8s}"
    )
    for scene in SCENES:
        sc = load_scene(scene)
        for f in FACTORS.values():
            params = dict(BILATERAL_PARAMS[f], interpolation=args.interpolation)
            best = np.inf
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                out = bilateral_upsample(sc["rgb"], sc[f"lr{f}"], f, params)  # type: ignore[arg-type]
                best = min(best, time.perf_counter() - t0)
            ours = error_metrics(out, sc["gt"])["rmse"]
            pub = error_metrics(sc[f"bp{f}"], sc["gt"])["rmse"]
            cv = _opencv_seconds(sc["rgb"], sc[f"lr{f}"], f, max(1, args.repeat))
            rows.append(
                {
                    "scene": scene,
                    "factor": f,
                    "ours": ours,
                    "published": pub,
                    "ratio": ours / pub,
                    "seconds": best,
                    "opencv_seconds": cv,
                }
            )
            cvs = "n/a" if cv is None else f"{cv:.2f}"
            print(
                f"{scene:10s} {'x' + str(f):>6s} {ours:8.4f} {pub:9.4f} {ours / pub:7.3f} "
                f"{best:7.2f} {cvs:>8s}",
                flush=True,
            )
    if rows and rows[0]["opencv_seconds"] is None:
        print("OpenCV's fastBilateralSolverFilter is unavailable here (needs OpenCV with Eigen)")
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio ours/published: {worst:.3f} (target <= 1.03)")
    if args.json:
        from affseg.data.io import write_json

        write_json(args.json, {"interpolation": args.interpolation, "rows": rows})


if __name__ == "__main__":
    main()
