"""Hierarchy from fine edge-following leaves merged by the diffusion similarity K_D.

The paper's grouping (:mod:`affseg.grouping.diffusion_hierarchy`) starts from at most
``max_centres`` kernel k-means clusters on the stride-8 grid whose masks reach image
resolution by interpolation: the finest level has ~20 regions and its boundaries follow
the grid. Here the finest level is an over-segmentation at image resolution that follows
image edges (hundreds of superpixels), and the hierarchy comes from merging adjacent
regions by average K_D. :func:`leaf_hierarchy` runs the steps, one module each:

1. leaves (:mod:`affseg.grouping.leaf_superpixels`): SLIC, compact watershed of the colour
   gradient or Felzenszwalb superpixels, made 4-connected (labels 1..S);
2. region statistics (:mod:`affseg.grouping.leaf_statistics`): every pixel spreads its
   weight over the 4 nearest grid nodes (bilinear), so a leaf is a weighted set of nodes M
   (N, S); the average K_D of touching leaves; border lengths and border sums (colour
   contrast, edge strength, a learned boundary map);
3. the merge (:mod:`affseg.grouping.leaf_merge`): greedy merging of touching regions (a
   heap over the adjacency graph) by ``1 - K`` for the "border", "average" or "mixed"
   linkage, plus the border terms;
4. UCM and levels (:mod:`affseg.grouping.leaf_ucm`): the UCM straight from the merge tree,
   levels at the distinct partitions of the benchmark thresholds plus every one of the
   last ``keep_last`` merges;
5. or :func:`snap_hierarchy`: an existing coarse hierarchy (the paper's) snapped to the
   leaves and refined below its finest level.

Heights are ``(1 - w) (1 - K) + w C`` (w = ``boundary_weight``, C the mean contrast in
[0, 1]), so one UCM threshold means the same on every image. The compiled loops are in
:mod:`affseg.grouping.leaf_kernels`.

Example
-------
>>> import numpy as np
>>> img = np.zeros((24, 32, 3), np.uint8); img[:, 16:] = 200
>>> hier = leaf_hierarchy(img, np.eye(12, dtype=np.float32), (3, 4), n_leaves=12)
>>> hier.levels[0].shape, hier.n_segments[-1]
((24, 32), 1)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.leaf_merge import merge_leaves
from affseg.grouping.leaf_statistics import (
    border_map_sums,
    boundary_contrast,
    boundary_strength,
    leaf_rows,
    pair_kernel,
)
from affseg.grouping.leaf_superpixels import lab_gradient, superpixel_leaves
from affseg.grouping.leaf_ucm import cophenetic, leaf_pair_ucm, merge_tree_ucm
from affseg.grouping.ucm import BSDS_THRESHOLDS


def leaf_hierarchy(
    image: np.ndarray,
    kernel: np.ndarray,
    grid: tuple[int, int],
    *,
    leaves: str = "slic",
    n_leaves: int = 400,
    compactness: float | None = None,
    min_size: int = 0,
    boundary_weight: float = 0.0,
    contrast_scale: float = 10.0,
    linkage: str = "border",
    keep_last: int = 40,
    default_height: float = 0.5,
    coarse: Hierarchy | None = None,
    within: str = "scale",
    small: float = 0.0,
    mix: float = 0.5,
    edge_weight: float = 0.0,
    edge_scale: float = 10.0,
    boundary_map: np.ndarray | None = None,
    learned_weight: float = 0.0,
    leaf_elevation: float = 0.0,
) -> Hierarchy:
    """Edge-following leaves merged by average K_D into a hierarchy at image resolution.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    kernel : ndarray, shape (N, N)
        Grid similarity K_D (N = h * w, row-major).
    grid : tuple of int
        (h, w).
    leaves, n_leaves, compactness, min_size
        See :func:`~affseg.grouping.leaf_superpixels.superpixel_leaves`.
    boundary_weight, contrast_scale
        See :func:`~affseg.grouping.leaf_merge.merge_leaves` and
        :func:`~affseg.grouping.leaf_statistics.boundary_contrast`.
    keep_last, default_height
        See :func:`~affseg.grouping.leaf_ucm.merge_tree_ucm`.
    small : float
        Size prior of :func:`~affseg.grouping.leaf_merge.merge_leaves` as a fraction of the
        image area (not used by ``coarse``).
    mix : float
        See :func:`~affseg.grouping.leaf_merge.merge_leaves`.
    edge_weight, edge_scale : float
        Weight and scale of the mean edge strength along the border
        (:func:`~affseg.grouping.leaf_statistics.boundary_strength`) in the merge
        distance: ``(1 - w - e) (1 - K) + w C + e G`` (e = ``edge_weight``; 0: off).
    boundary_map : ndarray, shape (H, W), optional
        A boundary probability in [0, 1] (e.g.
        :func:`affseg.models.boundary_head.boundary_probability`).
    learned_weight : float
        Weight l of the mean ``boundary_map`` value B along the border
        (:func:`~affseg.grouping.leaf_statistics.border_map_sums`): ``(1 - w - e - l)
        (1 - K) + w C + e G + l B``.
    leaf_elevation : float
        The watershed leaves flood ``sobel + leaf_elevation * boundary_map`` (0: the Sobel
        magnitude alone).
    coarse : Hierarchy, optional
        Snap this hierarchy to the leaves and refine it below its finest level
        (:func:`snap_hierarchy`) instead of merging the leaves all the way up.

    Returns
    -------
    Hierarchy

    Examples
    --------
    Two flat halves whose grid nodes are similar within a half only:

    >>> import numpy as np
    >>> img = np.zeros((24, 32, 3), np.uint8); img[:, 16:] = 200
    >>> side = np.repeat([[0, 0, 1, 1]], 3, axis=0).ravel()   # grid (3, 4)
    >>> kernel = (side[:, None] == side[None, :]).astype(np.float32)
    >>> hier = leaf_hierarchy(img, kernel, (3, 4), leaves="watershed", n_leaves=12)
    >>> hier.levels[0].shape, hier.n_segments[-2:]
    ((24, 32), [2, 1])
    """
    h, w = int(grid[0]), int(grid[1])
    k = np.asarray(kernel)
    if k.shape != (h * w, h * w):
        raise InputError(f"kernel has shape {k.shape}; expected {(h * w, h * w)}")
    if (learned_weight > 0 or leaf_elevation > 0) and boundary_map is None:
        raise InputError("learned_weight / leaf_elevation need a boundary_map")
    if learned_weight < 0 or leaf_elevation < 0:
        raise InputError("learned_weight and leaf_elevation must be >= 0")
    bmap = None
    if boundary_map is not None:
        bmap = np.asarray(boundary_map, dtype=np.float64)
        if bmap.shape != np.asarray(image).shape[:2]:
            raise InputError(f"boundary_map has shape {bmap.shape}; image {image.shape[:2]}")
    elevation = None
    if leaf_elevation > 0 and leaves == "watershed" and bmap is not None:
        elevation = lab_gradient(np.asarray(image)) + float(leaf_elevation) * bmap
    leaf = superpixel_leaves(
        image,
        method=leaves,
        n_segments=n_leaves,
        compactness=compactness,
        min_size=min_size,
        elevation=elevation,
    )
    mt = leaf_rows(leaf, (h, w))  # (S, N) = M^T, sorted columns
    mass = np.asarray(mt.sum(1)).ravel()
    a, b, length, contrast = boundary_contrast(image, leaf, contrast_scale)
    if edge_weight < 0:
        raise InputError(f"edge_weight must be >= 0; got {edge_weight}")
    if edge_weight > 0 or learned_weight > 0:
        contrast, boundary_weight = _border_mix(
            image, leaf, contrast, boundary_weight, edge_weight, edge_scale, learned_weight, bmap
        )
    # average K_D of every touching leaf pair: (M^T K M)[a, b] / (mass_a mass_b), a < b
    sums, pair_k = pair_kernel(mt, k, a, b, mass, dense=linkage != "border")
    if coarse is not None:
        return snap_hierarchy(
            leaf,
            coarse,
            sums,
            mass,
            a,
            b,
            length,
            contrast,
            pair_k=pair_k,
            boundary_weight=boundary_weight,
            linkage=linkage,
            within=within,
            default_height=default_height,
            mix=mix,
        )
    merges, heights = merge_leaves(
        sums,
        mass,
        a,
        b,
        length=length,
        contrast=contrast,
        pair_k=pair_k,
        boundary_weight=boundary_weight,
        linkage=linkage,
        small=small * leaf.size,
        mix=mix,
        overwrite_sums=True,
    )
    return merge_tree_ucm(leaf, merges, heights, keep_last=keep_last, default_height=default_height)


def _border_mix(
    image: np.ndarray,
    leaf: np.ndarray,
    contrast: np.ndarray,
    boundary_weight: float,
    edge_weight: float,
    edge_scale: float,
    learned_weight: float,
    bmap: np.ndarray | None,
) -> tuple[np.ndarray, float]:
    """Every border term is a sum over the same pixel pairs: one weighted mix of colour
    contrast, edge strength and learned boundary, with its total weight."""
    total = boundary_weight + edge_weight + learned_weight
    if not 0 <= total <= 1:
        raise InputError("boundary_weight + edge_weight + learned_weight must be in [0, 1]")
    mixed = boundary_weight * contrast
    if edge_weight > 0:
        mixed = mixed + edge_weight * boundary_strength(image, leaf, edge_scale)
    if learned_weight > 0:
        assert bmap is not None  # checked by the caller
        mixed = mixed + learned_weight * border_map_sums(leaf, bmap)
    return mixed / total, total


def snap_hierarchy(
    leaves: np.ndarray,
    coarse: Hierarchy,
    pair_sums: np.ndarray | None,
    mass: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    length: np.ndarray,
    contrast: np.ndarray,
    *,
    pair_k: np.ndarray | None = None,
    boundary_weight: float = 0.0,
    linkage: str = "border",
    within: str = "scale",
    default_height: float = 0.5,
    mix: float = 0.5,
) -> Hierarchy:
    """A coarse hierarchy snapped to edge-following leaves, refined below its finest level.

    Every leaf joins the finest-level region of ``coarse`` it overlaps most; the coarse
    levels keep their heights (so their borders now follow the leaves), and the leaves
    inside each (connected) snapped region are merged by
    :func:`~affseg.grouping.leaf_merge.merge_leaves`, capped just
    below the height at which the region first merges with a neighbour, so the UCM has the
    leaves as its finest level and the coarse hierarchy above.

    Parameters
    ----------
    leaves : ndarray, shape (H, W), int
        Labels 1..S.
    coarse : Hierarchy
        Nested levels at (H, W) (e.g. the paper's grouping).
    pair_sums, mass, a, b, length, contrast, pair_k, boundary_weight, linkage, mix
        See :func:`~affseg.grouping.leaf_merge.merge_leaves` (all touching leaf pairs).
    within : {"scale", "cap"}
        Heights inside a snapped region: the leaves' own merge heights scaled below the
        coarse hierarchy's first merge, or capped below the region's first merge.
    default_height : float
        The default level is the coarsest one at or below this height.

    Returns
    -------
    Hierarchy
        Levels at the distinct partitions of the 99 benchmark thresholds, with the UCM.

    Examples
    --------
    Four leaves in a row, a coarse hierarchy of two halves joining at 0.6:

    >>> import numpy as np
    >>> from affseg.grouping.hierarchy import Hierarchy
    >>> leaves = np.array([[1, 2, 3, 4]])
    >>> coarse = Hierarchy([np.array([[1, 1, 2, 2]]), np.ones((1, 4), int)], np.array([0, 0.6]))
    >>> a, b = np.array([0, 1, 2]), np.array([1, 2, 3])
    >>> hier = snap_hierarchy(leaves, coarse, None, np.ones(4), a, b, np.ones(3), np.zeros(3),
    ...                       pair_k=np.array([0.9, 0.1, 0.8]))
    >>> hier.n_segments, hier.levels[2].tolist()
    ([4, 3, 2, 1], [[1, 1, 2, 2]])
    """
    from scipy.sparse.csgraph import connected_components

    lab = np.asarray(leaves, dtype=np.int64)
    s = int(lab.max())
    fine = np.asarray(coarse.levels[0], dtype=np.int64)
    if fine.shape != lab.shape:
        raise InputError(f"coarse hierarchy has shape {fine.shape}; leaves {lab.shape}")
    r = int(fine.max())
    votes = np.bincount(((lab - 1) * r + (fine - 1)).ravel(), minlength=s * r).reshape(s, r)
    region = votes.argmax(1)  # (S,) 0-based finest coarse region of every leaf
    # paper cophenetic heights between its finest regions
    rep = np.zeros((len(coarse.levels), r), dtype=np.int64)
    for lev, lv in enumerate(coarse.levels):
        rep[lev, fine.ravel() - 1] = np.asarray(lv).ravel()
    same = rep[:, :, None] == rep[:, None, :]  # (L, R, R)
    first = np.where(same.any(0), same.argmax(0), len(coarse.levels))
    coph_r = np.append(np.asarray(coarse.heights, dtype=np.float64), 1.0)[first]
    np.fill_diagonal(coph_r, 0.0)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    inside = region[a] == region[b]
    graph = sp.coo_matrix((np.ones(int(inside.sum())), (a[inside], b[inside])), shape=(s, s))
    n_comp, comp = connected_components(graph, directed=False)
    # height at which each snapped component first meets another region
    cross = ~inside
    h_cross = coph_r[region[a[cross]], region[b[cross]]]
    cap = np.ones(n_comp)
    np.minimum.at(cap, comp[a[cross]], h_cross)
    np.minimum.at(cap, comp[b[cross]], h_cross)
    sel = np.flatnonzero(inside)
    merges, heights = merge_leaves(
        pair_sums,
        mass,
        a[sel],
        b[sel],
        length=np.asarray(length)[sel],
        contrast=np.asarray(contrast)[sel],
        pair_k=None if pair_k is None else np.asarray(pair_k)[sel],
        boundary_weight=boundary_weight,
        linkage=linkage,
        mix=mix,
    )
    n_in = s - n_comp  # the merges inside components come first; later ones are fallbacks
    coph = cophenetic(s, merges[:n_in], heights[:n_in])
    if within == "scale":  # every refinement below the coarse hierarchy's first merge
        pos = np.asarray(coarse.heights, dtype=np.float64)
        pos = pos[pos > 0]
        h1 = float(pos[0]) if pos.size else 1.0
        capped = coph * (h1 * (1 - 1e-6))
    elif within == "cap":
        capped = np.minimum(coph, np.maximum(cap[comp] - 1e-6, 0.0)[:, None])
        capped = np.minimum(capped, capped.T)
    else:
        raise InputError(f"within must be 'scale' or 'cap'; got {within!r}")
    height = np.where(comp[:, None] == comp[None, :], capped, coph_r[region][:, region])
    np.fill_diagonal(height, 0.0)
    thr = np.union1d(BSDS_THRESHOLDS, np.append(np.asarray(coarse.heights)[1:], 1.0))
    hier = Hierarchy.from_ucm(leaf_pair_ucm(lab, height), thresholds=thr)
    default = int(np.searchsorted(hier.heights, default_height, side="right")) - 1
    hier.default_level = max(default, 0)
    return hier
