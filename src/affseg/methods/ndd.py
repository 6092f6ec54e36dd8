"""The ``ndd`` segmentation method: spec-diff-net + hierarchical grouping by K_D.

``ndd_hierarchy(image)`` runs the shipped spec-diff-net (loaded once and cached) on one
RGB image and takes its diffusion embedding on the feature grid. The default grouping
(``grouping="leaves"``, :mod:`affseg.grouping.leaf_hierarchy`) merges ~1200 edge-following
watershed leaves at image resolution by K_D (border + average linkage, colour contrast);
``grouping="paper"`` builds the reference hierarchy of
:func:`affseg.grouping.diffusion_hierarchy.diffusion_hierarchy` ([1], Sect. 6), whose
full-resolution masks come from the network's feature-attentional interpolation
(``upsample="hr"``) or from plain bilinear resizing (``upsample="lr"``).

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from affseg.errors import InputError
from affseg.grouping.diffusion_hierarchy import (
    diffusion_hierarchy,
    grid_clustering,
    labels_to_hierarchy,
    resize_maps,
)
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.kernel_grouping import diffusion_kernel

#: Grouping options of :func:`ndd_hierarchy` and their types (``--set`` may pass strings).
_OPTION_TYPES: dict[str, type] = {
    "eps": float,
    "max_centres": int,
    "beta": float,
    "n_iter": int,
    "stride": int,
    "min_size": int,
    "default_height": float,
    "n_leaves": int,
    "leaf_scale": float,
    "boundary_weight": float,
    "leaf_mix": float,
    "leaf_small": float,
    "edge_weight": float,
    "edge_scale": float,
    "learned_weight": float,
    "leaf_elevation": float,
}

#: Grouping algorithms of :func:`ndd_hierarchy`.
GROUPINGS = ("paper", "snap", "leaves")

#: Height of the default level per grouping (covering-ODS thresholds on BSDS500 val).
DEFAULT_HEIGHTS = {"paper": 0.87, "snap": 0.87, "leaves": 0.65}


@functools.lru_cache(maxsize=2)
def shipped_model(weights: str | None = None) -> Any:
    """A trained spec-diff-net in eval mode (loaded on first use, then cached).

    Parameters
    ----------
    weights : str, optional
        Path of a weights file written by ``affseg train ndd`` (its ``spec_diff_net.pt``);
        default: the weights shipped in the package.

    Returns
    -------
    affseg.models.spec_diff_net.SpecDiffNet
    """
    from affseg.models.spec_diff_net import load_pretrained

    return load_pretrained(weights).eval()


_FUSED: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], Any]] = weakref.WeakKeyDictionary()


def _fast_backbone(net: Any) -> Any | None:
    """The batch-norm-folded inference copy of a spec-diff-net's backbone (cached per
    network and rebuilt when its parameters change in place); None for other models."""
    from affseg.backbones.efficientnet_lite import EfficientNetLitePyramid
    from affseg.backbones.fused_lite import fuse_pyramid

    bb = getattr(net, "backbone", None)
    if not isinstance(bb, EfficientNetLitePyramid):
        return None
    stamp = tuple(t._version for t in (*bb.parameters(), *bb.buffers()))
    hit = _FUSED.get(bb)
    if hit is None or hit[0] != stamp:
        try:
            hit = (stamp, fuse_pyramid(bb))
        except ValueError:
            return None
        _FUSED[bb] = hit
    return hit[1]


@functools.lru_cache(maxsize=2)
def _shipped_boundary_head(weights: str | None = None) -> Any:
    """The boundary head in eval mode (default: the shipped weights; loaded once)."""
    from affseg.models.boundary_head import load_boundary_head

    return load_boundary_head(weights)


def _boundary_map(pyramid: list[Any], weights: str | None, size: tuple[int, int]) -> np.ndarray:
    """Learned boundary probability (H, W) of one image from its backbone pyramid."""
    from affseg.models.boundary_head import boundary_probability

    head = _shipped_boundary_head(None if weights is None else str(weights))
    return boundary_probability(head, pyramid, size)


@contextlib.contextmanager
def _diffusion_overrides(net: Any, T: Any, t: Any) -> Iterator[None]:
    """Temporarily set ``net.diffusion.n_outer`` (T) and its diffusion time t."""
    if T is None and t is None:
        yield
        return
    mod = getattr(net, "diffusion", None)
    if mod is None or not hasattr(mod, "n_outer") or not hasattr(mod, "log_t"):
        raise InputError("this model has no diffusion module whose T and t can be set")
    try:
        new_T = mod.n_outer if T is None else int(T)
        new_t = None if t is None else float(t)
    except (TypeError, ValueError) as err:
        raise InputError(f"bad ndd option value: {err}") from None
    if new_T < 1 or (new_t is not None and not new_t > 0):
        raise InputError(f"T must be >= 1 and t > 0; got T={T}, t={t}")
    old_T, old_log_t = mod.n_outer, mod.log_t.detach().clone()
    try:
        mod.n_outer = new_T
        if new_t is not None:
            mod.log_t.data.fill_(math.log(new_t))
        yield
    finally:
        mod.n_outer = old_T
        mod.log_t.data.copy_(old_log_t)


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    from affseg.data.io import as_rgb

    rgb = as_rgb(image)
    # a private float copy: read-only inputs (e.g. memory-mapped images) stay untouched
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0


def ndd_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    upsample: str = "hr",
    model: Any | None = None,
    weights: str | None = None,
    linkage: str = "kernel",
    eps: float = 0.005,
    max_centres: int = 20,
    beta: float = 50.0,
    n_iter: int = 20,
    stride: int = 2,
    min_size: int = 0,
    default_height: float | None = None,
    T: int | None = None,
    t: float | None = None,
    grouping: str = "leaves",
    leaves: str = "watershed",
    n_leaves: int = 600,
    leaf_scale: float = 50.0,
    leaf_linkage: str = "mixed",
    boundary_weight: float = 0.0,
    leaf_mix: float = 0.5,
    leaf_small: float = 0.01,
    edge_weight: float = 0.0,
    edge_scale: float = 10.0,
    learned_weight: float = 0.65,
    leaf_elevation: float = 100.0,
    boundary_head: str | None = None,
    boundary_map: np.ndarray | None = None,
) -> Hierarchy:
    """Hierarchical segmentation of one image with the neural diffusion distance.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB photo.
    seed : int
        Seeds torch (the pipeline itself is deterministic).
    upsample : {"hr", "lr"}
        "hr": feature-attentional interpolation of the soft assignments (the model's
        ``upsample``); "lr": bilinear resizing.
    model : SpecDiffNet, optional
        Any object with ``encode(images (B, 3, H, W) in [0, 1]) -> NDDOutput`` and
        ``upsample(maps (B, M, h, w), out) -> (B, M, H, W)``; default: the shipped model.
    weights : str, optional
        Path of other trained weights (e.g. a model trained on BSDS train only, to score
        val); ignored when ``model`` is given.
    linkage : {"kernel", "centroid"}
        Similarity of segments when merging (average K_D, or K_D of mean embeddings).
    eps, max_centres : float, int
        Coverage-centre stopping rule (Eq. 9): mean residual below ``eps`` or
        ``max_centres`` centres. The reference uses 0.02 and 9; 0.005 and 20 scored higher
        covering ODS on BSDS val (first 10 images, BENCHMARKS.md "NDD segmentation").
    beta, n_iter : float, int
        Soft kernel k-means temperature and iterations.
    stride : int
        Sub-grid of candidate centres and cluster means (1 = every node).
    min_size : int
        Pieces smaller than this many pixels are absorbed by the clean-up.
    default_height : float, optional
        The default level is the coarsest one at or below this height; default 0.87 for
        the "paper" and "snap" groupings, 0.65 for "leaves" (their covering-ODS thresholds
        with the train-only model on BSDS500 val, about 10 segments).
    T, t : int, float, optional
        Override the model's number of outer simultaneous-iteration steps and diffusion
        time for this call (inference-time ablation of Sun & Xu 2019, Table 1); default: the
        trained values.
    grouping : {"leaves", "paper", "snap"}
        "leaves" (default): ~1200 edge-following leaves at image resolution merged by K_D
        (no k-means, no interpolation); "paper": coverage centres + kernel k-means +
        merging on the grid, masks by interpolation (seed 001, Sect. 6); "snap": the
        paper's hierarchy snapped to the leaves (each leaf joins the finest region it
        overlaps most) and refined below its finest level by merging leaves inside each
        region (:mod:`affseg.grouping.leaf_hierarchy`).
    leaves : {"watershed", "felzenszwalb", "slic"}
        Over-segmentation of the "snap" / "leaves" groupings (compact watershed of the Lab
        Sobel magnitude, Felzenszwalb with ``scale = leaf_scale``, or SLIC).
    n_leaves : int
        Number of watershed markers / SLIC leaves.
    leaf_scale : float
        Felzenszwalb ``scale`` of the leaves.
    leaf_linkage : {"mixed", "border", "average"}
        Leaf merging: length-weighted mean K_D of the touching leaf pairs along the border
        ("border"), average K_D over the two regions ("average"), or
        ``(1 - leaf_mix) border + leaf_mix average`` ("mixed").
    boundary_weight : float
        Weight in [0, 1] of the colour contrast along the border in the merge distance.
    leaf_mix : float
        Weight of the average linkage in "mixed".
    leaf_small : float
        Size prior of the leaf merging, as a fraction of the image area: the merge distance
        of a region smaller than this is scaled by ``sqrt(area / (leaf_small H W))`` (0: off).
    edge_weight, edge_scale : float
        Weight of the mean edge strength ``1 - exp(-g / edge_scale)`` along the border (g:
        Sobel magnitude of CIE-Lab) in the leaf merge distance (0: off).
    learned_weight : float
        Weight of the mean learned boundary probability along the border in the leaf
        merge distance (0: off; :mod:`affseg.models.boundary_head`). Models other than a
        spec-diff-net (no backbone pyramid) run without the learned terms unless a
        ``boundary_map`` is given.
    leaf_elevation : float
        Watershed leaves flood ``sobel + leaf_elevation * boundary probability`` (0: the
        Sobel magnitude alone).
    boundary_head : str, optional
        Weights of the boundary head (default: the shipped ``boundary_head.pt``).
    boundary_map : ndarray, shape (H, W), optional
        A precomputed boundary probability (then no boundary head runs).

    Returns
    -------
    Hierarchy
        Levels at the image's resolution, fine -> coarse, heights = 1 - merge similarity.

    Notes
    -----
    Options given as strings (the command line's ``--set``) are converted to their types.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> hier = ndd_hierarchy(image)                   # doctest: +SKIP
    >>> hier.labels().shape                           # doctest: +SKIP
    (64, 64)

    (Not run as a doctest: loading the network takes seconds; the README example, run by
    ``tests/test_readme.py``, segments an image with this method.)
    """
    mode = str(upsample).lower()
    if mode not in ("hr", "lr"):
        raise InputError(f"upsample must be 'hr' or 'lr'; got {upsample!r}")
    group = str(grouping).lower()
    if group not in GROUPINGS:
        raise InputError(f"grouping must be one of {GROUPINGS}; got {grouping!r}")
    if default_height is None:
        default_height = DEFAULT_HEIGHTS[group]
    given = {
        "eps": eps,
        "max_centres": max_centres,
        "beta": beta,
        "n_iter": n_iter,
        "stride": stride,
        "min_size": min_size,
        "default_height": default_height,
        "n_leaves": n_leaves,
        "leaf_scale": leaf_scale,
        "boundary_weight": boundary_weight,
        "leaf_mix": leaf_mix,
        "leaf_small": leaf_small,
        "edge_weight": edge_weight,
        "edge_scale": edge_scale,
        "learned_weight": learned_weight,
        "leaf_elevation": leaf_elevation,
    }
    try:
        kw: dict[str, Any] = {k: _OPTION_TYPES[k](v) for k, v in given.items()}
    except (TypeError, ValueError) as err:
        raise InputError(f"bad ndd option value: {err}") from None
    limits = {
        "eps": (kw["eps"] >= 0 and math.isfinite(kw["eps"]), "a finite number >= 0"),
        "beta": (kw["beta"] > 0 and math.isfinite(kw["beta"]), "a positive number"),
        "n_iter": (kw["n_iter"] >= 1, ">= 1"),
        "min_size": (kw["min_size"] >= 0, ">= 0"),
        "default_height": (0 <= kw["default_height"] <= 1, "in [0, 1]"),
    }
    for name, (ok, what) in limits.items():
        if not ok:
            raise InputError(f"ndd option {name} must be {what}, got {given[name]!r}")
    if model is not None and not callable(getattr(model, "encode", None)):
        raise InputError(
            f"ndd option model must be a loaded network (a SpecDiffNet), got "
            f"{type(model).__name__}; to use a weights file give weights=PATH"
        )
    torch.manual_seed(int(seed))
    net = shipped_model(None if weights is None else str(weights)) if model is None else model
    x = _image_tensor(image)
    from affseg.models.spec_diff_net import SpecDiffNet

    # the batch-norm-folded backbone copy, for spec-diff-nets (other models: their encode)
    fast = _fast_backbone(net) if isinstance(net, SpecDiffNet) else None
    need_map = group != "paper" and (kw["learned_weight"] > 0 or kw["leaf_elevation"] > 0)
    with torch.no_grad(), _diffusion_overrides(net, T, t):
        if isinstance(net, SpecDiffNet):
            pyramid = net.pyramid(x, backbone=fast)
            out = net.encode_pyramid(pyramid, (int(x.shape[2]), int(x.shape[3])))
            if need_map and boundary_map is None:
                boundary_map = _boundary_map(pyramid, boundary_head, out.image_size)
        else:
            out = net.encode(x)
    if need_map and boundary_map is None:
        need_map = False  # a model without the backbone pyramid: no learned terms
        kw["learned_weight"] = kw["leaf_elevation"] = 0.0
    phi = out.embedding[0].detach().cpu().float().numpy()
    tau = float(out.tau)
    size = (int(x.shape[2]), int(x.shape[3]))
    grid = (int(out.grid[0]), int(out.grid[1]))

    leaf_kw: dict[str, Any] = {}
    if group != "paper":
        from affseg.grouping.leaf_hierarchy import leaf_hierarchy

        leaf_kw = {
            "leaves": str(leaves),
            "n_leaves": kw.pop("n_leaves"),
            "compactness": kw.pop("leaf_scale") if str(leaves) == "felzenszwalb" else None,
            "min_size": 10 if str(leaves) == "felzenszwalb" else 0,
            "linkage": str(leaf_linkage),
            "boundary_weight": kw.pop("boundary_weight"),
            "mix": kw.pop("leaf_mix"),
            "small": kw.pop("leaf_small"),
            "edge_weight": kw.pop("edge_weight"),
            "edge_scale": kw.pop("edge_scale"),
            "learned_weight": kw.pop("learned_weight"),
            "leaf_elevation": kw.pop("leaf_elevation"),
            "boundary_map": boundary_map if need_map else None,
            "default_height": kw["default_height"],
        }
    else:
        for k in (
            "n_leaves",
            "leaf_scale",
            "boundary_weight",
            "leaf_mix",
            "leaf_small",
            "edge_weight",
            "edge_scale",
            "learned_weight",
            "leaf_elevation",
        ):
            kw.pop(k)
    if group == "leaves":
        kernel = diffusion_kernel(phi, tau)
        return leaf_hierarchy(image, kernel, grid, **leaf_kw)

    up = None
    if mode == "hr":

        def up(maps: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                res = net.upsample(torch.from_numpy(maps)[None], out)
            return res[0].detach().cpu().float().numpy()

    if group == "paper":
        return diffusion_hierarchy(phi, tau, grid, size, upsample=up, linkage=str(linkage), **kw)
    # "snap": the paper's hierarchy (sharing its K_D) snapped to the leaves
    kernel, assign = grid_clustering(
        phi,
        tau,
        grid,
        eps=kw["eps"],
        max_centres=kw["max_centres"],
        beta=kw["beta"],
        n_iter=kw["n_iter"],
        stride=kw["stride"],
    )
    full = resize_maps(assign, size) if up is None else np.asarray(up(assign), dtype=np.float32)
    coarse = labels_to_hierarchy(
        full.argmax(axis=0),
        kernel,
        grid,
        linkage=str(linkage),
        phi=phi,
        tau=tau,
        min_size=kw["min_size"],
        default_height=kw["default_height"],
        soft=full,
    )
    return leaf_hierarchy(image, kernel, grid, coarse=coarse, **leaf_kw)
