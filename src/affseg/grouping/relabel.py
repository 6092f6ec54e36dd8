"""Relabelling of label maps: connected components, absorbing fragments, nesting levels.

The helpers every grouping stage shares, so that no module relabels on its own.

Example
-------
>>> import numpy as np
>>> from affseg.grouping.relabel import connected_relabel
>>> int(connected_relabel(np.array([[1, 1, 2, 1]])).max())
3
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage import measure
from skimage.segmentation import relabel_sequential

from affseg.errors import InputError


def sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber the labels present to 1..K, keeping their order.

    Parameters
    ----------
    labels : ndarray, any shape, int

    Returns
    -------
    ndarray, same shape, int32

    Examples
    --------
    >>> import numpy as np
    >>> sequential(np.array([7, 3, 7, 9])).tolist()
    [2, 1, 2, 3]
    """
    lab = np.asarray(labels)
    return np.unique(lab, return_inverse=True)[1].reshape(lab.shape).astype(np.int32) + 1


def connected_relabel(labels: np.ndarray) -> np.ndarray:
    """Split every segment into its 4-connected components.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K, one per connected component (the UCM's notion of a region), numbered
        in raster order of their first pixel.

    Examples
    --------
    >>> import numpy as np
    >>> connected_relabel(np.array([[1, 2, 1], [1, 2, 1]])).tolist()
    [[1, 2, 3], [1, 2, 3]]
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"labels must be 2-D (H, W), got shape {lab.shape}")
    shifted = lab.astype(np.int64) - lab.min() + 1  # no pixel equals the background 0
    return measure.label(shifted, background=0, connectivity=1).astype(np.int32)


def absorb_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Connected components, with those under ``min_size`` pixels given to the nearest other.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    min_size : int
        Components smaller than this (e.g. the diagonal-only fragments that 4-connectivity
        cuts off an 8-connected segment) take the label of the nearest pixel outside them.

    Returns
    -------
    ndarray, shape (H, W), int32
        4-connected segments labelled 1..K.

    Examples
    --------
    >>> import numpy as np
    >>> absorb_small(np.array([[1, 1, 1, 2], [1, 1, 1, 1]]), min_size=2).tolist()
    [[1, 1, 1, 1], [1, 1, 1, 1]]
    """
    comp = connected_relabel(labels)
    if min_size <= 1:
        return comp
    small = np.bincount(comp.ravel())[comp] < min_size
    if not small.any() or small.all():
        return comp
    idx = ndimage.distance_transform_edt(small, return_distances=False, return_indices=True)
    return connected_relabel(comp[idx[0], idx[1]])


def nest_levels(
    levels: Sequence[np.ndarray], *, connected: bool = True, min_size: int = 1
) -> list[np.ndarray]:
    """Make a fine -> coarse list of label maps nested.

    Level 0 is kept (split into connected components when ``connected``). Each coarser
    level l+1 is rebuilt from the nested level l: every region of level l takes the label of
    the raw level-l+1 segment it overlaps most (ties: the smaller label), then (when
    ``connected``) the result is split into connected components. Every region of level l
    therefore lies inside one region of level l+1.

    Parameters
    ----------
    levels : sequence of ndarray, each (H, W), int
        Raw segmentations, fine -> coarse (need not be nested).
    connected : bool
        Make every segment 4-connected (needed for the UCM of the levels to reproduce them).
    min_size : int
        With ``connected``, components of level 0 smaller than this join their nearest
        neighbour (:func:`absorb_small`).

    Returns
    -------
    list of ndarray, each (H, W), int32, labels 1..K_l

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    >>> coarse = np.array([[1, 1, 1, 2], [1, 1, 2, 2]])   # not nested in fine
    >>> [lv.tolist() for lv in nest_levels([fine, coarse])]
    [[[1, 1, 2, 2], [3, 3, 2, 2]], [[1, 1, 2, 2], [1, 1, 2, 2]]]
    """
    if not levels:
        raise InputError("nest_levels needs at least one level")
    first = np.asarray(levels[0])
    if connected:
        prev = absorb_small(first, min_size)
    else:
        shifted = first.astype(np.int64) - first.min() + 1
        prev = relabel_sequential(shifted)[0].astype(np.int32)
    out = [prev]
    for raw in levels[1:]:
        coarse = relabel_sequential(np.asarray(raw, dtype=np.int64) - np.min(raw))[0]
        n_fine, n_coarse = int(prev.max()) + 1, int(coarse.max()) + 1
        table = np.bincount(
            prev.ravel().astype(np.int64) * n_coarse + coarse.ravel(),
            minlength=n_fine * n_coarse,
        ).reshape(n_fine, n_coarse)
        merged = table.argmax(axis=1)[prev]
        nxt = connected_relabel(merged) if connected else relabel_sequential(merged + 1)[0]
        # merged + 1 >= 1, so relabel_sequential returns labels 1..K
        out.append(np.asarray(nxt, dtype=np.int32))
        prev = out[-1]
    return out
