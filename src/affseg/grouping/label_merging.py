"""Deterministic merging of adjacent regions of a label map, down to a threshold.

:func:`merge_adjacent` joins, one pair at a time, the two touching regions with the
smallest dissimilarity

    d(a, b) = ||mean_a - mean_b|| + edge_weight * mean edge strength along the a-b border,

(means of per-pixel features, e.g. CIELAB colour; the edge strength, e.g. the colour
gradient magnitude, averaged over the 4-neighbour pixel pairs of the shared border), and
stops when the smallest dissimilarity exceeds ``threshold``: the number of regions adapts to
the image. Used after the per-image networks (``merge`` option of
:mod:`affseg.methods.per_image`), whose fine partitions differ between seeds mostly
in which regions they join; a criterion that does not depend on the network makes the final
partition depend less on the seed. :func:`colour_cues` gives the default features.

Loops run over merge steps (tens), never over pixels.

Unlike the other greedy merges (:func:`affseg.grouping.region_merging.greedy_merge` and
the leaf grouping's compiled heap, :func:`affseg.grouping.leaf_kernels.merge_dense`),
:func:`merge_adjacent` minimises an unbounded Euclidean distance of merged means (Lab
units) plus a mean border edge term, recomputed densely for all pairs every step, and stops
at a threshold, returning a label map instead of a merge tree.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from affseg.errors import InputError
from affseg.grouping.region_merging import adjacent_pairs, neighbour_pairs
from affseg.grouping.relabel import sequential


def colour_cues(image: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """CIELAB colour and its gradient magnitude, the features of :func:`merge_adjacent`.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    sigma : float
        Gaussian smoothing (pixels) before the gradient.

    Returns
    -------
    features : ndarray, shape (3, H, W), float64
        L*, a*, b*.
    edges : ndarray, shape (H, W), float64
        Euclidean norm over the three channels of the Gaussian-derivative gradient
        (``scipy.ndimage.gaussian_gradient_magnitude``), in Lab units per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 6, 3), np.uint8); image[:, 3:] = 255
    >>> feats, edges = colour_cues(image)
    >>> feats.shape, edges.shape
    ((3, 4, 6), (4, 6))
    """
    from skimage.color import rgb2lab

    im = np.asarray(image)
    if im.ndim != 3 or im.shape[2] != 3:
        raise InputError(f"expected an RGB image (H, W, 3); got shape {im.shape}")
    lab = rgb2lab(im).transpose(2, 0, 1)
    grad = np.stack([ndimage.gaussian_gradient_magnitude(c, sigma) for c in lab])
    return lab, np.sqrt((grad**2).sum(0))


def merge_adjacent(
    labels: np.ndarray,
    features: np.ndarray,
    threshold: float,
    *,
    edges: np.ndarray | None = None,
    edge_weight: float = 0.0,
) -> np.ndarray:
    """Greedily merge touching regions while their dissimilarity is below ``threshold``.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Any integer labels; each label is one region (connect them first if needed).
    features : ndarray, shape (C, H, W)
        Per-pixel features; a region is described by their mean (mass-weighted after merges).
    threshold : float
        Stop when no adjacent pair has ``d < threshold``.
    edges : ndarray, shape (H, W), optional
        Per-pixel edge strength; a border pixel pair counts the larger of its two values.
    edge_weight : float
        Weight of the mean border edge strength in ``d`` (needs ``edges`` when > 0).

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K (K <= the input's region count), merged regions sharing a label.

    Examples
    --------
    Two black and two white segments; merging below a Lab distance of 10 joins each pair:

    >>> import numpy as np
    >>> image = np.zeros((4, 6, 3), np.uint8); image[:, 3:] = 255
    >>> feats, edges = colour_cues(image)
    >>> labels = np.array([[1, 1, 2, 3, 3, 4]] * 4)
    >>> merge_adjacent(labels, feats, 10.0)[0].tolist()
    [1, 1, 1, 2, 2, 2]
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be an integer (H, W) array; got {lab.dtype} {lab.shape}")
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 3 or f.shape[1:] != lab.shape:
        raise InputError(f"features must have shape (C, {lab.shape[0]}, {lab.shape[1]}); "
                         f"got {f.shape}")  # fmt: skip
    if edge_weight < 0 or (edge_weight > 0 and edges is None):
        raise InputError("edge_weight must be >= 0 and needs edges when > 0")
    _, inv = np.unique(lab, return_inverse=True)
    lab = inv.reshape(lab.shape).astype(np.int64)
    s = int(lab.max()) + 1
    size = np.bincount(lab.ravel(), minlength=s).astype(np.float64)
    mu: np.ndarray = np.stack(
        [np.bincount(lab.ravel(), weights=c.ravel(), minlength=s) for c in f], 1
    )
    mu /= size[:, None]
    border = np.zeros((s, s))
    a, b, cnt = adjacent_pairs(lab)
    border[a, b] = cnt
    esum = np.zeros((s, s))
    if edge_weight > 0:
        e = np.asarray(edges, dtype=np.float64)
        if e.shape != lab.shape:
            raise InputError(f"edges must have shape {lab.shape}; got {e.shape}")
        pa, pb = neighbour_pairs(lab)
        pe = np.maximum(*neighbour_pairs(e))
        cut = pa != pb
        np.add.at(esum, (pa[cut], pb[cut]), pe[cut])
        esum = esum + esum.T
    owner = np.arange(s)
    alive = np.ones(s, dtype=bool)
    while alive.sum() > 1:
        adj = border > 0
        dist = np.sqrt(((mu[:, None, :] - mu[None, :, :]) ** 2).sum(-1))
        if edge_weight > 0:
            dist = dist + edge_weight * esum / np.maximum(border, 1.0)
        dist = np.where(adj, dist, np.inf)
        k = int(np.argmin(dist))
        i, j = divmod(k, s)
        if not dist[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)
        mu[i] = (size[i] * mu[i] + size[j] * mu[j]) / (size[i] + size[j])
        size[i] += size[j]
        for m in (border, esum):
            m[i] += m[j]
            m[:, i] += m[:, j]
            m[j] = 0.0
            m[:, j] = 0.0
            m[i, i] = 0.0
        alive[j] = False
        owner[owner == j] = i
    return sequential(owner[lab])
