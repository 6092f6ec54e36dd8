"""From a flat label map to nested segments: clean-up and greedy merging ([1], Sect. 6).

* :func:`connected_cleanup` keeps the largest 4-connected piece of every label and gives
  every other piece to the neighbouring segment it shares the longest border with, so
  that each label of the result is one 4-connected region (what the BSDS UCM encodes).
* :func:`greedy_merge` merges, one step at a time, the adjacent pair of segments with the
  largest average similarity, down to a single region, and :func:`merge_levels` turns the
  merge sequence into nested label maps with heights ``1 - similarity``.

All loops run over segments or merge steps (tens to hundreds), never over pixels.

Unlike the other greedy merges (the leaf grouping's compiled heap,
:func:`affseg.grouping.leaf_kernels.merge_dense`, and
:func:`affseg.grouping.label_merging.merge_adjacent`), :func:`greedy_merge` rescans a dense
S x S similarity matrix every step (at most ``max_centres`` ~ 10 regions here), maximises an
unclamped similarity whose centroid linkage ``exp(-tau ||mean_a - mean_b||^2)`` is
recomputed from the merged means (not additive), and returns the similarities of a full
merge tree.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_label

from affseg.errors import InputError


def _check_labels(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.size == 0:
        raise InputError(f"labels must be a non-empty (H, W) array; got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be integers; got dtype {lab.dtype}")
    return lab


def neighbour_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two values of every 4-neighbour pixel pair of a 2-D array.

    Parameters
    ----------
    values : ndarray, shape (H, W)

    Returns
    -------
    first, second : ndarray, shape (H (W - 1) + (H - 1) W,)
        Left/top and right/bottom member of each horizontal, then each vertical, pair.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = neighbour_pairs(np.array([[1, 2], [3, 4]]))
    >>> a.tolist(), b.tolist()
    ([1, 3, 1, 2], [2, 4, 3, 4])
    """
    v = np.asarray(values)
    return (
        np.concatenate([v[:, :-1].ravel(), v[:-1, :].ravel()]),
        np.concatenate([v[:, 1:].ravel(), v[1:, :].ravel()]),
    )


def adjacent_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-neighbour border lengths between distinct labels.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Non-negative labels.

    Returns
    -------
    a, b : ndarray, shape (P,), int64
        Every ordered pair of touching labels (both (a, b) and (b, a) are listed).
    count : ndarray, shape (P,), int64
        Number of 4-neighbour pixel pairs across the border of a and b.

    Examples
    --------
    >>> import numpy as np
    >>> i, j, n = adjacent_pairs(np.array([[1, 1, 2, 2], [3, 3, 2, 2]]))
    >>> i.tolist(), j.tolist(), n.tolist()
    ([1, 1, 2, 2, 3, 3], [2, 3, 1, 3, 1, 2], [1, 2, 1, 1, 2, 1])
    """
    lab = _check_labels(labels).astype(np.int64, copy=False)
    pa, pb = neighbour_pairs(lab)
    diff = pa != pb
    pa, pb = pa[diff], pb[diff]
    base = int(lab.max()) + 1
    key = np.concatenate([pa * base + pb, pb * base + pa])
    uniq, count = np.unique(key, return_counts=True)
    return uniq // base, uniq % base, count


def connected_cleanup(
    labels: np.ndarray, min_size: int = 0, soft: np.ndarray | None = None
) -> np.ndarray:
    """Make every label one 4-connected region.

    For each label the largest 4-connected piece is kept (if it has at least ``min_size``
    pixels); every other piece joins a kept neighbouring region (repeatedly, for pieces
    enclosed by other removed pieces). Without ``soft`` the piece joins the neighbour with
    which it shares the longest border. With soft assignments it joins the neighbour whose
    class it belongs to most (mean of ``soft[class]`` over the piece; border length breaks
    ties), and a piece waits for a later round while its best neighbour scores below half
    of its best class other than its own, so that a removed piece is not swallowed by a
    dissimilar region just because that region touches it first.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Any integer labels (with ``soft``: class indices 0..C-1).
    min_size : int
        Kept pieces smaller than this are absorbed too (the largest piece of the image is
        always kept).
    soft : ndarray, shape (C, H, W), optional
        Soft class assignments whose argmax gave ``labels``.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..S, each a single 4-connected region.

    Examples
    --------
    >>> import numpy as np
    >>> connected_cleanup(np.array([[1, 2, 1, 1]])).tolist()   # label 1 is two regions
    [[1, 1, 2, 2]]
    """
    lab = _check_labels(labels).astype(np.int64)
    lab = lab - (lab.min() if soft is None else 0) + 1
    comp = connected_label(lab, background=0, connectivity=1)
    n_comp = int(comp.max())
    flat = comp.ravel()
    size = np.bincount(flat, minlength=n_comp + 1)
    cls = np.zeros(n_comp + 1, dtype=np.int64)
    cls[flat] = lab.ravel()
    ids = np.arange(1, n_comp + 1)
    order = ids[np.lexsort((-size[1:], cls[1:]))]
    _, first = np.unique(cls[order], return_index=True)
    kept = np.zeros(n_comp + 1, dtype=bool)
    kept[order[first]] = True
    if min_size > 0:
        kept &= size >= min_size
        kept[int(np.argmax(size))] = True
    kept[0] = False
    parent = np.arange(n_comp + 1)
    orphan = ~kept
    orphan[0] = False
    score = None
    if soft is not None and orphan.any():
        z = np.asarray(soft, dtype=np.float64)
        if z.ndim != 3 or z.shape[1:] != lab.shape:
            raise InputError(f"soft must have shape (C, {lab.shape[0]}, {lab.shape[1]})")
        if lab.max() > z.shape[0]:
            raise InputError("labels must be class indices 0..C-1 of soft")
        sums = np.stack([np.bincount(flat, weights=zc.ravel(), minlength=n_comp + 1) for zc in z])
        score = (sums / np.maximum(size, 1)).T  # (P+1, C): mean membership of each piece
        other = score.copy()
        other[np.arange(n_comp + 1), cls - 1] = -np.inf
        target = 0.5 * other.max(axis=1)
    if orphan.any():
        a, b, cnt = adjacent_pairs(comp)
        while orphan.any():
            ra, rb = parent[a], parent[b]
            sel = (ra != rb) & orphan[ra] & ~orphan[rb]
            if not sel.any():  # pragma: no cover - every orphan touches some region
                break
            key = ra[sel] * (n_comp + 1) + rb[sel]
            uk, inv = np.unique(key, return_inverse=True)
            tot = np.bincount(inv, weights=cnt[sel])
            src, dst = uk // (n_comp + 1), uk % (n_comp + 1)
            if score is None:
                best = np.lexsort((-tot, src))
            else:
                fit = score[src, cls[dst] - 1]
                best = np.lexsort((-tot, -fit, src))
            _, firsts = np.unique(src[best], return_index=True)
            src, dst = src[best[firsts]], dst[best[firsts]]
            if score is not None:
                ok = score[src, cls[dst] - 1] >= target[src]
                if ok.any():
                    src, dst = src[ok], dst[ok]
            parent[src] = dst
            orphan[src] = False
            parent = parent[parent]  # dst are roots; keep every entry pointing at a root
    if soft is None and not (~kept[1:]).any():
        # every piece kept (e.g. watershed basins): the component labels are already 1..n
        return comp.astype(np.int32)
    root = parent[comp]
    uniq, inv = np.unique(root.ravel(), return_inverse=True)
    return (inv.reshape(root.shape) + 1).astype(np.int32)


def grid_counts(labels: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Pixel counts of every segment in every cell of a coarser grid.

    Pixel (y, x) of an (H, W) map belongs to grid node ``(y * h // H, x * w // W)``.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Labels 1..S.
    grid : tuple of int
        (h, w) of the feature grid.

    Returns
    -------
    ndarray, shape (h * w, S), float32
        Row-major grid nodes.

    Examples
    --------
    >>> import numpy as np
    >>> grid_counts(np.array([[1, 1, 2, 2], [1, 1, 2, 2]]), (1, 2)).tolist()
    [[4.0, 0.0], [0.0, 4.0]]
    """
    lab = _check_labels(labels)
    hh, ww = lab.shape
    h, w = int(grid[0]), int(grid[1])
    s = int(lab.max())
    gy = (np.arange(hh) * h) // hh
    gx = (np.arange(ww) * w) // ww
    node = gy[:, None] * w + gx[None, :]
    counts = np.bincount((node * s + (lab - 1)).ravel(), minlength=h * w * s)
    return counts.reshape(h * w, s).astype(np.float32)


def greedy_merge(
    adjacency: np.ndarray,
    *,
    pair_sums: np.ndarray | None = None,
    mass: np.ndarray | None = None,
    means: np.ndarray | None = None,
    tau: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent segments, most similar pair first, down to one region.

    Two linkages:

    * ``pair_sums`` + ``mass`` ("kernel"): the similarity of segments a, b is the average
      kernel value over their node pairs, ``pair_sums[a, b] / (mass[a] mass[b])``; after a
      merge the sums add up, so this is exact average linkage.
    * ``means`` + ``mass`` ("centroid"): ``exp(-tau ||mean_a - mean_b||^2)`` of the segments'
      mean embeddings; a merged segment gets the mass-weighted mean.

    Parameters
    ----------
    adjacency : ndarray, shape (S, S), bool
        Symmetric: which segments touch.
    pair_sums : ndarray, shape (S, S), optional
        ``M^T K M`` for a membership-count matrix M (N, S) and kernel K (N, N).
    mass : ndarray, shape (S,)
        Size of every segment (``M.sum(0)``).
    means : ndarray, shape (S, Ne), optional
        Mean embedding of every segment.
    tau : float
        Scale of the centroid similarity.

    Returns
    -------
    merges : ndarray, shape (S - 1, 2), int64
        Step k merges segment ``merges[k, 1]`` into ``merges[k, 0]`` (original indices; a
        merged segment keeps the index of its first part).
    similarity : ndarray, shape (S - 1,)
        Similarity of the pair at each step (0 for steps that join parts with no common
        border, which happens only if ``adjacency`` is disconnected).

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> adjacency = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)   # a chain 0 - 1 - 2
    >>> means, mass = np.array([[0.0], [0.1], [1.0]]), np.ones(3)
    >>> merges, sim = greedy_merge(adjacency, means=means, mass=mass)
    >>> merges.tolist(), sim.round(4).tolist()
    ([[0, 1], [0, 2]], [0.99, 0.4056])
    """
    adj = np.array(adjacency, dtype=bool)
    s = adj.shape[0]
    if adj.shape != (s, s):
        raise InputError(f"adjacency must be square; got {adj.shape}")
    if mass is None or (pair_sums is None) == (means is None):
        raise InputError("greedy_merge needs mass and exactly one of pair_sums or means")
    w = np.asarray(mass, dtype=np.float64).copy()
    np.fill_diagonal(adj, False)
    alive = np.ones(s, dtype=bool)
    if pair_sums is not None:
        sums = np.array(pair_sums, dtype=np.float64)
        sim = sums / np.maximum(np.outer(w, w), 1e-12)
    else:
        mu = np.array(means, dtype=np.float64)
        sq = (mu**2).sum(1)
        sim = np.exp(-tau * np.maximum(sq[:, None] + sq[None, :] - 2 * mu @ mu.T, 0.0))
    merges = np.zeros((max(s - 1, 0), 2), dtype=np.int64)
    sims = np.zeros(max(s - 1, 0))
    for step in range(s - 1):
        score = np.where(adj, sim, -np.inf)
        idx = int(np.argmax(score))
        a, b = divmod(idx, s)
        if not np.isfinite(score[a, b]):  # disconnected: join the two first live parts
            a, b = np.flatnonzero(alive)[:2]
            sims[step] = 0.0
        else:
            sims[step] = sim[a, b]
        a, b = min(a, b), max(a, b)
        merges[step] = a, b
        alive[b] = False
        adj[a] |= adj[b]
        adj[:, a] |= adj[:, b]
        adj[b, :] = False
        adj[:, b] = False
        adj[a, a] = False
        if pair_sums is not None:
            sums[a] += sums[b]
            sums[:, a] += sums[:, b]
            w[a] += w[b]
            row = sums[a] / np.maximum(w[a] * w, 1e-12)
        else:
            mu[a] = (w[a] * mu[a] + w[b] * mu[b]) / (w[a] + w[b])
            w[a] += w[b]
            row = np.exp(-tau * ((mu - mu[a]) ** 2).sum(1))
        sim[a] = row
        sim[:, a] = row
    return merges, sims


def merge_levels(
    labels: np.ndarray, merges: np.ndarray, similarity: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Nested label maps of a merge sequence, with their UCM heights.

    Level 0 is ``labels``; level k (k >= 1) is the partition after ``k`` merges, at height
    ``1 - similarity[k - 1]``. Heights are made non-decreasing (running maximum) and then
    strictly increasing by steps of 1e-9, so that thresholding the UCM at ``heights[k]``
    gives level k exactly.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Labels 1..S.
    merges : ndarray, shape (S - 1, 2)
        From :func:`greedy_merge` (0-based segment indices, i.e. label - 1).
    similarity : ndarray, shape (S - 1,)

    Returns
    -------
    levels : list of ndarray, each (H, W) int32
        S levels, fine -> coarse, labels 1..K_l, the last one a single region.
    heights : ndarray, shape (S,)
        ``heights[0] = 0``; values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> adjacency = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)   # a chain 0 - 1 - 2
    >>> means, mass = np.array([[0.0], [0.1], [1.0]]), np.ones(3)
    >>> merges, sim = greedy_merge(adjacency, means=means, mass=mass)
    >>> levels, heights = merge_levels(np.array([[1, 2, 3]]), merges, sim)
    >>> [lv.tolist() for lv in levels], heights.round(4).tolist()
    ([[[1, 2, 3]], [[1, 1, 2]], [[1, 1, 1]]], [0.0, 0.01, 0.5944])
    """
    lab = _check_labels(labels)
    s = int(lab.max())
    merges = np.asarray(merges, dtype=np.int64).reshape(-1, 2)
    owner = np.arange(s)
    lut0 = np.concatenate([[0], np.arange(1, s + 1)]).astype(np.int32)
    levels = [lut0[lab]]
    for a, b in merges:
        owner[owner == b] = a
        _, inv = np.unique(owner, return_inverse=True)
        levels.append(np.concatenate([[0], inv + 1]).astype(np.int32)[lab])
    h = np.clip(1.0 - np.asarray(similarity, dtype=np.float64), 0.0, 1.0)
    h = np.maximum.accumulate(np.concatenate([[0.0], h]))
    for k in range(1, h.size):
        h[k] = max(h[k], h[k - 1] + 1e-9)
    return levels, np.minimum(h, 1.0)
