"""KwikCluster rounding of embeddings in their inner-product space (Ailon et al. 2008).

Deep spectral clustering [2] rounds predicted unit embeddings v_i to a partition:
pick a random pivot among the unclustered points, put it in a new cluster with every
unclustered point j with ``v_p . v_j > threshold`` (1/2 in the paper), remove them, repeat.
On the oracle embedding (inner products exactly 0 or 1) this recovers the partition; in
general it is a 3-approximation of correlation clustering in expectation.

:func:`kwikcluster` is the core (one pass over the remaining points per pivot, compiled
with numba; the remaining points are kept compacted so each pivot costs O(remaining * d)).
:func:`kwikcluster_image` adds the image-side clean-up (4-connected pieces, merging pieces
smaller than ``min_size`` into their most similar neighbour), and
:func:`kwikcluster_hierarchy` turns several thresholds into nested levels: KwikCluster is
run at each threshold, coarse (low threshold) to fine, and every finer level is
intersected with the next coarser one, so that the levels nest as
:meth:`affseg.grouping.hierarchy.Hierarchy.to_ucm` requires.

References
----------
.. [1] N. Ailon, M. Charikar and A. Newman, "Aggregating inconsistent information: ranking and
   clustering", Journal of the ACM 55(5), 2008.
.. [2] M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
   ICLR workshop track, 2018.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components
from skimage.measure import label

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.region_merging import neighbour_pairs
from affseg.grouping.relabel import sequential

__all__ = [
    "DEFAULT_THRESHOLDS",
    "kwikcluster",
    "kwikcluster_hierarchy",
    "kwikcluster_image",
    "merge_small_regions",
    "refine_upsampled_labels",
]

#: Thresholds of :func:`kwikcluster_hierarchy`, fine -> coarse (0.5 is the paper's).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)

_FOUR = ndimage.generate_binary_structure(2, 1)


@numba.njit(cache=True, nogil=True)
def _kwik_core(emb: np.ndarray, order: np.ndarray, threshold: float) -> np.ndarray:
    n, d = emb.shape
    labels = np.full(n, -1, dtype=np.int32)
    remaining = np.arange(n)
    n_rem = n
    cur = 0
    for p in order:
        if labels[p] >= 0:
            continue
        labels[p] = cur
        write = 0
        for idx in range(n_rem):
            i = remaining[idx]
            if labels[i] >= 0:
                continue
            dot = 0.0
            for c in range(d):
                dot += emb[i, c] * emb[p, c]
            if dot > threshold:
                labels[i] = cur
            else:
                remaining[write] = i
                write += 1
        n_rem = write
        cur += 1
    return labels


def _check_embeddings(embeddings: np.ndarray, ndim: int) -> np.ndarray:
    emb = np.asarray(embeddings)
    if emb.ndim != ndim or emb.size == 0:
        want = "(N, d)" if ndim == 2 else "(H, W, d)"
        raise InputError(f"embeddings must be a non-empty array {want}; got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating) or not np.isfinite(emb).all():
        raise InputError("embeddings must be finite floating-point values")
    return np.ascontiguousarray(emb, dtype=np.float32)


def kwikcluster(
    embeddings: np.ndarray, threshold: float = 0.5, *, seed: int | None = 0
) -> np.ndarray:
    """KwikCluster in the inner-product space of the rows of ``embeddings``.

    Parameters
    ----------
    embeddings : ndarray, shape (N, d)
        One (typically unit) vector per point.
    threshold : float
        Points j join pivot p's cluster when ``v_p . v_j > threshold``.
    seed : int or None
        Seed of the random pivot order (None: fresh entropy).

    Returns
    -------
    ndarray, shape (N,), int32
        Cluster ids 0..K-1, numbered in pivot order.

    Examples
    --------
    >>> v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> kwikcluster(v, seed=0).tolist() in ([0, 0, 1], [1, 1, 0])
    True
    """
    emb = _check_embeddings(embeddings, 2)
    order = np.random.default_rng(seed).permutation(emb.shape[0])
    return _kwik_core(emb, order, float(threshold))


def _region_means(labels: np.ndarray, emb: np.ndarray, n: int) -> np.ndarray:
    """Mean embedding (n, d) of every region of ``labels`` (H*W,) with ids 0..n-1."""
    sums = np.stack(
        [np.bincount(labels, weights=emb[:, c], minlength=n) for c in range(emb.shape[1])], axis=1
    )
    return sums / np.maximum(np.bincount(labels, minlength=n), 1)[:, None]


def merge_small_regions(
    labels: np.ndarray,
    min_size: int,
    embeddings: np.ndarray | None = None,
    parent: np.ndarray | None = None,
) -> np.ndarray:
    """Merge regions smaller than ``min_size`` pixels into a 4-adjacent neighbour.

    Each round, every small region picks the adjacent region with the most similar mean
    embedding (with ``embeddings``), else the one sharing the longest border; all picks are
    merged at once (chains and mutual picks via connected components), until no small
    region remains or no small region has a neighbour allowed by ``parent``.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Regions (any ids >= 0).
    min_size : int
    embeddings : ndarray, shape (H, W, d), optional
    parent : ndarray, shape (H, W), int, optional
        Only neighbours with the same parent label are allowed (keeps a hierarchy nested).

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K (relabelled sequentially).

    Examples
    --------
    >>> import numpy as np
    >>> merge_small_regions(np.array([[1, 1, 1, 2], [1, 1, 1, 1]]), min_size=2).tolist()
    [[1, 1, 1, 1], [1, 1, 1, 1]]
    """
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    h, w = np.shape(labels)
    lab = inv.reshape(h, w)
    emb = None if embeddings is None else np.asarray(embeddings).reshape(h * w, -1)
    par = None if parent is None else np.asarray(parent).reshape(-1)
    for _ in range(64):
        flat = lab.reshape(-1)
        n = int(flat.max()) + 1
        sizes = np.bincount(flat, minlength=n)
        small = sizes < min_size
        if n == 1 or not small.any():
            break
        a, b = neighbour_pairs(lab)
        diff = a != b
        a, b = a[diff], b[diff]
        if par is not None:
            par_of = np.zeros(n, dtype=np.int64)
            par_of[flat] = par
            same = par_of[a] == par_of[b]
            a, b = a[same], b[same]
        a, b = np.concatenate([a, b]), np.concatenate([b, a])
        keep = small[a]
        a, b = a[keep], b[keep]
        if a.size == 0:
            break
        border = sparse.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)).tocsr()
        border.sum_duplicates()
        src, dst = border.nonzero()
        if emb is not None:
            means = _region_means(flat, emb, n)
            score = np.einsum("ij,ij->i", means[src], means[dst])
        else:
            score = np.asarray(border[src, dst]).ravel()
        # best neighbour per small region: sort by (src, score) and take the last per src
        order = np.lexsort((score, src))
        src, dst = src[order], dst[order]
        last = np.r_[src[1:] != src[:-1], True]
        src, dst = src[last], dst[last]
        graph = sparse.coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        lab = comp[lab]
    return sequential(lab.reshape(h, w))


def _pieces(labels: np.ndarray) -> np.ndarray:
    """Split every region of ``labels`` (H, W) into its 4-connected pieces; ids 1..K."""
    lab = np.asarray(labels, dtype=np.int64)
    return label(lab - lab.min() + 1, background=0, connectivity=1).astype(np.int32)


def kwikcluster_image(
    embeddings: np.ndarray,
    threshold: float = 0.5,
    *,
    seed: int | None = 0,
    min_size: int = 0,
    parent: np.ndarray | None = None,
) -> np.ndarray:
    """KwikCluster of per-pixel embeddings, as connected regions.

    Parameters
    ----------
    embeddings : ndarray, shape (H, W, d)
        Unit embeddings per pixel.
    threshold : float
    seed : int or None
    min_size : int
        Pieces smaller than this many pixels are merged into their most similar
        4-adjacent piece (0: no merging).
    parent : ndarray, shape (H, W), int, optional
        A coarser segmentation to refine: clusters are intersected with it and merges stay
        inside its regions.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K of 4-connected regions (KwikCluster clusters are split into their
        connected pieces).

    References
    ----------
    N. Ailon, M. Charikar and A. Newman, "Aggregating inconsistent information: ranking and
    clustering", Journal of the ACM 55(5), 2008 (KwikCluster).
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.zeros((2, 4, 2)); emb[:, :2, 0] = 1; emb[:, 2:, 1] = 1   # two unit directions
    >>> kwikcluster_image(emb, 0.5).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    emb = _check_embeddings(embeddings, 3)
    h, w, d = emb.shape
    lab = kwikcluster(emb.reshape(h * w, d), threshold, seed=seed).reshape(h, w).astype(np.int64)
    if parent is not None:
        par = np.asarray(parent)
        if par.shape != (h, w):
            raise InputError(f"parent has shape {par.shape}; expected {(h, w)}")
        lab = lab * (int(par.max()) + 1) + par
    lab = _pieces(lab)
    if min_size > 1:
        lab = merge_small_regions(lab, min_size, emb, parent)
    return lab


def refine_upsampled_labels(
    grid_labels: np.ndarray, grid_embeddings: np.ndarray, pixel_embeddings: np.ndarray
) -> np.ndarray:
    """Bring a label map from the embedding grid to full resolution.

    Each pixel (y, x) sits between 2 x 2 grid nodes (bilinear geometry, pixel centres,
    ``align_corners=False``); where those nodes all carry the same label it takes it, else
    it takes the candidate label whose region mean embedding (on the grid, normalised) has
    the largest inner product with the pixel's own embedding.

    Parameters
    ----------
    grid_labels : ndarray, shape (h, w), int
    grid_embeddings : ndarray, shape (h, w, d)
    pixel_embeddings : ndarray, shape (H, W, d)

    Returns
    -------
    ndarray, shape (H, W), int32
        Values taken from ``grid_labels``.
    """
    lab = np.asarray(grid_labels)
    h, w = lab.shape
    big_h, big_w, d = pixel_embeddings.shape
    if grid_embeddings.shape[:2] != (h, w):
        raise InputError(
            f"grid labels {lab.shape} and grid embeddings {grid_embeddings.shape} differ"
        )

    def corners(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
        pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1)

    y0, y1 = corners(big_h, h)
    x0, x1 = corners(big_w, w)
    cand = np.stack(
        [lab[np.ix_(y0, x0)], lab[np.ix_(y0, x1)], lab[np.ix_(y1, x0)], lab[np.ix_(y1, x1)]],
        axis=-1,
    )  # (H, W, 4)
    out = cand[..., 0].astype(np.int32)
    mixed = (cand != cand[..., :1]).any(-1)
    if mixed.any():
        ids, inv = np.unique(lab, return_inverse=True)
        means = _region_means(inv.ravel(), np.asarray(grid_embeddings).reshape(h * w, -1), ids.size)
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        c = np.searchsorted(ids, cand[mixed])  # (M, 4) indices into means
        score = np.einsum("md,mkd->mk", pixel_embeddings[mixed], means[c])
        out[mixed] = ids[c[np.arange(c.shape[0]), score.argmax(1)]]
    return out


def kwikcluster_hierarchy(
    embeddings: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    seed: int | None = 0,
    min_size: int = 0,
    default_threshold: float = 0.5,
    pixel_embeddings: np.ndarray | None = None,
) -> Hierarchy:
    """Nested KwikCluster segmentations over several thresholds.

    Levels are computed coarse (lowest threshold) to fine: level t is KwikCluster at t,
    intersected with level t' (the next lower threshold), split into connected pieces, and
    small pieces merged within their parent region. Every level therefore refines the
    coarser ones, and the hierarchy converts to a UCM.

    Parameters
    ----------
    embeddings : ndarray, shape (h, w, d)
        Embeddings on which KwikCluster runs (the pixels, or a coarser feature grid).
    thresholds : sequence of float
        Distinct values; sorted high (fine) -> low (coarse) here.
    seed : int or None
        Seed of the first (coarsest) run; level l uses ``seed + l``.
    min_size : int
        Minimum region size in output pixels (see :func:`kwikcluster_image`); on a grid it
        is divided by the number of pixels per grid node.
    default_threshold : float
        The level whose threshold is closest to this is the hierarchy's default level.
    pixel_embeddings : ndarray, shape (H, W, d), optional
        Full-resolution embeddings when ``embeddings`` is a coarser grid: the finest level
        is brought to (H, W) by :func:`refine_upsampled_labels` and the coarser levels
        follow it through their grid parents, so nesting is kept exactly.

    Returns
    -------
    Hierarchy
        Levels fine -> coarse, shape (H, W) (or (h, w)), each made of 4-connected regions;
        the height of the level at threshold t is ``1 - t`` (clipped to [0, 1]; 0 for the
        finest level), so the UCM value of a boundary is one minus the highest threshold at
        which it disappears.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.zeros((2, 4, 2)); emb[:, :2, 0] = 1; emb[:, 2:, 1] = 1   # two unit directions
    >>> kwikcluster_hierarchy(emb, (0.9, 0.5)).n_segments
    [2, 2]
    """
    ts = np.unique(np.asarray(thresholds, dtype=np.float64))[::-1]  # high -> low
    if ts.size == 0:
        raise InputError("at least one threshold is needed")
    emb = _check_embeddings(embeddings, 3)
    grid_min = min_size
    pix = None
    if pixel_embeddings is not None:
        pix = _check_embeddings(pixel_embeddings, 3)
        if pix.shape[2] != emb.shape[2]:
            raise InputError("pixel and grid embeddings differ in dimension")
        ratio = pix.shape[0] * pix.shape[1] / (emb.shape[0] * emb.shape[1])
        grid_min = int(np.ceil(min_size / ratio))
    levels: list[np.ndarray] = []
    parent = None
    for i, t in enumerate(ts[::-1]):  # coarse -> fine
        s = None if seed is None else seed + i
        lab = kwikcluster_image(emb, float(t), seed=s, min_size=grid_min, parent=parent)
        levels.append(lab)
        parent = lab
    levels = levels[::-1]  # fine -> coarse
    if pix is not None:
        fine = refine_upsampled_labels(levels[0], emb, pix)
        n0 = int(levels[0].max()) + 1
        out = []
        for lv in levels:
            lut = np.zeros(n0, dtype=np.int32)
            lut[levels[0].ravel()] = lv.ravel()
            # at full resolution a region can fall apart: keep its 4-connected pieces (still
            # nested: a piece of a finer region lies in one piece of its coarser region)
            out.append(_pieces(lut[fine]))
        levels = out
    heights = np.maximum.accumulate(np.clip(1.0 - ts, 0.0, 1.0))
    heights[0] = 0.0  # the finest level is there from height 0 on
    default = int(np.argmin(np.abs(ts - default_threshold)))
    return Hierarchy(levels, heights=heights, default_level=default)
