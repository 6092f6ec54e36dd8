"""Task B: MSRC-21 segmentation refinement by propagation (coarse vs naive vs HAM).

Usage::

    nice -n 10 python benchmarks/seg_refine.py [--threads 1] [--cache feats.pt] \
        [--coarse-cache coarse.pt] [--seeds 0 1] [--kernels 3 5 7] [--head] [--json out.json]

``--cache`` stores the frozen-backbone features on the first run and reuses them after;
``--coarse-cache`` likewise the coarse probabilities (cross-fitted train + val), so each
refiner configuration / seed costs only its own training.

1. Coarse model: the frozen shared backbone (EfficientNet-Lite0, features at strides
   4/8/16) + a light head (1x1 projections, one 3x3 conv, 1x1 classifier at stride 4),
   trained with cross-entropy on MSRC ``train`` (MSRC-21 classes, void ignored).
   Coarse scores for the *train* images come from 2-fold cross-fitting (heads trained on
   the other half) so that the refiner sees realistic, not memorised, coarse errors.
2. Refiners: :class:`affseg.models.ham.SegRefinePropagation` with ``euclidean`` (naive)
   and ``hyperbolic`` (HAM) affinities, identical seed / data / schedule, trained on the
   train images' cross-fitted coarse probabilities (random crops, flips) by the library's
   loop, the one of ``affseg train refine`` (:func:`affseg.train.refine.train_refiner`).
3. mIoU and pixel accuracy (:class:`affseg.metrics.miou.MeanIoU`) on the whole ``val``
   split for coarse, coarse + naive, coarse + HAM. Nothing is tuned on val.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from affseg.backbones.efficientnet_lite import load_backbone
from affseg.data.io import atomic_write
from affseg.data.msrc import MSRC
from affseg.methods.seg_refine import refiner_config
from affseg.metrics.miou import MeanIoU
from affseg.models.ham import SegRefinePropagation
from affseg.train.refine import IGNORE
from affseg.train.refine import train_refiner as library_train_refiner

C = 21


def _prep(image: np.ndarray, classes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (1, 3, Hp, Wp) padded to a multiple of 16 and target (1, Hp, Wp) (255 void)."""
    h, w = classes.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
    x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    t = torch.from_numpy(classes.astype(np.int64)) - 1
    t[t < 0] = 255
    t = F.pad(t, (0, pw, 0, ph), value=255)
    return x, t[None]


class Head(nn.Module):
    """Light segmentation head on the stride 4/8/16 features -> (B, C, H/4, W/4) logits."""

    def __init__(self, chans: tuple[int, int, int] = (24, 40, 112), width: int = 64) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, width, 1) for c in chans)
        self.mix = nn.Sequential(
            nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, C, 1)
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        z = sum(
            F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
            for p, f in zip(self.proj, feats, strict=True)
        )
        return self.mix(z)


def train_head(data: list[dict], epochs: int, seed: int) -> Head:
    torch.manual_seed(seed)
    head = Head()
    opt = torch.optim.Adam(head.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * len(data)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for i in rng.permutation(len(data)):
            d = data[i]
            logits = F.interpolate(
                head(d["feats"]), size=d["t"].shape[-2:], mode="bilinear", align_corners=False
            )
            loss = F.cross_entropy(logits, d["t"], ignore_index=255)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def coarse_probs(head: Head, d: dict) -> torch.Tensor:
    with torch.no_grad():
        logits = F.interpolate(
            head(d["feats"]), size=d["t"].shape[-2:], mode="bilinear", align_corners=False
        )
    return logits.softmax(1)


def cache_features(limit: int | None) -> dict[str, list[dict]]:
    """Frozen-backbone features (strides 4/8/16), padded images and targets per split."""
    backbone = load_backbone()
    splits: dict[str, list[dict]] = {}
    for split in ("train", "val"):
        items = []
        for image_id, image, classes in MSRC(split=split, msrc21=True, limit=limit):
            x, t = _prep(image, classes)
            with torch.no_grad():
                feats = backbone(x)[1:]
            items.append({"id": image_id, "x": x, "t": t, "feats": feats, "hw": classes.shape})
        splits[split] = items
    return splits


def coarse_stage(args: argparse.Namespace, train: list[dict], val: list[dict]) -> None:
    """Set ``d["p"]``: cross-fitted coarse probabilities on train, full-train head on val."""
    if args.coarse_cache and Path(args.coarse_cache).is_file():
        probs = torch.load(args.coarse_cache, weights_only=False)
        for d in train + val:
            d["p"] = probs[d["id"]]
        return
    folds = [train[0::2], train[1::2]]
    for k in (0, 1):
        head = train_head(folds[1 - k], args.head_epochs, args.seed + k)
        for d in folds[k]:
            d["p"] = coarse_probs(head, d).half()
    head = train_head(train, args.head_epochs, args.seed)
    for d in val:
        d["p"] = coarse_probs(head, d).half()
    if args.coarse_cache:
        probs = {d["id"]: d["p"] for d in train + val}
        atomic_write(args.coarse_cache, lambda p: torch.save(probs, p))


def train_refiner(
    args: argparse.Namespace, geometry: str, seed: int, train: list[dict]
) -> tuple[SegRefinePropagation, float]:
    """Train one refiner on random crops of the cross-fitted train probabilities, with the
    library's loop (:func:`affseg.train.refine.train_refiner`; void targets -> ignored)."""
    config = refiner_config(
        C,
        geometry,
        k=args.kernels[0],
        iterations=args.iterations,
        width=args.width,
        embed_dim=args.embed_dim,
        kernels=tuple(args.kernels),
        head=args.head,
        c=args.c,
        c_param=args.c_param,
        reimpose=args.reimpose,
    )
    data = [{"x": d["x"], "p": d["p"], "t": d["t"].masked_fill(d["t"] == 255, IGNORE)}
            for d in train]  # fmt: skip
    ns = argparse.Namespace(seed=seed, lr=args.lr, epochs=args.epochs, crop=args.crop,
                            c_lr_mult=args.c_lr_mult)  # fmt: skip
    return library_train_refiner(data, ns, config)


def ball_usage(model: SegRefinePropagation, d: dict) -> float:
    """Mean ``sqrt(c) |x|`` of the embedded pixels (0: Euclidean-like, 1: at the boundary)."""
    with torch.no_grad():
        emb, _ = model.guide(torch.cat([d["x"], d["p"].float()], 1))
        sc = model.affinity.curvature.sqrt()
        return float(torch.tanh(sc * emb.norm(dim=1)).mean())


def summarise(runs: list[dict]) -> dict:
    """Mean, std, min, max over seeds per model, and paired HAM - naive differences."""
    out: dict[str, dict] = {}
    for name in ("euclidean", "hyperbolic"):
        for metric in ("miou", "pixel_accuracy"):
            v = np.array([r[name][metric] for r in runs])
            out.setdefault(name, {})[metric] = {
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                "min": float(v.min()),
                "max": float(v.max()),
            }
    diff = np.array([r["hyperbolic"]["miou"] - r["euclidean"]["miou"] for r in runs])
    out["hyperbolic_minus_euclidean_miou"] = [float(x) for x in diff]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--head-epochs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=2, help="refiner epochs over train")
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--crop", type=int, default=128, help="refiner training crop (px)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=16, help="guidance U-Net width")
    ap.add_argument("--embed-dim", type=int, default=8)
    ap.add_argument(
        "--kernels",
        type=int,
        nargs="+",
        default=[3],
        help="propagation kernel sizes (several: mixed by confidences)",
    )
    ap.add_argument(
        "--head",
        action="store_true",
        help="UniDC-style ranked-neighbour (Mobius) linear affinity head",
    )
    ap.add_argument("--c", type=float, default=0.1, help="initial curvature")
    ap.add_argument("--c-param", choices=("softplus", "log"), default="softplus")
    ap.add_argument(
        "--c-lr-mult",
        type=float,
        default=1.0,
        help="learning-rate factor of the curvature parameter",
    )
    ap.add_argument(
        "--reimpose",
        choices=("learned", "confident"),
        default="learned",
        help="re-imposition of the coarse scores (learned: the configuration measured here)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="seed of the coarse heads")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="refiner seeds (default: --seed)"
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--limit", type=int, default=None, help="first N images per split")
    ap.add_argument(
        "--cache",
        default=None,
        help="file to store / reuse the frozen-backbone features (torch.save)",
    )
    ap.add_argument(
        "--coarse-cache",
        default=None,
        help="file to store / reuse the coarse probabilities (torch.save)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.cache and Path(args.cache).is_file():
        splits = torch.load(args.cache, weights_only=False)
    else:
        splits = cache_features(args.limit)
        if args.cache:
            atomic_write(args.cache, lambda p: torch.save(splits, p))
    print(
        f"features cached: {len(splits['train'])} train, {len(splits['val'])} val "
        f"({time.time() - t0:.0f}s)",
        flush=True,
    )
    train, val = splits["train"], splits["val"]
    coarse_stage(args, train, val)
    print(f"coarse probabilities ready ({time.time() - t0:.0f}s)", flush=True)

    coarse = MeanIoU(C)
    for d in val:
        h, w = d["hw"]
        coarse.update(d["p"][0].float().argmax(0)[:h, :w].numpy(), d["t"][0, :h, :w].numpy())
    rc = coarse.compute()
    res: dict = {"coarse": {"miou": rc["miou"], "pixel_accuracy": rc["pixel_accuracy"]}, "runs": []}
    print(
        f"    coarse: mIoU {100 * rc['miou']:.2f}  pixel acc {100 * rc['pixel_accuracy']:.2f}",
        flush=True,
    )
    for seed in args.seeds or [args.seed]:
        run: dict = {"seed": seed}
        for geometry in ("euclidean", "hyperbolic"):
            t1 = time.time()
            model, loss = train_refiner(args, geometry, seed, train)
            train_s = time.time() - t1
            meter = MeanIoU(C)
            usage = []
            for d in val:
                h, w = d["hw"]
                with torch.no_grad():
                    pred = model(d["x"], d["p"].float())
                meter.update(pred[0].argmax(0)[:h, :w].numpy(), d["t"][0, :h, :w].numpy())
                usage.append(ball_usage(model, d))
            r = meter.compute()
            run[geometry] = {
                "miou": r["miou"],
                "pixel_accuracy": r["pixel_accuracy"],
                "final_train_nll": loss,
                "train_s": train_s,
                "curvature": float(model.affinity.curvature.detach()),
                "ball_usage": float(np.mean(usage)),
            }
            print(
                f"seed {seed} {geometry:>10s}: mIoU {100 * r['miou']:.2f}  pixel acc "
                f"{100 * r['pixel_accuracy']:.2f}  loss {loss:.4f}  "
                f"c {run[geometry]['curvature']:.4f}  sqrt(c)|x| "
                f"{run[geometry]['ball_usage']:.3f}  train {train_s:.0f}s "
                f"({time.time() - t0:.0f}s)",
                flush=True,
            )
        res["runs"].append(run)
        res["summary"] = summarise(res["runs"])
        if args.json:
            text = json.dumps({"args": vars(args), "results": res}, indent=1)
            atomic_write(args.json, lambda p, text=text: Path(p).write_text(text))
    print(json.dumps(res["summary"], indent=1))
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
