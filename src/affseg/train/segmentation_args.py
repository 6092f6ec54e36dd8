"""Dataset options of the hierarchy trainers (``affseg train ndd``, ``affseg train boundary``).

Both read human segmentations through :func:`affseg.data.segmentations.open_segmentations`:
BSDS500 (the default), a canonical ``images/<split>/`` + ``masks/<split>/`` folder, or pairs
of folders (``--images SPLIT=DIR --masks SPLIT=DIR``; one more ``--masks`` folder for a split
is one more annotator). ``--init`` picks the starting weights: on BSDS500 a run starts from
scratch (the shipped models' recipe), on any other data it fine-tunes the shipped model.

Examples
--------
>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_segmentation_arguments(p)
>>> a = p.parse_args(["--images", "train=t", "--masks", "train=m1", "--masks", "train=m2"])
>>> split_folders(a.masks, "--masks")
{'train': ['m1', 'm2']}
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from affseg.errors import InputError


def add_segmentation_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--data``, ``--images``, ``--masks``, ``--ignore-index``, ``--regions``, ``--init``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_segmentation_arguments(p)
    >>> p.parse_args([]).regions, p.parse_args([]).init
    ('components', 'auto')
    """
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="a folder holding BSDS500/ (the default, from $AFFSEG_DATA), or your own "
        "segmentations: DIR/images/<split>/ + DIR/masks/<split>/ (label maps; one subfolder "
        "per annotator for several)",
    )
    p.add_argument(
        "--images",
        action="append",
        default=None,
        metavar="[SPLIT=]DIR",
        help="pairs of folders: photos of a split (a bare DIR is split train)",
    )
    p.add_argument(
        "--masks",
        action="append",
        default=None,
        metavar="[SPLIT=]DIR",
        help="label maps matched to --images by stem; give a split several folders for "
        "several annotators",
    )
    p.add_argument(
        "--ignore-index",
        type=int,
        default=None,
        metavar="K",
        help="mask value of unlabelled (void) pixels, left out of training and scores",
    )
    add_regions_argument(p)
    p.add_argument(
        "--init",
        default="auto",
        metavar="auto|scratch|shipped|FILE",
        help="starting weights: auto (scratch on BSDS500, the shipped model on your own "
        "data), scratch, shipped, or a weights file (its architecture is used)",
    )


def add_regions_argument(p: argparse.ArgumentParser, context: str = "") -> None:
    """Add ``--regions components|labels`` (how a label map becomes segments).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_regions_argument(p)
    >>> p.parse_args(["--regions", "labels"]).regions
    'labels'
    """
    p.add_argument(
        "--regions",
        choices=("components", "labels"),
        default="components",
        help=context + "a segment is each connected region of a label (default; class masks) "
        "or each label (instance masks)",
    )


def split_folders(
    values: list[str] | None, what: str, default_split: str = "train"
) -> dict[str, list[str]] | None:
    """``[SPLIT=]DIR`` values as ``{split: [folders]}`` (a bare DIR is ``default_split``).

    Examples
    --------
    >>> split_folders(["photos", "val=v"], "--images")
    {'train': ['photos'], 'val': ['v']}
    """
    if not values:
        return None
    out: dict[str, list[str]] = {}
    for v in values:
        name, sep, rest = v.partition("=")
        split_given = sep and name and all(c.isalnum() or c in "_-" for c in name)
        if split_given and not Path(v).exists():
            out.setdefault(name, []).append(rest)
        else:
            out.setdefault(default_split, []).append(v)
    return out


def open_training_segmentations(args: argparse.Namespace, default_split: str = "train") -> Any:
    """The :class:`~affseg.data.segmentations.SegmentationData` named by ``args``.

    Raises
    ------
    InputError
        ``--data`` with ``--images``, a split with several photo folders, options that need
        a layout that was not given.

    Examples
    --------
    >>> ns = argparse.Namespace(data=None, images=None, masks=None, ignore_index=None,
    ...                         regions="components")
    >>> open_training_segmentations(ns).splits          # doctest: +SKIP
    ('train', 'val')
    """
    from affseg.data.segmentations import open_segmentations

    images = split_folders(getattr(args, "images", None), "--images", default_split)
    masks = split_folders(getattr(args, "masks", None), "--masks", default_split)
    if images is not None:
        several = [s for s, f in images.items() if len(f) > 1]
        if several:
            raise InputError(f"split {several[0]!r} is given several --images folders")
    return open_segmentations(
        getattr(args, "data", None),
        images=None if images is None else {s: f[0] for s, f in images.items()},
        masks=masks,
        ignore_index=getattr(args, "ignore_index", None),
        regions=getattr(args, "regions", "components"),
    )


def is_segmentation_layout(data: str | Path | None) -> bool:
    """Whether ``data`` is a folder of your own segmentations (not a BSDS500 root).

    Examples
    --------
    >>> is_segmentation_layout(None)
    False
    """
    if data is None:
        return False
    root = Path(data)
    bsds_root = (root / "BSDS500").is_dir() or (root / "groundTruth").is_dir()
    return not bsds_root and (root / "images").is_dir()


def resolve_init(init: str, is_bsds: bool, shipped: Path) -> Path | None:
    """The weights file a run starts from (None: from scratch).

    Parameters
    ----------
    init : str
        ``auto``, ``scratch``, ``shipped`` or a path (a bare name of a file shipped in
        ``affseg/weights/`` also works).
    is_bsds : bool
        Whether the training data is BSDS500 (``auto`` then means scratch).
    shipped : Path
        The shipped weights file.

    Raises
    ------
    InputError
        A named file that does not exist.

    Examples
    --------
    >>> resolve_init("auto", True, Path("w.pt")) is None
    True
    >>> resolve_init("auto", False, Path("w.pt"))
    PosixPath('w.pt')
    """
    if init == "scratch" or (init == "auto" and is_bsds):
        return None
    if init in ("auto", "shipped"):
        return shipped
    p = Path(init)
    packaged = shipped.parent / p.name
    if not p.is_file() and p.parent == Path(".") and packaged.is_file():
        return packaged
    if not p.is_file():
        raise InputError(f"--init: no weights file at {p}")
    return p
