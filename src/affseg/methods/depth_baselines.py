"""Classical guided depth baselines: bicubic, bilateral solver, guided filter, FGS completion.

The one home of the non-learned depth methods that the HAM models are compared with.

* **Super-resolution** (:func:`baseline_upsample`, names :data:`BASELINES`): each maps an
  RGB guide (H, W, 3) and a low-resolution disparity (H/f, W/f) to (H, W).
  :func:`bicubic_upsample` (torch, ``align_corners=False``); the fast bilateral solver
  (:func:`bilateral_solve`, :func:`bilateral_upsample`) and the guided filter (OpenCV
  contrib ``ximgproc.guidedFilter``, :func:`guided_upsample`) smooth the bicubic
  upsampling; their parameters per factor (:data:`BILATERAL_PARAMS`,
  :data:`GUIDED_PARAMS`) were chosen by a grid search on synthesised inputs of the
  ``RGBD_depth_train`` scenes (``benchmarks/depth_sr_baseline_grid.py``, results in
  ``benchmarks/results/depth_sr_baseline_grid.json``), never on a benchmark scene.
* **Depth completion** (:func:`fgs_complete`): colour-guided normalised interpolation of
  sparse samples with the fast global smoother
  (:func:`~affseg.affinity.smoothing.fast_global_smoother`), parameters
  :data:`FGS_PARAMS`.

The fast bilateral solver: OpenCV's ``ximgproc.fastBilateralSolverFilter`` needs OpenCV
built with Eigen (the pip wheels are not), so :func:`bilateral_solve` is a NumPy / SciPy
implementation of the paper's solver, after the authors' reference notebook: pixels are
hashed into the vertices of a 5-D grid (x, y, luma, two chroma axes, cell sizes
``sigma_spatial``, ``sigma_luma``, ``sigma_chroma``; :class:`BilateralGrid`), the grid blur
is the [1 2 1] kernel along each axis, the splat/blur/slice operator is bistochastised,
and the problem

    minimise  lam/2 * sum_ij W_ij (y_i - y_j)^2 + sum_i c_i (y_i - t_i)^2

is solved in the grid with Jacobi-preconditioned conjugate gradients.

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
import scipy.sparse as sp
from scipy.sparse.linalg import cg

from affseg.affinity.smoothing import fast_global_smoother
from affseg.errors import InputError

#: Baseline names accepted by :func:`baseline_upsample`.
BASELINES: tuple[str, ...] = ("bicubic", "bilateral", "guided")
#: Bilateral-solver parameters per factor (grid search on RGBD_depth_train).
BILATERAL_PARAMS: dict[int, dict[str, float]] = {
    2: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 32.0},
    4: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 32.0},
    8: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 128.0},
    16: {"sigma_spatial": 4.0, "sigma_luma": 8.0, "sigma_chroma": 8.0, "lam": 128.0},
}
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
    """Fast bilateral solver on the bicubic upsampling (unit confidence).

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
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> bilateral_upsample(np.zeros((16, 16, 3), np.uint8), np.ones((4, 4)), 4).shape
    (16, 16)
    """
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


#: RGB (0..255) -> YUV, as in the reference implementation.
_RGB_TO_YUV = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YUV_OFFSET = np.array([0.0, 128.0, 128.0])


class BilateralGrid:
    """Splat / blur / slice operators of a simplified 5-D bilateral grid.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 or float in 0..255
        The reference (guide) image.
    sigma_spatial, sigma_luma, sigma_chroma : float
        Grid cell sizes in pixels and in 8-bit luma / chroma units.

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> g = BilateralGrid(np.zeros((4, 6, 3), np.uint8), 2, 8, 8)
    >>> g.n_pixels, g.n_vertices
    (24, 6)
    """

    def __init__(
        self, rgb: np.ndarray, sigma_spatial: float, sigma_luma: float, sigma_chroma: float
    ) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"bilateral grid guide must be (H, W, 3), got {rgb.shape}")
        if min(sigma_spatial, sigma_luma, sigma_chroma) <= 0:
            raise InputError("bilateral grid sigmas must be positive")
        h, w = rgb.shape[:2]
        yuv = rgb.reshape(-1, 3).astype(np.float64) @ _RGB_TO_YUV.T + _YUV_OFFSET
        yy, xx = np.divmod(np.arange(h * w), w)
        coords = np.empty((h * w, 5), np.int64)
        coords[:, 0] = xx // sigma_spatial
        coords[:, 1] = yy // sigma_spatial
        coords[:, 2] = (yuv[:, 0] / sigma_luma).astype(np.int64)
        coords[:, 3:] = (yuv[:, 1:] / sigma_chroma).astype(np.int64)
        coords -= coords.min(axis=0) - 1  # >= 1 so that -1 offsets stay >= 0
        self._base = np.cumprod(np.r_[1, coords.max(axis=0)[:-1] + 2])
        keys = coords @ self._base
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        self.n_pixels, self.n_vertices = h * w, len(uniq)
        self.splat_matrix = sp.csr_matrix(
            (np.ones(h * w), (inverse, np.arange(h * w))), shape=(self.n_vertices, h * w)
        )
        vcoords = coords[first]
        blur = sp.csr_matrix((self.n_vertices, self.n_vertices))
        for d in range(5):
            for off in (-1, 1):
                nkeys = uniq + off * self._base[d]
                pos = np.searchsorted(uniq, nkeys).clip(0, len(uniq) - 1)
                ok = uniq[pos] == nkeys
                src = np.nonzero(ok)[0]
                blur = blur + sp.csr_matrix(
                    (np.ones(len(src)), (src, pos[ok])), shape=(self.n_vertices,) * 2
                )
        del vcoords
        self.blur_matrix = (blur + 10.0 * sp.identity(self.n_vertices)).tocsr()

    def splat(self, x: np.ndarray) -> np.ndarray:
        """Sum pixel values (N,) into the grid vertices (V,)."""
        return self.splat_matrix @ x

    def slice(self, y: np.ndarray) -> np.ndarray:
        """Read vertex values (V,) back at the pixels (N,)."""
        return self.splat_matrix.T @ y

    def blur(self, y: np.ndarray) -> np.ndarray:
        """[1 2 1] blur of vertex values (V,) along each of the 5 axes."""
        return self.blur_matrix @ y


def _bistochastize(grid: BilateralGrid, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    m = grid.splat(np.ones(grid.n_pixels))
    n = np.ones(grid.n_vertices)
    for _ in range(iterations):
        n = np.sqrt(n * m / grid.blur(n))
    return n, n * grid.blur(n)


def bilateral_solve(
    rgb: np.ndarray,
    target: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    sigma_spatial: float = 8.0,
    sigma_luma: float = 8.0,
    sigma_chroma: float = 8.0,
    lam: float = 128.0,
    cg_iterations: int = 25,
    cg_tol: float = 1e-5,
) -> np.ndarray:
    """Edge-aware smoothing of ``target`` guided by ``rgb`` (the fast bilateral solver).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    target : ndarray, shape (H, W)
        Values to smooth (e.g. the bicubic upsampling of a low-resolution depth map).
    confidence : ndarray, shape (H, W), optional
        Per-pixel data weight >= 0 (default all ones).
    sigma_spatial, sigma_luma, sigma_chroma : float
        Bilateral grid cell sizes (see :class:`BilateralGrid`).
    lam : float
        Smoothness weight.
    cg_iterations : int
    cg_tol : float

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.zeros((8, 8, 3), np.uint8)
    >>> rgb[:, 4:] = 255
    >>> t = np.where(np.arange(8) < 4, 10.0, 20.0)[None].repeat(8, 0)
    >>> out = bilateral_solve(rgb, t + np.random.default_rng(0).normal(0, 1, (8, 8)))
    >>> bool(abs(out[:, :4].mean() - 10) < 0.5 and abs(out[:, 4:].mean() - 20) < 0.5)
    True
    """
    if target.shape != rgb.shape[:2]:
        raise InputError(f"target {target.shape} and guide {rgb.shape[:2]} differ in size")
    if lam < 0 or cg_iterations < 1:
        raise InputError("lam must be >= 0 and cg_iterations >= 1")
    grid = BilateralGrid(rgb, sigma_spatial, sigma_luma, sigma_chroma)
    n, m = _bistochastize(grid)
    t = target.reshape(-1).astype(np.float64)
    c = np.ones_like(t) if confidence is None else confidence.reshape(-1).astype(np.float64)
    dn = sp.diags(n)
    a_smooth = sp.diags(m) - dn @ grid.blur_matrix @ dn
    c_splat = grid.splat(c)
    a = (lam * a_smooth + sp.diags(c_splat)).tocsr()
    b = grid.splat(c * t)
    y0 = b / np.maximum(c_splat, 1e-10)
    precond = sp.diags(1.0 / np.maximum(a.diagonal(), 1e-5))
    y, _ = cg(a, b, x0=y0, M=precond, maxiter=cg_iterations, rtol=cg_tol)
    return grid.slice(y).reshape(target.shape).astype(np.float32)
