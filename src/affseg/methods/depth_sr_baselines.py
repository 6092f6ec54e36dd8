"""Classical guided depth super-resolution baselines: bicubic, bilateral solver, guided filter.

Each maps an RGB guide (H, W, 3) and a low-resolution disparity (H/f, W/f) to (H, W).
The bilateral solver (:func:`affseg.methods.bilateral_solver.bilateral_solve`) and the
guided filter (OpenCV contrib ``ximgproc.guidedFilter``) smooth the bicubic upsampling;
their parameters per factor (:data:`BILATERAL_PARAMS`, :data:`GUIDED_PARAMS`) were chosen
by a grid search on synthesised inputs of the ``RGBD_depth_train`` scenes
(``benchmarks/depth_sr_baseline_grid.py``, results in
``benchmarks/results/depth_sr_baseline_grid.json``), never on a benchmark scene.

References
----------
.. [1] J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.
.. [2] K. He, J. Sun and X. Tang, "Guided Image Filtering", TPAMI 2013.

Example
-------
>>> import numpy as np
>>> rgb = np.zeros((32, 32, 3), np.uint8)
>>> baseline_upsample("bicubic", rgb, np.full((8, 8), 9.0), 4).shape
(32, 32)
"""

from __future__ import annotations

import numpy as np

from affseg.errors import InputError
from affseg.methods.bilateral_solver import bilateral_solve

#: Baseline names accepted by :func:`baseline_upsample`.
BASELINES: tuple[str, ...] = ("bicubic", "bilateral", "guided")
#: Bilateral-solver parameters per factor (grid search on RGBD_depth_train).
BILATERAL_PARAMS: dict[int, dict[str, float]] = {
    2: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 32.0},
    4: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 32.0},
    8: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 128.0},
    16: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 128.0},
}
#: Guided-filter (radius, eps on the [0, 1] guide) per factor (grid search on RGBD_depth_train).
GUIDED_PARAMS: dict[int, dict[str, float]] = {
    2: {"radius": 2, "eps": 1e-2},
    4: {"radius": 4, "eps": 1e-2},
    8: {"radius": 4, "eps": 1e-2},
    16: {"radius": 8, "eps": 1e-2},
}


def _params(table: dict[int, dict[str, float]], factor: int) -> dict[str, float]:
    """Parameters of the nearest tabulated factor (log scale)."""
    best = min(table, key=lambda f: abs(np.log2(f) - np.log2(max(factor, 1))))
    return table[best]


def bilateral_upsample(
    rgb: np.ndarray, lr: np.ndarray, factor: int, params: dict[str, float] | None = None
) -> np.ndarray:
    """Fast bilateral solver on the bicubic upsampling (unit confidence).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    lr : ndarray, shape (H / factor, W / factor)
    factor : int
    params : dict, optional
        Keyword arguments of :func:`~affseg.methods.bilateral_solver.bilateral_solve`;
        default :data:`BILATERAL_PARAMS` for ``factor``.

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> bilateral_upsample(np.zeros((16, 16, 3), np.uint8), np.ones((4, 4)), 4).shape
    (16, 16)
    """
    from affseg.methods.depth_sr import bicubic_upsample

    up = bicubic_upsample(lr, factor)
    p = _params(BILATERAL_PARAMS, factor) if params is None else params
    return bilateral_solve(
        rgb,
        up,
        sigma_spatial=p["sigma_spatial"],
        sigma_luma=p["sigma_luma"],
        sigma_chroma=p["sigma_chroma"],
        lam=p["lam"],
    )


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

    from affseg.methods.depth_sr import bicubic_upsample

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
    from affseg.methods.depth_sr import bicubic_upsample

    if rgb.shape[:2] != (lr.shape[0] * factor, lr.shape[1] * factor):
        raise InputError(f"guide {rgb.shape[:2]} is not {factor} x depth {lr.shape}")
    if method == "bicubic":
        return bicubic_upsample(lr, factor)
    if method == "bilateral":
        return bilateral_upsample(rgb, lr, factor)
    if method == "guided":
        return guided_upsample(rgb, lr, factor)
    raise InputError(f"unknown baseline {method!r}; use one of {', '.join(BASELINES)}")
