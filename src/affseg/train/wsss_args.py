"""The options of ``affseg train wsss`` and the dataset they name.

:func:`add_arguments` (all options of ``affseg train wsss``) and
:func:`add_data_arguments` (the dataset options, shared with ``affseg train refine``);
:func:`open_data` opens the dataset they name (:mod:`affseg.data.segdata`),
:func:`scored_split` picks the split scored after training, :func:`command_line` writes the
options back as the command recorded with a run.

Examples
--------
>>> import argparse
>>> from affseg.train.wsss_args import add_arguments, command_line
>>> p = argparse.ArgumentParser()
>>> add_arguments(p)
>>> command_line(p.parse_args(["--seed", "3"]))[:3]
['--method wsss', '--variant full', '--seed 3']
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from affseg.errors import InputError
from affseg.train.wsss_stages import ABSENCE_CAP

VARIANTS = ("full", "no-rfp", "no-share")


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


def scored_split(ds: Any, args: argparse.Namespace) -> str | None:
    """The split scored after training (None: none), from ``--val-split``.

    Default: ``val`` when the dataset has it with masks and does not train on it;
    ``none``: no split.

    Raises
    ------
    InputError
        A split the dataset lacks, or one without masks.

    Examples
    --------
    >>> ds = argparse.Namespace(splits=lambda: ["train", "val"], has_masks=lambda s: True)
    >>> scored_split(ds, argparse.Namespace(val_split=None, split="train"))
    'val'
    >>> scored_split(ds, argparse.Namespace(val_split="none", split="train")) is None
    True
    """
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


def command_line(args: argparse.Namespace) -> list[str]:
    """The options of a run as command-line words (recorded with the run's weights).

    Examples
    --------
    >>> command_line(argparse.Namespace(method="cam", seed=1, images=["train=a", "val=b"]))
    ['--method cam', '--seed 1', '--images train=a', '--images val=b']
    """
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
