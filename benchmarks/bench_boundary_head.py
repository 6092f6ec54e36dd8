"""The boundary head alone as an edge detector: BSR boundary F of its map on BSDS500.

Scores the learned boundary probability (``affseg.models.boundary_head``) of each image
as a soft boundary map, after non-maximum suppression along the map's own gradient
orientation (OpenCV's ``edgesNms``, as HED / RCF / PiDiNet evaluations do), with the exact
BSR boundary benchmark (``affseg.metrics.boundary``). This is the ceiling the ``ndd`` UCM
inherits from its learned boundary term: the hierarchy turns this map into closed
contours.

Usage::

    python benchmarks/bench_boundary_head.py --split val [--head PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def nms(prob: np.ndarray) -> np.ndarray:
    """Thin a soft boundary map along its orientation (as Dollar's ``edgesNms``, r = 1)."""
    p = np.ascontiguousarray(prob, dtype=np.float32)
    smooth = cv2.GaussianBlur(p, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    gxx = cv2.Sobel(gx, cv2.CV_32F, 1, 0, ksize=3)
    gyy = cv2.Sobel(gy, cv2.CV_32F, 0, 1, ksize=3)
    gxy = cv2.Sobel(gx, cv2.CV_32F, 0, 1, ksize=3)
    orient = np.mod(np.arctan(gyy * np.sign(-gxy) / (gxx + 1e-5)), np.pi).astype(np.float32)
    h, w = p.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    keep = np.ones(p.shape, bool)
    for sign in (1.0, -1.0):
        mx = xx + sign * np.cos(orient)
        my = yy + sign * np.sin(orient)
        nb = cv2.remap(p, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep &= p * 1.01 >= nb
    return np.where(keep, p, 0.0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--head", default=None, help="boundary-head weights (default shipped)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-nms", action="store_true")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="average the map over scales"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from affseg.backbones import load_backbone
    from affseg.backbones.efficientnet_lite import snapped_size
    from affseg.data import bsds
    from affseg.metrics.boundary import BoundaryBenchmark, boundary_summary
    from affseg.models.boundary_head import boundary_probability, load_boundary_head

    torch.set_num_threads(2)
    backbone = load_backbone().eval()
    head = load_boundary_head(args.head)
    ids = bsds.list_split(None, args.split)[: args.limit]
    bench = BoundaryBenchmark()
    t0 = time.perf_counter()
    for i in ids:
        image = bsds.load_image(None, args.split, i)
        h, w = image.shape[:2]
        x0 = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
        probs = []
        for scale in args.scales:
            hs, ws = snapped_size(h, w, scale)
            x = torch.nn.functional.interpolate(
                x0, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
            )
            with torch.no_grad():
                probs.append(boundary_probability(head, list(backbone(x)), (h, w)))
        prob = np.mean(probs, axis=0)
        pb = prob if args.no_nms else nms(prob)
        gts = bsds.load_ground_truth(bsds.gt_path(None, args.split, i))
        bench.update(pb, gts, i)
    res = boundary_summary(bench.compute())
    res["seconds"] = time.perf_counter() - t0
    res["head"] = args.head or "shipped"
    res["nms"] = not args.no_nms
    res["scales"] = args.scales
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, list | dict)}))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
