"""Superpixel voting of WSSS class scores on MSRC-21 val (SLIC), identical for every method.

    PYTHONPATH=src python benchmarks/wsss_superpixel.py NAME=WEIGHTS ...

For each weights file (``wsss`` or ``cam``) it prints (mIoU, global acc., class-average
acc., %) of the full-resolution class scores (feature-attentional interpolation) as they
are and after averaging them inside SLIC superpixels (200 / 400 / 800 segments,
:func:`affseg.grouping.leaf_superpixels.superpixel_leaves`), for

- ``segmenter``: the segmenter's softmax (a post-process at inference), and
- ``pseudo``: the weak network's class maps restricted to each val image's known labels
  (the pseudo-label rule, so voting inside superpixels would be image-resolution pseudo
  labels; a diagnostic on val).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from affseg.data.msrc import load_ground_truth, load_image
from affseg.evaluation.semantic import SemanticScore
from affseg.grouping.leaf_superpixels import superpixel_leaves
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

SEGMENTS = (200, 400, 800)


def vote(up: torch.Tensor, sp: np.ndarray) -> np.ndarray:
    """Argmax (ids 1..C) of the class scores (C, H, W) summed inside each superpixel."""
    c = up.shape[0]
    lab = torch.from_numpy(sp.astype(np.int64)).reshape(-1)
    s = torch.zeros(c, int(lab.max()) + 1, dtype=up.dtype).index_add_(1, lab, up.reshape(c, -1))
    return (s.argmax(0)[lab] + 1).reshape(sp.shape).numpy()


def main() -> None:
    torch.set_num_threads(1)
    items = load_cache("runs/wsss/cache", "val")
    gts = [load_ground_truth(None, "val", it["id"], msrc21=True) for it in items]
    sps = {n: [superpixel_leaves(load_image(None, "val", it["id"]), n_segments=n)
               for it in items] for n in SEGMENTS}  # fmt: skip

    def score(preds: list[np.ndarray]) -> str:
        sc = SemanticScore()
        for p, gt in zip(preds, gts, strict=True):
            sc.update(p, gt)
        r = sc.compute()
        keys = ("miou", "pixel_accuracy", "mean_class_accuracy")
        return " / ".join(f"{100 * r[k]:.1f}" for k in keys)

    with torch.no_grad():
        for spec in sys.argv[1:]:
            name, path = spec.split("=", 1)
            blob = load_weights(path)
            seg, weak = build_seg(blob), build_weak(blob)
            kind = "cam" if blob["method"] == "cam" else "wsss"
            maps = {"segmenter": [], "pseudo": []}
            for it in items:
                grid = tuple(int(v) for v in it["grid"])
                maps["segmenter"].append(seg(batch_feats([it]), grid)[0].softmax(0))
                _, w = weak_outputs(weak, kind, it)
                known = it["labels"].float() * 0.98 + 0.01  # the image's labels: kept
                maps["pseudo"].append(fuse_scores(w + 1e-6, None, known, 0.5, 0.0))
            for what, grids in maps.items():
                ups = [upsample_probs(p, it) for p, it in zip(grids, items, strict=True)]
                print(name, what, score([(u.argmax(0) + 1).numpy() for u in ups]), flush=True)
                for n, spl in sps.items():
                    voted = [vote(u, s) for u, s in zip(ups, spl, strict=True)]
                    print(name, what, f"+ slic {n}", score(voted), flush=True)


if __name__ == "__main__":
    main()
