"""Hierarchical segmentation from a diffusion embedding on a feature grid ([1], Sect. 6).

Pipeline (model-agnostic: any embedding ``Phi`` with ``K = exp(-tau ||Phi_i - Phi_j||^2)``):

1. grid kernel K (N, N), coverage centres (Eq. 9), soft kernel k-means -> Z (N, C);
2. the C assignment maps (C, h, w) go to image resolution, either through a caller-given
   upsampler (``"HR"``: the model's feature-attentional interpolation) or by bilinear
   resizing (``"LR"``), then argmax -> finest labels (H, W);
3. clean-up (one 4-connected region per label), then greedy merging of adjacent segments
   by average K_D (or centroid similarity) down to one region -> nested levels with
   heights ``1 - similarity``, so one UCM threshold means the same on every image.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.kernel_grouping import coverage_centres, diffusion_kernel, kernel_kmeans
from affseg.grouping.region_merging import (
    adjacent_pairs,
    connected_cleanup,
    greedy_merge,
    grid_counts,
    merge_levels,
)

#: maps (C, h, w) float32 -> (C, H, W) float32
Upsampler = Callable[[np.ndarray], np.ndarray]


def resize_maps(maps: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Plain resizing of grid maps to image resolution (the "LR" masks).

    Parameters
    ----------
    maps : ndarray, shape (C, h, w)
    size : tuple of int
        (H, W).
    mode : {"bilinear", "nearest"}

    Returns
    -------
    ndarray, shape (C, H, W), float32

    Examples
    --------
    >>> import numpy as np
    >>> resize_maps(np.ones((2, 3, 4), np.float32), (6, 8)).shape
    (2, 6, 8)
    """
    if mode not in ("bilinear", "nearest"):
        raise InputError(f"resize mode must be 'bilinear' or 'nearest'; got {mode!r}")
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    kw = {"align_corners": False} if mode == "bilinear" else {}
    out = F.interpolate(t, size=(int(size[0]), int(size[1])), mode=mode, **kw)
    return out[0].numpy()


def grid_clustering(
    phi: np.ndarray,
    tau: float,
    grid: tuple[int, int],
    *,
    eps: float = 0.02,
    max_centres: int = 9,
    beta: float = 50.0,
    n_iter: int = 20,
    stride: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel k-means of the grid nodes from coverage centres.

    Parameters
    ----------
    phi : ndarray, shape (N, Ne)
        Diffusion embedding, N = h * w nodes in row-major order.
    tau : float
    grid : tuple of int
        (h, w).
    eps, max_centres : see :func:`~affseg.grouping.kernel_grouping.coverage_centres`.
    beta, n_iter : see :func:`~affseg.grouping.kernel_grouping.kernel_kmeans`.
    stride : int
        Later centres and the cluster means come from the nodes of every ``stride``-th row
        and column (1: all nodes, as in the reference; 2: four times cheaper, and every
        node is still assigned).

    Returns
    -------
    kernel : ndarray, shape (N, N), float32
    assign : ndarray, shape (C, h, w), float32
        Soft assignments as maps.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> phi = np.zeros((2, 4, 2), np.float32)   # a 2 x 4 grid: left and right half
    >>> phi[:, :2, 0] = 1; phi[:, 2:, 1] = 1
    >>> phi = phi.reshape(8, 2)
    >>> kernel, assign = grid_clustering(phi, 1.0, (2, 4), stride=1)
    >>> kernel.shape, assign.shape
    ((8, 8), (2, 2, 4))
    >>> assign.argmax(axis=0)[0].tolist()
    [1, 1, 0, 0]
    """
    h, w = int(grid[0]), int(grid[1])
    phi = np.asarray(phi)
    if phi.ndim != 2 or phi.shape[0] != h * w:
        raise InputError(f"phi has shape {phi.shape}; expected ({h * w}, Ne) for grid {h}x{w}")
    kernel = diffusion_kernel(phi, tau)
    middle = (h // 2) * w + w // 2
    if stride < 1:
        raise InputError(f"stride must be >= 1; got {stride}")
    sub = None
    if stride > 1:
        sub = np.arange(h * w).reshape(h, w)[stride // 2 :: stride, stride // 2 :: stride].ravel()
    centres = coverage_centres(
        kernel, eps=eps, max_centres=max_centres, first=middle, candidates=sub
    )
    z = kernel_kmeans(kernel, centres, beta=beta, n_iter=n_iter, sample=sub)
    return kernel, np.ascontiguousarray(z.T.reshape(-1, h, w))


def labels_to_hierarchy(
    labels: np.ndarray,
    kernel: np.ndarray,
    grid: tuple[int, int],
    *,
    linkage: str = "kernel",
    phi: np.ndarray | None = None,
    tau: float = 1.0,
    min_size: int = 0,
    default_height: float = 0.5,
    soft: np.ndarray | None = None,
) -> Hierarchy:
    """Clean up a flat label map and merge it into a hierarchy.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Finest segmentation at image resolution (any integer labels).
    kernel : ndarray, shape (N, N)
        Grid similarity K_D, N = h * w.
    grid : tuple of int
        (h, w); pixel (y, x) maps to node ``(y * h // H, x * w // W)``.
    linkage : {"kernel", "centroid"}
        "kernel": average K_D over the pixel pairs of two segments (exact average
        linkage); "centroid": ``exp(-tau ||mean Phi_a - mean Phi_b||^2)`` (needs ``phi``).
    phi : ndarray, shape (N, Ne), optional
    tau : float
    min_size : int
        Pieces smaller than this many pixels are absorbed by the clean-up.
    default_height : float
        :attr:`Hierarchy.default_level` is the coarsest level at or below this height.
    soft : ndarray, shape (C, H, W), optional
        Soft assignments whose argmax is ``labels`` (then ``labels`` must be 0..C-1); the
        clean-up uses them to place removed pieces.

    Returns
    -------
    Hierarchy
        Levels fine -> coarse (the last a single region), heights = 1 - merge similarity.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> phi = np.zeros((2, 4, 2), np.float32)   # a 2 x 4 grid: left and right half
    >>> phi[:, :2, 0] = 1; phi[:, 2:, 1] = 1
    >>> phi = phi.reshape(8, 2)
    >>> kernel, assign = grid_clustering(phi, 1.0, (2, 4), stride=1)
    >>> hier = labels_to_hierarchy(np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), kernel, (2, 4))
    >>> hier.n_segments
    [2, 1]
    """
    if linkage not in ("kernel", "centroid"):
        raise InputError(f"linkage must be 'kernel' or 'centroid'; got {linkage!r}")
    fine = connected_cleanup(labels, min_size=min_size, soft=soft)
    s = int(fine.max())
    counts = grid_counts(fine, grid)  # (N, S)
    a, b, _ = adjacent_pairs(fine)
    adj = np.zeros((s, s), dtype=bool)
    adj[a - 1, b - 1] = True
    mass = counts.sum(0)
    if linkage == "kernel":
        sums = counts.T.astype(np.float64) @ (kernel @ counts).astype(np.float64)
        merges, sim = greedy_merge(adj, pair_sums=sums, mass=mass)
    else:
        if phi is None:
            raise InputError("linkage='centroid' needs the embedding phi")
        means = (counts.T @ np.asarray(phi, dtype=np.float32)) / np.maximum(mass, 1)[:, None]
        merges, sim = greedy_merge(adj, means=means, mass=mass, tau=tau)
    levels, heights = merge_levels(fine, merges, sim)
    default = int(np.searchsorted(heights, default_height, side="right")) - 1
    return Hierarchy(levels, heights, default_level=max(default, 0))


def diffusion_hierarchy(
    phi: np.ndarray,
    tau: float,
    grid: tuple[int, int],
    image_size: tuple[int, int],
    *,
    upsample: Upsampler | None = None,
    resize_mode: str = "bilinear",
    eps: float = 0.02,
    max_centres: int = 9,
    beta: float = 50.0,
    n_iter: int = 20,
    stride: int = 2,
    linkage: str = "kernel",
    min_size: int = 0,
    default_height: float = 0.5,
) -> Hierarchy:
    """Hierarchical segmentation of one image from its grid diffusion embedding.

    Parameters
    ----------
    phi : ndarray, shape (N, Ne)
        Diffusion embedding (``||phi_i - phi_j||^2`` = diffusion distance), N = h * w.
    tau : float
        ``K_D = exp(-tau * D)``.
    grid : tuple of int
        (h, w) of the feature grid.
    image_size : tuple of int
        (H, W) of the output label maps.
    upsample : callable, optional
        ``maps (C, h, w) -> (C, H, W)``, e.g. feature-attentional interpolation ("HR");
        default: :func:`resize_maps` with ``resize_mode`` ("LR").
    resize_mode : {"bilinear", "nearest"}
    eps, max_centres, beta, n_iter, stride, linkage, min_size, default_height
        See :func:`grid_clustering` and :func:`labels_to_hierarchy`.

    Returns
    -------
    Hierarchy
        Levels at (H, W), fine -> coarse.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:6, 0:8]
    >>> phi = (xx >= 4).astype(np.float32).reshape(-1, 1)  # two halves
    >>> hier = diffusion_hierarchy(phi, 10.0, (6, 8), (12, 16))
    >>> hier.n_segments
    [2, 1]
    """
    kernel, assign = grid_clustering(
        phi,
        tau,
        grid,
        eps=eps,
        max_centres=max_centres,
        beta=beta,
        n_iter=n_iter,
        stride=stride,
    )
    size = (int(image_size[0]), int(image_size[1]))
    if upsample is None:
        full = resize_maps(assign, size, resize_mode)
    else:
        full = np.asarray(upsample(assign), dtype=np.float32)
        if full.shape != (assign.shape[0], *size):
            raise InputError(
                f"upsample returned shape {full.shape}; expected {(assign.shape[0], *size)}"
            )
    labels = full.argmax(axis=0)
    return labels_to_hierarchy(
        labels,
        kernel,
        grid,
        linkage=linkage,
        phi=phi,
        tau=tau,
        min_size=min_size,
        default_height=default_height,
        soft=full,
    )
