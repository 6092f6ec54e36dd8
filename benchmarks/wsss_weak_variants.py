"""Weak-network variants scored by their val pseudo labels, per training seed (a diagnostic).

    PYTHONPATH=src python benchmarks/wsss_weak_variants.py --tag NAME [affseg train wsss
        options, e.g. --weak-steps 2000 --absence-cap 0 --method cam] --seeds 0 1 2

Trains only the weak stage of ``affseg train wsss`` (same seeds, schedule and sampling)
on the cache in ``runs/wsss/cache`` for each seed, and scores the pseudo-label rule on
the MSRC-21 val images (class maps restricted to each image's known labels, feature-
attentional interpolation; :func:`affseg.evaluation.semantic.pseudo_label_score`), with the
face and body IoU; then the average of the seeds' class maps (an ensemble). The weak
state dicts go to ``runs/wsss/variants/NAME``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from affseg.evaluation.semantic import score_pseudo_maps
from affseg.methods.wsss import class_scores
from affseg.train import wsss as T
from affseg.train import wsss_stages as S
from affseg.train.wsss_cache import load_cache


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    T.add_arguments(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tag", required=True)
    args = p.parse_args()
    args.no_progress = True
    torch.set_num_threads(1)
    cache = Path(args.cache)
    items = T.load_train_items(cache, None)
    val = load_cache(cache, "val")
    kind = "cam" if args.method == "cam" else "wsss"
    mu = args.mu if kind == "wsss" and args.variant != "no-rfp" else None
    pool = S.weak_pool(items, mu, args.absence_cap)
    out = Path("runs/wsss/variants") / args.tag
    out.mkdir(parents=True, exist_ok=True)
    maps, mious = [], []
    for seed in args.seeds:
        args.seed = seed
        torch.manual_seed(seed)
        weak = S.weak_model(args.method, args.variant, args)
        t0 = time.monotonic()
        step = lambda m, b: S.weak_step(m, args.method, b)  # noqa: E731
        S.run_stage("weak", weak, step, pool, args.weak_steps, args, {}, lambda: None, print)
        torch.save(weak.state_dict(), out / f"weak_{seed}.pt")
        maps.append(class_scores(weak, kind, val))
        r = score_pseudo_maps(maps[-1], kind, val, None, "val")
        mious.append(r["miou"])
        pc = r["per_class"]
        print(f"{args.tag} seed {seed}: pseudo-label val mIoU {100 * r['miou']:.1f}  "
              f"face {100 * pc['face']:.1f}  body {100 * pc['body']:.1f}  "
              f"({time.monotonic() - t0:.0f} s)", flush=True)  # fmt: skip
    if len(maps) > 1:
        ens = [torch.stack([m[i] for m in maps]).mean(0) for i in range(len(val))]
        avg = score_pseudo_maps(ens, kind, val, None, "val")["miou"]
        print(f"{args.tag} mean of seeds {100 * np.mean(mious):.1f}; "
              f"average of their maps {100 * avg:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
