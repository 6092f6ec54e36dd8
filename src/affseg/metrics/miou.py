"""Mean intersection-over-union for semantic segmentation (MSRC, VOC), void ignored.

Streaming like a torchmetrics metric: :meth:`MeanIoU.update` accumulates a
``(C, C)`` confusion matrix over images, :meth:`MeanIoU.compute` reads the scores off it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affseg.errors import InputError


class MeanIoU:
    """Confusion-matrix mIoU, per-class IoU and pixel accuracy.

    Parameters
    ----------
    num_classes : int
        C; class ids are 0..C-1.
    ignore_index : int or None
        Target value of void pixels (default 255); they count nowhere.

    Notes
    -----
    IoU_c = TP_c / (TP_c + FP_c + FN_c) over all updates; mIoU averages the classes that
    occur in the target or the prediction (others are NaN in ``per_class`` and left out).
    Pixel accuracy = correct / non-void pixels. A prediction outside 0..C-1 on a non-void
    pixel is an error (InputError).

    Examples
    --------
    >>> import numpy as np
    >>> m = MeanIoU(num_classes=2)
    >>> m.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    >>> r = m.compute()
    >>> r["miou"], r["per_class"].tolist()
    (0.5, [0.5, 0.5])
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if int(num_classes) < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Clear the confusion matrix."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add one image (or a batch).

        Parameters
        ----------
        pred : array-like of int, shape (H, W) or (B, H, W)
            Predicted class ids (a torch tensor is accepted).
        target : array-like of int, same shape
            True class ids; ``ignore_index`` marks void.
        """
        p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred)
        t = np.asarray(target.detach().cpu() if hasattr(target, "detach") else target)
        if p.shape != t.shape:
            raise InputError(f"prediction has shape {p.shape} but target has {t.shape}")
        for name, a in (("prediction", p), ("target", t)):
            if not np.issubdtype(a.dtype, np.integer):
                raise InputError(f"{name} must hold integer class ids; got dtype {a.dtype}")
        p = p.astype(np.int64).ravel()
        t = t.astype(np.int64).ravel()
        if self.ignore_index is not None:
            valid = t != self.ignore_index
            p, t = p[valid], t[valid]
        c = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= c):
            raise InputError(f"target holds class ids outside 0..{c - 1} (and not void)")
        if p.size and (p.min() < 0 or p.max() >= c):
            raise InputError(f"prediction holds class ids outside 0..{c - 1}")
        self.confusion += np.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def compute(self) -> dict[str, Any]:
        """Scores over every update since :meth:`reset`.

        Returns
        -------
        dict
            ``miou`` (float), ``per_class`` (ndarray (C,), NaN for absent classes),
            ``pixel_accuracy`` (float), ``mean_class_accuracy`` (float, over classes
            present in the target).
        """
        cm = self.confusion.astype(np.float64)
        if cm.sum() == 0:
            raise InputError("no (non-void) pixels were scored: call update() first")
        tp = np.diag(cm)
        gt = cm.sum(axis=1)
        pr = cm.sum(axis=0)
        union = gt + pr - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            class_acc = np.where(gt > 0, tp / gt, np.nan)
        return {
            "miou": float(np.nanmean(iou)),
            "per_class": iou,
            "pixel_accuracy": float(tp.sum() / cm.sum()),
            "mean_class_accuracy": float(np.nanmean(class_acc)),
        }
