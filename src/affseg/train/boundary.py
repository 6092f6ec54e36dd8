"""Train the boundary head (learned boundaries on the frozen backbone) for ndd.

Data: BSDS500 by default, or your own segmentations (``--data DIR`` / ``--images
SPLIT=DIR --masks SPLIT=DIR``, see :mod:`affseg.train.segmentation_args`); on your own
data the run fine-tunes the shipped head (``--init``). Void pixels (``--ignore-index``)
and their neighbours carry no loss.

The head (:class:`affseg.models.boundary_head.BoundaryHead`) reads the cached
EfficientNet-Lite0 pyramid of :mod:`affseg.train.ndd_cache` (the same cache as ``affseg
train ndd``), so a step costs only the small decoder. Each step draws ``--batch`` random
crops (cached scale 0.8 / 1.0 / 1.2, flips) of the chosen splits; the target is the
fraction of the human annotations that mark a boundary at each half-resolution pixel
(:func:`~affseg.models.boundary_head.boundary_targets`), the loss a positive-weighted
binary cross-entropy, the optimiser Adam with a poly-decayed learning rate, for a fixed
number of steps or minutes. Seeds fix the crops and the initialisation.

Example::

    affseg train boundary --splits train --minutes 15 --out runs/boundary --ship
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.errors import InputError
from affseg.runtime import torch_threads
from affseg.train.segmentation_args import (
    add_segmentation_arguments,
    open_training_segmentations,
    resolve_init,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train boundary``.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--out", "runs/boundary", "--minutes", "15"])
    >>> args.crop, args.width, args.splits
    (256, 32, ['train'])
    """
    add_segmentation_arguments(p)
    p.add_argument("--splits", nargs="+", default=["train"], help="splits to train on")
    p.add_argument("--out", required=True, help="output folder (weights, log)")
    p.add_argument("--cache", default=None, help="feature cache folder (default OUT/cache)")
    p.add_argument("--scales", type=float, nargs="+", default=[0.8, 1.0, 1.2])
    p.add_argument("--steps", type=int, default=3000, help="steps (0: use --minutes)")
    p.add_argument("--minutes", type=float, default=None, help="time budget")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=256, help="crop side (multiple of 16)")
    p.add_argument(
        "--lr", type=float, default=None, help="default 2e-3 from scratch, 5e-4 fine-tuning"
    )
    p.add_argument("--width", type=int, default=32, help="decoder channels")
    p.add_argument("--pos-weight", type=float, default=4.0, help="weight of boundary pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--val-images", type=int, default=20, help="val images for the val loss")
    p.add_argument("--ship", action="store_true", help="also write affseg/weights/ file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_args(args: argparse.Namespace) -> None:
    """One clear error for a bad option value.

    Raises
    ------
    InputError
        A non-positive or non-finite number, or a crop that is not a multiple of 16.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> check_args(parser.parse_args(["--out", "o", "--crop", "100"]))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --crop must be a positive multiple of 16; got 100
    """
    if args.steps < 0 or (args.steps == 0 and not args.minutes):
        raise InputError("--steps must be > 0, or 0 with a positive --minutes")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise InputError(f"--minutes must be positive; got {args.minutes}")
    if args.batch < 1 or args.width < 1 or args.threads < 1:
        raise InputError("--batch, --width and --threads must be >= 1")
    if args.crop < 16 or args.crop % 16:
        raise InputError(f"--crop must be a positive multiple of 16; got {args.crop}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr must be positive; got {args.lr}")
    if not (math.isfinite(args.pos_weight) and args.pos_weight > 0):
        raise InputError(f"--pos-weight must be positive; got {args.pos_weight}")
    if not all(math.isfinite(s) and 0.1 <= s <= 4 for s in args.scales):
        raise InputError(f"--scales must lie in [0.1, 4]; got {args.scales}")


def _crop_batch(
    cache: Any, keys: list[str], rng: np.random.Generator, batch: int, crop: int
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """``batch`` random crops of equal size: pyramid levels and boundary targets.

    Returns
    -------
    pyramid : list of Tensor
        ``[f2, f4, f8, f16]``, each (B, C_l, c/s, c'/s).
    target : Tensor, shape (B, 1, c/2, c'/2)
    weight : Tensor, shape (B, 1, c/2, c'/2), or None
        0 where the target is unknown (void); None when no crop has void pixels.
    """
    from affseg.models.boundary_head import boundary_targets, boundary_weights
    from affseg.train.ndd import crop_item

    pyrs, tgts, wts = [], [], []
    for _ in range(batch):
        item = cache.load(keys[int(rng.integers(0, len(keys)))])
        pyr, _, half = crop_item(item, rng, crop, slice(None))
        pyrs.append(pyr)
        tgts.append(boundary_targets(half))
        wts.append(boundary_weights(half))
    # crops of smaller images can be smaller: trim all to the smallest
    hh = min(t.shape[0] for t in tgts)
    ww = min(t.shape[1] for t in tgts)
    levels = [
        torch.cat([p[k][..., : hh * 2 // s, : ww * 2 // s] for p in pyrs])
        for k, s in enumerate((2, 4, 8, 16))
    ]
    target = torch.stack([t[:hh, :ww] for t in tgts])[:, None]
    if all(w is None for w in wts):
        return levels, target, None
    ones = torch.ones(hh, ww)
    weight = torch.stack([ones if w is None else w[:hh, :ww] for w in wts])[:, None]
    return levels, target, weight


@torch.no_grad()
def _val_loss(head: Any, cache: Any, keys: list[str], pos_weight: float) -> float:
    """Mean loss over whole cached images."""
    from affseg.models.boundary_head import boundary_loss, boundary_targets, boundary_weights

    if not keys:
        return float("nan")
    head.eval()
    vals = []
    for key in keys:
        item = cache.load(key)
        pyr = [item[f"f{s}"][None].float() for s in (2, 4, 8, 16)]
        half = item["half"].long()
        tgt = boundary_targets(half)[None, None]
        weight = boundary_weights(half)
        w = None if weight is None else weight[None, None]
        vals.append(float(boundary_loss(head(pyr), tgt, pos_weight, w)))
    head.train()
    return float(np.mean(vals))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train; write ``OUT/boundary_head.pt`` and ``OUT/log.jsonl``; return the record.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of :func:`add_arguments`.

    Returns
    -------
    dict
        ``steps``, ``minutes``, ``final_loss``, ``val_loss`` and the options.

    Examples
    --------
    Needs BSDS500 under ``AFFSEG_DATA`` (the cache takes ~15 min to build once):

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> rec = train(parser.parse_args(["--out", "runs/b", "--steps", "10"]))  # doctest: +SKIP
    >>> rec["steps"]  # doctest: +SKIP
    10
    """
    from tqdm import tqdm

    from affseg.backbones import load_backbone
    from affseg.data.io import check_writable_dir, write_json
    from affseg.models.boundary_head import (
        WEIGHTS_NAME,
        BoundaryHead,
        boundary_loss,
        default_weights_path,
        load_boundary_head,
        save_boundary_head,
    )
    from affseg.train.ndd_cache import FeatureCache

    args = argparse.Namespace(**vars(args))  # defaults are filled in below: a copy
    check_args(args)
    data = open_training_segmentations(args)
    split_items = {split: data.items(split) for split in args.splits}
    need_val = args.val_images > 0 and "val" not in args.splits and "val" in data.splits
    val_items = data.items("val")[: args.val_images] if need_val else []
    init = resolve_init(args.init, data.is_bsds, default_weights_path())
    if args.lr is None:
        args.lr = 2e-3 if init is None else 5e-4
    out_dir = check_writable_dir(args.out, "--out")
    with torch_threads(int(args.threads)):
        torch.manual_seed(args.seed)
        cache = FeatureCache(args.cache or out_dir / "cache")
        backbone = load_backbone()
        keys: list[str] = []
        for split, items in split_items.items():
            keys += cache.build(backbone, items, split, args.scales, progress=not args.no_progress)
        val_keys: list[str] = []
        if val_items:
            val_keys = cache.build(backbone, val_items, "val", (1.0,), (False,), progress=False)
        head = BoundaryHead(width=args.width) if init is None else load_boundary_head(init)
        head.train()
        optim = torch.optim.Adam(head.parameters(), lr=args.lr)
        budget = math.inf if args.minutes is None else 60.0 * args.minutes
        log_path = out_dir / "log.jsonl"
        log_path.unlink(missing_ok=True)
        start = time.monotonic()
        step, losses = 0, []
        bar = tqdm(total=args.steps or None, desc="train boundary", disable=args.no_progress)

        def progress() -> float:
            el = time.monotonic() - start
            return max(step / args.steps if args.steps else 0.0, el / budget)

        while progress() < 1.0:
            for g in optim.param_groups:
                g["lr"] = args.lr * max(0.01, (1.0 - progress()) ** 0.9)
            rng = np.random.default_rng([args.seed, step])
            pyr, tgt, weight = _crop_batch(cache, keys, rng, args.batch, args.crop)
            loss = boundary_loss(head(pyr), tgt, args.pos_weight, weight)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % 250 == 0:
                rec = {"step": step, "loss": float(np.mean(losses[-250:]))}
                rec["val_loss"] = _val_loss(head, cache, val_keys, args.pos_weight)
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                bar.set_postfix(loss=f"{rec['loss']:.4f}", val=f"{rec['val_loss']:.4f}")
                save_boundary_head(head, out_dir / WEIGHTS_NAME, {"step": step})
        bar.close()
        minutes = (time.monotonic() - start) / 60.0
        record = {
            "steps": step,
            "minutes": round(minutes, 2),
            "final_loss": float(np.mean(losses[-250:])) if losses else None,
            "val_loss": _val_loss(head, cache, val_keys, args.pos_weight),
            "args": {k: v for k, v in vars(args).items() if k != "func"},
        }
        meta = {k: record[k] for k in ("steps", "minutes", "final_loss", "val_loss")}
        meta["splits"] = " ".join(args.splits)
        meta["seed"] = args.seed
        meta["data"] = data.name
        meta["init"] = "scratch" if init is None else str(init)
        save_boundary_head(head, out_dir / WEIGHTS_NAME, meta)
        if args.ship:
            save_boundary_head(head, default_weights_path(), meta)
        write_json(out_dir / "train_record.json", record)
    return record


def run(args: argparse.Namespace) -> int:
    """``affseg train boundary`` entry point.

    Examples
    --------
    From the shell (needs BSDS500)::

        affseg train boundary --minutes 15 --out runs/boundary

    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--out", "runs/boundary"]).out
    'runs/boundary'
    """
    rec = train(args)
    print(
        f"trained {rec['steps']} steps in {rec['minutes']} min; loss {rec['final_loss']:.4f}, "
        f"val loss {rec['val_loss']:.4f}; weights: {Path(args.out) / 'boundary_head.pt'}"
    )
    return 0
