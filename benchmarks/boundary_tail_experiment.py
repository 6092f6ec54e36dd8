"""Experiment: the boundary head with a trainable copy of the backbone's stride-16 stages.

The shipped boundary head reads the frozen EfficientNet-Lite0 pyramid. Here the blocks
that turn ``f8`` into ``f16`` (blocks 5-10, stages 4-5) are copied, made trainable (batch
norm kept frozen) and trained together with a fresh head on the cached BSDS500 train
features (``affseg train boundary``'s cache: ``f8`` is in it, so a step recomputes only
the stride-16 stages). Scored as an edge map (non-maximum suppressed) on BSDS500 val with
the exact BSR boundary benchmark, as ``bench_boundary_head.py`` scores the shipped head.

Usage::

    python benchmarks/boundary_tail_experiment.py --cache runs/bsds_cache --minutes 15
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench_boundary_head import nms

#: Blocks of EfficientNet-Lite0 between the f8 tap (block 4) and the f16 tap (block 10).
TAIL_BLOCKS = range(5, 11)


class TailHead(nn.Module):
    """A trainable copy of the stride-16 blocks feeding a boundary head."""

    def __init__(self, backbone: nn.Module, width: int) -> None:
        super().__init__()
        from affseg.models.boundary_head import BoundaryHead

        self.tail = nn.ModuleList(copy.deepcopy(backbone.net._blocks[i]) for i in TAIL_BLOCKS)
        for p in self.tail.parameters():
            p.requires_grad_(True)
        self.head = BoundaryHead(width=width)

    def train(self, mode: bool = True) -> TailHead:
        super().train(mode)
        for m in self.tail.modules():  # frozen batch-norm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        x = pyramid[2].float()
        for block in self.tail:
            x = block(x)
        return self.head([pyramid[0], pyramid[1], pyramid[2], x])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="feature cache of BSDS500 train")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tail-lr", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, default=None, help="val images scored")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from affseg.backbones import load_backbone
    from affseg.backbones.efficientnet_lite import snapped_size
    from affseg.data import bsds
    from affseg.metrics.boundary import BoundaryBenchmark, boundary_summary
    from affseg.models.boundary_head import boundary_loss, boundary_probability
    from affseg.train.boundary import _crop_batch
    from affseg.train.ndd_cache import FeatureCache

    torch.manual_seed(0)
    torch.set_num_threads(2)
    backbone = load_backbone().eval()
    cache = FeatureCache(args.cache)
    keys = sorted(p.stem for p in Path(args.cache).glob("train_*.pt"))
    model = TailHead(backbone, args.width)
    model.train()
    optim = torch.optim.Adam(
        [
            {"params": model.head.parameters(), "lr": args.lr, "base": args.lr},
            {"params": model.tail.parameters(), "lr": args.tail_lr, "base": args.tail_lr},
        ]
    )
    budget = 60.0 * args.minutes
    start, step, losses = time.monotonic(), 0, []
    while (elapsed := time.monotonic() - start) < budget:
        for g in optim.param_groups:
            g["lr"] = g["base"] * max(0.01, (1.0 - elapsed / budget) ** 0.9)
        rng = np.random.default_rng([0, step])
        pyr, tgt, weight = _crop_batch(cache, keys, rng, 4, 256)
        loss = boundary_loss(model(pyr), tgt, 4.0, weight)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 250 == 0:
            print(
                f"step {step} loss {np.mean(losses[-250:]):.4f} {elapsed / 60:.1f} min", flush=True
            )
    model.eval()
    bench = BoundaryBenchmark()
    ids = bsds.list_split(None, "val")[: args.limit]
    for i in ids:
        image = bsds.load_image(None, "val", i)
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
        hs, ws = snapped_size(h, w)
        x = torch.nn.functional.interpolate(
            x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
        )
        with torch.no_grad():
            prob = boundary_probability(model, list(backbone(x)), (h, w))  # type: ignore[arg-type]
        bench.update(nms(prob), bsds.load_ground_truth(bsds.gt_path(None, "val", i)), i)
    res = boundary_summary(bench.compute())
    res.update(steps=step, minutes=args.minutes, final_loss=float(np.mean(losses[-250:])))
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, list | dict)}))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
