"""The fast bilateral solver (Barron & Poole, ECCV 2016) on a simplified bilateral grid.

OpenCV's ``ximgproc.fastBilateralSolverFilter`` needs OpenCV built with Eigen (the pip
wheels are not), so this is a NumPy / SciPy implementation of the paper's solver, after
the authors' reference notebook: pixels are hashed into the vertices of a 5-D grid
(x, y, luma, two chroma axes, cell sizes ``sigma_spatial``, ``sigma_luma``,
``sigma_chroma``), the grid blur is the [1 2 1] kernel along each axis, the splat/blur/
slice operator is bistochastised, and the problem

    minimise  lam/2 * sum_ij W_ij (y_i - y_j)^2 + sum_i c_i (y_i - t_i)^2

is solved in the grid with Jacobi-preconditioned conjugate gradients.

References
----------
.. [1] J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016.

Example
-------
>>> import numpy as np
>>> rgb = np.zeros((8, 8, 3), np.uint8)
>>> out = bilateral_solve(rgb, np.full((8, 8), 5.0), sigma_spatial=4)
>>> bool(np.allclose(out, 5.0, atol=1e-3))
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg

from affseg.errors import InputError

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
