"""Post-processing of WSSS segmenter scores on MSRC-21 val, identical for every method.

    PYTHONPATH=src python benchmarks/wsss_postprocess.py wsss cam

Arguments: run folders under runs/wsss (their weights.pt). For each run it prints
(mIoU, global acc., class-average acc.) in % on the 57 val images for:

- ``plain``: the segmenter (feature-attentional interpolation to full resolution);
- ``rw b<beta> t<t>``: a random walk of the grid class scores with the K_D of the image,
  P <- (D^-1 K_D^beta)^t P (AffinityNet-style transition matrix, D its row sums);
- ``filter <T>``: classes whose image-level probability from the run's weak network
  (sigmoid of P_cl) is <= T dropped before the argmax (the top class kept);
- ``filter 0.1 + rw b8 t1``;
- ``pseudo ...``: the same random walk on the weak network's val class maps restricted to
  each image's labels (the pseudo-label rule; a diagnostic, as in BENCHMARKS.md).
"""

import sys

import torch

from affseg.data.msrc import load_ground_truth
from affseg.evaluation.semantic import SemanticScore
from affseg.methods.wsss import (
    batch_feats,
    build_seg,
    build_weak,
    class_scores,
    filter_classes,
    image_class_probs,
    load_weights,
    restrict,
    upsample_probs,
)
from affseg.models.wsss_net import diffusion_kernel
from affseg.train.wsss_cache import load_cache

torch.set_num_threads(1)
items = load_cache("runs/wsss/cache", "val")
gts = {it["id"]: load_ground_truth(None, "val", it["id"], msrc21=True) for it in items}
kernels = [diffusion_kernel(it["emb"][None].float(), it["tau"])[0] for it in items]


def walk(p: torch.Tensor, k: torch.Tensor, beta: float, t: int) -> torch.Tensor:
    c, h, w = p.shape
    a = k**beta
    m = a / a.sum(1, keepdim=True)
    q = p.reshape(c, -1).t()
    for _ in range(t):
        q = m @ q
    return q.t().reshape(c, h, w)


def score(maps: list[torch.Tensor]) -> tuple[float, float, float]:
    sc = SemanticScore()
    for it, p in zip(items, maps, strict=True):
        sc.update((upsample_probs(p, it).argmax(0) + 1).numpy(), gts[it["id"]])
    r = sc.compute()
    return tuple(round(100 * r[k], 1) for k in ("miou", "pixel_accuracy", "mean_class_accuracy"))


with torch.no_grad():
    for name in sys.argv[1:]:
        blob = load_weights(f"runs/wsss/{name}/weights.pt")
        seg, weak = build_seg(blob), build_weak(blob)
        kind = "cam" if blob["method"] == "cam" else "wsss"
        probs = [seg(batch_feats([it]), tuple(it["grid"]))[0].softmax(0) for it in items]
        cls = [image_class_probs(weak, kind, it) for it in items]
        grids = [tuple(int(v) for v in it["grid"]) for it in items]
        pseudo = [
            (restrict(s + 1e-6, it["labels"].float()) if kind == "cam"
             else restrict(s, it["labels"].float())).t().reshape(-1, *g)
            for it, s, g in zip(items, class_scores(weak, kind, items), grids, strict=True)
        ]  # fmt: skip
        print(name, "plain", score(probs), flush=True)
        for beta in (1, 2, 4, 8):
            for t in (1, 2):
                rw = [walk(p, k, beta, t) for p, k in zip(probs, kernels, strict=True)]
                print(name, f"rw b{beta} t{t}", score(rw), flush=True)
        for thr in (0.05, 0.1, 0.2, 0.3, 0.5):
            f = [filter_classes(p, c, thr) for p, c in zip(probs, cls, strict=True)]
            print(name, f"filter {thr}", score(f), flush=True)
        f = [walk(filter_classes(p, c, 0.1), k, 8, 1)
             for p, c, k in zip(probs, cls, kernels, strict=True)]  # fmt: skip
        print(name, "filter 0.1 + rw b8 t1", score(f), flush=True)
        print(name, "pseudo plain", score(pseudo), flush=True)
        for beta, t in ((2, 1), (4, 2), (8, 1)):
            rw = [walk(p, k, beta, t) for p, k in zip(pseudo, kernels, strict=True)]
            print(name, f"pseudo rw b{beta} t{t}", score(rw), flush=True)
