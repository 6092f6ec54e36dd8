"""Compiled core of the boundary benchmark's pixel correspondence (private).

The loops are the extension ``affseg.metrics._kernels`` (built with the package); this
module fixes their argument dtypes.

:func:`match_pixels` finds the same matching as the straightforward path of
:mod:`affseg.metrics.boundary` (candidate pairs within maxDist, then
:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` on the rectangular graph
"each node of the smaller side joined to its candidates at cost ``c + 1`` and to a private
unmatched node at cost ``outlier + 1``"), but in time close to linear in the number of
candidate pairs instead of ``rows x columns``.

scipy's LAPJVsp skips its initialisation on a rectangular graph, so every row is free and
is augmented in turn by a Dijkstra search; before each search it resets its labels over
*all* columns, and whenever a distance level is exhausted it rescans all columns for the
next one. On a BSDS image (~4 000 rows, ~8 000 columns, ~40 000 edges) these O(columns)
loops are ~90 % of the run time. :func:`_lapjvsp_rect` is a line-by-line port of that
code path (same row order, same tie-breaking) in which only the columns touched by a
search are reset, and the rescan pops a binary heap keyed by (distance, column): it visits
the columns of minimum distance in ascending index order, exactly as the full scan does.
All costs are integers held in float64, so every comparison is exact and the port returns
the very matching scipy returns (``tests/test_metrics_boundary.py`` checks it on random
and real graphs).

The candidate graph is built in scipy's canonical CSR order (rows in ascending pixel
order, the columns of each row ascending, the private outlier column last), which is what
makes the two paths take identical decisions.
"""

from __future__ import annotations

import numpy as np

from affseg.metrics import _kernels


def _lapjvsp_rect(
    first: np.ndarray, kk: np.ndarray, cc: np.ndarray, nr: int, nc: int
) -> np.ndarray:
    """scipy's ``_lapjvsp`` for ``nr < nc`` (every row free), with lazy resets.

    Returns ``x``: the column of each row. The graph must admit a full matching of the
    rows (here: every row has a private column).

    Examples
    --------
    Two rows, two real columns and a private column each (costs 1, 2 / 2, 1; unmatched 5):

    >>> import numpy as np
    >>> first = np.array([0, 3, 6])
    >>> kk = np.array([0, 1, 2, 0, 1, 3])
    >>> cc = np.array([1.0, 2.0, 5.0, 2.0, 1.0, 5.0])
    >>> _lapjvsp_rect(first, kk, cc, 2, 4).tolist()
    [0, 1]
    """
    return _kernels.lapjvsp_rect(
        np.ascontiguousarray(first, dtype=np.int64),
        np.ascontiguousarray(kk, dtype=np.int64),
        np.ascontiguousarray(cc, dtype=np.float64),
        int(nr),
        int(nc),
    )


def match_pixels(
    y: np.ndarray,
    x: np.ndarray,
    index: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    r: int,
    offsets: np.ndarray,
    costs: np.ndarray,
    outlier: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal correspondence of machine pixels ``(y, x)`` to one annotator's pixels.

    Parameters
    ----------
    y, x : ndarray of int
        Machine boundary pixels, in raster order.
    index : ndarray of int64, shape (H + 2r, W + 2r)
        The annotator's pixel number at each position shifted by ``(r, r)`` (``-1``: none).
    gy, gx : ndarray of int
        The annotator's pixels, in raster order (pixel number k is ``(gy[k], gx[k])``).
    r : int
        Padding of ``index``: the largest offset coordinate.
    offsets : ndarray of int64, shape (K, 2)
        Candidate displacements ``(dy, dx)``, each coordinate in ``[-r, r]``.
    costs : ndarray of float64, shape (K,)
        Integer cost of each displacement.
    outlier : float
        Cost of an unmatched pixel.

    Returns
    -------
    mi, mj : ndarray of int64
        Matched pairs: machine pixel number, annotator pixel number.
    """
    return _kernels.match(
        np.ascontiguousarray(y, dtype=np.int64),
        np.ascontiguousarray(x, dtype=np.int64),
        np.ascontiguousarray(index, dtype=np.int64),
        np.ascontiguousarray(gy, dtype=np.int64),
        np.ascontiguousarray(gx, dtype=np.int64),
        int(r),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(costs, dtype=np.float64),
        float(outlier),
    )


def thin_map(bmap: np.ndarray) -> np.ndarray | None:
    """``skimage.morphology.thin(bmap)`` (``bwmorph thin inf``), exactly, or None when
    this scikit-image does not expose the lookup tables it thins with."""
    try:
        from skimage.morphology._skeletonize import G123_LUT, G123P_LUT
    except ImportError:  # pragma: no cover - other scikit-image versions
        return None
    img = np.array(bmap, dtype=np.uint8, order="C")
    _kernels.thin(img, np.asarray(G123_LUT, dtype=np.uint8), np.asarray(G123P_LUT, dtype=np.uint8))
    return img.astype(bool)
