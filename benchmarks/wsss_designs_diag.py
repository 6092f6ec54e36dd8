"""Diagnostics of WSSS segmenters on MSRC-21 val (no training), identical for every method.

    PYTHONPATH=src python benchmarks/wsss_designs_diag.py runs/wsss/wsss/weights.pt ...

For each weights file: plain; class filter 0.1; oracle class restriction (the val image's
true labels: a diagnostic of how much is lost to image classification, not a method);
SLIC superpixel voting of the upsampled class scores (n segments 200/400/800), alone and
after the class filter.
"""

import sys

import numpy as np
import torch

from affseg.data.msrc import load_ground_truth, load_image
from affseg.grouping.leaf_hierarchy import superpixel_leaves
from affseg.methods.wsss import (
    batch_feats,
    build_seg,
    build_weak,
    filter_classes,
    image_class_probs,
    load_weights,
    restrict,
    upsample_probs,
)
from affseg.train.wsss import SemanticScore
from affseg.train.wsss_cache import load_cache

torch.set_num_threads(1)
items = load_cache("runs/wsss/cache", "val")
gts = {it["id"]: load_ground_truth(None, "val", it["id"], msrc21=True) for it in items}
sps = {
    n: [superpixel_leaves(load_image(None, "val", it["id"]), n_segments=n) for it in items]
    for n in (200, 400, 800)
}


def vote(up: torch.Tensor, sp: np.ndarray) -> np.ndarray:
    c = up.shape[0]
    lab = torch.from_numpy(sp.astype(np.int64)).reshape(-1)
    s = torch.zeros(c, int(lab.max()) + 1).index_add_(1, lab, up.reshape(c, -1))
    return (s.argmax(0)[lab] + 1).reshape(sp.shape).numpy()


def score(preds: list[np.ndarray]) -> str:
    sc = SemanticScore()
    for it, p in zip(items, preds, strict=True):
        sc.update(p, gts[it["id"]])
    r = sc.compute()
    return " / ".join(f"{100 * r[k]:.1f}" for k in ("miou", "pixel_accuracy", "mean_class_accuracy"))


with torch.no_grad():
    for path in sys.argv[1:]:
        blob = load_weights(path)
        seg = build_seg(blob)
        weak = build_weak(blob) if "weak" in blob else None
        kind = "cam" if blob["method"] == "cam" else "wsss"
        probs = [seg(batch_feats([it]), tuple(it["grid"]))[0].softmax(0) for it in items]
        variants = {"plain": probs}
        if weak is not None:
            cls = [image_class_probs(weak, kind, it) for it in items]
            variants["filter 0.1"] = [filter_classes(p, c, 0.1) for p, c in zip(probs, cls)]
        variants["oracle labels"] = [
            restrict(p.flatten(1).t(), it["labels"].float()).t().reshape(p.shape)
            for p, it in zip(probs, items)
        ]
        for name, maps in variants.items():
            ups = [upsample_probs(p, it) for p, it in zip(maps, items)]
            print(path, name, score([(u.argmax(0) + 1).numpy() for u in ups]), flush=True)
            for n, spl in sps.items():
                print(path, name, f"+ slic {n}", score([vote(u, s) for u, s in zip(ups, spl)]),
                      flush=True)
