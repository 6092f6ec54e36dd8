"""HAM refinement of a WSSS segmenter's class scores (MSRC-21).

The segmentation application of the HAM paper (Park et al., ICML 2023) applied to the
segmenters of :mod:`affseg.train.wsss`: a :class:`~affseg.models.ham.SegRefinePropagation`
sees the image and the segmenter's class probabilities (grid -> image by bilinear
resizing) and propagates them with learned hyperbolic affinities at full resolution.

Training targets: for ``wsss`` and ``cam`` the *pseudo labels* of the train images (the
weak network's class scores restricted to each image's known labels, resized to the image
and arg-maxed), never the train pixel labels; for ``supervised`` the train pixel labels.
Inputs: the segmenter's probabilities of the train images, from the run's own segmenter
(trained on those images) or, with ``--cross-fit STEPS``, from two segmenters each trained
on the other half of the train images (realistic, not memorised, errors). Run::

    affseg train refine --run runs/wsss/wsss --cross-fit 400
    python -m affseg.train.wsss_ham --run runs/wsss/wsss --cross-fit 400   # the same

It writes ``<run>/ham.pt`` (``--ship``: also ``affseg/weights/wsss_ham_<method>_msrc21.pt``; none
is shipped, the refinement does not help on MSRC-21 val, BENCHMARKS.md) and
prints val mIoU without and with the refinement.
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
from affseg.models.ham import curvature_adam
from affseg.runtime import torch_threads

NUM_CLASSES = 21
#: refiner configuration (the one of ``benchmarks/seg_refine.py`` in BENCHMARKS.md)
DEFAULT_CONFIG: dict[str, Any] = {
    "num_classes": NUM_CLASSES,
    "geometry": "hyperbolic",
    "k": 3,
    "iterations": 12,
    "width": 16,
    "embed_dim": 16,
    "kernels": (3, 5),
    "head": True,
    "c": 1.0,
    "c_param": "log",
}


def ham_weights_name(method: str) -> str:
    """File name of the shipped HAM refiner of a method.

    Examples
    --------
    >>> ham_weights_name("wsss")
    'wsss_ham_wsss_msrc21.pt'
    """
    return f"wsss_ham_{method}_msrc21.pt"


def pad16(x: torch.Tensor, value: float | None = None) -> torch.Tensor:
    """Pad the last two dims of ``x`` to multiples of 16 (replicate, or constant ``value``).

    Examples
    --------
    >>> pad16(torch.zeros(1, 3, 20, 30)).shape
    torch.Size([1, 3, 32, 32])
    >>> pad16(torch.zeros(1, 5, 7, dtype=torch.long), 255)[0, -1, -1].item()
    255
    """
    h, w = x.shape[-2:]
    pad = (0, (-w) % 16, 0, (-h) % 16)
    if value is None:
        return F.pad(x, pad, mode="replicate")
    return F.pad(x, pad, value=value)


def build_refiner(config: dict[str, Any] | None = None) -> Any:
    """A fresh (or configured) :class:`~affseg.models.ham.SegRefinePropagation`.

    Examples
    --------
    >>> net = build_refiner({**DEFAULT_CONFIG, "width": 4, "embed_dim": 2, "iterations": 1})
    >>> net(torch.zeros(1, 3, 16, 16), torch.full((1, 21, 16, 16), 1 / 21)).shape
    torch.Size([1, 21, 16, 16])
    """
    from affseg.models.ham import SegRefinePropagation

    cfg = dict(DEFAULT_CONFIG if config is None else config)
    cfg["kernels"] = tuple(cfg["kernels"])
    return SegRefinePropagation(**cfg)


@torch.no_grad()
def refine(refiner: Any, rgb: np.ndarray, probs: torch.Tensor) -> torch.Tensor:
    """Refine (C, H, W) class probabilities of an (H, W, 3) uint8 image; returns (C, H, W).

    Examples
    --------
    >>> net = build_refiner({**DEFAULT_CONFIG, "width": 4, "embed_dim": 2, "iterations": 1})
    >>> p = torch.full((21, 13, 18), 1 / 21)
    >>> refine(net, np.zeros((13, 18, 3), np.uint8), p).shape
    torch.Size([21, 13, 18])
    """
    h, w = probs.shape[-2:]
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
    out = refiner.eval()(pad16(x), pad16(probs[None].float()))
    return out[0, :, :h, :w]


def grid_to_image(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) grid probabilities -> (C, H, W) by bilinear resizing.

    Examples
    --------
    >>> grid_to_image(torch.rand(3, 2, 3), (16, 24)).shape
    torch.Size([3, 16, 24])
    """
    return F.interpolate(probs[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def cross_fit_segmenters(
    blob: dict[str, Any],
    items: list[dict[str, Any]],
    flips: list[dict[str, Any]],
    steps: int,
    seed: int = 0,
) -> list[Any]:
    """Segmenters for 2-fold cross-fitting: head ``k`` is trained on the other half.

    Same head, targets and schedule as :func:`affseg.train.wsss.train` (pseudo labels of
    the weak network for ``wsss`` / ``cam``), on items ``1 - k::2`` and their mirrors; item
    ``i`` is then scored by head ``i % 2``, which never saw it.

    Examples
    --------
    >>> heads = cross_fit_segmenters(blob, items, flips, 400)   # doctest: +SKIP
    """
    from affseg.methods.wsss import build_weak, pseudo_labels
    from affseg.models.wsss_net import SegHead
    from affseg.train.wsss import Pool, run_stage, seg_step

    if blob["method"] == "supervised":
        raise ValueError("cross-fitting is for the weakly supervised methods")
    weak = build_weak(blob)
    kind = "cam" if blob["method"] == "cam" else "wsss"
    cfg = blob["seg"]["config"]
    ns = argparse.Namespace(lr=1e-3, weight_decay=1e-4, seed=seed, batch=8,
                            no_progress=True, checkpoint_minutes=1e9)  # fmt: skip
    heads = []
    for k in (0, 1):
        part = items[1 - k :: 2] + flips[1 - k :: 2]
        targets = pseudo_labels(weak, kind, part)
        torch.manual_seed(seed + 1 + k)
        seg = SegHead(**cfg)
        run_stage("seg", seg, seg_step, Pool(part, targets), steps, ns, {},
                  lambda: None, lambda rec: None)  # fmt: skip
        heads.append(seg.eval())
    return heads


def _prepare(
    blob: dict[str, Any], items: list[dict[str, Any]], root: Any, heads: list[Any] | None = None
) -> list[dict]:
    """Per train item: padded image, segmenter probabilities, targets (255 = ignore)."""
    from affseg.data.msrc import load_image
    from affseg.methods.wsss import batch_feats, build_seg, build_weak, class_scores, restrict

    seg = build_seg(blob)
    method = blob["method"]
    weak = None if method == "supervised" else build_weak(blob)
    out = []
    with torch.no_grad():
        scores = class_scores(weak, method, items) if weak is not None else [None] * len(items)
        for i, (it, s) in enumerate(zip(items, scores, strict=True)):
            size = (int(it["size"][0]), int(it["size"][1]))
            grid = tuple(int(v) for v in it["grid"])
            rgb = load_image(root, "train", it["id"])
            head = seg if heads is None else heads[i % 2]
            p = head(batch_feats([it]), grid)[0].softmax(0)
            if s is None:  # supervised: the train pixel labels
                from affseg.data.msrc import load_ground_truth

                gt = torch.from_numpy(
                    load_ground_truth(root, "train", it["id"], msrc21=True).astype(np.int64)
                )
                t = torch.where(gt == 0, torch.full_like(gt, 255), gt - 1)
            else:  # pseudo labels: restricted weak scores, at image resolution
                lab = it["labels"].float()
                s = restrict(s + 1e-6, lab) if method == "cam" else restrict(s, lab)
                t = grid_to_image(s.t().reshape(-1, *grid), size).argmax(0)
            x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
            out.append({
                "x": pad16(x),
                "p": pad16(grid_to_image(p, size)[None]).half(),
                "t": pad16(t[None], 255),
            })  # fmt: skip
    return out


def train_refiner(
    data: list[dict], args: argparse.Namespace, config: dict[str, Any] | None = None
) -> tuple[Any, float]:
    """Train a refiner on random crops (and mirror images) of ``data``; returns (net, loss).

    ``data``: dicts with ``x`` (1, 3, H, W) image, ``p`` (1, C, H, W) probabilities and
    ``t`` (1, H, W) targets (255 = ignore); ``args``: ``seed, lr, epochs, crop``.

    Examples
    --------
    >>> net, loss = train_refiner(data, args)      # doctest: +SKIP
    """
    torch.manual_seed(args.seed)
    model = build_refiner(config)
    opt = curvature_adam(model, model.affinity, args.lr, 10.0)
    steps = args.epochs * len(data)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    for _ in range(args.epochs):
        for i in rng.permutation(len(data)):
            d = data[int(i)]
            hh, ww = d["t"].shape[-2:]
            y0 = int(rng.integers(0, hh - args.crop + 1)) // 4 * 4
            x0 = int(rng.integers(0, ww - args.crop + 1)) // 4 * 4
            win = (..., slice(y0, y0 + args.crop), slice(x0, x0 + args.crop))
            x, p, t = d["x"][win], d["p"][win].float(), d["t"][win]
            if rng.random() < 0.5:
                x, p, t = x.flip(-1), p.flip(-1), t.flip(-1)
            if bool((t == 255).all()):
                continue
            out = model(x, p)
            loss = F.nll_loss(out.clamp_min(1e-6).log(), t, ignore_index=255)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    return model.eval(), float(np.mean(losses[-50:]))


def evaluate_val(blob: dict[str, Any], refiner: Any, cache: Path, root: Any) -> dict[str, Any]:
    """Val scores: segmenter (FAI and bilinear) and segmenter + refiner.

    Examples
    --------
    >>> evaluate_val(blob, refiner, Path("runs/wsss/cache"), None)   # doctest: +SKIP
    """
    from affseg.data.msrc import load_ground_truth, load_image
    from affseg.methods.wsss import batch_feats, build_seg, upsample_probs
    from affseg.train.wsss import SemanticScore
    from affseg.train.wsss_cache import load_cache

    seg = build_seg(blob)
    scores = {k: SemanticScore() for k in ("fai", "bilinear", "ham")}
    with torch.no_grad():
        for it in load_cache(cache, "val"):
            gt = load_ground_truth(root, "val", it["id"], msrc21=True)
            size = (int(it["size"][0]), int(it["size"][1]))
            p = seg(batch_feats([it]), tuple(int(v) for v in it["grid"]))[0].softmax(0)
            bil = grid_to_image(p, size)
            scores["fai"].update((upsample_probs(p, it).argmax(0) + 1).numpy(), gt)
            scores["bilinear"].update((bil.argmax(0) + 1).numpy(), gt)
            ref = refine(refiner, load_image(root, "val", it["id"]), bil)
            scores["ham"].update((ref.argmax(0) + 1).numpy(), gt)
    res = {}
    for k, s in scores.items():
        r = s.compute()
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
    p.add_argument("--run", required=True, help="folder of an `affseg train wsss` run")
    p.add_argument("--cache", default="runs/wsss/cache")
    p.add_argument("--data", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--lr", type=float, default=2e-3)
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
    p.add_argument("--ship", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Train the HAM refiner of one ``affseg train wsss`` run and score it on val
    (``affseg train refine``).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> run(p.parse_args(["--run", "runs/wsss/wsss"]))   # doctest: +SKIP
    0
    """
    from affseg.methods.wsss import load_weights, weights_dir
    from affseg.models.spec_diff_net import _plain
    from affseg.train.wsss_cache import load_cache

    run_dir = Path(args.run)
    with torch_threads(args.threads):
        t0 = time.monotonic()
        blob = load_weights(run_dir / "weights.pt")
        items = load_cache(args.cache, "train")
        heads = None
        if args.cross_fit:
            flips = load_cache(args.cache, "train", flip=True)
            heads = cross_fit_segmenters(blob, items, flips, args.cross_fit, args.seed)
        data = _prepare(blob, items, args.data, heads)
        t1 = time.monotonic()
        refiner, loss = train_refiner(data, args)
        t2 = time.monotonic()
        val = evaluate_val(blob, refiner, Path(args.cache), args.data)
        record = {
            "method": blob["method"], "run": str(run_dir), "epochs": args.epochs,
            "crop": args.crop, "lr": args.lr, "seed": args.seed, "final_nll": loss,
            "cross_fit": args.cross_fit,
            "prepare_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1),
            "val_s": round(time.monotonic() - t2, 1), "val": val,
            "curvature": float(refiner.affinity.curvature.detach()),
        }  # fmt: skip
        out = {"format": 1, "method": blob["method"], "config": _plain(DEFAULT_CONFIG),
               "ndd_sha256": blob.get("ndd_sha256"),
               "state_dict": refiner.state_dict(), "record": _plain(record)}  # fmt: skip
        atomic_write(run_dir / "ham.pt", lambda tmp: torch.save(out, tmp))
        if args.ship:
            dest = weights_dir() / ham_weights_name(blob["method"])
            atomic_write(dest, lambda tmp: torch.save(out, tmp))
    print(json.dumps(record, indent=1))
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
