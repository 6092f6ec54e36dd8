"""Test-time RFP of a WSSS segmenter's class scores with the K_D of each val image.

    PYTHONPATH=src python benchmarks/wsss_test_time_rfp.py wsss cam

Arguments: run folders under runs/wsss (their weights.pt); prints (mIoU, global acc.,
class-average acc.) in % without pooling and with mu = 0.5 / 0.7 on MSRC-21 val.
"""

import sys

import torch

from affseg.data.msrc import load_ground_truth
from affseg.evaluation.semantic import SemanticScore
from affseg.methods.wsss import batch_feats, build_seg, load_weights, upsample_probs
from affseg.models.wsss_net import diffusion_kernel, region_mask, rfp
from affseg.train.wsss_cache import load_cache

torch.set_num_threads(1)
items = load_cache("runs/wsss/cache", "val")
gts = {it["id"]: load_ground_truth(None, "val", it["id"], msrc21=True) for it in items}
for name in sys.argv[1:]:
    seg = build_seg(load_weights(f"runs/wsss/{name}/weights.pt"))
    res = {}
    for mu in (None, 0.5, 0.7):
        sc = SemanticScore()
        for it in items:
            with torch.no_grad():
                lg = seg(batch_feats([it]), tuple(it["grid"]))[0]
                p = lg.softmax(0)
                if mu is not None:
                    m = region_mask(diffusion_kernel(it["emb"][None].float(), it["tau"]), mu)
                    c, h, w = p.shape
                    p = rfp(p.reshape(c, -1).t()[None], m)[0].t().reshape(c, h, w)
                up = upsample_probs(p, it)
            sc.update((up.argmax(0) + 1).numpy(), gts[it["id"]])
        r = sc.compute()
        res[mu] = (
            round(100 * r["miou"], 1),
            round(100 * r["pixel_accuracy"], 1),
            round(100 * r["mean_class_accuracy"], 1),
        )
    print(name, res, flush=True)
