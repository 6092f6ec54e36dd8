"""Ultrametric contour maps (UCM) in the BSDS double-resolution format.

A UCM ``ucm2`` of an (H, W) image is a (2H+1, 2W+1) array: pixel (i, j) sits at
(2i+1, 2j+1), the boundary between horizontally adjacent pixels (i, j), (i, j+1) at
(2i+1, 2j+2), between vertically adjacent ones at (2i+2, 2j+1), and grid corners at even
positions. The BSDS region benchmark reads the segmentation at threshold t as the
8-connected components of ``ucm2 <= t``, restricted to ``[1::2, 1::2]``.
:func:`ucm_nested_labels` gives those segmentations at all thresholds at once (one
labelling plus a union-find pass, as parent maps of the finest).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from affseg.errors import InputError
from affseg.grouping import _kernels

#: The 99 thresholds of the BSR region benchmark.
BSDS_THRESHOLDS = np.linspace(1 / 100, 99 / 100, 99)

_EIGHT = np.ones((3, 3), dtype=bool)


def check_ucm2(ucm2: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate a double-resolution UCM (and, given ``shape`` (H, W), its size).

    Returns
    -------
    ndarray, shape (2H+1, 2W+1), float64

    Raises
    ------
    InputError

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> ucm2 = levels_to_ucm([fine, coarse], np.array([0.0, 0.5]))
    >>> check_ucm2(ucm2, shape=(2, 4)).shape
    (5, 9)
    """
    u = np.asarray(ucm2)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0 or min(u.shape) < 3:
        raise InputError(f"ucm2 must have shape (2H+1, 2W+1); got {u.shape}")
    if shape is not None and u.shape != (2 * shape[0] + 1, 2 * shape[1] + 1):
        raise InputError(
            f"ucm2 has shape {u.shape} but the image is {shape[0]}x{shape[1]}, which needs "
            f"{(2 * shape[0] + 1, 2 * shape[1] + 1)}"
        )
    u = u.astype(np.float64, copy=False)
    if not np.isfinite(u).all():
        raise InputError("ucm2 holds NaN or inf")
    return u


def ucm_to_labels(ucm2: np.ndarray, threshold: float) -> np.ndarray:
    """The segmentation of a UCM at one threshold (BSDS protocol).

    Parameters
    ----------
    ucm2 : ndarray, shape (2H+1, 2W+1)
    threshold : float

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K.

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> ucm2 = levels_to_ucm([fine, coarse], np.array([0.0, 0.5]))
    >>> ucm_to_labels(ucm2, 0.3).tolist()
    [[1, 1, 2, 2], [3, 3, 2, 2]]
    >>> ucm_to_labels(ucm2, 0.6).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    u = check_ucm2(ucm2)
    lab, _ = ndimage.label(u <= threshold, structure=_EIGHT)
    return lab[1::2, 1::2].astype(np.int32)


def levels_to_ucm(levels: list[np.ndarray], heights: np.ndarray | None = None) -> np.ndarray:
    """Build the UCM of nested label maps.

    Parameters
    ----------
    levels : list of ndarray, each (H, W)
        Nested partitions from fine (index 0) to coarse: every segment of level l lies
        inside one segment of level l+1.
    heights : ndarray, shape (L,), optional
        Strictly increasing values in (0, 1]: a boundary present at levels < l and gone at
        level l gets height ``heights[l]``; one present at every level gets 1. The
        boundaries of level 0 therefore get ``heights[1]`` or more. Default:
        ``(l + 0.5) / L`` for l >= 1, so each of up to 99 levels is recovered by at least
        one of the benchmark's thresholds.

    Returns
    -------
    ndarray, shape (2H+1, 2W+1), float64
        Corners hold the maximum of their incident boundaries; boundaries that reach the
        image border continue into the frame (as in the BSDS files), elsewhere the frame is
        0, so that 8-connected labelling never joins regions through the frame.

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> ucm2 = levels_to_ucm([fine, coarse], np.array([0.0, 0.5]))
    >>> ucm2.shape, np.unique(ucm2).tolist()
    ((5, 9), [0.0, 0.5, 1.0])
    """
    if not levels:
        raise InputError("a hierarchy needs at least one level")
    stack = np.stack([np.asarray(lv) for lv in levels])
    n_lev, h, w = stack.shape
    if heights is None:
        heights = (np.arange(n_lev) + 0.5) / n_lev
        heights[0] = 0.0
    heights = np.asarray(heights, dtype=np.float64)
    if heights.shape != (n_lev,):
        raise InputError(f"heights has shape {heights.shape}; expected ({n_lev},)")
    lut = np.append(heights, 1.0)

    def edge_height(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        same = a == b  # (L, ...)
        first = np.where(same.any(axis=0), same.argmax(axis=0), n_lev)
        return lut[first]

    ucm = np.zeros((2 * h + 1, 2 * w + 1))
    ucm[1:-1:2, 2:-1:2] = edge_height(stack[:, :, :-1], stack[:, :, 1:])
    ucm[2:-1:2, 1:-1:2] = edge_height(stack[:, :-1, :], stack[:, 1:, :])
    # an edge that exists at level 0 needs a positive height even if heights[0] == 0
    ucm[2:-1:2, 2:-1:2] = np.maximum.reduce(
        [
            ucm[1:-2:2, 2:-1:2],
            ucm[3::2, 2:-1:2],
            ucm[2:-1:2, 1:-2:2],
            ucm[2:-1:2, 3::2],
        ]
    )
    ucm[0, 2:-1:2] = ucm[1, 2:-1:2]
    ucm[-1, 2:-1:2] = ucm[-2, 2:-1:2]
    ucm[2:-1:2, 0] = ucm[2:-1:2, 1]
    ucm[2:-1:2, -1] = ucm[2:-1:2, -2]
    return ucm


def ucm_nested_labels(
    ucm2: np.ndarray, thresholds: np.ndarray = BSDS_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The segmentations of a UCM at many thresholds at once, as a fine map + parent maps.

    Same partitions as ``ucm_to_labels(ucm2, t)`` for every ``t`` (up to label names) but
    one labelling and one union-find pass instead of one labelling per threshold: the
    partitions are nested, so every one is a merge of the finest.

    Parameters
    ----------
    ucm2 : ndarray, shape (2H+1, 2W+1)
    thresholds : ndarray, shape (T,)
        Non-decreasing.

    Returns
    -------
    fine : ndarray, shape (H, W), int64
        Labels 0..F-1 of the segmentation at ``thresholds[0]``.
    parents : ndarray, shape (T, F), int64
        ``parents[k][fine]`` is the segmentation at ``thresholds[k]``, labels 0..K_k-1
        numbered in order of their smallest fine label.
    counts : ndarray, shape (T,), int64
        K_k, the number of segments at each threshold.

    Notes
    -----
    Pixels whose own cell exceeds a threshold get label 0 from :func:`ucm_to_labels` (no
    segment); that never happens in BSDS files or in :func:`levels_to_ucm` output, and such
    a UCM is labelled threshold by threshold here (slow path, same semantics except that
    label 0 becomes an ordinary label).

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> ucm2 = levels_to_ucm([fine, coarse], np.array([0.0, 0.5]))
    >>> fine0, parents, counts = ucm_nested_labels(ucm2, np.array([0.3, 0.6]))
    >>> fine0.tolist(), parents.tolist(), counts.tolist()
    ([[0, 0, 1, 1], [2, 2, 1, 1]], [[0, 1, 2], [0, 1, 0]], [3, 2])
    """
    u = np.ascontiguousarray(check_ucm2(ucm2))  # loadmat gives Fortran order
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim != 1 or thr.size == 0 or np.any(np.diff(thr) < 0):
        raise InputError("thresholds must be a non-empty non-decreasing 1-D array")
    if u[1::2, 1::2].max() > thr[0]:
        return _nested_labels_slow(u, thr)
    lab0, n0 = ndimage.label(u <= thr[0], structure=_EIGHT)
    fine_raw = lab0[1::2, 1::2]
    present = np.zeros(n0 + 1, dtype=bool)
    present[fine_raw.ravel()] = True
    keep = np.flatnonzero(present)  # fine component ids that hold pixels
    # union-find over the cells activated threshold by threshold (compiled: for every
    # threshold the components of the fine ids ``keep`` numbered in order of ``keep``)
    parents, counts = _kernels.merge_levels(
        np.ascontiguousarray(u, dtype=np.float64),
        np.ascontiguousarray(lab0, dtype=lab0.dtype if lab0.dtype == np.int32 else np.int64),
        int(n0),
        np.ascontiguousarray(keep, dtype=np.int64),
        np.ascontiguousarray(thr),
    )
    lut = np.zeros(n0 + 1, dtype=np.int64)
    lut[keep] = np.arange(keep.size)
    return lut[fine_raw], parents, counts


def _nested_labels_slow(
    u: np.ndarray, thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`ucm_nested_labels` by labelling every threshold (pixels may be unlabelled)."""
    labs = np.stack([ucm_to_labels(u, float(t)).ravel() for t in thr])  # (T, N)
    _, fine_flat = np.unique(labs, axis=1, return_inverse=True)
    fine_flat = fine_flat.ravel()
    n_fine = int(fine_flat.max()) + 1
    first = np.zeros(n_fine, dtype=np.int64)
    first[fine_flat] = np.arange(fine_flat.size)
    parents = np.empty((thr.size, n_fine), dtype=np.int64)
    counts = np.empty(thr.size, dtype=np.int64)
    for k in range(thr.size):
        _, inv = np.unique(labs[k][first], return_inverse=True)
        parents[k] = inv
        counts[k] = inv.max() + 1
    return fine_flat.reshape(u[1::2, 1::2].shape), parents, counts
