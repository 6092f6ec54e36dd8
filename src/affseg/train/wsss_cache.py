"""Cache of the frozen inputs of the WSSS heads, one file per dataset split (and flip).

The backbone and the spec-diff-net are fixed, so their outputs are computed once per image
(:func:`affseg.methods.wsss.extract`) and every head then trains in minutes on 2 CPU cores.
``<cache>/<split>.pt`` (``weights_only`` loadable) holds, per image (extracted at the
working resolution of inference: longer side at most
:data:`~affseg.methods.wsss.DEFAULT_WORKING_SIDE`, its full ``full_size`` recorded): the
semantic feature maps ``f8, f16, f32, head`` (float16), the diffusion embedding ``emb``
(N, Ne) and ``tau`` (K_D is rebuilt from them), and the image-level label vector (K,).
Pixel labels are NOT in it: the fully supervised reference reads them from a separate
file, ``<cache>/<split>_pixels.pt`` (:func:`build_pixel_labels`), which the weakly
supervised code never opens.

The images and tags come from a :class:`~affseg.data.segdata.SegDataset` (default: MSRC-v2
in the MSRC-21 vocabulary, :func:`~affseg.data.segdata.open_msrc`), read through its
tags-only view. Every cache file records the split's content fingerprint
(:meth:`~affseg.data.segdata.SegDataset.fingerprint`), the spec-diff-net sha256 and the
image limit; a file whose record differs (a changed image, mask or tags row) is rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.data.io import atomic_write

#: Bump when the content of a cache file changes.
CACHE_VERSION = 2
#: Grid target of a cell without a (majority) class: ignored by the segmenter's loss.
IGNORE_TARGET = -1
#: Keys of one cached item that are tensors.
TENSOR_KEYS = ("f8", "f16", "f32", "head", "emb")


def cache_file(cache: str | os.PathLike[str], split: str, flip: bool = False) -> Path:
    """Path of one split's cache file.

    Examples
    --------
    >>> cache_file("cache", "train", flip=True).name
    'train_flip.pt'
    """
    return Path(cache) / f"{split}{'_flip' if flip else ''}.pt"


def build_cache(
    root: str | os.PathLike[str] | None,
    split: str,
    cache: str | os.PathLike[str],
    *,
    flip: bool = False,
    guides: bool = False,
    limit: int | None = None,
    progress: bool = True,
    items: Any = None,
    dataset: Any = None,
    fingerprint: str | None = None,
) -> Path:
    """Extract and store the frozen inputs of every image of a split (skipped when present).

    Parameters
    ----------
    root : path-like, optional
        Data root holding ``MSRC_v2/`` (used when neither ``dataset`` nor ``items`` is given).
    flip : bool
        Mirror every image (training augmentation).
    guides : bool
        Also keep the interpolation guides ``f2, f4`` (for full-resolution evaluation).
    items : iterable, optional
        ``(id, image, label vector)`` triples to use instead of
        those of the dataset (tests).
    dataset : SegDataset, optional
        The dataset (its images and tags only: read through ``tags_only(split)``).
    fingerprint : str, optional
        The split's fingerprint (default: computed from ``dataset``); a cache file made
        from another fingerprint is rebuilt.

    Examples
    --------
    >>> build_cache(None, "val", "runs/wsss/cache", guides=True)   # doctest: +SKIP
    PosixPath('runs/wsss/cache/val.pt')
    """
    from tqdm import tqdm

    from affseg.methods.wsss import (
        DEFAULT_WORKING_SIDE,
        NDD_SHA256,
        extract,
        pinned_ndd,
        working_rgb,
    )

    if items is None and dataset is None:
        from affseg.data.segdata import open_msrc

        dataset = open_msrc(root)
    if dataset is not None and fingerprint is None:
        fingerprint = dataset.fingerprint(split)
    key = {"version": CACHE_VERSION, "ndd_sha256": NDD_SHA256, "fingerprint": fingerprint,
           "limit": limit, "working_side": DEFAULT_WORKING_SIDE}  # fmt: skip
    path = cache_file(cache, split, flip)
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if all(blob.get(k) == v for k, v in key.items()):
            return path
    ndd = pinned_ndd()
    if items is None:
        weak = dataset.tags_only(split)
        stems = weak.stems(split)[: None if limit is None else max(int(limit), 0)]
        n = len(stems)
        k = weak.num_classes

        def dataset_items() -> Any:
            for stem in stems:
                lab = np.zeros(k, np.float32)
                lab[list(weak.tags(split, stem))] = 1.0
                yield stem, weak.image(split, stem), lab

        items = dataset_items()
    else:
        items = list(items)
        n = len(items)
    out: list[dict[str, Any]] = []
    for image_id, image, labels in tqdm(
        items, total=n, desc=f"cache {split}{' flip' if flip else ''}", disable=not progress
    ):
        # at the bounded working resolution of inference: any photo size trains
        r = extract(working_rgb(image, DEFAULT_WORKING_SIDE), ndd, flip=flip)
        item = {k: r[k] for k in TENSOR_KEYS}
        if guides:
            item.update(f2=r["f2"], f4=r["f4"])
        item.update(
            id=str(image_id),
            tau=float(r["tau"]),
            grid=list(r["grid"]),
            size=list(r["size"]),
            full_size=[int(image.shape[0]), int(image.shape[1])],
            labels=torch.as_tensor(np.asarray(labels, dtype=np.float32)),
        )
        out.append(item)
    blob = {**key, "split": split, "items": out}
    Path(cache).mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def load_cache(cache: str | os.PathLike[str], split: str, flip: bool = False) -> list[dict]:
    """The items of a cache file (see :func:`build_cache`).

    Examples
    --------
    >>> items = load_cache("runs/wsss/cache", "val")   # doctest: +SKIP
    >>> items[0]["grid"]                               # doctest: +SKIP
    [26, 40]
    """
    blob = torch.load(cache_file(cache, split, flip), map_location="cpu", weights_only=True)
    return list(blob["items"])


def grid_vote(
    mask: np.ndarray, grid: tuple[int, int], num_classes: int, min_frac: float = 0.5
) -> np.ndarray:
    """Reduce an (H, W) class-index mask (0..K-1; other values ignored) to the feature grid.

    The image is cut into h x w cells (the grid of the snapped size covers the whole image);
    a cell gets its most frequent class (the smallest index on ties) when at least
    ``min_frac`` of its pixels are labelled, else :data:`IGNORE_TARGET` (-1). Memory is
    independent of K (any K up to 65535).

    Examples
    --------
    >>> grid_vote(np.array([[0, 0, 255, 255], [0, 1, 255, 255]]), (1, 2), 2)
    array([[ 0, -1]])
    """
    m = np.asarray(mask, dtype=np.int64)
    k = int(num_classes)
    h, w = int(grid[0]), int(grid[1])
    ys = np.minimum((np.arange(m.shape[0]) * h) // m.shape[0], h - 1)
    xs = np.minimum((np.arange(m.shape[1]) * w) // m.shape[1], w - 1)
    cells = (ys[:, None] * w + xs[None, :]).ravel()
    flat = m.ravel()
    lab = (flat >= 0) & (flat < k)
    n = h * w
    total = np.bincount(cells, minlength=n)
    labelled = np.bincount(cells[lab], minlength=n)
    keys, counts = np.unique(cells[lab] * k + flat[lab], return_counts=True)
    cell_of, class_of = keys // k, keys % k
    order = np.lexsort((-counts, cell_of))  # by cell, then count descending (stable: class)
    first = order[np.r_[True, cell_of[order][1:] != cell_of[order][:-1]]] if len(order) else order
    best = np.full(n, IGNORE_TARGET, np.int64)
    best[cell_of[first]] = class_of[first]
    out = np.where(labelled / np.maximum(total, 1) >= min_frac, best, IGNORE_TARGET)
    return out.reshape(h, w).astype(np.int64)


def grid_majority(classes: np.ndarray, grid: tuple[int, int], min_frac: float = 0.5) -> np.ndarray:
    """:func:`grid_vote` of an MSRC-21 id map (0 = void, 1..21): ids 1..21, 255 = ignored.

    Examples
    --------
    >>> grid_majority(np.array([[1, 1, 0, 0], [1, 2, 0, 0]]), (1, 2))
    array([[  1, 255]])
    """
    from affseg.data.msrc import NUM_CLASSES_21

    c = np.asarray(classes, dtype=np.int64) - 1  # void -> -1 (ignored)
    v = grid_vote(c, grid, NUM_CLASSES_21, min_frac)
    return np.where(v < 0, 255, v + 1).astype(np.int64)


def build_pixel_labels(
    root: str | os.PathLike[str] | None,
    split: str,
    cache: str | os.PathLike[str],
    *,
    flip: bool = False,
    reader: Callable[..., np.ndarray] | None = None,
    dataset: Any = None,
    fingerprint: str | None = None,
) -> Path:
    """Ground-truth maps on the grid for the fully supervised reference ONLY.

    Writes ``<cache>/<split>[_flip]_pixels.pt``: ``{"labels": {id: int64 (h, w)}, ...}``
    with class indices 0..K-1 and -1 = ignored (:func:`grid_vote`), aligned with the items
    of :func:`build_cache`; rebuilt when the split's fingerprint changes.

    Parameters
    ----------
    root : path-like, optional
        Data root holding ``MSRC_v2/`` (when no ``dataset`` is given).
    reader : callable, optional
        ``reader(root, split, id, msrc21=True)`` -> MSRC-21 id map (0 = void), instead of
        the dataset's masks (tests).
    dataset : SegDataset, optional
        The dataset whose masks are read (default :func:`~affseg.data.segdata.open_msrc`).
    fingerprint : str, optional
        The split's fingerprint (default: computed from the dataset).

    Examples
    --------
    >>> build_pixel_labels(None, "train", "runs/wsss/cache")   # doctest: +SKIP
    PosixPath('runs/wsss/cache/train_pixels.pt')
    """
    path = Path(cache) / f"{split}{'_flip' if flip else ''}_pixels.pt"
    if reader is None and dataset is None:
        from affseg.data.segdata import open_msrc

        dataset = open_msrc(root)
    if dataset is not None and fingerprint is None:
        fingerprint = dataset.fingerprint(split)
    key = {"version": CACHE_VERSION, "fingerprint": fingerprint}
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if all(blob.get(k) == v for k, v in key.items()):
            return path
    labels = {}
    for item in load_cache(cache, split, flip):
        grid = (int(item["grid"][0]), int(item["grid"][1]))
        if reader is not None:
            gt = np.asarray(reader(root, split, item["id"], msrc21=True), np.int64) - 1
            k = len(item["labels"])
        else:
            gt, k = dataset.mask(split, item["id"]), dataset.num_classes
        if flip:
            gt = gt[:, ::-1]
        labels[item["id"]] = torch.from_numpy(grid_vote(gt, grid, k))
    blob = {**key, "split": split, "labels": labels}
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))
