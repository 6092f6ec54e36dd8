"""Cache of the frozen inputs of the WSSS heads, one file per MSRC split (and flip).

The backbone and the spec-diff-net are fixed, so their outputs are computed once per image
(:func:`affseg.methods.wsss.extract`) and every head then trains in minutes on 2 CPU cores.
``<cache>/<split>.pt`` (``weights_only`` loadable) holds, per image: the semantic feature
maps ``f8, f16, f32, head`` (float16), the diffusion embedding ``emb`` (N, Ne) and ``tau``
(K_D is rebuilt from them), and the image-level label vector (21,). Pixel labels are NOT
in it: the fully supervised reference reads them from a separate file,
``<cache>/<split>_pixels.pt`` (:func:`build_pixel_labels`), which the weakly supervised
code never opens.
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
CACHE_VERSION = 1
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
) -> Path:
    """Extract and store the frozen inputs of every image of a split (skipped when present).

    Parameters
    ----------
    root : path-like, optional
        Data root holding ``MSRC_v2/``.
    flip : bool
        Mirror every image (training augmentation).
    guides : bool
        Also keep the interpolation guides ``f2, f4`` (for full-resolution evaluation).
    items : iterable, optional
        ``(id, image, label vector)`` triples to use instead of
        :func:`affseg.data.msrc.weak_items` (tests).

    Examples
    --------
    >>> build_cache(None, "val", "runs/wsss/cache", guides=True)   # doctest: +SKIP
    PosixPath('runs/wsss/cache/val.pt')
    """
    from tqdm import tqdm

    from affseg.data.msrc import list_split, weak_items
    from affseg.methods.wsss import NDD_SHA256, extract, pinned_ndd

    path = cache_file(cache, split, flip)
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("version") == CACHE_VERSION and blob.get("ndd_sha256") == NDD_SHA256:
            return path
    ndd = pinned_ndd()
    if items is None:
        n = len(list_split(root, split)) if limit is None else limit
        items = weak_items(root, split, limit)
    else:
        items = list(items)
        n = len(items)
    out: list[dict[str, Any]] = []
    for image_id, image, labels in tqdm(
        items, total=n, desc=f"cache {split}{' flip' if flip else ''}", disable=not progress
    ):
        r = extract(image, ndd, flip=flip)
        item = {k: r[k] for k in TENSOR_KEYS}
        if guides:
            item.update(f2=r["f2"], f4=r["f4"])
        item.update(
            id=str(image_id),
            tau=float(r["tau"]),
            grid=list(r["grid"]),
            size=list(r["size"]),
            labels=torch.as_tensor(np.asarray(labels, dtype=np.float32)),
        )
        out.append(item)
    blob = {"version": CACHE_VERSION, "ndd_sha256": NDD_SHA256, "split": split, "items": out}
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


def grid_majority(classes: np.ndarray, grid: tuple[int, int], min_frac: float = 0.5) -> np.ndarray:
    """Reduce an (H, W) MSRC-21 class map (0 = void) to the (h, w) feature grid.

    The image is cut into h x w cells (the grid of the snapped size covers the whole image);
    a cell gets its most frequent non-void class when at least ``min_frac`` of its pixels
    are labelled, else 255 (ignored).

    Examples
    --------
    >>> grid_majority(np.array([[1, 1, 0, 0], [1, 2, 0, 0]]), (1, 2))
    array([[  1, 255]])
    """
    from affseg.data.msrc import NUM_CLASSES_21

    c = np.asarray(classes, dtype=np.int64)
    h, w = grid
    ys = np.minimum((np.arange(c.shape[0]) * h) // c.shape[0], h - 1)
    xs = np.minimum((np.arange(c.shape[1]) * w) // c.shape[1], w - 1)
    cell = ys[:, None] * w + xs[None, :]
    hist = np.zeros((h * w, NUM_CLASSES_21 + 1), dtype=np.int64)
    np.add.at(hist, (cell.ravel(), c.ravel()), 1)
    total = hist.sum(1)
    best = hist[:, 1:].argmax(1) + 1
    frac = hist[:, 1:].sum(1) / np.maximum(total, 1)
    out = np.where(frac >= min_frac, best, 255)
    return out.reshape(h, w).astype(np.int64)


def build_pixel_labels(
    root: str | os.PathLike[str] | None,
    split: str,
    cache: str | os.PathLike[str],
    *,
    flip: bool = False,
    reader: Callable[..., np.ndarray] | None = None,
) -> Path:
    """Ground-truth maps on the grid for the fully supervised reference ONLY.

    Writes ``<cache>/<split>[_flip]_pixels.pt``: ``{id: int64 (h, w)}`` (255 = ignore),
    aligned with the items of :func:`build_cache`.

    Examples
    --------
    >>> build_pixel_labels(None, "train", "runs/wsss/cache")   # doctest: +SKIP
    PosixPath('runs/wsss/cache/train_pixels.pt')
    """
    from affseg.data.msrc import load_ground_truth

    read = load_ground_truth if reader is None else reader
    path = Path(cache) / f"{split}{'_flip' if flip else ''}_pixels.pt"
    if path.is_file():
        return path
    labels = {}
    for item in load_cache(cache, split, flip):
        gt = read(root, split, item["id"], msrc21=True)
        if flip:
            gt = gt[:, ::-1]
        labels[item["id"]] = torch.from_numpy(grid_majority(gt, tuple(item["grid"])))
    return atomic_write(path, lambda tmp: torch.save(labels, tmp))
