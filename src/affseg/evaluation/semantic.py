"""Semantic segmentation scores: mIoU, accuracies and confusion of class-index maps.

:class:`SegScore` accumulates the confusion matrix of (H, W) class-index predictions against
ground-truth masks of any class list (an ignore index outside 0..K-1 is skipped);
:class:`SemanticScore` is the same in the MSRC-21 id convention. :func:`evaluate` scores a
trained segmentation head on the cached items of a split (``affseg train wsss`` reports it
as the val mIoU); :func:`pseudo_label_score` and :func:`score_pseudo_maps` score the pseudo
labels of a weak network (a diagnostic on val). The inference helpers come from
:mod:`affseg.methods.wsss` (imported when called: the scores themselves need no torch).

Examples
--------
>>> import numpy as np
>>> s = SegScore(["sky", "grass"])
>>> s.update(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]))
>>> r = s.compute()
>>> round(r["miou"], 4), r["pixel_accuracy"], r["confusion"]
(0.5833, 0.75, [[1, 0], [1, 2]])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from affseg.errors import InputError

if TYPE_CHECKING:
    import torch


def _as_dataset(root: Any) -> Any:
    """A SegDataset as it is, else MSRC-v2 (MSRC-21) under the data root ``root``."""
    from affseg.data.segdata import SegDataset, open_msrc

    return root if isinstance(root, SegDataset) else open_msrc(root)


def evaluate(
    seg: torch.nn.Module,
    items: list[dict[str, Any]],
    root: Any,
    split: str,
    mode: str = "fai",
    predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """mIoU / accuracies of a segmenter on cached items of an evaluation split.

    ``root``: a :class:`~affseg.data.segdata.SegDataset` whose masks are the ground truth
    (class indices in the segmenter's order), or the data root of MSRC-v2 (MSRC-21).

    Examples
    --------
    >>> evaluate(seg, load_cache("runs/wsss/cache", "val"), None, "val")["miou"]  # doctest: +SKIP
    0.71...
    """
    from affseg.methods.wsss import segment_item

    ds = _as_dataset(root)
    acc = SegScore(ds.classes)
    for it in items:
        pred = segment_item(seg, it, mode=mode, size=it.get("full_size"))
        if predictions is not None:
            predictions[it["id"]] = pred
        acc.update(pred, ds.mask(split, it["id"]))
    return acc.compute()


def pseudo_label_score(
    weak: torch.nn.Module, kind: str, items: list[dict[str, Any]], root: Any, split: str
) -> dict[str, Any]:
    """Quality of pseudo labels made on an evaluation split (with its image-level labels).

    The grid scores of :func:`affseg.methods.wsss.class_scores`, restricted to the image's
    classes, are brought to full resolution (feature-attentional interpolation) and their
    argmax is scored against the split's ground truth (a diagnostic on val, never on train).

    Examples
    --------
    >>> pseudo_label_score(weak, "wsss", val_items, None, "val")["miou"]  # doctest: +SKIP
    0.80...
    """
    import torch

    from affseg.methods.wsss import class_scores

    with torch.no_grad():
        maps = class_scores(weak, kind, items)
        return score_pseudo_maps(maps, kind, items, root, split)


def score_pseudo_maps(
    scores: list[torch.Tensor], kind: str, items: list[dict[str, Any]], root: Any, split: str
) -> dict[str, Any]:
    """Scores of the pseudo-label rule applied to per-item class scores (N, C).

    The scores (e.g. of :func:`affseg.methods.wsss.class_scores`, or an average of several
    networks' scores) are restricted to each image's known classes, brought to full
    resolution and their argmax scored against the split's ground truth (``root``: a
    SegDataset, or the data root of MSRC-v2).

    Examples
    --------
    >>> maps = class_scores(weak, "wsss", val)                 # doctest: +SKIP
    >>> score_pseudo_maps(maps, "wsss", val, None, "val")      # doctest: +SKIP
    """
    from affseg.methods.wsss import restrict, upsample_probs, upsampled_argmax

    ds = _as_dataset(root)
    acc = SegScore(ds.classes)
    for it, s in zip(items, scores, strict=True):
        lab = it["labels"].float()
        s = restrict(s + 1e-6, lab) if kind == "cam" else restrict(s, lab)
        grid = tuple(int(v) for v in it["grid"])
        up = upsample_probs(s.t().reshape(-1, *grid), it)
        gt = ds.mask(split, it["id"])
        if tuple(gt.shape) == tuple(up.shape[1:]):
            acc.update(up.argmax(0).numpy(), gt)
        else:  # an item extracted at the working resolution of a larger image
            acc.update(upsampled_argmax(up, (int(gt.shape[0]), int(gt.shape[1]))), gt)
    return acc.compute()


class SegScore:
    """Dataset-level scores of (H, W) class-index predictions (0..K-1) against masks.

    Mask values outside 0..K-1 (the ignore index) are ignored. :meth:`compute` gives
    ``miou``, ``pixel_accuracy`` (global), ``mean_class_accuracy`` (fractions),
    ``per_class`` (IoU by class name; None for a class absent from both) and
    ``confusion`` (K x K pixel counts, rows = ground truth).

    Parameters
    ----------
    classes : sequence of str
        Class names, index = class index.

    Examples
    --------
    >>> s = SegScore(["sky", "road", "car"])
    >>> s.update(np.array([[0, 1, 1]]), np.array([[0, 1, 255]]))
    >>> r = s.compute()
    >>> r["miou"], r["per_class"]["car"], r["confusion"][1]
    (1.0, None, [0, 1, 0])
    """

    def __init__(self, classes: Any) -> None:
        self.classes = tuple(str(c) for c in classes)
        k = len(self.classes)
        self.confusion = np.zeros((k, k), np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image (pred and gt class indices; gt outside 0..K-1 ignored)."""
        p = np.asarray(pred).astype(np.int64, copy=False)
        g = np.asarray(gt).astype(np.int64, copy=False)
        if p.shape != g.shape:
            raise InputError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
        k = len(self.classes)
        keep = (g >= 0) & (g < k)
        if p[keep].size and (p[keep].min() < 0 or p[keep].max() >= k):
            raise InputError(f"predicted class index outside 0..{k - 1}")
        self.confusion += np.bincount(g[keep] * k + p[keep], minlength=k * k).reshape(k, k)

    def compute(self) -> dict[str, Any]:
        """``miou``, ``pixel_accuracy``, ``mean_class_accuracy``, ``per_class``, ``confusion``."""
        c = self.confusion.astype(np.float64)
        tp = np.diag(c)
        gt, pr = c.sum(1), c.sum(0)
        union = gt + pr - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(gt > 0, tp / gt, np.nan)
        total = c.sum()
        return {
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "mean_class_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else
            float("nan"),
            "per_class": {n: (None if np.isnan(v) else float(v))
                          for n, v in zip(self.classes, iou, strict=True)},
            "confusion": self.confusion.tolist(),
        }  # fmt: skip


class SemanticScore(SegScore):
    """:class:`SegScore` of MSRC-21 in its id convention: pred ids 1..21, gt 0 = void.

    Examples
    --------
    >>> s = SemanticScore()
    >>> s.update(np.array([[1, 2]]), np.array([[1, 0]]))
    >>> s.compute()["pixel_accuracy"]
    1.0
    """

    def __init__(self) -> None:
        from affseg.data.msrc import MSRC21_CLASS_NAMES

        super().__init__(MSRC21_CLASS_NAMES[1:])

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image (pred ids 1..21; gt MSRC-21 ids, 0 = void)."""
        g = np.asarray(gt).astype(np.int64) - 1
        super().update(np.asarray(pred).astype(np.int64) - 1, g)
