"""Eq. 7 kernel cosine of a trained spec-diff-net on BSDS500 val, and a (T, t) ablation.

For each val image (full image at scale 1, backbone features from the training cache or
computed on the fly), the grid K_D = exp(-tau D_t) is compared with every human
annotation reduced to the grid (cosine of Eq. 7, averaged over annotators, then images).
The ablation re-runs the *same* trained weights with other numbers of outer QR iterations T
and diffusion times t (the paper's Table 1 retrains for each setting; this is the cheaper
inference-time version).

Usage::

    python benchmarks/bench_ndd_kernel_cosine.py --weights src/affseg/weights/spec_diff_net.pt \
        --limit 100 --ablation --json benchmarks/results/ndd_kernel_cosine.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from affseg.backbones import load_backbone
from affseg.models.spec_diff_net import load_pretrained
from affseg.train.ndd import val_cosine
from affseg.train.ndd_cache import FeatureCache, bsds_items


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--cache", default="runs/ndd/cache")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone()
    model = load_pretrained(args.weights, backbone=backbone)
    cache = FeatureCache(args.cache)
    keys = cache.build(
        backbone,
        bsds_items(args.data, "val")[: args.limit],
        "val",
        (1.0,),
        (False,),
        progress=False,
    )
    t_learned = float(model.diffusion.t.detach())
    res = {
        "weights": str(args.weights or "shipped"),
        "images": len(keys),
        "learned": {
            "T": model.diffusion.n_outer,
            "t": t_learned,
            "tau": float(model.diffusion.tau.detach()),
            "mu": float(model.diffusion.mu.detach()),
        },
    }
    t0 = time.perf_counter()
    res["cosine"] = val_cosine(model, cache, keys)
    res["seconds_per_image"] = (time.perf_counter() - t0) / len(keys)
    print(f"val kernel cosine ({len(keys)} images): {res['cosine']:.4f}")
    if args.ablation:
        rows = []
        for n_outer in (1, 2, 3):
            for t in (5.0, 10.0, t_learned):
                model.diffusion.n_outer = n_outer
                with torch.no_grad():
                    model.diffusion.log_t.fill_(float(np.log(t)))
                c = val_cosine(model, cache, keys)
                rows.append({"T": n_outer, "t": round(t, 2), "cosine": c})
                print(f"T={n_outer} t={t:6.2f} cosine={c:.4f}", flush=True)
        res["ablation"] = rows
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
