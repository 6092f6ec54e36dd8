"""Train the deep spectral clustering embedding head with the exact spectral loss.

The EfficientNet-Lite0 backbone is frozen, so its features are computed once per image,
scale and flip and cached on disk (:class:`affseg.train.ndd_cache.FeatureCache`, the cache
format spec-diff-net uses too; a cache folder can be shared). Each step draws images from
the BSDS500 ``train`` split (200 images x scales x flips), one random human annotation per
image, predicts unit embeddings at stride 4, upsamples them bilinearly to stride 2 (where
the cache holds the annotations), renormalises, and minimises the exact spectral loss
``||F F^T - A||_F^2 / N^2`` (:func:`affseg.affinity.spectral.spectral_loss`).
Adam with a cosine learning-rate decay (over the steps, or over ``--max-minutes`` when
that ends first); the last weights are saved (the ``val`` split is
only monitored, never used to pick a checkpoint).

Example::

    nice -n 10 affseg train spectral --steps 3000 --out src/affseg/weights/spectral_head.pt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from affseg.affinity.spectral import spectral_loss
from affseg.backbones.efficientnet_lite import load_backbone
from affseg.errors import AffsegError, InputError
from affseg.models.spectral_net import (
    DEFAULT_WEIGHTS,
    SpectralHead,
    save_head,
    upsample_embeddings,
)
from affseg.runtime import torch_threads


def default_cache_dir() -> Path:
    """``$AFFSEG_CACHE/features`` or ``~/.cache/affseg/features``."""
    base = os.environ.get("AFFSEG_CACHE") or os.path.join(Path.home(), ".cache", "affseg")
    return Path(base) / "features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``affseg train spectral``."""
    parser.add_argument("--data", default=None, help="data root holding BSDS500/")
    parser.add_argument(
        "--cache",
        default=None,
        help="feature cache folder (default $AFFSEG_CACHE/features or ~/.cache/affseg/features)",
    )
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="weights file to write")
    parser.add_argument("--log", default=None, help="JSON-lines training log (optional)")
    parser.add_argument("--steps", type=int, default=3000, help="optimisation steps")
    parser.add_argument("--batch", type=int, default=4, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate")
    parser.add_argument("--dim", type=int, default=21, help="embedding dimension d")
    parser.add_argument("--width", type=int, default=64, help="channels inside the head")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.8, 1.0, 1.2])
    parser.add_argument("--no-flip", action="store_true", help="no left-right mirrors")
    parser.add_argument("--val-every", type=int, default=500, help="steps between val checks")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and save) after this much wall time"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)


def _embed(head: SpectralHead, item: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unit embeddings (d, H/2, W/2) of one cache item at the resolution of its labels."""
    feats = [item["f2"], item["f4"], item["f8"], item["f16"]]
    emb = head([f[None] for f in feats])  # (1, d, H/4, W/4)
    return upsample_embeddings(emb, tuple(item["half"].shape[-2:]))[0]


def _loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Normalised exact spectral loss of embeddings (d, h, w) against labels (h, w)."""
    flat = emb.reshape(emb.shape[0], -1).T
    return spectral_loss(flat, labels.reshape(-1).long(), normalize=True)


@torch.no_grad()
def evaluate(head: SpectralHead, cache, keys: list[str]) -> float:
    """Mean normalised spectral loss over items and all their annotations."""
    head.eval()
    vals: list[float] = []
    for k in keys:
        item = cache.load(k)
        emb = _embed(head, item)
        vals.extend(float(_loss(emb, lab)) for lab in item["half"])
    head.train()
    return float(np.mean(vals))


def check_args(args: argparse.Namespace) -> None:
    """Validate every option (and that --out / --log can be written) before any work."""
    from affseg.data.io import check_writable_file

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise InputError(msg)

    def finite(v: object) -> bool:
        return isinstance(v, int | float) and math.isfinite(v)

    need(args.steps >= 1, f"--steps must be >= 1, got {args.steps}")
    need(args.batch >= 1, f"--batch must be >= 1, got {args.batch}")
    need(finite(args.lr) and args.lr > 0, f"--lr must be a positive number, got {args.lr}")
    need(args.dim >= 1 and args.width >= 1, "--dim and --width must be >= 1")
    need(
        len(args.scales) >= 1 and all(finite(v) and 0.1 <= v <= 4 for v in args.scales),
        f"--scales must lie in [0.1, 4], got {args.scales}",
    )
    need(args.val_every >= 1, f"--val-every must be >= 1, got {args.val_every}")
    if args.max_minutes is not None:
        need(
            finite(args.max_minutes) and args.max_minutes > 0,
            f"--max-minutes must be a positive number, got {args.max_minutes}",
        )
    need(args.threads >= 1, f"--threads must be >= 1, got {args.threads}")
    need(args.seed >= 0, f"--seed must be >= 0, got {args.seed}")
    check_writable_file(args.out, "--out")
    if args.log:
        check_writable_file(args.log, "--log")


def train(args: argparse.Namespace) -> dict:
    """Run the training described by the parsed options; returns a summary dict."""
    from affseg.train.ndd_cache import FeatureCache, bsds_items

    check_args(args)
    with torch_threads(max(1, args.threads)):
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        cache = FeatureCache(args.cache or default_cache_dir())
        flips = (False,) if args.no_flip else (False, True)
        train_items = bsds_items(args.data, "train")
        val_items = bsds_items(args.data, "val")
        backbone = load_backbone()
        train_keys = cache.build(backbone, train_items, "train", args.scales, flips)
        if args.batch > len(train_keys):
            raise InputError(f"--batch {args.batch} exceeds the {len(train_keys)} training items")
        val_keys = cache.build(backbone, val_items, "val", (1.0,), (False,))
        del backbone

        head = SpectralHead(dim=args.dim, width=args.width)
        opt = torch.optim.Adam(head.parameters(), lr=args.lr)

        def set_lr(progress: float) -> float:
            # cosine decay over the run; progress = max(step fraction, time fraction)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            for group in opt.param_groups:
                group["lr"] = lr
            return lr

        log = open(args.log, "a") if args.log else None  # noqa: SIM115 - closed below
        t0 = time.perf_counter()
        history: list[dict] = []
        running: list[float] = []
        step = 0
        try:
            val0 = evaluate(head, cache, val_keys)
            history.append({"step": 0, "val_loss": val0})
            print(f"step 0 val_loss {val0:.4f}", flush=True)
            for step in range(1, args.steps + 1):
                picks = rng.choice(len(train_keys), size=args.batch, replace=False)
                minutes = (time.perf_counter() - t0) / 60
                progress = (step - 1) / args.steps
                if args.max_minutes:
                    progress = max(progress, minutes / args.max_minutes)
                lr = set_lr(progress)
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for i in picks:
                    item = cache.load(train_keys[i])
                    ann = int(rng.integers(item["half"].shape[0]))
                    loss = _loss(_embed(head, item), item["half"][ann]) / args.batch
                    loss.backward()
                    total += float(loss.detach())
                opt.step()
                running.append(total)
                minutes = (time.perf_counter() - t0) / 60
                last = step == args.steps or (args.max_minutes and minutes >= args.max_minutes)
                if step % args.val_every == 0 or last:
                    rec = {
                        "step": step,
                        "train_loss": float(np.mean(running)),
                        "val_loss": evaluate(head, cache, val_keys),
                        "minutes": minutes,
                        "lr": lr,
                    }
                    running = []
                    history.append(rec)
                    print(json.dumps(rec), flush=True)
                    if log:
                        clean = {
                            k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                            for k, v in rec.items()
                        }
                        log.write(json.dumps(clean, allow_nan=False) + "\n")
                        log.flush()
                if last:
                    break
        finally:
            if log:
                log.close()
        minutes = (time.perf_counter() - t0) / 60
        if not math.isfinite(history[-1]["val_loss"]):
            raise AffsegError("training diverged (non-finite val loss); no weights written")
        summary = {
            "steps": step,
            "batch": args.batch,
            "lr": args.lr,
            "dim": args.dim,
            "width": args.width,
            "scales": list(args.scales),
            "flips": not args.no_flip,
            "train_split": "BSDS500 train (200 images)",
            "minutes": round(minutes, 2),
            "final_val_loss": history[-1]["val_loss"],
            "seed": args.seed,
        }
        save_head(head, args.out, **summary)
        return summary


def run(args: argparse.Namespace) -> int:
    """Entry point of ``affseg train spectral``."""
    summary = train(args)
    print(json.dumps(summary), flush=True)
    print(f"saved {args.out}")
    return 0
