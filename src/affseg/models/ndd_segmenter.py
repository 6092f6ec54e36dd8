"""The ``ndd`` segmentation method: spec-diff-net + hierarchical kernel grouping.

``ndd_hierarchy(image)`` runs the shipped spec-diff-net (loaded once and cached) on one
RGB image, takes its diffusion embedding on the feature grid, and builds the hierarchy of
:func:`affseg.segment.diffusion_hierarchy.diffusion_hierarchy` (seed 001, Sect. 6). The
full-resolution masks come from the network's feature-attentional interpolation
(``upsample="hr"``) or from plain bilinear resizing (``upsample="lr"``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from affseg.errors import InputError
from affseg.segment.diffusion_hierarchy import diffusion_hierarchy
from affseg.segment.hierarchy import Hierarchy

_FLOAT_OPTIONS = ("eps", "beta", "default_height")
_INT_OPTIONS = ("max_centres", "n_iter", "min_size")


@functools.lru_cache(maxsize=1)
def shipped_model() -> Any:
    """The shipped spec-diff-net in eval mode (loaded on first use, then cached).

    Returns
    -------
    affseg.models.spec_diff_net.SpecDiffNet
    """
    from affseg.models.spec_diff_net import load_pretrained

    return load_pretrained().eval()


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    from affseg.data.io import as_rgb

    rgb = as_rgb(image)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0


def ndd_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    upsample: str = "hr",
    model: Any | None = None,
    linkage: str = "kernel",
    **options: Any,
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
    linkage : {"kernel", "centroid"}
        Similarity of segments when merging (average K_D, or K_D of mean embeddings).
    **options
        ``eps`` (0.02), ``max_centres`` (9), ``beta`` (50), ``n_iter`` (20),
        ``min_size`` (0), ``default_height`` (0.5): see
        :func:`~affseg.segment.diffusion_hierarchy.diffusion_hierarchy`. Strings (from
        the command line's ``--set``) are converted.

    Returns
    -------
    Hierarchy
        Levels at the image's resolution, fine -> coarse, heights = 1 - merge similarity.
    """
    mode = str(upsample).lower()
    if mode not in ("hr", "lr"):
        raise InputError(f"upsample must be 'hr' or 'lr'; got {upsample!r}")
    unknown = set(options) - set(_FLOAT_OPTIONS) - set(_INT_OPTIONS)
    if unknown:
        raise InputError(
            f"unknown ndd option(s) {', '.join(sorted(unknown))}; known: upsample, linkage, "
            f"seed, {', '.join(_FLOAT_OPTIONS + _INT_OPTIONS)}"
        )
    try:
        kw: dict[str, Any] = {k: float(v) for k, v in options.items() if k in _FLOAT_OPTIONS}
        kw.update({k: int(v) for k, v in options.items() if k in _INT_OPTIONS})
    except ValueError as err:
        raise InputError(f"bad ndd option value: {err}") from None
    torch.manual_seed(int(seed))
    net = shipped_model() if model is None else model
    x = _image_tensor(image)
    with torch.no_grad():
        out = net.encode(x)
    phi = out.embedding[0].detach().cpu().float().numpy()
    tau = float(out.tau)
    size = (int(x.shape[2]), int(x.shape[3]))

    up = None
    if mode == "hr":

        def up(maps: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                res = net.upsample(torch.from_numpy(maps)[None], out)
            return res[0].detach().cpu().float().numpy()

    return diffusion_hierarchy(
        phi, tau, tuple(out.grid), size, upsample=up, linkage=str(linkage), **kw
    )
