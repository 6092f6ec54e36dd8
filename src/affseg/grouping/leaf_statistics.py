"""Statistics of touching leaves: grid weights, kernel averages and border sums.

The merge distance of :func:`affseg.grouping.leaf_merge.merge_leaves` reads, for every
pair of touching leaves a < b (in the pair order of :func:`boundary_contrast`),

* :func:`leaf_rows` / :func:`leaf_node_weights`: every pixel spreads its weight over the 4
  nearest grid nodes (bilinear), so a leaf is a weighted set of nodes M (N, S);
* :func:`pair_kernel`: the average K_D of the pair, ``(M^T K M)[a, b] / (mass_a mass_b)``
  (and the whole ``M^T K M`` for the average linkages);
* :func:`boundary_contrast`: border length and summed colour contrast;
  :func:`boundary_strength`: summed edge strength; :func:`border_map_sums`: summed values
  of a per-pixel map (a learned boundary probability).

Example
-------
>>> import numpy as np
>>> lab = np.ones((4, 6), int); lab[:, 3:] = 2
>>> img = np.zeros((4, 6, 3), np.uint8)
>>> a, b, length, contrast = boundary_contrast(img, lab)
>>> rows = leaf_rows(lab, (1, 2))
>>> mass = np.asarray(rows.sum(1)).ravel()
>>> sums, pk = pair_kernel(rows, np.eye(2), a, b, mass, dense=False)
>>> sums is None, pk.round(4).tolist()
(True, [0.1975])
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from affseg.errors import InputError
from affseg.grouping.leaf_kernels import gram_of_kernel, node_weights_csr, rows_times_dense
from affseg.grouping.leaf_superpixels import lab_gradient, lab_image


def leaf_node_weights(labels: np.ndarray, grid: tuple[int, int]) -> sp.csr_matrix:
    """Bilinear weights of every leaf on the grid nodes.

    Pixel (y, x) of an (H, W) map sits at grid coordinates ``((y + 0.5) h / H - 0.5,
    (x + 0.5) w / W - 0.5)`` (node centres, as ``align_corners=False`` resizing) and gives
    its 4 bilinear weights to the surrounding nodes.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Labels 1..S.
    grid : tuple of int
        (h, w).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (h * w, S), float64
        Column sums are the leaf sizes in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[1, 1, 2, 2]] * 2)
    >>> m = leaf_node_weights(lab, (1, 1))
    >>> m.shape, m.toarray().tolist()
    ((1, 2), [[4.0, 4.0]])
    """
    return leaf_rows(labels, grid).T.tocsr()


def leaf_rows(labels: np.ndarray, grid: tuple[int, int]) -> sp.csr_matrix:
    """``M^T`` of :func:`leaf_node_weights`: (S, h * w) CSR, sorted column indices.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Labels 1..S.
    grid : tuple of int
        (h, w).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (S, h * w), float64
        Row sums are the leaf sizes in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[1, 1, 2, 2]] * 2)
    >>> leaf_rows(lab, (1, 2)).toarray().tolist()    # bilinear: the middle pixels share
    [[3.5, 0.5], [0.5, 3.5]]
    """
    lab = np.asarray(labels)
    hh, ww = lab.shape
    h, w = int(grid[0]), int(grid[1])
    s = int(lab.max())

    def axis(n_pix: int, n_node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.clip((np.arange(n_pix) + 0.5) * n_node / n_pix - 0.5, 0, n_node - 1)
        i0 = np.floor(f).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_node - 1)
        return i0, i1, f - i0

    y0, y1, fy = axis(hh, h)
    x0, x1, fx = axis(ww, w)
    leaf = np.ascontiguousarray(lab, dtype=np.int64) - 1
    indptr, indices, data = node_weights_csr(leaf, s, h * w, y0, y1, fy, x0, x1, fx, w)
    return sp.csr_matrix((data, indices, indptr), shape=(s, h * w))


def pair_kernel(
    rows: sp.csr_matrix,
    kernel: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    mass: np.ndarray,
    *,
    dense: bool,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Average K_D of every touching leaf pair: ``(M^T K M)[a, b] / (mass_a mass_b)``.

    Parameters
    ----------
    rows : scipy.sparse.csr_matrix, shape (S, N)
        ``M^T`` (:func:`leaf_rows`).
    kernel : ndarray, shape (N, N)
        Grid similarity K_D (float32 kept, float64 sums).
    a, b : ndarray, shape (P,), int
        Touching leaf pairs (0-based).
    mass : ndarray, shape (S,)
        ``M.sum(0)``.
    dense : bool
        Also return the whole ``M^T K M`` (S, S) (what the average linkages update);
        otherwise only the P entries are summed, from ``M^T K`` (S, N).

    Returns
    -------
    sums : ndarray, shape (S, S), or None
        ``M^T K M`` (``dense`` only).
    pair_k : ndarray, shape (P,)
        Average K_D of each pair (the same sums, in the same order, either way).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[1, 1, 2, 2]] * 2)
    >>> rows = leaf_rows(lab, (1, 2))
    >>> k = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> sums, pk = pair_kernel(rows, k, np.array([0]), np.array([1]), np.full(2, 4.0),
    ...                        dense=True)
    >>> sums.tolist(), pk.tolist()
    ([[14.25, 9.75], [9.75, 14.25]], [0.609375])
    """
    k = np.asarray(kernel)
    kc = np.ascontiguousarray(k if k.dtype in (np.float32, np.float64) else k.astype(np.float64))
    sums = None
    if dense:
        # (S, S) = M^T K M (compiled, float64 sums of the float32 K, one row of M^T K at a
        # time); its entry (a, b) is the touching pair's kernel sum, summed in the same order
        sums = gram_of_kernel(rows.indptr, rows.indices, rows.data, kc)
        pk = sums[a, b]
    else:
        km = rows_times_dense(rows.indptr, rows.indices, rows.data, kc)  # (S, N) = M^T K
        mb = rows[b].tocoo()
        pk = np.bincount(mb.row, weights=mb.data * km[a[mb.row], mb.col], minlength=a.size)
    return sums, pk / np.maximum(mass[a] * mass[b], 1e-12)


def _cut_pairs(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices p (left / top) and q of the 4-neighbour pixel pairs in different
    leaves, in neighbour_pairs' order (horizontal pairs, then vertical ones)."""
    hh, ww = lab.shape
    flat = np.arange(hh * ww).reshape(hh, ww)
    cut_h = lab[:, :-1] != lab[:, 1:]
    cut_v = lab[:-1, :] != lab[1:, :]
    p = np.concatenate([flat[:, :-1][cut_h], flat[:-1, :][cut_v]])
    q = p + np.concatenate([np.ones(int(cut_h.sum()), np.int64), np.full(int(cut_v.sum()), ww)])
    return p, q


def border_map_sums(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of ``max(v_p, v_q)`` over the border pixel pairs of every pair of touching leaves.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Leaves 1..S.
    values : ndarray, shape (H, W), float
        A per-pixel map (e.g. a boundary probability).

    Returns
    -------
    ndarray, shape (P,), float64
        Sums over the border pixel pairs, in the pair order of :func:`boundary_contrast`.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.ones((4, 6), int); lab[:, 3:] = 2
    >>> v = np.zeros((4, 6)); v[:, 3] = 0.5
    >>> border_map_sums(lab, v).tolist()            # 4 border pixel pairs at 0.5
    [2.0]
    """
    lab = np.asarray(labels, dtype=np.int64)
    val = np.asarray(values, dtype=np.float64)
    if val.shape != lab.shape:
        raise InputError(f"map has shape {val.shape}; the leaves have {lab.shape}")
    flat = val.ravel()
    p, q = _cut_pairs(lab)
    st = np.maximum(flat[p], flat[q])
    lf = lab.ravel()
    a, b = lf[p] - 1, lf[q] - 1
    base = int(lab.max())
    key = np.minimum(a, b) * base + np.maximum(a, b)
    _, inv = np.unique(key, return_inverse=True)
    return np.bincount(inv, weights=st)


def boundary_strength(image: np.ndarray, labels: np.ndarray, scale: float = 10.0) -> np.ndarray:
    """Summed edge strength along the border of every pair of touching leaves.

    Strength of a 4-neighbour pixel pair across a border: ``1 - exp(-max(g_p, g_q) /
    scale)`` with g the Sobel magnitude of CIE-Lab (the map the watershed floods).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        Leaves 1..S.
    scale : float
        Gradient scale (Lab units per pixel).

    Returns
    -------
    ndarray, shape (P,), float64
        Sums over the border pixel pairs, in the pair order of :func:`boundary_contrast`.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((4, 6, 3), np.uint8); img[:, 3:] = 200
    >>> lab = np.ones((4, 6), int); lab[:, 3:] = 2
    >>> s = boundary_strength(img, lab)
    >>> s.shape, bool(s[0] > 3.0)                  # 4 border pixel pairs, strong edge
    ((1,), True)
    """
    if float(scale) <= 0:
        raise InputError(f"edge scale must be positive; got {scale}")
    g = lab_gradient(np.asarray(image))
    # the strength is increasing in g, so the max over a pair commutes with it
    return border_map_sums(labels, 1.0 - np.exp(-g / float(scale)))


def boundary_contrast(image: np.ndarray, labels: np.ndarray, scale: float = 10.0) -> tuple:
    """Border length and summed colour contrast of every pair of touching leaves.

    Contrast of a 4-neighbour pixel pair across a border: ``1 - exp(-||Lab_p - Lab_q|| /
    scale)`` (in [0, 1)).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        Leaves 1..S.
    scale : float
        Colour distance scale (Lab units).

    Returns
    -------
    a, b : ndarray, shape (P,), int64
        Leaf indices (0-based), a < b.
    length, contrast : ndarray, shape (P,), float64
        Number of pixel pairs across the border and the sum of their contrasts.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((4, 6, 3), np.uint8); img[:, 3:] = 255
    >>> lab = np.ones((4, 6), int); lab[:, 3:] = 2
    >>> a, b, length, contrast = boundary_contrast(img, lab)
    >>> a.tolist(), b.tolist(), length.tolist(), contrast.round(3).tolist()
    ([0], [1], [4.0], [4.0])
    """
    lab = np.asarray(labels, dtype=np.int64)
    col = lab_image(np.asarray(image)).reshape(-1, 3)
    p, q = _cut_pairs(lab)
    lf = lab.ravel()
    cp, cq = col[p], col[q]
    d2 = (cp[:, 0] - cq[:, 0]) ** 2
    for k in (1, 2):
        d2 += (cp[:, k] - cq[:, k]) ** 2
    con = 1.0 - np.exp(-np.sqrt(d2) / float(scale))
    a, b = lf[p] - 1, lf[q] - 1
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    base = int(lab.max())
    key = lo * base + hi
    uniq, inv = np.unique(key, return_inverse=True)
    length = np.bincount(inv).astype(np.float64)
    contrast = np.bincount(inv, weights=con)
    return uniq // base, uniq % base, length, contrast
