"""Hungarian pixel accuracy: the best one-to-one matching of segments to reference regions.

Used on BSDS500 where segments carry no class names: for each annotator the contingency
table is zero-padded to a square, ``scipy.optimize.linear_sum_assignment`` finds the
matching of largest total overlap, and the accuracy is matched pixels / N (pixels of
unmatched segments count as wrong). Scores are averaged over annotators.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from affseg.errors import InputError
from affseg.metrics.contingency import contingency_table


def hungarian_matched(table: np.ndarray) -> float:
    """Pixels on the maximum-weight one-to-one matching of a contingency table.

    Equal to the value of ``linear_sum_assignment`` on the table zero-padded to a square
    (padding adds nothing), but cheaper: when the larger side's best partners of the
    smaller side are all distinct that matching is optimal; otherwise only the ``m`` best
    rows of each of the ``m`` columns can take part in some optimal matching (of ``m``
    rows at least one is free for any column), so the assignment runs on those alone.

    Parameters
    ----------
    table : ndarray, shape (K, M), non-negative

    Returns
    -------
    float
        The matched pixel count.

    Examples
    --------
    >>> import numpy as np
    >>> hungarian_matched(np.array([[4, 0], [2, 2]]))
    6.0
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise InputError(f"a contingency table must be 2-D; got shape {t.shape}")
    if t.size == 0:
        return 0.0
    if t.shape[0] < t.shape[1]:
        t = t.T
    k, m = t.shape
    best = t.argmax(axis=0)  # (M,)
    if np.bincount(best, minlength=k).max() <= 1:
        return float(t[best, np.arange(m)].sum())
    if k > m:
        cand = np.unique(np.argpartition(-t, m - 1, axis=0)[:m])
        t = t[cand]
    rows, cols = linear_sum_assignment(t, maximize=True)
    return float(t[rows, cols].sum())


def hungarian_accuracy(seg: np.ndarray, ground_truths: list[np.ndarray]) -> float:
    """Hungarian pixel accuracy of one segmentation, mean over annotators.

    Parameters
    ----------
    seg : ndarray, shape (H, W), integer labels
    ground_truths : list of ndarray, each (H, W), integer labels

    Returns
    -------
    float
        In [0, 1].

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching" (Hungarian-matched pixel accuracy on BSDS500).

    Examples
    --------
    >>> import numpy as np
    >>> seg = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> gt = np.array([[1, 1, 1, 2], [1, 1, 1, 2]])
    >>> hungarian_accuracy(seg, [gt])
    0.75
    """
    if len(ground_truths) == 0:
        raise InputError("the ground-truth list is empty")
    seg = np.asarray(seg)
    scores = []
    for gt in ground_truths:
        gt = np.asarray(gt)
        if gt.shape != seg.shape:
            raise InputError(f"segmentation has shape {seg.shape} but ground truth has {gt.shape}")
        scores.append(hungarian_matched(contingency_table(seg, gt)) / seg.size)
    return float(np.mean(scores))
