"""Hierarchy from fine edge-following leaves merged by the diffusion similarity K_D.

The paper's grouping (:mod:`affseg.grouping.diffusion_hierarchy`) starts from at most
``max_centres`` kernel k-means clusters on the stride-8 grid whose masks reach image
resolution by interpolation: the finest level has ~20 regions and its boundaries follow
the grid. Here the finest level is an over-segmentation at image resolution that follows
image edges (hundreds of superpixels), and the hierarchy comes from merging adjacent
regions by average K_D:

1. :func:`superpixel_leaves`: SLIC, compact watershed of the colour gradient or
   Felzenszwalb superpixels, made 4-connected (labels 1..S);
2. :func:`leaf_node_weights`: every pixel spreads its weight over the 4 nearest grid nodes
   (bilinear), so a leaf is a weighted set of nodes M (N, S);
3. :func:`merge_leaves`: greedy merging of touching regions (a heap over the adjacency
   graph, no dense S x S scan per step) by ``1 - K``, where K is the border-length
   weighted mean K_D of the touching leaf pairs along the shared border ("border"), the
   exact average K_D over the two regions ("average": ``M^T K_D M`` sums add up on
   merges), or a mix of both ("mixed"), plus an optional colour-contrast term along the
   border;
4. :func:`merge_tree_ucm`: the UCM straight from the merge tree (each border pixel gets the
   height at which its two leaves join), and levels at the distinct partitions of the
   benchmark thresholds plus every one of the last ``keep_last`` merges;
5. or :func:`snap_hierarchy`: an existing coarse hierarchy (the paper's) snapped to the
   leaves and refined below its finest level.

Heights are ``(1 - w) (1 - K) + w C`` (w = ``boundary_weight``, C the mean contrast in
[0, 1]), so one UCM threshold means the same on every image.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from skimage.color import xyz2lab
from skimage.color.colorconv import xyz_from_rgb
from skimage.segmentation import felzenszwalb, slic, watershed
from skimage.util import img_as_float64

from affseg.errors import InputError
from affseg.grouping.compact_watershed import compact_watershed
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.leaf_kernels import (
    _gram_of_kernel,
    _level_luts,
    _merge_dense,
    _node_weights_csr,
    _rows_times_dense,
    _sobel_magnitude,
    _tree_ucm,
)
from affseg.grouping.region_merging import connected_cleanup
from affseg.grouping.ucm import BSDS_THRESHOLDS

LEAF_METHODS = ("slic", "watershed", "felzenszwalb")
LINKAGES = ("border", "average", "mixed")


@functools.lru_cache(maxsize=1)
def _srgb_linear() -> np.ndarray:
    """skimage's sRGB -> linear RGB of the 256 uint8 values (its own expression)."""
    arr = np.array(img_as_float64(np.arange(256, dtype=np.uint8)), dtype=np.float64)
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    return arr


@functools.lru_cache(maxsize=1)
def _lab_of(key: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """CIE-Lab of an RGB image given as bytes (cached: leaves and contrast share it).

    ``skimage.color.rgb2lab`` with its per-value sRGB linearisation read from a 256-entry
    table (the same values, without the per-pixel power).
    """
    lin = _srgb_linear()[np.frombuffer(key, dtype=np.uint8).reshape(shape)]
    return xyz2lab(lin @ xyz_from_rgb.T.astype(lin.dtype))


@functools.lru_cache(maxsize=1)
def _gradient_of(key: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Sobel magnitude of the Lab image (cached: the watershed and the edge term share it)."""
    # = np.sqrt(sum(sobel(lab[..., k]) ** 2 for k in range(3))), one compiled pass
    return _sobel_magnitude(np.ascontiguousarray(_lab_of(key, shape), dtype=np.float64))


def _gradient(image: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return _gradient_of(img.tobytes(), img.shape)


def _lab(image: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return _lab_of(img.tobytes(), img.shape)


def superpixel_leaves(
    image: np.ndarray,
    *,
    method: str = "slic",
    n_segments: int = 400,
    compactness: float | None = None,
    min_size: int = 0,
    elevation: np.ndarray | None = None,
) -> np.ndarray:
    """Edge-following over-segmentation of an image (the finest level).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    method : {"slic", "watershed", "felzenszwalb"}
        "slic": SLIC in CIE-Lab (``compactness`` default 10); "watershed": compact
        watershed of the Sobel magnitude of Lab from a regular grid of ``n_segments``
        markers (``compactness`` default 1e-3); "felzenszwalb": graph segmentation with
        ``scale = compactness`` (default 100).
    n_segments : int
        Approximate number of leaves (slic, watershed).
    compactness : float, optional
    min_size : int
        Pieces smaller than this many pixels join a neighbour.
    elevation : ndarray, shape (H, W), optional
        The map the watershed floods instead of the Sobel magnitude (e.g. a learned
        boundary map scaled to the gradient's range); watershed only.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..S, each one 4-connected region. Deterministic.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3); got {img.shape}")
    if method not in LEAF_METHODS:
        raise InputError(f"leaves must be one of {LEAF_METHODS}; got {method!r}")
    n = max(int(n_segments), 1)
    if method == "slic":
        c = 10.0 if compactness is None else float(compactness)
        raw = slic(img, n_segments=n, compactness=c, start_label=1, convert2lab=True)
    elif method == "watershed":
        c = 1e-3 if compactness is None else float(compactness)
        if elevation is None:
            grad = _gradient(img)
        else:
            grad = np.ascontiguousarray(elevation, dtype=np.float64)
            if grad.shape != img.shape[:2]:
                raise InputError(f"elevation has shape {grad.shape}; image {img.shape[:2]}")
        raw = compact_watershed(grad, n, c) if c > 0 else watershed(grad, markers=n)
    else:
        c = 100.0 if compactness is None else float(compactness)
        raw = felzenszwalb(img, scale=c, sigma=0.8, min_size=max(int(min_size), 1))
    return connected_cleanup(raw, min_size=int(min_size))


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
    """
    return _leaf_rows(labels, grid).T.tocsr()


def _leaf_rows(labels: np.ndarray, grid: tuple[int, int]) -> sp.csr_matrix:
    """``M^T`` of :func:`leaf_node_weights`: (S, h * w) CSR, sorted column indices."""
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
    indptr, indices, data = _node_weights_csr(leaf, s, h * w, y0, y1, fy, x0, x1, fx, w)
    return sp.csr_matrix((data, indices, indptr), shape=(s, h * w))


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
    g = _gradient(np.asarray(image))
    # the strength is increasing in g, so the max over a pair commutes with it
    return border_map_sums(labels, 1.0 - np.exp(-g / float(scale)))


def boundary_contrast(image: np.ndarray, labels: np.ndarray, scale: float = 10.0) -> tuple:
    """Border length and summed colour contrast of every pair of touching leaves.

    Contrast of a 4-neighbour pixel pair across a border: ``1 - exp(-||Lab_p - Lab_q|| /
    scale)`` (in [0, 1)).

    Returns
    -------
    a, b : ndarray, shape (P,), int64
        Leaf indices (0-based), a < b.
    length, contrast : ndarray, shape (P,), float64
        Number of pixel pairs across the border and the sum of their contrasts.
    """
    lab = np.asarray(labels, dtype=np.int64)
    col = _lab(np.asarray(image)).reshape(-1, 3)
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


def merge_leaves(
    pair_sums: np.ndarray | None,
    mass: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    pair_k: np.ndarray | None = None,
    length: np.ndarray | None = None,
    contrast: np.ndarray | None = None,
    boundary_weight: float = 0.0,
    linkage: str = "border",
    small: float = 0.0,
    mix: float = 0.5,
    overwrite_sums: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy average-linkage merging of adjacent leaves down to one region.

    Distance of two touching regions: ``(1 - w) (1 - sums[a, b] / (mass[a] mass[b])) + w
    contrast[a, b] / length[a, b]``; after a merge, kernel sums, masses, border lengths and
    contrasts add up (exact average linkage). The lowest-distance pair merges first (ties:
    lowest indices); heights are made non-decreasing.

    Parameters
    ----------
    pair_sums : ndarray, shape (S, S), optional
        ``M^T K M`` (needed by the "average" and "mixed" linkages).
    mass : ndarray, shape (S,)
        ``M.sum(0)``.
    a, b : ndarray, shape (P,)
        Touching leaf pairs (0-based, each pair once).
    pair_k : ndarray, shape (P,), optional
        Average K_D of each touching leaf pair (default: from ``pair_sums``).
    length, contrast : ndarray, shape (P,), optional
        Border lengths and summed contrasts (needed when ``boundary_weight > 0``).
    boundary_weight : float
        w in [0, 1].
    linkage : {"border", "average", "mixed"}
        K of two regions: border-length weighted mean of the touching leaf pairs' K_D,
        exact average K_D (needs ``pair_sums``), or ``(1 - mix) border + mix average``.
    small : float
        Size prior (0: off): distances of regions under ``small`` pixels are scaled by
        ``sqrt(size / small)`` (so small regions merge earlier).
    mix : float
        Weight of the average linkage in "mixed".
    overwrite_sums : bool
        Use a C-contiguous float64 ``pair_sums`` as scratch (it is modified) instead of
        copying it.

    Returns
    -------
    merges : ndarray, shape (S - 1, 2), int64
        Step k merges region ``merges[k, 1]`` into ``merges[k, 0]`` (a merged region keeps
        the smaller index).
    heights : ndarray, shape (S - 1,)
        Non-decreasing merge heights in [0, 1].
    """
    m = np.asarray(mass, dtype=np.float64).copy()
    s = m.size
    dense = linkage != "border"
    if pair_sums is None and (dense or pair_k is None):
        raise InputError(f"linkage {linkage!r} needs pair_sums")
    sums = None
    if pair_sums is not None:
        sums = np.ascontiguousarray(pair_sums, dtype=np.float64)
        if not overwrite_sums or sums is pair_sums and not sums.flags.writeable:
            sums = sums.copy()
    w = float(boundary_weight)
    if not 0.0 <= w <= 1.0:
        raise InputError(f"boundary_weight must be in [0, 1]; got {boundary_weight}")
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if w > 0 and (length is None or contrast is None):
        raise InputError("boundary_weight > 0 needs border length and contrast")
    if linkage not in LINKAGES:
        raise InputError(f"linkage must be one of {LINKAGES}; got {linkage!r}")
    ln = np.ones(a.size) if length is None else np.asarray(length, dtype=np.float64)
    cn = np.zeros(a.size) if contrast is None else np.asarray(contrast, dtype=np.float64)
    if pair_k is None:
        pair_k = sums[a, b] / np.maximum(m[a] * m[b], 1e-12)
    kl = np.asarray(pair_k, dtype=np.float64) * ln  # leaf-pair K_D x border length
    if not dense:
        sums = np.zeros((1, 1))
    mode = {"border": 0, "average": 1, "mixed": 2}[linkage]
    # distinct touching pairs; repeated pairs add up in the order given
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    key, inv = np.unique(lo * max(s, 1) + hi, return_inverse=True)
    e_len = np.bincount(inv, weights=ln[keep], minlength=key.size)
    e_con = np.bincount(inv, weights=cn[keep], minlength=key.size)
    e_kl = np.bincount(inv, weights=kl[keep], minlength=key.size)
    # compiled heap merge over per-region neighbour lists (leaf_kernels._merge_dense)
    merges, heights = _merge_dense(
        s,
        m,
        key // max(s, 1),
        key % max(s, 1),
        e_len,
        e_con,
        e_kl,
        np.ascontiguousarray(sums),
        mode,
        w,
        float(small),
        float(mix),
    )
    return merges, np.maximum.accumulate(heights) if heights.size else heights


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
    """Height at which every two of ``n`` items join in a merge sequence (1 if never)."""
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
    """
    lab = np.asarray(leaves, dtype=np.int64)
    s = int(lab.max())
    merges = np.asarray(merges, dtype=np.int64).reshape(-1, 2)
    hts = np.clip(np.asarray(heights, dtype=np.float64), 0.0, 1.0)
    # strictly increasing heights (ties broken by merge order) so that every step is a level
    hts = hts + 1e-9 * np.arange(1, hts.size + 1)
    leaf0 = np.ascontiguousarray(lab - 1)
    # pair heights only on touching leaves (what the UCM reads), from the merge tree
    ucm = _tree_ucm(leaf0, merges, hts, s)
    # levels: after k merges for the k of every threshold and of the last keep_last steps
    n = hts.size
    steps = set(np.searchsorted(hts, np.asarray(thresholds), side="right").tolist())
    steps |= set(range(max(n - int(keep_last), 0), n + 1))
    steps.add(0)
    steps = sorted(k for k in steps if 0 <= k <= n)
    luts = _level_luts(merges, np.asarray(steps, dtype=np.int64), s)
    levels = [lut[leaf0] for lut in luts]  # separate (H, W) int32 maps
    level_h = [0.0 if k == 0 else float(hts[k - 1]) for k in steps]
    level_h = np.asarray(level_h)
    default = int(np.searchsorted(level_h, default_height, side="right")) - 1
    return Hierarchy(levels, level_h, default_level=max(default, 0), ucm2=ucm)


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
        See :func:`superpixel_leaves`.
    boundary_weight, contrast_scale
        See :func:`merge_leaves` and :func:`boundary_contrast`.
    keep_last, default_height
        See :func:`merge_tree_ucm`.
    small : float
        Size prior of :func:`merge_leaves` as a fraction of the image area (not used by
        ``coarse``).
    mix : float
        See :func:`merge_leaves`.
    edge_weight, edge_scale : float
        Weight and scale of the mean edge strength along the border
        (:func:`boundary_strength`) in the merge distance: ``(1 - w - e) (1 - K) + w C +
        e G`` (e = ``edge_weight``; 0: off).
    boundary_map : ndarray, shape (H, W), optional
        A boundary probability in [0, 1] (e.g.
        :func:`affseg.models.boundary_head.boundary_probability`).
    learned_weight : float
        Weight l of the mean ``boundary_map`` value B along the border
        (:func:`border_map_sums`): ``(1 - w - e - l) (1 - K) + w C + e G + l B``.
    leaf_elevation : float
        The watershed leaves flood ``sobel + leaf_elevation * boundary_map`` (0: the Sobel
        magnitude alone).
    coarse : Hierarchy, optional
        Snap this hierarchy to the leaves and refine it below its finest level
        (:func:`snap_hierarchy`) instead of merging the leaves all the way up.

    Returns
    -------
    Hierarchy
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
        elevation = _gradient(np.asarray(image)) + float(leaf_elevation) * bmap
    leaf = superpixel_leaves(
        image,
        method=leaves,
        n_segments=n_leaves,
        compactness=compactness,
        min_size=min_size,
        elevation=elevation,
    )
    mt = _leaf_rows(leaf, (h, w))  # (S, N) = M^T, sorted columns
    kc = np.ascontiguousarray(k if k.dtype in (np.float32, np.float64) else k.astype(np.float64))
    mass = np.asarray(mt.sum(1)).ravel()
    a, b, length, contrast = boundary_contrast(image, leaf, contrast_scale)
    if edge_weight < 0:
        raise InputError(f"edge_weight must be >= 0; got {edge_weight}")
    if edge_weight > 0 or learned_weight > 0:
        # every border term is a sum over the same pixel pairs: one weighted mix
        total = boundary_weight + edge_weight + learned_weight
        if not 0 <= total <= 1:
            raise InputError("boundary_weight + edge_weight + learned_weight must be in [0, 1]")
        mixed = boundary_weight * contrast
        if edge_weight > 0:
            mixed = mixed + edge_weight * boundary_strength(image, leaf, edge_scale)
        if learned_weight > 0:
            assert bmap is not None  # checked above
            mixed = mixed + learned_weight * border_map_sums(leaf, bmap)
        contrast = mixed / total
        boundary_weight = total
    # average K_D of every touching leaf pair: (M^T K M)[a, b] / (mass_a mass_b), a < b
    sums = None
    if linkage != "border":
        # (S, S) = M^T K M (compiled, float64 sums of the float32 K, one row of M^T K at a
        # time); its entry (a, b) is the touching pair's kernel sum, summed in the same order
        sums = _gram_of_kernel(mt.indptr, mt.indices, mt.data, kc)
        pk = sums[a, b]
    else:
        km = _rows_times_dense(mt.indptr, mt.indices, mt.data, kc)  # (S, N) = M^T K
        mb = mt[b].tocoo()
        pk = np.bincount(mb.row, weights=mb.data * km[a[mb.row], mb.col], minlength=a.size)
    pair_k = pk / np.maximum(mass[a] * mass[b], 1e-12)
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


def snap_hierarchy(
    leaves: np.ndarray,
    coarse: Hierarchy,
    pair_sums: np.ndarray,
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
    inside each (connected) snapped region are merged by :func:`merge_leaves`, capped just
    below the height at which the region first merges with a neighbour, so the UCM has the
    leaves as its finest level and the coarse hierarchy above.

    Parameters
    ----------
    leaves : ndarray, shape (H, W), int
        Labels 1..S.
    coarse : Hierarchy
        Nested levels at (H, W) (e.g. the paper's grouping).
    pair_sums, mass, a, b, length, contrast, pair_k, boundary_weight, linkage, mix
        See :func:`merge_leaves` (all touching leaf pairs).
    default_height : float
        The default level is the coarsest one at or below this height.

    Returns
    -------
    Hierarchy
        Levels at the distinct partitions of the 99 benchmark thresholds, with the UCM.
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
