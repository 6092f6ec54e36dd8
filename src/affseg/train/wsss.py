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

The options and the dataset they name are :mod:`affseg.train.wsss_args` (its
:func:`~affseg.train.wsss_args.add_arguments` is this trainer's, as ``affseg train``
expects of ``affseg.train.<module>``); the sampling pools and the training loop of both
stages are :mod:`affseg.train.wsss_stages`. This module runs them: :func:`train` (caches,
stages, pseudo labels, scores, weights file), :func:`prepare_caches`, :func:`save_blob`,
:func:`run`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from affseg.data.io import atomic_write, write_json
from affseg.errors import InputError
from affseg.evaluation.semantic import evaluate, pseudo_label_score
from affseg.runtime import torch_threads
from affseg.train.wsss_args import add_arguments as add_arguments  # the trainer protocol
from affseg.train.wsss_args import command_line, dataset_name, open_data, scored_split
from affseg.train.wsss_stages import Pool, run_stage, seg_step, weak_model, weak_pool, weak_step


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
    val_split = scored_split(ds, args)
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
        record["command"] = "affseg train wsss " + " ".join(command_line(args))
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
