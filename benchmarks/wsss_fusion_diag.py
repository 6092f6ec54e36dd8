"""Inference with the weak network's own class maps, alone or fused with the segmenter.

    PYTHONPATH=src python benchmarks/wsss_fusion_diag.py runs/wsss/wsss/weights.pt ...
"""

import sys

import torch

from affseg.data.msrc import load_ground_truth
from affseg.methods.wsss import (
    batch_feats,
    build_seg,
    build_weak,
    class_scores,
    filter_classes,
    image_class_probs,
    load_weights,
    upsample_probs,
)
from affseg.train.wsss import SemanticScore
from affseg.train.wsss_cache import load_cache

torch.set_num_threads(1)
items = load_cache("runs/wsss/cache", "val")
gts = {it["id"]: load_ground_truth(None, "val", it["id"], msrc21=True) for it in items}


def score(maps: list[torch.Tensor]) -> str:
    sc = SemanticScore()
    for it, p in zip(items, maps, strict=True):
        sc.update((upsample_probs(p, it).argmax(0) + 1).numpy(), gts[it["id"]])
    r = sc.compute()
    return " / ".join(f"{100 * r[k]:.1f}" for k in ("miou", "pixel_accuracy", "mean_class_accuracy"))


def norm(p: torch.Tensor) -> torch.Tensor:
    return p / p.sum(0, keepdim=True).clamp_min(1e-12)


with torch.no_grad():
    for path in sys.argv[1:]:
        blob = load_weights(path)
        seg, weak = build_seg(blob), build_weak(blob)
        kind = "cam" if blob["method"] == "cam" else "wsss"
        g = [tuple(int(v) for v in it["grid"]) for it in items]
        probs = [seg(batch_feats([it]), gg)[0].softmax(0) for it, gg in zip(items, g)]
        cls = [image_class_probs(weak, kind, it) for it in items]
        wk = [(s + 1e-6).t().reshape(-1, *gg) for s, gg in zip(class_scores(weak, kind, items), g)]
        orc = [it["labels"].float() * 0.98 + 0.01 for it in items]
        for thr in (0.1, 0.3, 0.5):
            print(path, f"weak, filter {thr}", score([filter_classes(w, c, thr) for w, c in zip(wk, cls)]), flush=True)
        print(path, "weak, oracle", score([filter_classes(w, c, 0.5) for w, c in zip(wk, orc)]), flush=True)
        for a in (0.5, 1.0):
            fa = [filter_classes(norm(p * norm(w) ** a), c, 0.1) for p, w, c in zip(probs, wk, cls)]
            print(path, f"seg*weak^{a}, filter 0.1", score(fa), flush=True)
        fm = [filter_classes(0.5 * p + 0.5 * norm(filter_classes(w, c, 0.1)), c, 0.1) for p, w, c in zip(probs, wk, cls)]
        print(path, "mean(seg, weak), filter 0.1", score(fm), flush=True)
        fo = [filter_classes(norm(p * norm(w)), c, 0.5) for p, w, c in zip(probs, wk, orc)]
        print(path, "seg*weak, oracle", score(fo), flush=True)
