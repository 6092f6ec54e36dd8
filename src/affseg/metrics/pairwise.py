"""Pairwise accuracy, precision and recall over pixel pairs (deep spectral clustering).

A pair of distinct pixels is *positive* when both lie in one segment. Against the
reference partition this gives TP/FP/FN/TN counts over all ``C(N, 2)`` unordered pairs,
computed exactly from the contingency table ``n`` (never N^2 memory):
``TP = sum_ij C(n_ij, 2)``, predicted positives ``sum_i C(a_i, 2)``, reference positives
``sum_j C(b_j, 2)`` with ``a``, ``b`` the row and column sums.
"""

from __future__ import annotations

import numpy as np

from affseg.errors import InputError
from affseg.metrics.contingency import contingency_table


def _pairs(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float((x * (x - 1) / 2).sum())


def pairwise_scores(
    seg: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> dict[str, float]:
    """Pairwise accuracy, precision, recall and F-measure of a segmentation.

    Parameters
    ----------
    seg, gt : ndarray, shape (H, W), integer labels
    ignore : ndarray of bool, shape (H, W), optional
        Pixels left out (e.g. void); pairs touching them are not counted.

    Returns
    -------
    dict
        ``accuracy`` (TP + TN) / C(N, 2), ``precision`` TP / (TP + FP), ``recall``
        TP / (TP + FN), ``f1``, and the counts ``tp``, ``fp``, ``fn``, ``tn``. A ratio
        with an empty denominator is 1.0 (nothing to get wrong).

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018 (pairwise accuracy, precision and recall).

    Examples
    --------
    >>> import numpy as np
    >>> seg = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> gt = np.array([[1, 1, 1, 2], [1, 1, 1, 2]])
    >>> s = pairwise_scores(seg, gt)
    >>> round(s["accuracy"], 4), round(s["precision"], 4), s["recall"]
    (0.5714, 0.6667, 0.5)
    """
    seg = np.asarray(seg)
    gt = np.asarray(gt)
    if seg.shape != gt.shape:
        raise InputError(f"segmentation has shape {seg.shape} but ground truth has {gt.shape}")
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != seg.shape:
            raise InputError(f"ignore mask has shape {ignore.shape}; expected {seg.shape}")
        seg, gt = seg[~ignore], gt[~ignore]
    n = seg.size
    if n < 2:
        raise InputError("pairwise scores need at least two (non-ignored) pixels")
    table = contingency_table(seg, gt)
    tp = _pairs(table)
    pred = _pairs(table.sum(axis=1))
    ref = _pairs(table.sum(axis=0))
    total = n * (n - 1) / 2
    fp, fn = pred - tp, ref - tp
    tn = total - tp - fp - fn
    precision = tp / pred if pred > 0 else 1.0
    recall = tp / ref if ref > 0 else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "accuracy": (tp + tn) / total,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
