"""Train semantic segmentation on your classes: NDD-guided WSSS, CAM baseline, supervised.

``affseg train wsss --method wsss|cam|supervised`` learns the K >= 2 classes of any dataset
that :mod:`affseg.data.segdata` reads (``--data DIR``, or ``--images/--masks/--classes
[--ignore-index K] [--tags F]``; default MSRC-v2 with the MSRC-21 classes, as before). The
split is checked (:meth:`~affseg.data.segdata.SegDataset.validate`) before any work; the
weak methods read it tags-only (images and image-level labels; masks cannot be read),
``supervised`` reads its masks. It runs, on the cache of the frozen inputs
(:mod:`affseg.train.wsss_cache`: backbone features and the diffusion embedding of the
pinned spec-diff-net, computed once per image and left-right flip):

1. ``wsss``: the network of seed 001 Fig. 5 (:class:`~affseg.models.wsss_net.WSSSNet`,
   RFP with mu = 0.5 fixed, PRED, PC-WAP, loss BCE + MIL) on image-level labels;
   ``--variant no-rfp`` / ``no-share`` are the ablations of Table 4.
   ``cam``: the GAP classifier (:class:`~affseg.models.wsss_net.CAMNet`).
   Both read only (features, image-level label vector).
2. pseudo label maps of the training images (the image's known classes only);
3. the segmentation head (:class:`~affseg.models.wsss_net.SegHead`) trained on them
   (``supervised``: trained on the train pixel labels instead; the only method that reads
   them);
4. val mIoU of the segmenter at full resolution (feature-attentional interpolation), on
   ``--val-split`` (default ``val`` when the dataset has it with masks).

``OUT/weights.pt`` describes itself (:func:`affseg.methods.wsss.weights_meta`; ``affseg
info OUT/weights.pt``): classes and colours, ignore index, method, spec-diff-net sha256,
inference rule, the training data's fingerprint and the val scores.

Schedules are step-based and seeded (reproducible); a checkpoint is written at the end of
each stage and every ``--checkpoint-minutes``; ``--resume`` continues from it. Logs:
``<out>/log.jsonl``, ``<out>/record.json``, tqdm bars. ``--ship`` copies the weights into
``affseg/weights/``.
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

from affseg.data.io import atomic_write, write_json
from affseg.errors import InputError
from affseg.evaluation.semantic import evaluate, pseudo_label_score
from affseg.runtime import torch_threads

VARIANTS = ("full", "no-rfp", "no-share")
_STAGE_SEEDS = {"weak": 1, "seg": 2}
#: Default cap of the informative-absence sampling weights of the weak stage.
ABSENCE_CAP = 10.0


def absence_weights(labels: np.ndarray, cap: float = ABSENCE_CAP) -> np.ndarray:
    """Sampling weight of each training image from what its image labels rule out.

    With image-level labels only, two classes that nearly always appear together (MSRC-21:
    every train image labelled face is also labelled body) can be told apart only by the
    few images holding one without the other. With ``P(a | b)`` the share of the images
    labelled ``b`` that are also labelled ``a`` (estimated on ``labels``), an image's
    weight is the surprise of its most unlikely absence,

        w_i = clip(1 / (1 - max_{b in y_i, a not in y_i} P(a | b)), 1, cap),

    so a body-without-face image (P(face | body) = 29 / 31) is drawn ``cap`` times as
    often as an image whose absent classes are uninformative. Only image-level labels are
    read.

    Parameters
    ----------
    labels : ndarray, shape (n, C)
        Image-level label vectors in {0, 1}.
    cap : float
        Largest weight (>= 1); ``cap <= 1`` gives uniform weights.

    Returns
    -------
    ndarray, shape (n,)
        Weights in [1, cap].

    Examples
    --------
    >>> y = np.array([[1, 1], [1, 1], [1, 1], [0, 1]])   # class 0 given 1: 3 / 4
    >>> absence_weights(y, cap=10.0)
    array([1., 1., 1., 4.])
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise InputError(f"labels must be (n, C); got shape {y.shape}")
    if cap <= 1.0:
        return np.ones(len(y))
    cond = (y.T @ y) / np.maximum(y.sum(0), 1.0)[None, :]  # cond[a, b] = P(a | b)
    np.fill_diagonal(cond, 0.0)
    pairs = (1.0 - y)[:, :, None] * y[:, None, :] * cond[None]  # absent a, present b
    top = pairs.reshape(len(y), -1).max(1) if y.shape[1] else np.zeros(len(y))
    return np.clip(1.0 / np.maximum(1.0 - top, 1e-12), 1.0, float(cap))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train wsss``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args([]).mu
    0.5
    """
    p.add_argument("--method", choices=("wsss", "cam", "supervised"), default="wsss")
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        default="full",
        help="wsss only: full network, or the ablations w/o RFP / w/o classifier sharing",
    )
    add_data_arguments(p)
    p.add_argument("--split", default="train", help="training split (default train)")
    p.add_argument(
        "--val-split",
        default=None,
        help="split scored after training (default: val when the dataset has it with masks; "
        "'none': no scoring)",
    )
    p.add_argument("--out", default="runs/wsss/wsss", help="output folder")
    p.add_argument(
        "--cache",
        default=None,
        help="feature cache folder (default runs/wsss/cache for MSRC-21, else "
        "runs/wsss/cache/<layout>-<fingerprint>)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=128, help="width of the fused features F")
    p.add_argument("--weak-steps", type=int, default=600, help="steps of the weak network")
    p.add_argument("--seg-steps", type=int, default=600, help="steps of the segmenter")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--dropout", type=float, default=0.3, help="input channel dropout")
    p.add_argument("--theta", type=float, default=0.1, help="initial PC-WAP temperature")
    p.add_argument("--mu", type=float, default=0.5, help="RFP threshold on K_D (fixed)")
    p.add_argument(
        "--soft-rfp",
        type=float,
        default=None,
        metavar="TAU",
        help="soft RFP mask sigmoid((K_D - mu) / TAU) with mu learned (default: hard mask)",
    )
    p.add_argument(
        "--ignore-below",
        type=float,
        default=0.0,
        help="pseudo labels: ignore grid nodes whose top class score is below this",
    )
    p.add_argument(
        "--absence-cap",
        type=float,
        default=ABSENCE_CAP,
        help="weak stage: draw images by informative-absence weight, capped at this "
        "(see absence_weights; 0 = uniform draws)",
    )
    p.add_argument("--limit", type=int, default=None, help="first N train images only")
    p.add_argument("--checkpoint-minutes", type=float, default=4.0)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on a busy 2-core CPU)"
    )
    p.add_argument("--ship", action="store_true", help="write the weights into affseg/weights/")
    p.add_argument("--no-progress", action="store_true")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The dataset options shared by ``affseg train wsss`` and ``affseg eval --task semantic``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_data_arguments(p)
    >>> p.parse_args(["--images", "val=a", "--images", "train=b"]).images
    ['val=a', 'train=b']
    """
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="dataset folder (canonical classes.txt + images/<split>/ [+ masks/<split>/], "
        "PASCAL VOC or MSRC_v2), or a folder holding MSRC_v2/ (default: MSRC-21 from "
        "$AFFSEG_DATA)",
    )
    p.add_argument(
        "--images",
        action="append",
        default=None,
        metavar="[SPLIT=]DIR",
        help="pairs of folders: images (one folder = the split of --split; repeat as "
        "SPLIT=DIR for several splits)",
    )
    p.add_argument(
        "--masks", action="append", default=None, metavar="[SPLIT=]DIR",
        help="pairs of folders: masks matched by stem (as --images)",
    )  # fmt: skip
    p.add_argument("--classes", default=None, metavar="FILE", help="classes.txt (name [r g b])")
    p.add_argument(
        "--ignore-index", type=int, default=None, metavar="K",
        help="mask value of ignored pixels (default 255; 65535 above 255 classes)",
    )  # fmt: skip
    p.add_argument("--tags", default=None, metavar="CSV", help="tags.csv: stem,name;name;...")


def _folders(values: list[str] | None) -> Any:
    """``--images`` / ``--masks`` values: one folder, or ``{split: folder}``."""
    if not values:
        return None
    pairs: list[tuple[str | None, str]] = []
    for v in values:
        name, sep, rest = v.partition("=")
        if sep and name and all(c.isalnum() or c in "_-" for c in name) and not Path(v).exists():
            pairs.append((name, rest))
        else:
            pairs.append((None, v))
    if len(pairs) == 1 and pairs[0][0] is None:
        return pairs[0][1]
    if any(n is None for n, _ in pairs):
        raise InputError("several --images / --masks folders must each be given as SPLIT=DIR")
    out = dict(pairs)
    if len(out) != len(pairs):
        raise InputError("a split is named twice in --images / --masks")
    return out


def open_data(args: argparse.Namespace, split: str | None = None) -> Any:
    """The :class:`~affseg.data.segdata.SegDataset` named by the dataset options of ``args``.

    No option: MSRC-v2 (MSRC-21 classes) under ``$AFFSEG_DATA``. ``--data DIR``: a dataset
    folder (any layout of :func:`~affseg.data.segdata.open_dataset`), or a folder holding
    ``MSRC_v2/`` (MSRC-21). ``--images [--masks] --classes``: pairs of folders (a single
    folder is the split ``split``).

    Examples
    --------
    >>> ns = argparse.Namespace(data=None, images=None, masks=None, classes=None,
    ...                         ignore_index=None, tags=None)
    >>> open_data(ns).num_classes                 # doctest: +SKIP
    21
    """
    from affseg.data.segdata import open_dataset, open_msrc

    data = getattr(args, "data", None)
    images = _folders(getattr(args, "images", None))
    masks = _folders(getattr(args, "masks", None))
    classes = getattr(args, "classes", None)
    ignore = getattr(args, "ignore_index", None)
    tags = getattr(args, "tags", None)
    if images is None and masks is None:
        if (
            data is not None
            and (Path(data) / "MSRC_v2").is_dir()
            and not (Path(data) / "classes.txt").is_file()
        ):
            if classes is not None or ignore is not None:
                raise InputError("MSRC-v2's classes are fixed: drop --classes / --ignore-index")
            return open_msrc(data)
        if data is None:
            if classes is not None or ignore is not None or tags is not None:
                raise InputError("--classes / --ignore-index / --tags need --data or --images")
            return open_msrc(None)
    if images is not None and data is not None:
        raise InputError("give either --data DIR or --images/--masks folders, not both")
    return open_dataset(
        data,
        images=images,
        masks=masks,
        classes=classes,
        ignore_index=ignore,
        tags=tags,
        split=str(split or getattr(args, "split", None) or "train"),
    )


def dataset_name(ds: Any) -> str:
    """Short name of a dataset for messages and metadata (``MSRC-21``, ``pairs``, ...).

    Examples
    --------
    >>> dataset_name(argparse.Namespace(layout="msrc21", root=None))
    'MSRC-21'
    """
    names = {"msrc21": "MSRC-21", "msrc23": "MSRC-23", "voc": "PASCAL VOC"}
    layout = str(getattr(ds, "layout", "custom"))
    root = getattr(ds, "root", None)
    return names.get(layout, f"{root.name} ({layout})" if root is not None else layout)


# ----------------------------------------------------------------------------- batching
class Pool:
    """Training items grouped by grid size; draws same-size batches.

    Parameters
    ----------
    items : list of dict
        Cache items (see :mod:`affseg.train.wsss_cache`).
    targets : list of Tensor, optional
        One (h, w) int64 label map per item (pseudo or true labels); values outside
        0..K-1 (-1) are ignored.
    mu : float, optional
        RFP threshold: the region masks ``[K_D > mu]`` are computed once (stored as bits;
        :meth:`mask` unpacks one).
    weights : ndarray, shape (n,), optional
        Relative draw weight of each item (default uniform): a grid size is drawn with
        probability proportional to its items' total weight, then items within it.

    Examples
    --------
    >>> import torch
    >>> items = [{"grid": [2, 3], "f8": torch.zeros(40, 2, 3), "f16": torch.zeros(112, 1, 2),
    ...           "f32": torch.zeros(320, 1, 1), "head": torch.zeros(1280, 1, 1)}] * 3
    >>> grid, idx = Pool(items).draw(np.random.default_rng(0), 2)
    >>> grid, len(idx)
    ((2, 3), 2)
    """

    def __init__(
        self,
        items: list[dict[str, Any]],
        targets: list[Any] | None = None,
        mu: float | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        from affseg.methods.wsss import FEATURE_LEVELS
        from affseg.models.wsss_net import diffusion_kernel, region_mask

        self.items = items
        self.targets = targets
        self.masks = None
        for it in items:  # float32 once, not at every step
            for k in FEATURE_LEVELS:
                it[k] = it[k].float()
        if mu is not None:  # RFP region masks M = [K_D > mu], fixed: computed once and
            # stored one bit per entry (a dense bool N x N per image is 7 MB on a CamVid grid)
            self.masks = [
                np.packbits(
                    region_mask(diffusion_kernel(it["emb"][None].float(), float(it["tau"])), mu)[0]
                    .bool()
                    .numpy()
                )
                for it in items
            ]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault((int(it["grid"][0]), int(it["grid"][1])), []).append(i)
        self.groups = list(groups.items())
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(items),) or not np.all(w > 0):
                raise InputError(f"weights must be {len(items)} positive values")
            self.weights = w
        sizes = np.array(
            [len(g) if self.weights is None else self.weights[g].sum() for _, g in self.groups],
            dtype=np.float64,
        )
        self.p = sizes / sizes.sum()

    def mask(self, i: int) -> torch.Tensor:
        """The RFP region mask (N, N) float32 of item ``i`` (pools made with ``mu``)."""
        if self.masks is None:
            raise ValueError("this pool has no RFP masks (made without mu)")
        n = int(self.items[i]["emb"].shape[0])
        bits = np.unpackbits(self.masks[i], count=n * n)
        return torch.from_numpy(bits.reshape(n, n)).float()

    def draw(self, rng: np.random.Generator, batch: int) -> tuple[tuple[int, int], list[int]]:
        """A grid size and up to ``batch`` item indices of that size."""
        gi = int(rng.choice(len(self.groups), p=self.p))
        grid, idx = self.groups[gi]
        p = None
        if self.weights is not None:
            w = self.weights[idx]
            p = w / w.sum()
        pick = rng.choice(len(idx), size=min(batch, len(idx)), replace=False, p=p)
        return grid, [idx[int(j)] for j in pick]


def weak_pool(items: list[dict[str, Any]], mu: float | None, absence_cap: float) -> Pool:
    """The weak stage's pool: RFP masks at ``mu`` and informative-absence draw weights.

    ``absence_cap <= 1`` draws uniformly (exactly the draws of a pool without weights).

    Examples
    --------
    >>> items = load_train_items(Path("runs/wsss/cache"), None)   # doctest: +SKIP
    >>> pool = weak_pool(items, 0.5, 10.0)                          # doctest: +SKIP
    """
    weights = None
    if absence_cap > 1.0:
        labels = torch.stack([it["labels"] for it in items]).numpy()
        weights = absence_weights(labels, absence_cap)
    return Pool(items, mu=mu, weights=weights)


def _batch(pool: Pool, idx: list[int]) -> dict[str, Any]:
    from affseg.methods.wsss import batch_feats

    its = [pool.items[i] for i in idx]
    out: dict[str, Any] = {
        "feats": batch_feats(its),
        "emb": torch.stack([it["emb"] for it in its]).float(),
        "tau": torch.tensor([float(it["tau"]) for it in its]),
        "labels": torch.stack([it["labels"] for it in its]).float(),
    }
    if pool.masks is not None:
        out["mask"] = torch.stack([pool.mask(i) for i in idx])
    if pool.targets is not None:
        out["target"] = torch.stack([pool.targets[i] for i in idx]).long()
    return out


def cosine_lr(step: int, total: int, base: float, warmup: int = 50) -> float:
    """Linear warm-up then cosine decay to 1 % of ``base``.

    Examples
    --------
    >>> cosine_lr(0, 100, 1.0, warmup=10), cosine_lr(100, 100, 1.0, warmup=10)
    (0.1, 0.01)
    """
    if step < warmup:
        return base * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return float(base * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * prog))))


# ----------------------------------------------------------------------------- stages
def weak_model(
    method: str, variant: str, args: argparse.Namespace, num_classes: int = 21
) -> torch.nn.Module:
    """A fresh weakly supervised network for ``method`` (``wsss`` or ``cam``).

    Examples
    --------
    >>> ns = argparse.Namespace(dim=8, dropout=0.0, theta=0.1, mu=0.5)
    >>> weak_model("wsss", "no-rfp", ns).use_rfp
    False
    """
    from affseg.models.wsss_net import CAMNet, WSSSNet

    if method == "cam":
        return CAMNet(num_classes=num_classes, dim=args.dim, dropout=args.dropout)
    return WSSSNet(
        num_classes=num_classes,
        dim=args.dim,
        use_rfp=variant != "no-rfp",
        share=variant != "no-share",
        theta=args.theta,
        dropout=args.dropout,
        mu=args.mu,
        soft_tau=getattr(args, "soft_rfp", None),
    )


def weak_step(model: torch.nn.Module, method: str, b: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Loss terms of one batch (only features and image-level labels are used).

    Examples
    --------
    >>> loss = weak_step(model, "wsss", batch)["loss"]   # doctest: +SKIP
    """
    from affseg.models.wsss_net import wsss_loss

    y = b["labels"]
    if method == "cam":
        grid = (b["feats"]["f8"].shape[-2], b["emb"].shape[1] // b["feats"]["f8"].shape[-2])
        out = model(b["feats"], grid)
        loss = F.binary_cross_entropy_with_logits(out["p_cl"], y)
        return {"loss": loss, "cls": loss}
    out = model(b["feats"], b["emb"], b["tau"], b.get("mask"))
    total, cls, mil = wsss_loss(out, y)
    return {"loss": total, "cls": cls, "mil": mil}


def seg_step(model: torch.nn.Module, b: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Cross-entropy of the segmenter on the grid targets of one batch.

    Examples
    --------
    >>> loss = seg_step(seg, batch)["loss"]   # doctest: +SKIP
    """
    tgt = b["target"]
    logits = model(b["feats"], tuple(tgt.shape[-2:]))
    tgt = torch.where((tgt < 0) | (tgt >= logits.shape[1]), -1, tgt)  # -1 / 255: ignored
    return {"loss": F.cross_entropy(logits, tgt, ignore_index=-1)}


def run_stage(
    name: str,
    model: torch.nn.Module,
    step_fn: Any,
    pool: Pool,
    steps: int,
    args: argparse.Namespace,
    ckpt: dict[str, Any],
    save: Any,
    log: Any,
) -> dict[str, Any]:
    """Train ``model`` for ``steps`` (resuming from ``ckpt[name]`` when present).

    Examples
    --------
    >>> rec = run_stage("seg", seg, seg_step, pool, 600, args, {}, save, log)  # doctest: +SKIP
    """
    from tqdm import tqdm

    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    state = ckpt.get(name, {})
    step = int(state.get("step", 0))
    elapsed = float(state.get("elapsed", 0.0))
    if state:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
    model.train()
    hist: dict[str, list[float]] = {}
    start = time.monotonic() - elapsed
    last = time.monotonic()
    bar = tqdm(total=steps, initial=step, desc=name, disable=args.no_progress, dynamic_ncols=True)
    while step < steps:
        rng = np.random.default_rng([args.seed, _STAGE_SEEDS[name], step])
        _, idx = pool.draw(rng, args.batch)
        for g in optim.param_groups:
            g["lr"] = cosine_lr(step, steps, args.lr)
        terms = step_fn(model, _batch(pool, idx))
        optim.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optim.step()
        step += 1
        for k, v in terms.items():
            hist.setdefault(k, []).append(float(v.detach()))
        bar.update(1)
        bar.set_postfix({k: f"{np.mean(v[-50:]):.4f}" for k, v in hist.items()})
        elapsed = time.monotonic() - start
        if step == steps or time.monotonic() - last >= 60.0 * args.checkpoint_minutes:
            ckpt[name] = {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "step": step,
                "elapsed": elapsed,
            }
            save()
            log({"stage": name, "step": step, "minutes": round(elapsed / 60, 3),
                 **{k: float(np.mean(v[-100:])) for k, v in hist.items()}})  # fmt: skip
            last = time.monotonic()
    bar.close()
    model.eval()
    return {"steps": step, "minutes": round(elapsed / 60, 2),
            **{f"final_{k}": float(np.mean(v[-100:])) for k, v in hist.items()}}  # fmt: skip


# ----------------------------------------------------------------------------- main
def load_train_items(cache: Path, limit: int | None, split: str = "train") -> list[dict[str, Any]]:
    """Train items and their mirrored copies (both from the cache).

    Examples
    --------
    >>> items = load_train_items(Path("runs/wsss/cache"), None)   # doctest: +SKIP
    >>> len(items)                                               # doctest: +SKIP
    596
    """
    from affseg.train.wsss_cache import load_cache

    items = load_cache(cache, split)
    flips = load_cache(cache, split, flip=True)
    if limit is not None:
        items, flips = items[:limit], flips[:limit]
    return items + flips


def save_blob(
    path: Path,
    method: str,
    variant: str,
    weak: Any,
    seg: Any,
    record: dict,
    meta: dict | None = None,
) -> Path:
    """Write a weights file (plain tensors and JSON-able values; ``weights_only`` loadable).

    ``meta``: the self-description (:func:`affseg.methods.wsss.weights_meta`); without it
    the file is an MSRC-21 one (``format`` 1 rules).

    Examples
    --------
    >>> save_blob(Path("w.pt"), "cam", "full", weak, seg, {})   # doctest: +SKIP
    """
    from affseg.methods.wsss import NDD_SHA256, NDD_WEIGHTS
    from affseg.models.spec_diff_net import _plain

    blob = {
        "format": 1 if meta is None else 2,
        "method": method,
        "variant": variant,
        "ndd_weights": NDD_WEIGHTS,
        "ndd_sha256": NDD_SHA256,
        "seg": {"config": _plain(seg.config), "state_dict": seg.state_dict()},
        "record": _plain(record),
    }
    if meta is not None:
        blob["meta"] = json.loads(json.dumps(_plain(meta)))  # JSON-able, checked here
    if weak is not None:
        blob["weak"] = {"config": _plain(weak.config), "state_dict": weak.state_dict()}
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _val_split(ds: Any, args: argparse.Namespace) -> str | None:
    """The split scored after training (None: none)."""
    v = getattr(args, "val_split", None)
    if v is not None and str(v).lower() == "none":
        return None
    if v is None:
        return (
            "val" if "val" in ds.splits() and args.split != "val" and ds.has_masks("val") else None
        )
    if v not in ds.splits():
        raise InputError(f"--val-split {v!r}: the dataset has splits {', '.join(ds.splits())}")
    if not ds.has_masks(v):
        raise InputError(f"--val-split {v!r} has no masks to score against")
    return str(v)


def prepare_caches(
    ds: Any,
    split: str,
    val_split: str | None,
    cache: str | Path | None = None,
    *,
    train_ds: Any = None,
    fp: str | None = None,
    val_fp: str | None = None,
    progress: bool = True,
) -> Path:
    """Build (when missing or stale) the feature caches of a training split and its val split.

    The train split is cached as is and mirrored (through ``train_ds``, default its
    tags-only view), the val split with the interpolation guides. Default folder:
    ``runs/wsss/cache`` for MSRC-21's train split, else
    ``runs/wsss/cache/<layout>-<first 12 hex of the train fingerprint>``.

    Returns
    -------
    Path
        The cache folder.

    Examples
    --------
    >>> prepare_caches(open_data(ns), "train", "val")   # doctest: +SKIP
    PosixPath('runs/wsss/cache')
    """
    from affseg.train.wsss_cache import build_cache

    fp = fp or ds.fingerprint(split, progress=progress)
    if cache is not None:
        folder = Path(cache)
    elif ds.layout == "msrc21" and split == "train":
        folder = Path("runs/wsss/cache")
    else:
        folder = Path("runs/wsss/cache") / f"{ds.layout}-{fp[:12]}"
    train_ds = ds.tags_only(split) if train_ds is None else train_ds
    for flip in (False, True):
        build_cache(None, split, folder, flip=flip, progress=progress, dataset=train_ds,
                    fingerprint=fp)  # fmt: skip
    if val_split is not None:
        val_fp = val_fp or ds.fingerprint(val_split, progress=progress)
        build_cache(None, val_split, folder, guides=True, progress=progress,
                    dataset=ds.tags_only(val_split), fingerprint=val_fp)  # fmt: skip
    return folder


def _percent(res: dict[str, Any]) -> dict[str, Any]:
    return {k: round(100 * float(res[k]), 2)
            for k in ("miou", "pixel_accuracy", "mean_class_accuracy")}  # fmt: skip


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) one method's training; returns the record (also in OUT).

    Examples
    --------
    >>> rec = train(args)          # doctest: +SKIP
    >>> rec["val"]["miou"]         # doctest: +SKIP
    0.71...
    """
    from affseg.methods.wsss import DEFAULT_CLASS_FILTER, DEFAULT_FUSE, NDD_SHA256, NDD_WEIGHTS
    from affseg.models.wsss_net import SegHead
    from affseg.train.wsss_cache import build_pixel_labels, load_cache

    method, variant = args.method, args.variant
    if method != "wsss" and variant != "full":
        raise InputError("--variant applies to --method wsss only")
    split = getattr(args, "split", "train") or "train"
    progress = not args.no_progress
    ds = open_data(args, split)
    if split not in ds.splits():
        raise InputError(f"--split {split!r}: the dataset has splits {', '.join(ds.splits())}")
    val_split = _val_split(ds, args)
    weakly = method != "supervised"
    # the weak methods see images and tags only; the supervised reference reads masks
    train_ds = ds.tags_only(split) if weakly else ds
    if not weakly and not ds.has_masks(split):
        raise InputError(f"--method supervised reads the masks of split {split!r}: it has none")
    if not weakly:
        print(f"supervised: reading the pixel masks of split {split!r}")
    report = train_ds.validate(split, training=True, progress=progress)  # before any work
    if val_split is not None:
        ds.validate(val_split, training=False, progress=progress)
    fp = ds.fingerprint(split, progress=progress)
    val_fp = ds.fingerprint(val_split, progress=progress) if val_split else None
    with torch_threads(max(1, int(args.threads))):
        out_dir = Path(args.out)
        t0 = time.monotonic()
        cache = prepare_caches(ds, split, val_split, args.cache, train_ds=train_ds, fp=fp,
                               val_fp=val_fp, progress=progress)  # fmt: skip
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.jsonl"
        torch.manual_seed(args.seed)
        cache_minutes = (time.monotonic() - t0) / 60
        items = load_train_items(cache, args.limit, split)
        ckpt: dict[str, Any] = {}
        if args.resume:
            if not ckpt_path.is_file():
                raise InputError(f"--resume: no checkpoint at {ckpt_path}")
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        elif log_path.exists():
            log_path.unlink()

        def save() -> None:
            atomic_write(ckpt_path, lambda tmp: torch.save(ckpt, tmp))

        def log(rec: dict[str, Any]) -> None:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

        k = ds.num_classes
        record: dict[str, Any] = {"method": method, "variant": variant, "seed": args.seed}
        weak = None
        if method == "supervised":
            # the fully supervised reference: the ONLY path that reads train pixel labels
            files = [build_pixel_labels(None, split, cache, flip=f, dataset=ds, fingerprint=fp)
                     for f in (False, True)]  # fmt: skip
            maps = [torch.load(f, weights_only=True)["labels"] for f in files]
            n = len(items) // 2
            targets = [maps[0][it["id"]] for it in items[:n]] + [
                maps[1][it["id"]] for it in items[n:]
            ]
        else:
            torch.manual_seed(args.seed)
            weak = weak_model(method, variant, args, k)
            hard = getattr(args, "soft_rfp", None) is None
            mu = args.mu if method == "wsss" and variant != "no-rfp" and hard else None
            pool = weak_pool(items, mu, float(getattr(args, "absence_cap", 0.0) or 0.0))
            record["weak"] = run_stage(
                "weak", weak, lambda m, b: weak_step(m, method, b), pool,
                args.weak_steps, args, ckpt, save, log,
            )  # fmt: skip
            kind = "cam" if method == "cam" else "wsss"
            from affseg.methods.wsss import pseudo_labels

            targets = pseudo_labels(weak, kind, items, args.ignore_below)
            if val_split is not None:
                val_items = load_cache(cache, val_split)
                pq = pseudo_label_score(weak, kind, val_items, ds, val_split)
                record["pseudo_val"] = {k_: pq[k_] for k_ in ("miou", "pixel_accuracy")}
                log({"stage": "pseudo_val", **record["pseudo_val"]})
        torch.manual_seed(args.seed + 1)
        seg = SegHead(num_classes=k, dim=args.dim, hidden=args.dim, dropout=0.1)
        record["seg"] = run_stage(
            "seg", seg, seg_step, Pool(items, targets), args.seg_steps, args, ckpt, save, log
        )
        record["val"] = None
        if val_split is not None:
            val_items = load_cache(cache, val_split)
            res = evaluate(seg, val_items, ds, val_split)
            record["val"] = {kk: v for kk, v in res.items() if kk != "confusion"}
            log({"stage": "val", **_percent(record["val"])})
        record["cache_minutes"] = round(cache_minutes, 2)
        record["train_images"] = len(items) // 2
        record["command"] = "affseg train wsss " + " ".join(_cli(args))
        weak_rule = method in ("wsss", "cam")
        meta = {
            "format": 2,
            "classes": list(ds.classes),
            "colours": ds.colours.astype(int).tolist(),
            "colours_given": bool(ds.colours_given),
            "num_classes": k,
            "ignore_index": int(ds.ignore_index),
            "method": method,
            "variant": variant,
            "ndd_weights": NDD_WEIGHTS,
            "ndd_sha256": NDD_SHA256,
            "inference": {
                "class_filter": DEFAULT_CLASS_FILTER if weak_rule else None,
                "fuse": DEFAULT_FUSE if weak_rule else 0.0,
                "upsample": "fai",
            },
            "data": {
                "name": dataset_name(ds),
                "layout": ds.layout,
                "root": str(ds.root) if ds.root is not None else None,
                "split": split,
                "num_images": int(report.num_images),
                "images_used": len(items) // 2,
                "fingerprint": fp,
                "supervision": "pixel masks" if not weakly else "image-level tags",
                "val_split": val_split,
                "val_fingerprint": val_fp,
            },
            "val": None
            if record["val"] is None
            else {"split": val_split, "rule": "segmenter alone", **_percent(record["val"])},
            "seed": int(args.seed),
        }
        record["meta"] = meta
        save_blob(out_dir / "weights.pt", method, variant, weak, seg, record, meta)
        write_json(out_dir / "record.json", record)
        if args.ship:
            from affseg.methods.wsss import METHODS, weights_dir

            if variant != "full":
                raise InputError("--ship ships the full variant only")
            if ds.layout != "msrc21":
                raise InputError("--ship replaces the shipped MSRC-21 models: MSRC-21 data only")
            save_blob(weights_dir() / METHODS[method], method, variant, weak, seg, record, meta)
        return record


def _cli(args: argparse.Namespace) -> list[str]:
    keep = ("method", "variant", "seed", "dim", "weak_steps", "seg_steps", "batch", "lr",
            "weight_decay", "dropout", "theta", "mu", "soft_rfp", "ignore_below", "absence_cap",
            "limit", "data", "images", "masks", "classes", "ignore_index", "tags", "split",
            "val_split")  # fmt: skip
    out = []
    for k in keep:
        v = getattr(args, k, None)
        for one in v if isinstance(v, list) else [v]:
            if one is not None:
                out.append(f"--{k.replace('_', '-')} {one}")
    return out


def run(args: argparse.Namespace) -> int:
    """Entry point of ``affseg train wsss``.

    Examples
    --------
    >>> run(args)                  # doctest: +SKIP
    0
    """
    rec = train(args)
    v = rec["val"]
    dest = Path(args.out) / "weights.pt"
    if v is None:
        print(f"no val split scored -> {dest}")
        return 0
    print(
        f"{rec['meta']['data']['val_split']} mIoU {100 * v['miou']:.1f}  global acc "
        f"{100 * v['pixel_accuracy']:.1f}  class acc {100 * v['mean_class_accuracy']:.1f}"
        f"  -> {dest}"
    )
    return 0
