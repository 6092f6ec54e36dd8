"""Classical segmentation baselines as hierarchies.

Every baseline is a method ``fn(image (H, W, 3) uint8, *, seed=0, **options) -> Hierarchy``
(registered in :data:`affseg.methods.METHODS`). A parameter sweep gives label maps from fine
to coarse; :func:`nest_levels` makes them nested (each finer region joins the coarser region
it overlaps most, then coarse segments are split into connected components), so that
:meth:`Hierarchy.to_ucm` and the label-map list describe the same segmentations.

=================  ==========================================================================
method             hierarchy
=================  ==========================================================================
felzenszwalb       Felzenszwalb-Huttenlocher graph segmentation over ``scales``
slic               SLIC superpixels over ``n_segments``
quickshift         one quickshift tree (scikit-image), cut at increasing ``max_dists``
ncut               recursive two-way normalized cut (Shi & Malik) of a SLIC region adjacency
                   graph, the scikit-image ``cut_normalized`` criterion, cut at ``thresholds``
kmeans             k-means on CIE-Lab colour over ``ks`` (segments = colour clusters, not
                   necessarily connected)
=================  ==========================================================================

Example
-------
>>> from skimage import data
>>> from affseg.methods.baselines import felzenszwalb_hierarchy
>>> h = felzenszwalb_hierarchy(data.coffee())
>>> len(h.levels) > 1 and h.n_segments[0] > h.n_segments[-1]
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import linalg, ndimage
from skimage.color import rgb2lab
from skimage.segmentation import felzenszwalb, quickshift, relabel_sequential, slic

from affseg.data.io import as_rgb
from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.relabel import nest_levels

_FOUR = ndimage.generate_binary_structure(2, 1)

#: Default sweeps (fine -> coarse).
FELZENSZWALB_SCALES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
SLIC_SEGMENTS = (1024, 512, 256, 128, 64, 32, 16, 8, 4)
QUICKSHIFT_MAX_DISTS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 14.0, 20.0, 35.0)
NCUT_THRESHOLDS = (0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5, 1e-6)
KMEANS_KS = (16, 12, 8, 6, 5, 4, 3, 2)


def _hierarchy(levels: list[np.ndarray], default_param_index: int) -> Hierarchy:
    return Hierarchy(levels, default_level=int(np.clip(default_param_index, 0, len(levels) - 1)))


def _default_index(sweep: Sequence[float], default: float) -> int:
    return int(np.argmin(np.abs(np.log(np.asarray(sweep, dtype=float)) - np.log(default))))


def felzenszwalb_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    scales: Sequence[float] = FELZENSZWALB_SCALES,
    sigma: float = 0.8,
    min_size: int = 20,
    default_scale: float = 512,
) -> Hierarchy:
    """Felzenszwalb-Huttenlocher segmentations over a sweep of ``scale`` (fine -> coarse).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Unused (the algorithm is deterministic); accepted for a uniform method signature.
    scales : sequence of float
        Increasing values of the ``k`` parameter (larger = coarser).
    sigma, min_size
        As in :func:`skimage.segmentation.felzenszwalb`.
    default_scale : float
        The level returned by ``Hierarchy.labels()``: the scale closest to this.

    Returns
    -------
    Hierarchy
        ``len(scales)`` nested levels (see :func:`nest_levels`).

    References
    ----------
    P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient Graph-Based Image Segmentation",
    IJCV 59(2), 2004.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> felzenszwalb_hierarchy(image).n_segments
    [47, 39, 32, 21, 11, 7, 5, 3, 3]
    """
    img = as_rgb(image)
    scales = sorted(float(s) for s in scales)
    raw = [felzenszwalb(img, scale=s, sigma=sigma, min_size=int(min_size)) for s in scales]
    return _hierarchy(nest_levels(raw, min_size=min_size), _default_index(scales, default_scale))


def slic_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    n_segments: Sequence[int] = SLIC_SEGMENTS,
    compactness: float = 10.0,
    sigma: float = 0.0,
    default_segments: int = 64,
) -> Hierarchy:
    """SLIC superpixels over a sweep of ``n_segments`` (fine -> coarse).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Unused (deterministic).
    n_segments : sequence of int
        Target superpixel counts; sorted decreasing.
    compactness, sigma
        As in :func:`skimage.segmentation.slic` (which clusters in CIE-Lab).
    default_segments : int
        The default level: the target count closest to this.

    Returns
    -------
    Hierarchy

    References
    ----------
    R. Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
    IEEE TPAMI 34(11), 2012.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> slic_hierarchy(image).n_segments
    [864, 355, 172, 78, 38, 19, 6, 4, 3]
    """
    img = as_rgb(image)
    counts = sorted((int(n) for n in n_segments), reverse=True)
    if not counts or counts[-1] < 1:
        raise InputError(f"slic n_segments must be >= 1, got {tuple(n_segments)}")
    if not (np.isfinite(compactness) and compactness > 0):
        raise InputError(f"slic compactness must be a positive number, got {compactness}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise InputError(f"slic sigma must be a finite number >= 0, got {sigma}")
    raw = [
        slic(img, n_segments=n, compactness=compactness, sigma=sigma, start_label=1) for n in counts
    ]
    return _hierarchy(nest_levels(raw), _default_index(counts, default_segments))


def _tree_roots(parent: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Root of every node in a forest where only the links ``keep`` survive (pointer jumping)."""
    ptr = np.where(keep, parent, np.arange(parent.size))
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            return ptr
        ptr = nxt


def quickshift_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    max_dists: Sequence[float] = QUICKSHIFT_MAX_DISTS,
    kernel_size: float = 5.0,
    ratio: float = 1.0,
    sigma: float = 0.0,
    min_size: int = 20,
    default_max_dist: float = 10.0,
) -> Hierarchy:
    """Quickshift (Vedaldi & Soatto) cut at a sweep of ``max_dist`` (fine -> coarse).

    The quickshift forest (each pixel linked to its nearest denser neighbour, with the
    link's length in the joint colour-position space) is computed once by
    :func:`skimage.segmentation.quickshift` with ``return_tree=True``; the segmentation at
    ``max_dist`` keeps the links no longer than it, so the levels are nested by
    construction.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Seed of quickshift's tie-breaking noise.
    max_dists : sequence of float
        Increasing cut lengths.
    kernel_size, ratio, sigma
        As in :func:`skimage.segmentation.quickshift`.
    min_size : int
        Quickshift links reach up to ``3 * kernel_size`` pixels, so a tree segment can be
        spatially scattered; after splitting into 4-connected components, pieces smaller
        than this join their nearest neighbour (:func:`absorb_small`).
    default_max_dist : float
        The default level.

    Returns
    -------
    Hierarchy

    References
    ----------
    A. Vedaldi and S. Soatto, "Quick Shift and Kernel Methods for Mode Seeking", ECCV 2008.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> quickshift_hierarchy(image).n_segments
    [17, 13, 11, 10, 9, 9, 6, 6, 6]
    """
    img = as_rgb(image)
    dists = sorted(float(d) for d in max_dists)
    _, parent, dist = quickshift(
        img, ratio=ratio, kernel_size=kernel_size, max_dist=max(dists), return_tree=True,
        sigma=sigma, rng=seed,
    )  # fmt: skip
    parent = np.asarray(parent).ravel()
    dist = np.asarray(dist).ravel()
    h, w = img.shape[:2]
    raw = [_tree_roots(parent, dist <= d).reshape(h, w) for d in dists]
    return _hierarchy(nest_levels(raw, min_size=min_size), _default_index(dists, default_max_dist))


def _superpixel_graph(image: np.ndarray, superpixels: np.ndarray, sigma: float) -> np.ndarray:
    """Dense similarity matrix of a region adjacency graph, as ``skimage.graph.rag_mean_color``.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float
    superpixels : ndarray, shape (H, W), labels 0..n-1
    sigma : float
        Weight of an edge = exp(-||mean_i - mean_j||^2 / sigma).

    Returns
    -------
    ndarray, shape (n, n), float64
        Symmetric; zero between non-adjacent regions; 1 on the diagonal (the self-edges
        ``cut_normalized`` adds with ``max_edge=1``).
    """
    n = int(superpixels.max()) + 1
    flat = superpixels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    means = (
        np.stack(
            [np.bincount(flat, weights=image[..., c].ravel(), minlength=n) for c in range(3)], 1
        )
        / count[:, None]
    )
    # 8-connected adjacency, like rag_mean_color(connectivity=2)
    sp = superpixels
    pairs = [
        (sp[:, :-1], sp[:, 1:]), (sp[:-1, :], sp[1:, :]),
        (sp[:-1, :-1], sp[1:, 1:]), (sp[:-1, 1:], sp[1:, :-1]),
    ]  # fmt: skip
    a = np.concatenate([p.ravel() for p, _ in pairs])
    b = np.concatenate([q.ravel() for _, q in pairs])
    diff = a != b
    adj = np.zeros((n, n), dtype=bool)
    adj[a[diff], b[diff]] = True
    adj |= adj.T
    d2 = ((means[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    w = np.where(adj, np.exp(-d2 / sigma), 0.0)
    np.fill_diagonal(w, 1.0)
    return w


def _ncut_tree(
    w: np.ndarray, num_cuts: int, max_thresh: float
) -> tuple[list[np.ndarray], list[float], list[tuple[int, int] | None]]:
    """Recursive two-way normalized cuts of a similarity matrix.

    Follows ``skimage.graph.cut_normalized``: the eigenvector of the second smallest
    eigenvalue of ``D^-1/2 (D - W) D^-1/2`` is thresholded at ``num_cuts`` evenly spaced
    values, the split with the smallest ncut (skimage's cost, which counts each cut edge
    in both directions) is taken if it is below the threshold, and both halves recurse.

    Returns
    -------
    nodes : list of ndarray
        Node index sets of the tree, root first.
    split_costs : list of float
        Per tree node, the smallest threshold above which the recursion splits it (the
        largest ncut on its path from the root, itself included); inf for leaves.
    children : list of (int, int) or None
        Per tree node, the indices of its two halves.
    """
    nodes: list[np.ndarray] = []
    costs: list[float] = []
    kids: list[list[int]] = []
    stack: list[tuple[np.ndarray, float, int]] = [(np.arange(w.shape[0]), 0.0, -1)]
    while stack:
        idx, inherited, parent = stack.pop()
        me = len(nodes)
        nodes.append(idx)
        costs.append(np.inf)
        kids.append([])
        if parent >= 0:
            kids[parent].append(me)
        if idx.size <= 2:
            continue
        sub = w[np.ix_(idx, idx)]
        d = sub.sum(axis=0)
        dis = 1.0 / np.sqrt(d)
        a = dis[:, None] * (np.diag(d) - sub) * dis[None, :]
        _, vecs = linalg.eigh(a, subset_by_index=[1, 1])
        ev = vecs[:, 0]
        lo, hi = ev.min(), ev.max()
        if np.isclose(lo, hi):
            continue
        ts = np.linspace(lo, hi, num_cuts, endpoint=False)
        masks = ev[None, :] > ts[:, None]  # (T, m)
        mf = masks.astype(np.float64)
        assoc_a = mf @ d
        assoc_b = d.sum() - assoc_a
        within_a = np.einsum("ti,ij,tj->t", mf, sub, mf)
        cut = assoc_a - within_a  # weight from A to its complement, each edge once
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(
                (assoc_a > 0) & (assoc_b > 0), 2 * cut / assoc_a + 2 * cut / assoc_b, np.inf
            )
        best = int(np.argmin(cost))
        mcut = float(cost[best])
        if not mcut < max_thresh:
            continue
        level = max(inherited, mcut)
        costs[me] = level
        mask = masks[best]
        stack.append((idx[~mask], level, me))
        stack.append((idx[mask], level, me))
    children = [(k[0], k[1]) if len(k) == 2 else None for k in kids]
    return nodes, costs, children


def ncut_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    thresholds: Sequence[float] = NCUT_THRESHOLDS,
    n_superpixels: int = 300,
    compactness: float = 30.0,
    sigma: float = 255.0,
    num_cuts: int = 10,
    default_threshold: float = 0.001,
) -> Hierarchy:
    """Recursive normalized cuts of a superpixel graph, cut at a sweep of thresholds.

    The graph is scikit-image's: SLIC superpixels (``n_superpixels``, ``compactness``),
    edges between 8-adjacent superpixels weighted ``exp(-|mean colour difference|^2 /
    sigma)`` (``rag_mean_color(mode="similarity")``), self-edges of weight 1. The
    two-way-cut recursion is that of ``skimage.graph.cut_normalized`` but on dense NumPy
    matrices and run once: a tree node is split at threshold ``t`` iff the ncut of its split
    and of all its ancestors' splits is below ``t``, so all thresholds come from one tree and
    are nested. (``cut_normalized`` itself takes 15-60 s per threshold on a BSDS image.)

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Unused (dense eigensolver, deterministic).
    thresholds : sequence of float
        ncut thresholds; larger = finer.
    n_superpixels, compactness
        SLIC parameters of the graph's nodes.
    sigma : float
        Colour similarity scale (uint8 RGB units, squared).
    num_cuts : int
        Eigenvector thresholds tried per split.
    default_threshold : float
        The default level (scikit-image's default ``thresh``).

    Returns
    -------
    Hierarchy
        Levels fine -> coarse (decreasing threshold).

    References
    ----------
    J. Shi and J. Malik, "Normalized Cuts and Image Segmentation", IEEE TPAMI 22(8), 2000.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> ncut_hierarchy(image, n_superpixels=40).n_segments
    [17, 17, 16, 16, 15, 14, 13, 13, 13, 13]
    """
    img = as_rgb(image)
    ths = sorted((float(t) for t in thresholds), reverse=True)
    sp = slic(img, n_segments=n_superpixels, compactness=compactness, start_label=0)
    sp = relabel_sequential(sp)[0]
    w = _superpixel_graph(img.astype(np.float64), sp, sigma)
    nodes, split_at, children = _ncut_tree(w, num_cuts, max(ths))
    raw = [_labels_at(nodes, split_at, children, t, w.shape[0])[sp] for t in ths]
    return _hierarchy(nest_levels(raw), _default_index(ths, default_threshold))


def _labels_at(
    nodes: list[np.ndarray],
    split_at: list[float],
    children: list[tuple[int, int] | None],
    t: float,
    n: int,
) -> np.ndarray:
    """Superpixel labels (n,) at threshold ``t``: the tree's nodes not split at ``t``."""
    lab = np.zeros(n, dtype=np.int64)
    k = 0
    stack = [0]
    while stack:
        i = stack.pop()
        kids = children[i]
        if kids is not None and split_at[i] < t:
            stack.extend(kids)
        else:
            lab[nodes[i]] = k
            k += 1
    return lab


def kmeans_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    ks: Sequence[int] = KMEANS_KS,
    n_iter: int = 20,
    default_k: int = 4,
    connected: bool = False,
) -> Hierarchy:
    """k-means on CIE-Lab pixel colours over a sweep of ``k`` (fine -> coarse).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Seed of the k-means++ initialisation.
    ks : sequence of int
        Cluster counts; sorted decreasing.
    n_iter : int
        Lloyd iterations.
    default_k : int
        The default level.
    connected : bool
        Split clusters into connected components (as a UCM would). Default False: a
        segment is a colour cluster, as in the k-means baseline of the MMT paper.

    Returns
    -------
    Hierarchy
        Nested levels: each cluster of a finer k joins the coarser-k cluster it overlaps
        most. The UCM (:meth:`Hierarchy.to_ucm`) splits clusters into connected components.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> kmeans_hierarchy(image).n_segments
    [16, 11, 7, 6, 5, 4, 3, 2]
    """
    from scipy.cluster.vq import kmeans2

    img = as_rgb(image)
    ks_sorted = sorted((int(k) for k in ks), reverse=True)
    if ks_sorted[-1] < 1:
        raise InputError("k-means needs k >= 1")
    feats = rgb2lab(img).reshape(-1, 3)
    h, w = img.shape[:2]
    raw = []
    for i, k in enumerate(ks_sorted):
        rng = np.random.default_rng([seed, i])
        with warnings.catch_warnings():  # fewer distinct colours than k: empty clusters
            warnings.simplefilter("ignore")
            _, lab = kmeans2(feats, k, iter=n_iter, minit="++", seed=rng)
        raw.append(lab.reshape(h, w))
    return _hierarchy(nest_levels(raw, connected=connected), _default_index(ks_sorted, default_k))
