"""Classical guided depth baselines: bicubic, bilateral solver, guided filter, FGS completion.

The one home of the non-learned depth methods that the HAM models are compared with.

* **Super-resolution** (:func:`baseline_upsample`, names :data:`BASELINES`): each maps an
  RGB guide (H, W, 3) and a low-resolution disparity (H/f, W/f) to (H, W).
  :func:`bicubic_upsample` (torch, ``align_corners=False``); the fast bilateral solver
  (:func:`bilateral_solve`, :func:`bilateral_upsample`) with the paper's depth-SR set-up
  (:data:`BILATERAL_PARAMS`, :func:`depth_sr_confidence`) and the guided filter (OpenCV
  contrib ``ximgproc.guidedFilter``, :func:`guided_upsample`) smooth the bicubic
  upsampling; the guided filter's parameters per factor (:data:`GUIDED_PARAMS`) were
  chosen by a grid search on synthesised inputs of the ``RGBD_depth_train`` scenes
  (``benchmarks/depth_sr_baseline_grid.py``, results in
  ``benchmarks/results/depth_sr_baseline_grid.json``), never on a benchmark scene.
* **Depth completion** (:func:`fgs_complete`): colour-guided normalised interpolation of
  sparse samples with the fast global smoother
  (:func:`~affseg.affinity.smoothing.fast_global_smoother`), parameters
  :data:`FGS_PARAMS`.

The fast bilateral solver itself (grid, bistochastisation, solve, the paper's depth-SR
parameters) lives in :mod:`affseg.affinity.bilateral_solver`; its names are re-exported
here. ``benchmarks/bench_bilateral_solver.py`` compares :func:`bilateral_upsample` with
the published outputs of the paper on the Middlebury benchmark.

References
----------
.. [1] J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.
.. [2] K. He, J. Sun and X. Tang, "Guided Image Filtering", TPAMI 2013.
.. [3] D. Min, S. Choi, J. Lu, B. Ham, K. Sohn and M. N. Do, "Fast Global Image Smoothing
   Based on Weighted Least Squares", IEEE TIP 2014.

Example
-------
>>> import numpy as np
>>> rgb = np.zeros((32, 32, 3), np.uint8)
>>> baseline_upsample("bicubic", rgb, np.full((8, 8), 9.0), 4).shape
(32, 32)
"""

from __future__ import annotations

import numpy as np

from affseg.affinity.bilateral_solver import (
    DEPTH_SR_PARAMS,
    GRID_BYTES_PER_PIXEL,
    BilateralGrid,
    bilateral_solve,
    bilateral_system,
    bistochastize,
    check_grid_memory,
    depth_sr_confidence,
    depth_sr_solve,
)
from affseg.affinity.smoothing import fast_global_smoother
from affseg.errors import InputError

#: Baseline names accepted by :func:`baseline_upsample`.
BASELINES: tuple[str, ...] = ("bicubic", "bilateral", "guided")
#: Bilateral-solver parameters per factor (the paper's depth-SR set-up;
#: :data:`affseg.affinity.bilateral_solver.DEPTH_SR_PARAMS`).
BILATERAL_PARAMS: dict[int, dict[str, float]] = DEPTH_SR_PARAMS
#: Depth-completion fast-global-smoother parameters (lambda, sigma_color) of
#: :func:`fgs_complete`, chosen on the training scenes by
#: ``benchmarks/depth_completion_table.py --tune``.
FGS_PARAMS: tuple[float, float] = (300.0, 4.0)
#: Guided-filter (radius, eps on the [0, 1] guide) per factor (grid search on RGBD_depth_train).
GUIDED_PARAMS: dict[int, dict[str, float]] = {
    2: {"radius": 2, "eps": 1e-2},
    4: {"radius": 4, "eps": 1e-2},
    8: {"radius": 4, "eps": 1e-2},
    16: {"radius": 8, "eps": 1e-2},
}


def bicubic_upsample(lr: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling (torch, ``align_corners=False``) of (h, w) to (h*f, w*f).

    Examples
    --------
    >>> import numpy as np
    >>> bicubic_upsample(np.ones((4, 4)), 2).shape
    (8, 8)
    """
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(lr.astype(np.float32))[None, None]
    return F.interpolate(t, scale_factor=factor, mode="bicubic", align_corners=False)[0, 0].numpy()


def _params(table: dict[int, dict[str, float]], factor: int) -> dict[str, float]:
    """Parameters of the nearest tabulated factor (log scale)."""
    best = min(table, key=lambda f: abs(np.log2(f) - np.log2(max(factor, 1))))
    return table[best]


def bilateral_upsample(
    rgb: np.ndarray, lr: np.ndarray, factor: int, params: dict[str, float] | None = None
) -> np.ndarray:
    """Fast bilateral solver for guided depth super-resolution, as in the paper.

    Target: the bicubic upsampling of ``lr`` (:func:`bicubic_upsample`); confidence: a
    Gaussian bump around each low-resolution sample (:func:`depth_sr_confidence`); grid and
    lambda: :data:`BILATERAL_PARAMS` (sigma_xy 8, sigma_l 4, sigma_uv 3,
    lambda = 4 ** (log2(factor) - 1/2)).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    lr : ndarray, shape (H / factor, W / factor)
    factor : int
    params : dict, optional
        Keyword arguments of :func:`bilateral_solve`;
        default :data:`BILATERAL_PARAMS` for ``factor``.

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 5.

    Examples
    --------
    >>> import numpy as np
    >>> bilateral_upsample(np.zeros((16, 16, 3), np.uint8), np.ones((4, 4)), 4).shape
    (16, 16)
    """
    up = bicubic_upsample(lr, factor)
    if params is None:
        return depth_sr_solve(rgb, up, factor)
    conf = depth_sr_confidence(up.shape[0], up.shape[1], factor)
    return bilateral_solve(rgb, up, conf, **params)  # type: ignore[arg-type]


def guided_upsample(
    rgb: np.ndarray, lr: np.ndarray, factor: int, params: dict[str, float] | None = None
) -> np.ndarray:
    """Guided filter (colour guide in [0, 1]) of the bicubic upsampling.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    lr : ndarray, shape (H / factor, W / factor)
    factor : int
    params : dict, optional
        ``radius`` (int) and ``eps``; default :data:`GUIDED_PARAMS` for ``factor``.

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    K. He, J. Sun and X. Tang, "Guided Image Filtering", TPAMI 2013.

    Examples
    --------
    >>> import numpy as np
    >>> out = guided_upsample(np.zeros((16, 16, 3), np.uint8), np.full((4, 4), 3.0), 4)
    >>> bool(np.allclose(out, 3.0, atol=1e-3))
    True
    """
    import cv2

    up = bicubic_upsample(lr, factor).astype(np.float32)
    p = _params(GUIDED_PARAMS, factor) if params is None else params
    guide = np.ascontiguousarray(rgb, dtype=np.float32) / 255.0
    return cv2.ximgproc.guidedFilter(guide, up, int(p["radius"]), float(p["eps"]))


def baseline_upsample(method: str, rgb: np.ndarray, lr: np.ndarray, factor: int) -> np.ndarray:
    """Run one of :data:`BASELINES` with its default parameters.

    Parameters
    ----------
    method : {"bicubic", "bilateral", "guided"}
    rgb : ndarray, shape (H, W, 3), uint8
    lr : ndarray, shape (H / factor, W / factor)
    factor : int

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> baseline_upsample("guided", np.zeros((8, 8, 3), np.uint8), np.ones((4, 4)), 2).shape
    (8, 8)
    """
    if rgb.shape[:2] != (lr.shape[0] * factor, lr.shape[1] * factor):
        raise InputError(f"guide {rgb.shape[:2]} is not {factor} x depth {lr.shape}")
    if method == "bicubic":
        return bicubic_upsample(lr, factor)
    if method == "bilateral":
        return bilateral_upsample(rgb, lr, factor)
    if method == "guided":
        return guided_upsample(rgb, lr, factor)
    raise InputError(f"unknown baseline {method!r}; use one of {', '.join(BASELINES)}")


def fgs_complete(
    rgb: np.ndarray, sparse: np.ndarray, lam: float | None = None, sigma: float | None = None
) -> np.ndarray:
    """Colour-guided interpolation: fast global smoother of the samples over that of the mask.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    sparse : ndarray, shape (H, W)
        Samples > 0, 0 = no sample.
    lam, sigma : float, optional
        Smoothness and colour scale of
        :func:`~affseg.affinity.smoothing.fast_global_smoother`
        (default :data:`FGS_PARAMS`).

    Returns
    -------
    ndarray, shape (H, W), float32
        Where the smoothed mask underflows (far from any sample across strong edges),
        the nearest sample's value.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((8, 8), np.float32)
    >>> s[2, 2], s[6, 5] = 4.0, 4.0
    >>> bool(np.allclose(fgs_complete(np.zeros((8, 8, 3), np.uint8), s), 4.0))
    True
    """
    from affseg.methods.depth_completion import _check, check_completion_memory, nearest_fill

    s = np.asarray(sparse, dtype=np.float32)
    _check(rgb, s)
    check_completion_memory("fgs", *s.shape)
    lam0, sig0 = FGS_PARAMS
    lam, sigma = lam0 if lam is None else lam, sig0 if sigma is None else sigma
    m = (s > 0).astype(np.float32)
    num = fast_global_smoother(rgb, s, lam, sigma)
    den = fast_global_smoother(rgb, m, lam, sigma)
    fill, _ = nearest_fill(s)
    ok = den > 1e-6
    out = np.where(ok, num / np.where(ok, den, 1.0), fill)
    return np.clip(out, s[s > 0].min(), s.max()).astype(np.float32)


__all__ = [
    "BASELINES",
    "BILATERAL_PARAMS",
    "FGS_PARAMS",
    "GRID_BYTES_PER_PIXEL",
    "GUIDED_PARAMS",
    "BilateralGrid",
    "baseline_upsample",
    "bicubic_upsample",
    "bilateral_solve",
    "bilateral_system",
    "bilateral_upsample",
    "bistochastize",
    "check_grid_memory",
    "depth_sr_confidence",
    "fgs_complete",
    "guided_upsample",
]
