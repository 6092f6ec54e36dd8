"""Inference rule of the weakly supervised methods on MSRC-21 val: class filter + fusion.

    PYTHONPATH=src python benchmarks/wsss_fusion.py NAME=WEIGHTS ... [--json OUT]

For each weights file of ``affseg train wsss`` (``wsss`` or ``cam``) it scores the 57 val
images (mIoU, global acc., class-average acc., %) for every pair of

- class filter T (classes the weak network's image classifier gives <= T dropped; none,
  0.05, 0.1, 0.2) and
- fusion weight a: q = (1 - a) f(segmenter softmax) + a f(weak class maps)
  (:func:`affseg.methods.wsss.fuse_scores`; a = 0 is the segmenter alone, a = 1 the weak
  network's own maps: P_sg for ``wsss``, normalised CAMs for ``cam``),

the identical rule for every method, and prints one line per pair (``--json``: the
scores ``[mIoU, global, class-avg]`` and the per-class IoU of every case). The image labels of
val are never used; ``oracle`` lines (a diagnostic, not a method) restrict to them.
"""

from __future__ import annotations

import argparse
import json

import torch

from affseg.data.msrc import load_ground_truth
from affseg.evaluation.semantic import SemanticScore
from affseg.methods.wsss import (
    batch_feats,
    build_seg,
    build_weak,
    fuse_scores,
    load_weights,
    upsample_probs,
    weak_outputs,
)
from affseg.train.wsss_cache import load_cache

FUSE = (0.0, 0.25, 0.5, 0.75, 1.0)
FILTERS = (None, 0.05, 0.1, 0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=path/to/weights.pt")
    ap.add_argument("--cache", default="runs/wsss/cache")
    ap.add_argument("--json", default=None)
    ap.add_argument("--fuse", type=float, nargs="+", default=list(FUSE), help="weights a")
    ap.add_argument(
        "--filters", type=float, nargs="+", default=None, help="thresholds T (0 = none)"
    )
    ap.add_argument("--no-oracle", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    items = load_cache(args.cache, "val")
    gts = [load_ground_truth(None, "val", it["id"], msrc21=True) for it in items]
    results: dict[str, dict[str, list[float]]] = {}
    per_class: dict[str, dict[str, dict[str, float | None]]] = {}
    with torch.no_grad():
        for spec in args.runs:
            name, path = spec.split("=", 1)
            blob = load_weights(path)
            seg, weak = build_seg(blob), build_weak(blob)
            kind = "cam" if blob["method"] == "cam" else "wsss"
            grids = [tuple(int(v) for v in it["grid"]) for it in items]
            probs = [
                seg(batch_feats([it]), g)[0].softmax(0) for it, g in zip(items, grids, strict=True)
            ]
            outs = [weak_outputs(weak, kind, it) for it in items]
            oracle = [it["labels"].float() * 0.98 + 0.01 for it in items]
            res: dict[str, list[float]] = {}
            per: dict[str, dict[str, float | None]] = {}
            filters = FILTERS if args.filters is None else [t or None for t in args.filters]
            cases = [(t, a, False) for t in filters for a in args.fuse]
            cases += [] if args.no_oracle else [(0.5, a, True) for a in args.fuse]
            for thr, a, orc in cases:
                sc = SemanticScore()
                for it, p, (cls, maps), o, gt in zip(items, probs, outs, oracle, gts, strict=True):
                    q = fuse_scores(p, maps, o if orc else cls, thr, a)
                    sc.update((upsample_probs(q, it).argmax(0) + 1).numpy(), gt)
                r = sc.compute()
                key = f"{'oracle' if orc else f'filter {thr}'} fuse {a}"
                res[key] = [round(100 * r[k], 1)
                            for k in ("miou", "pixel_accuracy", "mean_class_accuracy")]  # fmt: skip
                per[key] = {c: None if v is None else round(100 * v, 1)
                            for c, v in r["per_class"].items()}  # fmt: skip
                print(name, key, " / ".join(f"{v:.1f}" for v in res[key]), flush=True)
            results[name] = res
            per_class[name] = per
    if args.json:
        from affseg.data.io import write_json

        write_json(args.json, {"scores": results, "per_class": per_class})
    else:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
