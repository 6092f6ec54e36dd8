"""UCM and levels of the leaf grouping: the merge tree over leaves as a hierarchy.

:func:`merge_tree_ucm` turns a merge sequence of :func:`affseg.grouping.leaf_merge.
merge_leaves` into a :class:`~affseg.grouping.hierarchy.Hierarchy`: the UCM straight from
the merge tree (each border pixel gets the height at which its two leaves join), and levels
at the distinct partitions of the benchmark thresholds plus every one of the last
``keep_last`` merges. :func:`cophenetic` and :func:`leaf_pair_ucm` do the same from a dense
table of pair heights (for :func:`affseg.grouping.leaf_hierarchy.snap_hierarchy`).

Example
-------
>>> import numpy as np
>>> hier = merge_tree_ucm(np.array([[1, 2]]), np.array([[0, 1]]), np.array([0.3]))
>>> hier.n_segments, hier.to_ucm().shape
([2, 1], (3, 5))
"""

from __future__ import annotations

import numpy as np

from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.leaf_kernels import level_luts, tree_ucm
from affseg.grouping.ucm import BSDS_THRESHOLDS


def leaf_pair_ucm(leaves: np.ndarray, pair_height: np.ndarray) -> np.ndarray:
    """BSDS UCM whose border between leaves a and b has height ``pair_height[a-1, b-1]``.

    Parameters
    ----------
    leaves : ndarray, shape (H, W), int
        Labels 1..S.
    pair_height : ndarray, shape (S, S)
        Symmetric, zero diagonal; an ultrametric on touching leaves gives nested levels.

    Returns
    -------
    ndarray, shape (2H+1, 2W+1)
        Corners hold the maximum of their incident borders; borders that reach the image
        border continue into the frame (as :func:`affseg.grouping.ucm.levels_to_ucm`).

    Examples
    --------
    >>> import numpy as np
    >>> height = np.array([[0.0, 0.4], [0.4, 0.0]])
    >>> leaf_pair_ucm(np.array([[1, 2]]), height)[1].tolist()
    [0.0, 0.0, 0.4, 0.0, 0.0]
    """
    l0 = np.asarray(leaves, dtype=np.int64) - 1
    hh, ww = l0.shape
    ucm = np.zeros((2 * hh + 1, 2 * ww + 1))
    ucm[1:-1:2, 2:-1:2] = pair_height[l0[:, :-1], l0[:, 1:]]
    ucm[2:-1:2, 1:-1:2] = pair_height[l0[:-1, :], l0[1:, :]]
    ucm[2:-1:2, 2:-1:2] = np.maximum.reduce(
        [ucm[1:-2:2, 2:-1:2], ucm[3::2, 2:-1:2], ucm[2:-1:2, 1:-2:2], ucm[2:-1:2, 3::2]]
    )
    ucm[0, 2:-1:2] = ucm[1, 2:-1:2]
    ucm[-1, 2:-1:2] = ucm[-2, 2:-1:2]
    ucm[2:-1:2, 0] = ucm[2:-1:2, 1]
    ucm[2:-1:2, -1] = ucm[2:-1:2, -2]
    return ucm


def cophenetic(n: int, merges: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Height at which every two of ``n`` items join in a merge sequence (1 if never).

    Parameters
    ----------
    n : int
    merges : ndarray, shape (M, 2)
        Step k merges item ``merges[k, 1]`` into ``merges[k, 0]``.
    heights : ndarray, shape (M,)

    Returns
    -------
    ndarray, shape (n, n)
        Symmetric, zero diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> cophenetic(3, np.array([[0, 1]]), np.array([0.25])).tolist()
    [[0.0, 0.25, 1.0], [0.25, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    coph = np.ones((n, n))
    members: list[list[int]] = [[k] for k in range(n)]
    for (i, j), h in zip(np.asarray(merges).tolist(), np.asarray(heights).tolist(), strict=True):
        mi, mj = members[i], members[j]
        coph[np.ix_(mi, mj)] = h
        coph[np.ix_(mj, mi)] = h
        mi.extend(mj)
        members[j] = []
    np.fill_diagonal(coph, 0.0)
    return coph


def merge_tree_ucm(
    leaves: np.ndarray,
    merges: np.ndarray,
    heights: np.ndarray,
    *,
    thresholds: np.ndarray = BSDS_THRESHOLDS,
    keep_last: int = 40,
    default_height: float = 0.5,
) -> Hierarchy:
    """Hierarchy (levels + exact UCM) of a merge sequence over leaves.

    Parameters
    ----------
    leaves : ndarray, shape (H, W), int
        Labels 1..S.
    merges, heights : from :func:`merge_leaves`.
    thresholds : ndarray
        Levels are kept at the distinct partitions of these UCM thresholds ...
    keep_last : int
        ... and after every one of the last ``keep_last`` merges (every count <= keep_last).
    default_height : float
        The default level is the coarsest one at or below this height.

    Returns
    -------
    Hierarchy
        Levels fine -> coarse (level 0 = the leaves, the last a single region), with the
        UCM in which every border between two leaves has the height at which they join.

    Examples
    --------
    >>> import numpy as np
    >>> leaves = np.array([[1, 2, 3]])
    >>> hier = merge_tree_ucm(leaves, np.array([[0, 1], [0, 2]]), np.array([0.2, 0.7]))
    >>> [lv.tolist() for lv in hier.levels]
    [[[1, 2, 3]], [[1, 1, 2]], [[1, 1, 1]]]
    """
    lab = np.asarray(leaves, dtype=np.int64)
    s = int(lab.max())
    merges = np.asarray(merges, dtype=np.int64).reshape(-1, 2)
    hts = np.clip(np.asarray(heights, dtype=np.float64), 0.0, 1.0)
    # strictly increasing heights (ties broken by merge order) so that every step is a level
    hts = hts + 1e-9 * np.arange(1, hts.size + 1)
    leaf0 = np.ascontiguousarray(lab - 1)
    # pair heights only on touching leaves (what the UCM reads), from the merge tree
    ucm = tree_ucm(leaf0, merges, hts, s)
    # levels: after k merges for the k of every threshold and of the last keep_last steps
    n = hts.size
    kept = set(np.searchsorted(hts, np.asarray(thresholds), side="right").tolist())
    kept |= set(range(max(n - int(keep_last), 0), n + 1))
    kept.add(0)
    steps = sorted(k for k in kept if 0 <= k <= n)
    luts = level_luts(merges, np.asarray(steps, dtype=np.int64), s)
    levels = [lut[leaf0] for lut in luts]  # separate (H, W) int32 maps
    level_h = np.asarray([0.0 if k == 0 else float(hts[k - 1]) for k in steps])
    default = int(np.searchsorted(level_h, default_height, side="right")) - 1
    return Hierarchy(levels, level_h, default_level=max(default, 0), ucm2=ucm)
