"""The fast bilateral solver (Barron & Poole 2016): edge-aware smoothing in bilateral space.

A NumPy / SciPy implementation of the paper's solver, after the authors' reference
notebook (OpenCV's ``ximgproc.fastBilateralSolverFilter`` needs OpenCV built with Eigen,
which the pip wheels are not): pixels are hashed into the vertices of a 5-D grid (x, y and
the YUV colour, cell sizes ``sigma_spatial``, ``sigma_luma``, ``sigma_chroma``;
:class:`BilateralGrid`, splatted bilinearly in x, y by default), the grid blur is the
[1 2 1] kernel along each axis, the splat/blur/slice operator is bistochastised
(:func:`bistochastize`), and the problem

    minimise  lam/2 * sum_ij W_ij (y_i - y_j)^2 + sum_i c_i (y_i - t_i)^2

is solved in the grid (:func:`bilateral_system`) with Jacobi-preconditioned conjugate
gradients (:func:`bilateral_solve`). :func:`depth_sr_solve` is the paper's guided depth
super-resolution set-up (:data:`DEPTH_SR_PARAMS`, :func:`depth_sr_confidence`), used by
the classical baseline (:func:`affseg.methods.depth_baselines.bilateral_upsample`) and as
the start map of the HAM models (``FastDepthSR(init="bilateral")``).
``benchmarks/bench_bilateral_solver.py`` compares it with the published outputs of the
paper on the Middlebury benchmark.

References
----------
.. [1] J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

Example
-------
>>> import numpy as np
>>> rgb = np.zeros((16, 16, 3), np.uint8)
>>> depth_sr_solve(rgb, np.full((16, 16), 7.0), 4).shape
(16, 16)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg

from affseg.errors import InputError
from affseg.memory import check_memory

#: Bilateral-solver parameters per factor: those of the paper for depth super-resolution
#: (Barron & Poole 2016, Sec. 5): sigma_xy = 8, sigma_l = 4, sigma_uv = 3 and
#: lambda = 4 ** (log2(factor) - 1/2), with the bicubic upsampling as target and
#: :func:`depth_sr_confidence` as confidence (:func:`depth_sr_solve`).
DEPTH_SR_PARAMS: dict[int, dict[str, float]] = {
    f: {"sigma_spatial": 8.0, "sigma_luma": 4.0, "sigma_chroma": 3.0, "lam": 4.0 ** (k - 0.5)}
    for k, f in enumerate((2, 4, 8, 16), start=1)
}


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


def depth_sr_solve(rgb: np.ndarray, target: np.ndarray, factor: int) -> np.ndarray:
    """The paper's depth super-resolution solve of an upsampled map ``target``.

    :func:`bilateral_solve` with :data:`DEPTH_SR_PARAMS` (the nearest tabulated factor on
    a log scale; lambda = 4 ** (log2(factor) - 1/2) for any other factor) and
    :func:`depth_sr_confidence`.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    target : ndarray, shape (H, W)
        The low-resolution map upsampled to the guide's size (bicubically in the paper).
    factor : int
        Upsampling factor that produced ``target``.

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 5.

    Examples
    --------
    >>> import numpy as np
    >>> out = depth_sr_solve(np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 3.0), 2)
    >>> bool(np.allclose(out, 3.0))
    True
    """
    if factor < 1:
        raise InputError(f"factor must be >= 1, got {factor}")
    best = min(DEPTH_SR_PARAMS, key=lambda f: abs(np.log2(f) - np.log2(factor)))
    p = dict(DEPTH_SR_PARAMS[best])
    if factor not in DEPTH_SR_PARAMS:
        p["lam"] = 4.0 ** (np.log2(factor) - 0.5)
    conf = depth_sr_confidence(target.shape[0], target.shape[1], factor)
    return bilateral_solve(rgb, target, conf, **p)  # type: ignore[arg-type]
