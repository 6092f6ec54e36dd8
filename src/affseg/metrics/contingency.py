"""Contingency tables of two labelings, and the helpers that build them fast.

Every partition metric in :mod:`affseg.metrics` (covering, PRI, VI, Hungarian and
pairwise accuracy) is a function of the contingency table ``n[i, j] = |S_i n G_j|`` of a
segmentation S and a reference G, so it is computed once and shared.
"""

from __future__ import annotations

import numpy as np

from affseg.errors import InputError


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel any integer map to 0..K-1 (order of the original label values).

    Parameters
    ----------
    labels : ndarray, any shape, integer dtype

    Returns
    -------
    compact : ndarray, same shape, int64
    n : int
        K, the number of distinct labels.

    Examples
    --------
    >>> import numpy as np
    >>> lab, n = compact_labels(np.array([5, 9, 5]))
    >>> lab.tolist(), n
    ([0, 1, 0], 2)
    """
    a = np.asarray(labels)
    if a.size == 0:
        raise InputError("a label map is empty")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        if np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0):
            a = a.astype(np.int64)
        else:
            raise InputError(f"a label map must hold integers; got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    lo, hi = int(a.min()), int(a.max())
    if hi - lo < 4 * a.size + 1024:  # dense range: a lookup table beats sorting
        shifted = a - lo
        present = np.bincount(shifted.ravel(), minlength=hi - lo + 1) > 0
        lut = np.cumsum(present) - 1
        return lut[shifted], int(present.sum())
    uniq, inv = np.unique(a, return_inverse=True)
    return inv.reshape(a.shape), int(uniq.size)


def contingency_table(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Dense contingency table of two label maps of the same shape.

    Parameters
    ----------
    seg, gt : ndarray, same shape (H, W) (or any shape), integer labels

    Returns
    -------
    ndarray, shape (K_seg, K_gt), int64
        ``n[i, j]`` = number of pixels with the i-th smallest label of ``seg`` and the
        j-th smallest label of ``gt``.

    Examples
    --------
    >>> import numpy as np
    >>> contingency_table(np.array([1, 1, 2, 2]), np.array([1, 1, 1, 2])).tolist()
    [[2, 0], [1, 1]]
    """
    seg = np.asarray(seg)
    gt = np.asarray(gt)
    if seg.shape != gt.shape:
        raise InputError(f"label maps differ in shape: {seg.shape} vs {gt.shape}")
    s, ns = compact_labels(seg)
    g, ng = compact_labels(gt)
    return np.bincount((s * ng + g).ravel(), minlength=ns * ng).reshape(ns, ng)
