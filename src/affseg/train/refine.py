"""Train the HAM refinement of a semantic segmenter's class scores (``affseg train refine``).

The segmentation application of the HAM paper (Park et al., ICML 2023) on top of any
``affseg train wsss`` run, on the run's own data (the same dataset options as ``affseg
train wsss``; default MSRC-21): a :class:`~affseg.models.ham.SegRefinePropagation` sees
the image and the segmenter's class probabilities (grid -> image by bilinear resizing) and
propagates them with learned affinities at the working image divided by ``--scale``
(default 2; inference: :mod:`affseg.methods.seg_refine`, ``affseg semantic --refine
FILE``). ``--geometry euclidean`` trains HAM's naive twin with the same seed, data and
schedule.

By default (``--joint``) the refiner and the run's segmentation head are trained together,
end to end, on the train images and their mirrors (the set-up of the HAM paper and of
DifNet): the head's confident scores are the seeds that the propagation keeps, the
others are filled in from their neighbours (``--reimpose confident``). The refiner file
then stores the trained head too. ``--no-joint`` refines the run's fixed head; its inputs
on the train images come from the run's own head or, with ``--cross-fit STEPS``, from two
heads each trained on the other half of the train images (realistic, not memorised,
errors).

Training targets: for ``wsss`` and ``cam`` the *pseudo labels* of the train images (the
weak network's class scores restricted to each image's known labels, resized and
arg-maxed), never the train pixel labels; for ``supervised`` the train pixel labels.
Run::

    affseg train refine --run runs/camvid/sup0 --images train=CamVid/train ... \
        --geometry euclidean --seed 1
    affseg train refine --run runs/wsss/wsss --no-joint --scale 1 --reimpose learned \
        --epochs 1 --cross-fit 400

It writes ``<run>/ham_<geometry>_s<seed>.pt`` (``--out``): a refiner pinned to the run's
weights by sha256, with its classes, configuration and val scores (the segmenter alone,
its bilinear start, the jointly trained head alone and the refined scores), which it also
prints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affseg.data.io import atomic_write
from affseg.errors import InputError
from affseg.methods.seg_refine import (
    DEFAULT_SCALE,
    GEOMETRIES,
    build_refiner,
    grid_to_image,
    pad16,
    refine,
    refiner_config,
    refiner_size,
    scaled_rgb,
)
from affseg.models.ham import REIMPOSE, curvature_adam
from affseg.runtime import torch_threads

#: Target value of ignored pixels in the refiner's training data.
IGNORE = -1


def cross_fit_segmenters(
    blob: dict[str, Any],
    items: list[dict[str, Any]],
    flips: list[dict[str, Any]],
    steps: int,
    seed: int = 0,
    pixel_targets: list[Any] | None = None,
) -> list[Any]:
    """Segmenters for 2-fold cross-fitting: head ``k`` is trained on the other half.

    Same head, targets and schedule as :func:`affseg.train.wsss.train` (pseudo labels of
    the weak network for ``wsss`` / ``cam``; for ``supervised`` the grid pixel labels
    ``pixel_targets``, in the order of ``items + flips``), on items ``1 - k::2`` and their
    mirrors; item ``i`` is then scored by head ``i % 2``, which never saw it.

    Examples
    --------
    >>> heads = cross_fit_segmenters(blob, items, flips, 400)   # doctest: +SKIP
    """
    from affseg.methods.wsss import build_weak, pseudo_labels
    from affseg.models.wsss_net import SegHead
    from affseg.train.wsss_stages import Pool, run_stage, seg_step

    supervised = blob["method"] == "supervised"
    if supervised and pixel_targets is None:
        raise ValueError("cross-fitting the supervised segmenter needs its pixel targets")
    weak = None if supervised else build_weak(blob)
    kind = "cam" if blob["method"] == "cam" else "wsss"
    n = len(items)
    cfg = blob["seg"]["config"]
    ns = argparse.Namespace(lr=1e-3, weight_decay=1e-4, seed=seed, batch=8,
                            no_progress=True, checkpoint_minutes=1e9)  # fmt: skip
    heads = []
    for k in (0, 1):
        part = items[1 - k :: 2] + flips[1 - k :: 2]
        if pixel_targets is not None:
            targets = pixel_targets[1 - k : n : 2] + pixel_targets[n + 1 - k :: 2]
        else:
            targets = pseudo_labels(weak, kind, part)
        torch.manual_seed(seed + 1 + k)
        seg = SegHead(**cfg)
        run_stage("seg", seg, seg_step, Pool(part, targets), steps, ns, {},
                  lambda: None, lambda rec: None)  # fmt: skip
        heads.append(seg.eval())
    return heads


def _prepare(
    blob: dict[str, Any],
    items: list[dict[str, Any]],
    ds: Any,
    split: str,
    heads: list[Any] | None = None,
    scale: int = 1,
    flipped: bool = False,
    probs: bool = True,
) -> list[dict]:
    """Per train item at the refiner's resolution (the working image divided by ``scale``):
    padded image (uint8), targets (int16, -1 = ignore) and, with ``probs``, the segmenter's
    probabilities (float16); ``flipped``: the items are the mirrored cache items, whose
    image and pixel labels are mirrored here. Joint training (``probs=False``) keeps the
    cache item (``"it"``), whose features the head being trained reads."""
    from affseg.methods.wsss import (
        DEFAULT_WORKING_SIDE,
        batch_feats,
        build_seg,
        build_weak,
        class_scores,
        restrict,
        working_rgb,
    )

    seg = build_seg(blob)
    method = blob["method"]
    weak = None if method == "supervised" else build_weak(blob)
    view = ds if weak is None else ds.tags_only(split)  # the weak methods: images and tags
    k = int(blob["meta"]["num_classes"])
    out = []
    with torch.no_grad():
        scores = class_scores(weak, method, items) if weak is not None else [None] * len(items)
        for i, (it, s) in enumerate(zip(items, scores, strict=True)):
            size = (int(it["size"][0]), int(it["size"][1]))
            small = refiner_size(size, scale)
            grid = tuple(int(v) for v in it["grid"])
            rgb = working_rgb(view.image(split, it["id"]), DEFAULT_WORKING_SIDE)
            if flipped:
                rgb = rgb[:, ::-1]
            if s is None:  # supervised: the train pixel labels, nearest at the refiner size
                gt = _resize_labels(ds.mask(split, it["id"]), size)
                gt = gt[:, ::-1] if flipped else gt
                gt = gt[scale // 2 :: scale, scale // 2 :: scale][: small[0], : small[1]]
                t = torch.from_numpy(np.where((gt >= 0) & (gt < k), gt, IGNORE))
            else:  # pseudo labels: restricted weak scores (of the mirrored features if so)
                lab = it["labels"].float()
                s = restrict(s + 1e-6, lab) if method == "cam" else restrict(s, lab)
                t = grid_to_image(s.t().reshape(-1, *grid), small).argmax(0)
            x = (255.0 * scaled_rgb(rgb, scale)).round()
            d = {"x": pad16(x).to(torch.uint8), "t": pad16(t[None].long(), IGNORE).to(torch.int16)}
            if probs:
                head = seg if heads is None else heads[i % 2]
                p = head(batch_feats([it]), grid)[0].softmax(0)
                d["p"] = pad16(grid_to_image(p, small)[None]).half()
            else:
                d["it"] = it
            out.append(d)
    return out


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) class indices -> ``size`` by nearest neighbour (unchanged when equal)."""
    from PIL import Image

    lab = np.asarray(labels)
    if lab.shape == tuple(size):
        return lab.astype(np.int64)
    im = Image.fromarray(lab.astype(np.int32)).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(im).astype(np.int64)


def train_refiner(
    data: list[dict], args: argparse.Namespace, config: dict[str, Any]
) -> tuple[Any, float]:
    """Train a refiner on random crops (and mirror images) of ``data``; returns (net, loss).

    ``data``: dicts with ``x`` (1, 3, H, W) image (uint8, or float in [0, 1]), ``p`` (1, C,
    H, W) probabilities and ``t`` (1, H, W) targets (:data:`IGNORE` = ignored); ``args``:
    ``seed, lr, epochs, crop`` (and ``c_lr_mult``, the curvature's learning-rate factor,
    default 10); ``config``: :func:`~affseg.methods.seg_refine.refiner_config`.

    Examples
    --------
    >>> net, loss = train_refiner(data, args)      # doctest: +SKIP
    """
    torch.manual_seed(args.seed)
    model = build_refiner(config)
    opt = curvature_adam(model, model.affinity, args.lr, float(getattr(args, "c_lr_mult", 10.0)))
    steps = args.epochs * len(data)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    for _ in range(args.epochs):
        for i in rng.permutation(len(data)):
            d = data[int(i)]
            win = _crop_at(rng, tuple(d["t"].shape), args.crop)
            x, p, t = d["x"][win], d["p"][win].float(), d["t"][win].long()
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x
            if rng.random() < 0.5:
                x, p, t = x.flip(-1), p.flip(-1), t.flip(-1)
            if bool((t == IGNORE).all()):
                continue
            losses.append(_nll_step(model, opt, sched, x, p, t))
    return model.eval(), float(np.mean(losses[-50:]))


def _nll_step(model: Any, opt: Any, sched: Any, x: Any, p: Any, t: Any) -> float:
    """One optimiser (and schedule) step on the NLL of ``model(x, p)`` against ``t``."""
    out = model(x, p)
    loss = F.nll_loss(out.clamp_min(1e-6).log(), t, ignore_index=IGNORE)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


def _crop_at(rng: np.random.Generator, shape: tuple[int, ...], crop: int) -> tuple:
    """A random ``crop`` x ``crop`` window (top-left on multiples of 4) of ``shape[-2:]``."""
    hh, ww = shape[-2:]
    if hh < crop or ww < crop:
        raise InputError(
            f"training images are {ww} x {hh} pixels at the refiner's resolution, smaller "
            f"than the {crop}-pixel crops: give a smaller --crop or --scale"
        )
    y0 = int(rng.integers(0, hh - crop + 1)) // 4 * 4
    x0 = int(rng.integers(0, ww - crop + 1)) // 4 * 4
    return (..., slice(y0, y0 + crop), slice(x0, x0 + crop))


def train_joint(
    data: list[dict], seg: Any, args: argparse.Namespace, config: dict[str, Any]
) -> tuple[Any, Any, float]:
    """Train a refiner *and* the segmentation head under it, end to end (the set-up of the
    HAM paper's segmentation experiment and of DifNet: seed scores and their propagation
    learned together); returns (refiner, head, loss), both in eval mode.

    Every step draws ``args.batch`` items of one grid size (:class:`~affseg.train.
    wsss_stages.Pool`), computes the head's class probabilities from their cached features,
    resizes them bilinearly to the refiner's resolution and refines a random ``args.crop``
    window of each; the negative log-likelihood of the refined probabilities trains both
    (head at ``args.head_lr``, refiner at ``args.lr``, one cosine schedule).
    ``ceil(args.epochs * len(data) / args.batch)`` steps.

    Parameters
    ----------
    data : list of dict
        :func:`_prepare` items with ``probs=False``: ``x`` (1, 3, H, W) uint8, ``t`` (1, H,
        W) targets (:data:`IGNORE` = ignored), ``it`` the cache item.
    seg : SegHead
        The head to train (its weights are the start: fine-tuning).
    args : argparse.Namespace
        ``seed, lr, head_lr, epochs, batch, crop`` (and ``c_lr_mult``, default 10).
    config : dict
        :func:`~affseg.methods.seg_refine.refiner_config`.

    Examples
    --------
    >>> net, head, loss = train_joint(data, seg, args, config)   # doctest: +SKIP
    """
    from affseg.methods.wsss import batch_feats
    from affseg.train.wsss_stages import Pool

    torch.manual_seed(args.seed)
    model = build_refiner(config)
    opt = curvature_adam(model, model.affinity, args.lr, float(getattr(args, "c_lr_mult", 10.0)))
    opt.add_param_group({"params": list(seg.parameters()), "lr": args.head_lr})
    steps = max(1, int(np.ceil(args.epochs * len(data) / args.batch)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    pool = Pool([d["it"] for d in data])
    rng = np.random.default_rng(args.seed)
    seg.train()
    losses: list[float] = []
    for _ in range(steps):
        grid, idx = pool.draw(rng, args.batch)
        logits = seg(batch_feats([data[i]["it"] for i in idx]), grid)
        xs, ps, ts = [], [], []
        for j, i in enumerate(idx):
            d = data[i]
            size = (int(d["it"]["size"][0]), int(d["it"]["size"][1]))
            small = refiner_size(size, int(args.scale))
            p = pad16(F.interpolate(logits[j : j + 1].softmax(1), size=small, mode="bilinear",
                                    align_corners=False))  # fmt: skip
            win = _crop_at(rng, tuple(d["t"].shape), args.crop)
            xs.append(d["x"][win].float() / 255.0)
            ps.append(p[win])
            ts.append(d["t"][win].long())
        t = torch.cat(ts)
        if bool((t == IGNORE).all()):
            sched.step()
            continue
        losses.append(_nll_step(model, opt, sched, torch.cat(xs), torch.cat(ps), t))
    return model.eval(), seg.eval(), float(np.mean(losses[-50:])) if losses else float("nan")


def evaluate_val(
    blob: dict[str, Any],
    refiner: Any,
    items: list[dict[str, Any]],
    ds: Any,
    split: str,
    head: Any | None = None,
    scale: int = 1,
) -> dict[str, Any]:
    """Val scores: the run's segmenter alone (FAI, and its bilinear start), the jointly
    trained ``head`` alone (bilinear at the refiner's resolution; when given) and the
    refined scores (the refiner on ``head``'s scores, or the run's).

    Labels are scored at the masks' full size (items cached at a working resolution are
    resized by :func:`~affseg.methods.wsss.upsampled_argmax`). mIoU and accuracies are
    fractions.

    Examples
    --------
    >>> evaluate_val(blob, refiner, load_cache(cache, "val"), ds, "val")   # doctest: +SKIP
    """
    from affseg.evaluation.semantic import SegScore
    from affseg.methods.wsss import (
        DEFAULT_WORKING_SIDE,
        batch_feats,
        build_seg,
        segment_item,
        upsampled_argmax,
        working_rgb,
    )

    seg = build_seg(blob)
    names = ("fai", "bilinear", "head", "ham") if head is not None else ("fai", "bilinear", "ham")
    scores = {k: SegScore(ds.classes) for k in names}
    view = ds.tags_only(split)  # images; the masks are read from ds
    with torch.no_grad():
        for it in items:
            gt = ds.mask(split, it["id"])
            full = (int(gt.shape[0]), int(gt.shape[1]))
            size = (int(it["size"][0]), int(it["size"][1]))
            grid = tuple(int(v) for v in it["grid"])
            feats = batch_feats([it])
            p = seg(feats, grid)[0].softmax(0)
            scores["fai"].update(segment_item(seg, it, size=full), gt)
            scores["bilinear"].update(upsampled_argmax(grid_to_image(p, size), full), gt)
            p = p if head is None else head(feats, grid)[0].softmax(0)
            start = grid_to_image(p, refiner_size(size, scale))
            if "head" in scores:
                scores["head"].update(upsampled_argmax(start, full), gt)
            rgb = working_rgb(view.image(split, it["id"]), DEFAULT_WORKING_SIDE)
            ref = refine(refiner, rgb, start, scale)
            scores["ham"].update(upsampled_argmax(ref, full), gt)
    res = {}
    for k, sc in scores.items():
        r = sc.compute()
        res[k] = {m: r[m] for m in ("miou", "pixel_accuracy", "mean_class_accuracy")}
    return res


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train refine``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--run", "runs/wsss/wsss"]).cross_fit
    0
    """
    from affseg.train.wsss_args import add_data_arguments

    p.add_argument("--run", required=True, help="folder of an `affseg train wsss` run")
    add_data_arguments(p)
    p.add_argument(
        "--cache", default=None, help="feature cache folder (default: that of the run's data)"
    )
    p.add_argument(
        "--geometry",
        choices=GEOMETRIES,
        default="hyperbolic",
        help="affinity of the propagation: hyperbolic (HAM) or euclidean (its naive twin)",
    )
    p.add_argument(
        "--out", default=None, help="refiner file (default RUN/ham_<geometry>_s<seed>.pt)"
    )
    p.add_argument(
        "--joint",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the run's segmentation head together with the refiner, on the train "
        "images and their mirrors (default); --no-joint: refine the run's fixed head",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=DEFAULT_SCALE,
        help="the refiner works at the working image divided by this (default "
        f"{DEFAULT_SCALE}; 1: full resolution, 4x the time and memory)",
    )
    p.add_argument(
        "--reimpose",
        choices=REIMPOSE,
        default="confident",
        help="re-imposition of the coarse scores at every step: in proportion to their "
        "confidence (default) or a free per-pixel output (learned)",
    )
    p.add_argument("--iterations", type=int, default=12, help="propagation steps (0: none)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the train images")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--batch", type=int, default=2, help="crops per step of joint training")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--head-lr", type=float, default=5e-4, help="the head's rate (--joint)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--cross-fit",
        type=int,
        default=0,
        metavar="STEPS",
        help="train-image inputs from 2-fold cross-fitted segmenters trained STEPS steps "
        "each (0: the run's own segmenter)",
    )


def _run_data(args: argparse.Namespace, blob: dict[str, Any]) -> tuple[Any, str, str, str]:
    """The run's dataset, train split, val split and train fingerprint (checked)."""
    from affseg.train.wsss_args import open_data

    meta = blob["meta"]
    data = meta.get("data") or {}
    split = str(data.get("split") or "train")
    ds = open_data(args, split)
    if list(ds.classes) != list(meta["classes"]):
        raise InputError(
            f"the run's model has classes {', '.join(meta['classes'])}, the data "
            f"{', '.join(ds.classes)}: give the run's dataset options"
        )
    if split not in ds.splits():
        raise InputError(f"the run was trained on split {split!r}, which the data lacks")
    fp = ds.fingerprint(split)
    if data.get("fingerprint") and data["fingerprint"] != fp:
        raise InputError(
            f"split {split!r} differs from the data the run was trained on (fingerprint "
            f"{fp[:12]} vs {str(data['fingerprint'])[:12]}): give the run's dataset options"
        )
    val = data.get("val_split") or ("val" if "val" in ds.splits() else None)
    if val is None or val not in ds.splits() or not ds.has_masks(val):
        raise InputError("the refiner is scored on a val split with masks: the data has none")
    return ds, split, str(val), fp


def run(args: argparse.Namespace) -> int:
    """Train the refiner of one ``affseg train wsss`` run and score it on val
    (``affseg train refine``).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> run(p.parse_args(["--run", "runs/wsss/wsss"]))   # doctest: +SKIP
    0
    """
    from affseg.methods.wsss import build_seg, load_weights, sha256_of
    from affseg.models.spec_diff_net import _plain
    from affseg.train.wsss import prepare_caches
    from affseg.train.wsss_cache import build_pixel_labels, load_cache

    if args.joint and args.cross_fit:
        raise InputError(
            "--cross-fit gives a fixed head unseen inputs; joint training (--joint, the "
            "default) trains the head itself: use one or the other (--no-joint --cross-fit N)"
        )
    for name in ("scale", "batch", "crop"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.iterations < 0:
        raise InputError(f"--iterations must be >= 0, got {args.iterations}")
    run_dir = Path(args.run)
    weights = run_dir / "weights.pt"
    out_path = Path(args.out or run_dir / f"ham_{args.geometry}_s{args.seed}.pt")
    with torch_threads(args.threads):
        t0 = time.monotonic()
        blob = load_weights(weights)
        ds, split, val_split, fp = _run_data(args, blob)
        cache = prepare_caches(ds, split, val_split, args.cache, fp=fp, progress=False)
        items = load_cache(cache, split)
        heads = None
        if args.cross_fit:
            flips = load_cache(cache, split, flip=True)
            targets = None
            if blob["method"] == "supervised":
                targets = []
                for flip in (False, True):
                    f = build_pixel_labels(None, split, cache, flip=flip, dataset=ds,
                                           fingerprint=fp)  # fmt: skip
                    maps = torch.load(f, weights_only=True)["labels"]
                    targets += [maps[it["id"]] for it in (flips if flip else items)]
            heads = cross_fit_segmenters(blob, items, flips, args.cross_fit, args.seed, targets)
        scale = int(args.scale)
        head = None
        if args.joint:  # the train images and their mirrors; the head trains along
            flips = load_cache(cache, split, flip=True)
            data = _prepare(blob, items, ds, split, scale=scale, probs=False)
            data += _prepare(blob, flips, ds, split, scale=scale, flipped=True, probs=False)
        else:
            data = _prepare(blob, items, ds, split, heads, scale=scale)
        t1 = time.monotonic()
        config = refiner_config(
            int(blob["meta"]["num_classes"]),
            args.geometry,
            iterations=int(args.iterations),
            reimpose=args.reimpose,
        )
        if args.joint:
            refiner, head, loss = train_joint(data, build_seg(blob), args, config)
        else:
            refiner, loss = train_refiner(data, args, config)
        t2 = time.monotonic()
        val = evaluate_val(blob, refiner, load_cache(cache, val_split), ds, val_split,
                           head=head, scale=scale)  # fmt: skip
        record = {
            "method": blob["method"], "run": str(run_dir), "geometry": args.geometry,
            "joint": bool(args.joint), "scale": scale, "reimpose": args.reimpose,
            "iterations": int(args.iterations), "batch": int(args.batch),
            "head_lr": float(args.head_lr),
            "epochs": args.epochs, "crop": args.crop, "lr": args.lr, "seed": args.seed,
            "final_nll": loss, "cross_fit": args.cross_fit, "split": split,
            "val_split": val_split, "train_images": len(items),
            "prepare_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1),
            "val_s": round(time.monotonic() - t2, 1), "val": val,
            "curvature": float(refiner.affinity.curvature.detach()),
        }  # fmt: skip
        out = {"format": 2, "kind": "seg_refiner", "method": blob["method"],
               "config": _plain(config), "classes": list(blob["meta"]["classes"]),
               "num_classes": int(blob["meta"]["num_classes"]),
               "base_sha256": sha256_of(weights), "ndd_sha256": blob.get("ndd_sha256"),
               "state_dict": refiner.state_dict(), "scale": scale,
               "record": _plain(record)}  # fmt: skip
        if head is not None:
            out["seg_state_dict"] = head.state_dict()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, lambda tmp: torch.save(out, tmp))
    print(json.dumps(record, indent=1))
    joint = f", jointly trained head {100 * val['head']['miou']:.1f}" if head is not None else ""
    print(
        f"{val_split} mIoU: segmenter {100 * val['fai']['miou']:.1f} (bilinear "
        f"{100 * val['bilinear']['miou']:.1f}){joint}, refined ({args.geometry}) "
        f"{100 * val['ham']['miou']:.1f} -> {out_path}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m affseg.train.wsss_ham ...``: the same as ``affseg train refine ...``.

    Examples
    --------
    >>> main(["--run", "runs/wsss/wsss"])   # doctest: +SKIP
    0
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
