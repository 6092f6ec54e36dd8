"""Measure the benchmark's degradation: gain, offset and noise of the low-res inputs.

Usage::

    python benchmarks/depth_sr_degradation.py --json benchmarks/results/depth_sr_degradation.json

For art, books and dolls at x2..x16 the provided noisy input is regressed on the
downsampled ground truth (area, antialiased bicubic, and two decimations):
``input ~ gain * down(gt) + offset``; the residual std (and a robust MAD estimate) is the
noise level. Area and antialiased bicubic downsampling fit equally well (gain 1.00, residual
std within 2 % of each other; decimation fits worse), so training inputs are synthesised by
area downsampling with the measured noise range (:data:`affseg.train.depth_sr.NOISE_STD`).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from affseg.data import middlebury
from affseg.data.io import write_json

SCENES = ("art_big", "books_big", "dolls_big")


def downsamplings(gt: np.ndarray, f: int) -> dict[str, np.ndarray]:
    """Candidate downsamplings of (H, W) to (H / f, W / f)."""
    t = torch.from_numpy(gt)[None, None]
    return {
        "area": F.avg_pool2d(t, f)[0, 0].numpy(),
        "bicubic_antialias": F.interpolate(
            t, scale_factor=1 / f, mode="bicubic", antialias=True, align_corners=False
        )[0, 0].numpy(),
        "decimate_corner": gt[::f, ::f],
        "decimate_centre": gt[f // 2 :: f, f // 2 :: f],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for scene in SCENES:
        gt = middlebury.load_gt(args.data, scene)
        out[scene] = {}
        for f in middlebury.SCALES:
            lr = middlebury.load_lowres(args.data, scene, f)
            rows = {}
            for name, v in downsamplings(gt, f).items():
                a = np.stack([v.ravel(), np.ones(v.size)], 1)
                (gain, offset), *_ = np.linalg.lstsq(a, lr.ravel(), rcond=None)
                r = lr.ravel() - a @ np.array([gain, offset])
                mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
                rows[name] = {
                    "gain": round(float(gain), 4),
                    "offset": round(float(offset), 3),
                    "noise_std": round(float(r.std()), 3),
                    "noise_mad": round(mad, 3),
                }
            out[scene][f"x{f}"] = {"lowres_shape": list(lr.shape), **rows}
            cells = "  ".join(
                f"{k}: g {v['gain']:.3f} std {v['noise_std']:.2f}" for k, v in rows.items()
            )
            print(f"{scene} x{f} {lr.shape}: {cells}")
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
