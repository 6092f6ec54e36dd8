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

The fast bilateral solver: OpenCV's ``ximgproc.fastBilateralSolverFilter`` needs OpenCV
built with Eigen (the pip wheels are not), so :func:`bilateral_solve` is a NumPy / SciPy
implementation of the paper's solver, after the authors' reference notebook: pixels are
hashed into the vertices of a 5-D grid (x, y and the YUV colour, cell sizes
``sigma_spatial``, ``sigma_luma``, ``sigma_chroma``; :class:`BilateralGrid`, splatted
bilinearly in x, y by default), the grid blur is the [1 2 1] kernel along each axis, the
splat/blur/slice operator is bistochastised (:func:`bistochastize`), and the problem

    minimise  lam/2 * sum_ij W_ij (y_i - y_j)^2 + sum_i c_i (y_i - t_i)^2

is solved in the grid (:func:`bilateral_system`) with Jacobi-preconditioned conjugate
gradients. ``benchmarks/bench_bilateral_solver.py`` compares it with the published
outputs of the paper on the Middlebury benchmark.

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
#: Bilateral-solver parameters per factor: those of the paper for depth super-resolution
#: (Barron & Poole 2016, Sec. 5): sigma_xy = 8, sigma_l = 4, sigma_uv = 3 and
#: lambda = 4 ** (log2(factor) - 1/2), with the bicubic upsampling as target and
#: :func:`depth_sr_confidence` as confidence (:func:`bilateral_upsample`).
BILATERAL_PARAMS: dict[int, dict[str, float]] = {
    f: {"sigma_spatial": 8.0, "sigma_luma": 4.0, "sigma_chroma": 3.0, "lam": 4.0 ** (k - 0.5)}
    for k, f in enumerate((2, 4, 8, 16), start=1)
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
    p = dict(_params(BILATERAL_PARAMS, factor) if params is None else params)
    if params is None and factor not in BILATERAL_PARAMS:
        p["lam"] = 4.0 ** (np.log2(max(factor, 1)) - 0.5)
    conf = depth_sr_confidence(up.shape[0], up.shape[1], factor)
    return bilateral_solve(rgb, up, conf, **p)  # type: ignore[arg-type]


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
#: Peak bytes per guide pixel of :class:`BilateralGrid` and :func:`bilateral_solve`
#: (coordinates, hash keys, sort, the splat matrix with up to 4 entries per pixel, the blur
#: matrix with up to 11 per vertex and the solver's vectors), checked against
#: ``$AFFSEG_MAX_MEMORY_GB`` before anything is allocated. Measured: the peak RSS of
#: :func:`bilateral_upsample` rises by 440 B per guide pixel (0.45 GB at 0.37 MP, 0.94 GB
#: at 1.5 MP, books_big x8 / x2 / x16); 500 leaves a margin.
GRID_BYTES_PER_PIXEL = 500.0


class BilateralGrid:
    """Splat / blur / slice operators of the simplified 5-D bilateral grid (x, y, Y, U, V).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 or float in 0..255
        The reference (guide) image; converted to YUV as in the reference implementation.
    sigma_spatial, sigma_luma, sigma_chroma : float
        Grid cell sizes in pixels and in 8-bit luma / chroma units.
    interpolation : {"bilinear", "nearest"}
        How a pixel is splatted to (and sliced from) the grid. ``"nearest"``: each pixel
        belongs to the one vertex of its cell, as in the authors' reference notebook (the
        output is constant on a ``sigma_spatial``-sized block of one colour cell);
        ``"bilinear"`` (default): bilinear weights over the 4 spatially neighbouring
        vertices of its colour cell, which removes those blocks.

    Attributes
    ----------
    splat_matrix : scipy.sparse.csr_matrix, shape (V, N)
        Splat S (columns sum to 1); slicing is S^T.
    blur_matrix : scipy.sparse.csr_matrix, shape (V, V)
        B = 2 * 5 * I + the neighbours at +-1 along each of the 5 axes (the [1 2 1] blur per
        axis, summed), symmetric.

    Raises
    ------
    InputError
        A guide that is not (H, W, 3), non-positive sigmas, an unknown ``interpolation``, or
        a grid whose estimated memory exceeds ``$AFFSEG_MAX_MEMORY_GB``.

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 3.

    Examples
    --------
    >>> import numpy as np
    >>> g = BilateralGrid(np.zeros((4, 6, 3), np.uint8), 2, 8, 8, interpolation="nearest")
    >>> g.n_pixels, g.n_vertices
    (24, 6)
    >>> bool(np.allclose(g.splat_matrix.sum(axis=0), 1.0))
    True
    """

    def __init__(
        self,
        rgb: np.ndarray,
        sigma_spatial: float,
        sigma_luma: float,
        sigma_chroma: float,
        interpolation: str = "bilinear",
    ) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"bilateral grid guide must be (H, W, 3), got {rgb.shape}")
        if min(sigma_spatial, sigma_luma, sigma_chroma) <= 0:
            raise InputError("bilateral grid sigmas must be positive")
        if interpolation not in ("bilinear", "nearest"):
            raise InputError(
                f"interpolation must be 'bilinear' or 'nearest', not {interpolation!r}"
            )
        h, w = rgb.shape[:2]
        check_grid_memory(h, w)
        n = h * w
        yuv = rgb.reshape(-1, 3).astype(np.float64) @ _RGB_TO_YUV.T + _YUV_OFFSET
        yy, xx = np.divmod(np.arange(n), w)
        coords = np.empty((n, 5), np.int64)
        coords[:, 2] = np.floor(yuv[:, 0] / sigma_luma)
        coords[:, 3:] = np.floor(yuv[:, 1:] / sigma_chroma)
        if interpolation == "nearest":
            coords[:, 0] = xx // sigma_spatial
            coords[:, 1] = yy // sigma_spatial
            corners = [(0, 0)]
            fx = fy = np.zeros(n)
        else:  # pixel centres on the grid of vertices spaced sigma_spatial apart
            px, py = (xx + 0.5) / sigma_spatial, (yy + 0.5) / sigma_spatial
            coords[:, 0], coords[:, 1] = np.floor(px), np.floor(py)
            fx, fy = px - coords[:, 0], py - coords[:, 1]
            corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
        del yuv, yy, xx
        coords -= coords.min(axis=0) - 1  # >= 1 so that -1 offsets stay >= 0
        self._base = np.cumprod(np.r_[1, coords.max(axis=0)[:-1] + 3])
        key0 = coords @ self._base
        del coords
        keys, weights, pixels = [], [], []
        for cx, cy in corners:
            wgt = (fx if cx else 1.0 - fx) * (fy if cy else 1.0 - fy)
            keep = wgt > 0
            keys.append(key0[keep] + cx * self._base[0] + cy * self._base[1])
            weights.append(wgt[keep])
            pixels.append(np.nonzero(keep)[0])
        uniq, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        self.n_pixels, self.n_vertices = n, len(uniq)
        self.splat_matrix = sp.csr_matrix(
            (np.concatenate(weights), (inverse, np.concatenate(pixels))),
            shape=(self.n_vertices, n),
        )
        rows, cols = [], []
        for d in range(5):
            for off in (-1, 1):
                nkeys = uniq + off * self._base[d]
                pos = np.searchsorted(uniq, nkeys).clip(0, len(uniq) - 1)
                ok = uniq[pos] == nkeys
                rows.append(np.nonzero(ok)[0])
                cols.append(pos[ok])
        r, c = np.concatenate(rows), np.concatenate(cols)
        neighbours = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(self.n_vertices,) * 2)
        self.blur_matrix = (neighbours + 10.0 * sp.identity(self.n_vertices)).tocsr()

    def splat(self, x: np.ndarray) -> np.ndarray:
        """Sum pixel values (N,) into the grid vertices (V,)."""
        return self.splat_matrix @ x

    def slice(self, y: np.ndarray) -> np.ndarray:
        """Read vertex values (V,) back at the pixels (N,)."""
        return self.splat_matrix.T @ y

    def blur(self, y: np.ndarray) -> np.ndarray:
        """[1 2 1] blur of vertex values (V,) along each of the 5 axes."""
        return self.blur_matrix @ y


def check_grid_memory(height: int, width: int) -> None:
    """Refuse a guide whose bilateral grid and solve would exceed ``$AFFSEG_MAX_MEMORY_GB``.

    The estimate is :data:`GRID_BYTES_PER_PIXEL` per guide pixel (the vertex count never
    exceeds 4 per pixel).

    Raises
    ------
    InputError
        Naming the guide size, the estimate and the limit.

    Examples
    --------
    >>> check_grid_memory(1088, 1376)
    >>> check_grid_memory(100_000, 100_000)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: a bilateral grid of a 100000 x 100000 guide would need ...
    """
    from affseg.memory import check_memory

    check_memory(
        GRID_BYTES_PER_PIXEL * float(height) * float(width),
        f"a bilateral grid of a {width} x {height} guide",
        "give a smaller guide (and the depth map scaled with it), or raise the limit",
    )


def bistochastize(grid: BilateralGrid, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal scalings n, m with ``diag(n) B diag(n) 1 = m`` (the paper's normalisation).

    The iteration of the paper (and its reference code), started at n = 1 and the vertex
    masses m = S 1: ``n <- sqrt(n * m / (B n))``; m is then reset to ``n * (B n)`` so that
    the identity holds exactly whatever the number of iterations. W_hat = S^T D_m^-1 D_n B
    D_n D_m^-1 S is then (approximately) bistochastic.

    Parameters
    ----------
    grid : BilateralGrid
    iterations : int

    Returns
    -------
    n, m : ndarray, shape (V,)

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 3 and
    Algorithm 1.

    Examples
    --------
    >>> import numpy as np
    >>> g = BilateralGrid(np.zeros((8, 8, 3), np.uint8), 4, 8, 8)
    >>> n, m = bistochastize(g)
    >>> bool(np.allclose(n * g.blur(n), m))
    True
    """
    mass = grid.splat(np.ones(grid.n_pixels))
    n = np.ones(grid.n_vertices)
    for _ in range(iterations):
        n = np.sqrt(n * mass / grid.blur(n))
    return n, n * grid.blur(n)


_bistochastize = bistochastize  # the name of earlier releases


def bilateral_system(
    grid: BilateralGrid,
    target: np.ndarray,
    confidence: np.ndarray,
    lam: float,
    bistochastic: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The bilateral-space normal equations ``A y = b`` of the solver.

    ``A = lam * (D_m - D_n B D_n) + diag(S c)`` and ``b = S (c * t)``: the minimiser of
    ``lam/2 sum_ij W_hat_ij (x_i - x_j)^2 + sum_i c_i (x_i - t_i)^2`` over ``x = S^T y``
    (the paper's Eq. 7-8).

    Parameters
    ----------
    grid : BilateralGrid
    target, confidence : ndarray, shape (N,)
    lam : float
    bistochastic : (n, m), optional
        Output of :func:`bistochastize` (computed when omitted).

    Returns
    -------
    A : scipy.sparse.csr_matrix, shape (V, V), symmetric positive semi-definite
    b : ndarray, shape (V,)

    Examples
    --------
    >>> import numpy as np
    >>> g = BilateralGrid(np.zeros((8, 8, 3), np.uint8), 4, 8, 8)
    >>> a, b = bilateral_system(g, np.full(64, 3.0), np.ones(64), 4.0)
    >>> bool(np.allclose(a @ np.full(g.n_vertices, 3.0), b))
    True
    """
    n, m = bistochastize(grid) if bistochastic is None else bistochastic
    dn = sp.diags(n)
    a_smooth = sp.diags(m) - dn @ grid.blur_matrix @ dn
    a = (lam * a_smooth + sp.diags(grid.splat(confidence))).tocsr()
    return a, grid.splat(confidence * target)


def depth_sr_confidence(height: int, width: int, factor: int) -> np.ndarray:
    """Per-pixel confidence of a bicubic-upsampled depth map: a Gaussian bump per sample.

    Each output pixel's confidence is ``exp(-d^2 / (2 sigma^2))`` where ``d`` is its
    distance to the centre of the low-resolution sample it falls in (centres at
    ``(i + 0.5) * factor - 0.5``, the convention of :func:`bicubic_upsample`) and
    ``sigma = factor / 4`` output pixels: pixels near a measured sample are trusted more
    than the interpolated ones between samples. At x2 every pixel is equally far from its
    sample, so the confidence is uniform (``exp(-1)``).

    Parameters
    ----------
    height, width : int
        Output (guide) size.
    factor : int

    Returns
    -------
    ndarray, shape (height, width), float64, in (0, 1]

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 5 (depth
    superresolution: the confidence is a Gaussian bump modelling the spatial support of
    each upsampled pixel in the low-resolution image).

    Examples
    --------
    >>> import numpy as np
    >>> c = depth_sr_confidence(8, 8, 4)
    >>> c.shape, bool(np.allclose(c[:4, :4], c[4:, 4:])), bool(c[1, 1] > c[0, 0])
    ((8, 8), True, True)
    >>> bool(np.allclose(depth_sr_confidence(4, 4, 2), np.exp(-1)))
    True
    """
    if factor < 1:
        raise InputError(f"factor must be >= 1, got {factor}")
    sigma = factor / 4.0

    def offsets(size: int) -> np.ndarray:
        u = (np.arange(size) + 0.5) / factor - 0.5  # position in low-resolution pixels
        return (u - np.round(u)) * factor  # distance to the nearest sample, output pixels

    dy, dx = offsets(height), offsets(width)
    return np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2.0 * sigma**2))


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
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Edge-aware smoothing of ``target`` guided by ``rgb`` (the fast bilateral solver).

    Builds the bilateral grid of ``rgb`` (:class:`BilateralGrid`), bistochastises its blur
    (:func:`bistochastize`), forms the normal equations (:func:`bilateral_system`) and solves
    them with Jacobi-preconditioned conjugate gradients started at the confidence-weighted
    splat of the target (the reference implementation's solver), then slices the result.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    target : ndarray, shape (H, W)
        Values to smooth (e.g. the bicubic upsampling of a low-resolution depth map).
    confidence : ndarray, shape (H, W), optional
        Per-pixel data weight >= 0 (default all ones); for depth super-resolution
        :func:`depth_sr_confidence`.
    sigma_spatial, sigma_luma, sigma_chroma : float
        Grid cell sizes (see :class:`BilateralGrid`). The defaults are the reference
        notebook's generic ones; the paper's depth-SR values are in
        :data:`BILATERAL_PARAMS` (8, 4, 3).
    lam : float
        Smoothness weight lambda.
    cg_iterations : int
        Maximum PCG iterations.
    cg_tol : float
        Relative residual at which PCG stops.
    interpolation : {"bilinear", "nearest"}
        Splat / slice weights (see :class:`BilateralGrid`).

    Returns
    -------
    ndarray, shape (H, W), float32

    Raises
    ------
    InputError
        Shapes that differ, ``lam < 0``, ``cg_iterations < 1``, negative confidence, or a
        guide too large for ``$AFFSEG_MAX_MEMORY_GB``.

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
    t = target.reshape(-1).astype(np.float64)
    if confidence is None:
        c = np.ones_like(t)
    else:
        if confidence.shape != target.shape:
            raise InputError(f"confidence {confidence.shape} and target {target.shape} differ")
        c = confidence.reshape(-1).astype(np.float64)
        if not (c >= 0).all():
            raise InputError("confidence must be >= 0 everywhere")
    grid = BilateralGrid(rgb, sigma_spatial, sigma_luma, sigma_chroma, interpolation)
    a, b = bilateral_system(grid, t, c, lam)
    y0 = b / np.maximum(grid.splat(c), 1e-10)
    precond = sp.diags(1.0 / np.maximum(a.diagonal(), 1e-5))
    y, _ = cg(a, b, x0=y0, M=precond, maxiter=cg_iterations, rtol=cg_tol)
    return grid.slice(y).reshape(target.shape).astype(np.float32)
