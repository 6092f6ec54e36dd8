"""Compiled inner loops of the leaf grouping (:mod:`affseg.grouping.leaf_hierarchy`).

One job: the per-pixel and per-merge loops that NumPy cannot vectorise, compiled when the
package is built (the Cython extension ``affseg.grouping._kernels``; these wrappers fix
the argument dtypes), written so that they compute the same floating-point operations in
the same order as the NumPy / SciPy / heapq code they replace (the tests compare them
against independent Python versions). The leaf grouping's modules call the public ones
(plain arrays in and out; the callers check the arguments):

- :func:`sobel_magnitude`: the Sobel magnitude of Lab that the watershed floods
  (skimage's ``sobel`` per channel, same taps and order);
- :func:`node_weights_csr`: the bilinear pixel -> grid-node weights of every leaf, as the
  rows of a CSR matrix ``M^T`` (S, N) with sorted column indices;
- :func:`rows_times_dense`: ``M^T K`` (S, N) for a float32 K, accumulated in float64
  (what ``scipy.sparse`` computes after upcasting K, without the upcast copy);
- :func:`gram_rows`: the symmetric ``M^T K M`` (S, S) from ``M^T K``, one triangle
  computed and mirrored; :func:`gram_of_kernel`: the same from K, one row of ``M^T K``
  at a time;
- :func:`merge_dense`: the greedy heap merge of touching regions (additive border
  statistics per adjacency edge, per-region neighbour lists, a binary heap with lazy
  deletion ordered like Python's tuples; a dense S x S ``M^T K M`` only for the average
  linkages);
- :func:`tree_ucm` and :func:`level_luts`: the UCM of the merge tree (every border
  gets the height at which its two leaves join) and the label look-up table of every
  kept level.

Unlike the other greedy merges (:func:`affseg.grouping.region_merging.greedy_merge` and
:func:`affseg.grouping.label_merging.merge_adjacent`, dense rescans of all pairs every
step), :func:`merge_dense` is a heap over the adjacency graph whose distances come from
statistics that add up on a merge (border length, summed contrast, length-weighted K_D,
``M^T K M``), clamped to [0, 1], for ~1000 leaves, always down to one region.

No global state, nothing compiled or cached at run time.

Example
-------
>>> import numpy as np
>>> level_luts(np.array([[0, 1]]), np.array([0, 1]), 2).tolist()
[[1, 2], [1, 1]]
"""

from __future__ import annotations

import numpy as np

from affseg.grouping import _kernels

_I64 = np.int64
_F64 = np.float64


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=_I64)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=_F64)


def _real(k: np.ndarray) -> np.ndarray:
    """float32 stays float32 (upcast entry by entry inside the loop), the rest float64."""
    k = np.asarray(k)
    return np.ascontiguousarray(k, dtype=np.float32 if k.dtype == np.float32 else _F64)


# ----------------------------------------------------------------------------- gradient


def sobel_magnitude(img: np.ndarray) -> np.ndarray:
    """``sqrt(sum_c skimage.filters.sobel(img[..., c]) ** 2)`` of an (H, W, C) float64 map.

    skimage's expression term by term: per axis ``ndimage.convolve`` with the 3 x 3 Sobel
    kernel (the flipped kernel's non-zero taps in raster order, 'reflect' borders), the
    squared axis responses added to 0, ``sqrt(.) / sqrt(2)``, then the channels' squares.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((3, 4, 1)); img[:, 2:] = 1.0   # a vertical step
    >>> sobel_magnitude(img).round(3).tolist()[0]
    [0.0, 0.707, 0.707, 0.0]
    """
    return _kernels.sobel_magnitude(_f64(img))


# ----------------------------------------------------------------------------- products


def node_weights_csr(
    leaf: np.ndarray,
    s: int,
    n_nodes: int,
    y0: np.ndarray,
    y1: np.ndarray,
    fy: np.ndarray,
    x0: np.ndarray,
    x1: np.ndarray,
    fx: np.ndarray,
    w: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, data) of M^T (S, N): leaf rows, sorted node columns.

    ``leaf`` holds 0-based leaf indices; (y0, y1, fy) and (x0, x1, fx) are the bilinear
    nodes and fractions of every pixel row and column; ``w`` the grid width.

    Examples
    --------
    One 2 x 2 leaf on a 1 x 1 grid: all 4 pixels weigh on node 0.

    >>> import numpy as np
    >>> leaf, z, f = np.zeros((2, 2), np.int64), np.zeros(2, np.int64), np.zeros(2)
    >>> indptr, indices, data = node_weights_csr(leaf, 1, 1, z, z, f, z, z, f, 1)
    >>> indptr.tolist(), indices.tolist(), data.tolist()
    ([0, 1], [0], [4.0])
    """
    return _kernels.node_weights_csr(
        _i64(leaf),
        int(s),
        int(n_nodes),
        _i64(y0),
        _i64(y1),
        _f64(fy),
        _i64(x0),
        _i64(x1),
        _f64(fx),
        int(w),
    )


def rows_times_dense(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """``out[s] = sum_jj data[jj] * k[indices[jj]]`` in float64 (jj ascending).

    Four entries per pass over the output row, added one after the other (the rounding
    of the plain loop, a quarter of its row traffic).

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices, data = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 2.0])
    >>> k = np.array([[1.0, 0.5], [0.5, 1.0]], np.float32)
    >>> rows_times_dense(indptr, indices, data, k).tolist()   # diag(1, 2) @ k
    [[1.0, 0.5], [1.0, 2.0]]
    """
    return _kernels.rows_times_dense(_i64(indptr), _i64(indices), _f64(data), _real(k))


def gram_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, km: np.ndarray
) -> np.ndarray:
    """Symmetric ``M^T K M`` (S, S) from ``km = M^T K`` (S, N) and the CSR rows of M^T.

    Entry (r, t), t >= r, is ``sum_jj data[jj] * km[r, indices[jj]]`` over row t's jj
    (ascending; the gathers stay inside km's row r), mirrored to (t, r).

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices, data = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 2.0])
    >>> km = np.array([[1.0, 1.0], [1.0, 4.0]])          # M^T K, M = diag(1, 2)
    >>> gram_rows(indptr, indices, data, km).tolist()
    [[1.0, 2.0], [2.0, 8.0]]
    """
    return _kernels.gram_rows(_i64(indptr), _i64(indices), _f64(data), _f64(km))


def gram_of_kernel(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """``gram_rows(.., rows_times_dense(.., k))`` without the (S, N) ``M^T K``.

    Row r of ``M^T K`` is built in a scratch row (the same sums as
    :func:`rows_times_dense`), used at once for the entries (r, t >= r) of the
    symmetric ``M^T K M`` (the same sums as :func:`gram_rows`), then overwritten.

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices, data = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 2.0])
    >>> k = np.array([[1.0, 0.5], [0.5, 1.0]], np.float32)
    >>> gram_of_kernel(indptr, indices, data, k).tolist()     # M^T K M, M = diag(1, 2)
    [[1.0, 1.0], [1.0, 4.0]]
    """
    return _kernels.gram_of_kernel(_i64(indptr), _i64(indices), _f64(data), _real(k))


# ----------------------------------------------------------------------------- merging


def merge_dense(
    s: int,
    mass: np.ndarray,
    eu: np.ndarray,
    ev: np.ndarray,
    blen: np.ndarray,
    bcon: np.ndarray,
    bkl: np.ndarray,
    sums: np.ndarray,
    mode: int,
    w: float,
    small: float,
    mix: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy merging of touching regions; see :func:`affseg.grouping.leaf_merge.merge_leaves`.

    ``eu < ev`` (E,) are the distinct touching pairs with their border length, summed
    contrast and length-weighted K_D (``blen``, ``bcon``, ``bkl``, updated in place).
    ``mode``: 0 border, 1 average, 2 mixed (``sums`` (S, S) is updated in place; unused
    and may be (1, 1) for the border linkage). Neighbours are kept in per-region lists
    (a pool of (region, edge) entries), so nothing is O(S^2) except the ``sums`` rows.
    Returns (merges (S-1, 2), heights (S-1,)).

    Examples
    --------
    A chain 0 - 1 - 2 of unit masses, border linkage (K_D 0.9 and 0.2 along the borders):

    >>> import numpy as np
    >>> eu, ev = np.array([0, 1]), np.array([1, 2])
    >>> merges, heights = merge_dense(3, np.ones(3), eu, ev, np.ones(2), np.zeros(2),
    ...                               np.array([0.9, 0.2]), np.zeros((1, 1)), 0, 0.0, 0.0, 0.5)
    >>> merges.tolist(), heights.round(6).tolist()
    ([[0, 1], [0, 2]], [0.1, 0.8])
    """
    # updated in place: float64 C-contiguous writable arrays are used as they are (others
    # are converted, and then the caller's copies are left unchanged)
    blen, bcon, bkl, sums = (
        a if a.dtype == _F64 and a.flags.c_contiguous and a.flags.writeable else _f64(a).copy()
        for a in (np.asarray(blen), np.asarray(bcon), np.asarray(bkl), np.asarray(sums))
    )
    return _kernels.merge_dense(
        int(s),
        _f64(mass),
        _i64(eu),
        _i64(ev),
        blen,
        bcon,
        bkl,
        sums,
        int(mode),
        float(w),
        float(small),
        float(mix),
    )


# ----------------------------------------------------------------------------- merge tree


def tree_ucm(leaf: np.ndarray, merges: np.ndarray, hts: np.ndarray, s: int) -> np.ndarray:
    """BSDS UCM (2H+1, 2W+1) of a merge tree over leaves (0-based ``leaf``).

    The values of :func:`affseg.grouping.leaf_ucm.leaf_pair_ucm` with the cophenetic heights:
    every border between two leaves gets the height at which they join, corners the
    maximum of their incident borders, and borders reaching the image border continue
    into the frame.

    Examples
    --------
    >>> import numpy as np
    >>> leaf, merges = np.array([[0, 1]]), np.array([[0, 1]])
    >>> tree_ucm(leaf, merges, np.array([0.5]), 2)[1].tolist()
    [0.0, 0.0, 0.5, 0.0, 0.0]
    """
    return _kernels.tree_ucm(_i64(leaf), _i64(merges).reshape(-1, 2), _f64(hts), int(s))


def level_luts(merges: np.ndarray, steps: np.ndarray, s: int) -> np.ndarray:
    """(len(steps), S) labels 1..K of every leaf after each step count (as np.unique).

    Examples
    --------
    >>> import numpy as np
    >>> merges = np.array([[0, 1], [0, 2]])
    >>> level_luts(merges, np.array([0, 1, 2]), 3).tolist()
    [[1, 2, 3], [1, 1, 2], [1, 1, 1]]
    """
    return _kernels.level_luts(_i64(merges).reshape(-1, 2), _i64(steps), int(s))
