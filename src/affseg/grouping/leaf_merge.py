"""The merge of the leaf grouping: touching regions joined, closest pair first, to one.

:func:`merge_leaves` merges regions by ``1 - K``, where K is the border-length weighted
mean K_D of the touching leaf pairs along the shared border ("border"), the exact average
K_D over the two regions ("average": ``M^T K M`` sums add up on merges), or a mix of both
("mixed"), plus optional border terms (colour contrast, edge strength, a learned boundary
map) and a size prior; the loop is :func:`affseg.grouping.leaf_kernels.merge_dense`.

How its engine differs from the other greedy merges
(:func:`affseg.grouping.region_merging.greedy_merge`,
:func:`affseg.grouping.label_merging.merge_adjacent`) is said in
:mod:`affseg.grouping.leaf_kernels`.

Example
-------
>>> import numpy as np
>>> merges, heights = merge_leaves(None, np.ones(3), np.array([0, 1]), np.array([1, 2]),
...                                pair_k=np.array([0.9, 0.2]))
>>> merges.tolist()
[[0, 1], [0, 2]]
"""

from __future__ import annotations

import numpy as np

from affseg.errors import InputError
from affseg.grouping.leaf_kernels import merge_dense

LINKAGES = ("border", "average", "mixed")


def merge_leaves(
    pair_sums: np.ndarray | None,
    mass: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    pair_k: np.ndarray | None = None,
    length: np.ndarray | None = None,
    contrast: np.ndarray | None = None,
    boundary_weight: float = 0.0,
    linkage: str = "border",
    small: float = 0.0,
    mix: float = 0.5,
    overwrite_sums: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy average-linkage merging of adjacent leaves down to one region.

    Distance of two touching regions: ``(1 - w) (1 - sums[a, b] / (mass[a] mass[b])) + w
    contrast[a, b] / length[a, b]``; after a merge, kernel sums, masses, border lengths and
    contrasts add up (exact average linkage). The lowest-distance pair merges first (ties:
    lowest indices); heights are made non-decreasing.

    Parameters
    ----------
    pair_sums : ndarray, shape (S, S), optional
        ``M^T K M`` (needed by the "average" and "mixed" linkages).
    mass : ndarray, shape (S,)
        ``M.sum(0)``.
    a, b : ndarray, shape (P,)
        Touching leaf pairs (0-based, each pair once).
    pair_k : ndarray, shape (P,), optional
        Average K_D of each touching leaf pair (default: from ``pair_sums``).
    length, contrast : ndarray, shape (P,), optional
        Border lengths and summed contrasts (needed when ``boundary_weight > 0``).
    boundary_weight : float
        w in [0, 1].
    linkage : {"border", "average", "mixed"}
        K of two regions: border-length weighted mean of the touching leaf pairs' K_D,
        exact average K_D (needs ``pair_sums``), or ``(1 - mix) border + mix average``.
    small : float
        Size prior (0: off): distances of regions under ``small`` pixels are scaled by
        ``sqrt(size / small)`` (so small regions merge earlier).
    mix : float
        Weight of the average linkage in "mixed".
    overwrite_sums : bool
        Use a C-contiguous float64 ``pair_sums`` as scratch (it is modified) instead of
        copying it.

    Returns
    -------
    merges : ndarray, shape (S - 1, 2), int64
        Step k merges region ``merges[k, 1]`` into ``merges[k, 0]`` (a merged region keeps
        the smaller index).
    heights : ndarray, shape (S - 1,)
        Non-decreasing merge heights in [0, 1].

    Examples
    --------
    A chain 0 - 1 - 2 - 3 whose first and last pairs are similar:

    >>> import numpy as np
    >>> a, b = np.array([0, 1, 2]), np.array([1, 2, 3])
    >>> merges, heights = merge_leaves(None, np.ones(4), a, b, pair_k=np.array([0.9, 0.1, 0.8]))
    >>> merges.tolist(), heights.round(6).tolist()
    ([[0, 1], [2, 3], [0, 2]], [0.1, 0.2, 0.9])
    """
    m = np.asarray(mass, dtype=np.float64).copy()
    s = m.size
    dense = linkage != "border"
    if pair_sums is None and (dense or pair_k is None):
        raise InputError(f"linkage {linkage!r} needs pair_sums")
    sums = None
    if pair_sums is not None:
        sums = np.ascontiguousarray(pair_sums, dtype=np.float64)
        if not overwrite_sums or sums is pair_sums and not sums.flags.writeable:
            sums = sums.copy()
    w = float(boundary_weight)
    if not 0.0 <= w <= 1.0:
        raise InputError(f"boundary_weight must be in [0, 1]; got {boundary_weight}")
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if w > 0 and (length is None or contrast is None):
        raise InputError("boundary_weight > 0 needs border length and contrast")
    if linkage not in LINKAGES:
        raise InputError(f"linkage must be one of {LINKAGES}; got {linkage!r}")
    ln = np.ones(a.size) if length is None else np.asarray(length, dtype=np.float64)
    cn = np.zeros(a.size) if contrast is None else np.asarray(contrast, dtype=np.float64)
    if pair_k is None:
        assert sums is not None  # pair_sums is required without pair_k (checked above)
        pair_k = sums[a, b] / np.maximum(m[a] * m[b], 1e-12)
    kl = np.asarray(pair_k, dtype=np.float64) * ln  # leaf-pair K_D x border length
    if not dense:
        sums = np.zeros((1, 1))
    mode = {"border": 0, "average": 1, "mixed": 2}[linkage]
    # distinct touching pairs; repeated pairs add up in the order given
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    key, inv = np.unique(lo * max(s, 1) + hi, return_inverse=True)
    e_len = np.bincount(inv, weights=ln[keep], minlength=key.size)
    e_con = np.bincount(inv, weights=cn[keep], minlength=key.size)
    e_kl = np.bincount(inv, weights=kl[keep], minlength=key.size)
    # compiled heap merge over per-region neighbour lists (leaf_kernels.merge_dense)
    merges, heights = merge_dense(
        s,
        m,
        key // max(s, 1),
        key % max(s, 1),
        e_len,
        e_con,
        e_kl,
        np.ascontiguousarray(sums),
        mode,
        w,
        float(small),
        float(mix),
    )
    return merges, np.maximum.accumulate(heights) if heights.size else heights
