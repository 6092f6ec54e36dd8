"""Local pixel graphs held as k x k stencils (Sun & Xu, NeurIPS 2019, Eqs. 1-2).

A graph on an (h, w) grid whose node i = (y, x) is linked only to the nodes of its
k x k window is stored as a :class:`LocalOperator`: a coefficient tensor ``coef`` of shape
(B, k*k, h, w) with ``coef[b, o, y, x] = A[(y, x), (y + dy_o, x + dx_o)]`` for the window
offsets ``o`` in row-major order (dy, dx in [-r, r], r = (k - 1) / 2), and zero where the
neighbour falls outside the image. It is never an N x N matrix: applying it to M vectors
costs O(N k^2 M) and memory O(N k^2).

Execution paths of one application ``A X`` (timings: ``benchmarks/bench_stencil_paths.py``,
``benchmarks/results/stencil_paths.json``):

- ``backend="kernel"`` (default, CPU): a stencil kernel on channels-last vectors
  (B, h, w, M) wrapped in a :class:`torch.autograd.Function` (backward = the transposed
  stencil for the vectors and a local correlation for the coefficients). The kernel is

  * the **C kernel** of :mod:`affseg.affinity.native` for float32 and k >= 5 (register
    blocked, 2-4x faster than the generic one); without autograd,
    :meth:`LocalOperator.apply_power` runs n applications in one call (no copies between
    them);
  * else the **generic kernel** (``AFFSEG_NATIVE=0``, float64, k < 5), which also
    computes the coefficient gradient;

  both are compiled with the package and run on one thread below
  :data:`PARALLEL_MIN_WORK` (a parallel region on a loaded machine costs milliseconds);

- ``backend="unfold"``: pure torch (``F.unfold``), the reference for the tests and the path
  for tensors on other devices (100-500x slower on the CPU).

``"numba"`` and ``"torch"`` are accepted as the former names of the two backends.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affseg.affinity import _kernels, native
from affseg.errors import InputError

#: Degrees are clamped from below by this value (as the reference does for row sums).
DEGREE_EPS = 1e-5


def window_offsets(k: int) -> Tensor:
    """Offsets (dy, dx) of a k x k window in row-major order.

    Parameters
    ----------
    k : int
        Odd window size.

    Returns
    -------
    Tensor, shape (k*k, 2), int64

    Examples
    --------
    >>> window_offsets(3)[:4].tolist()
    [[-1, -1], [-1, 0], [-1, 1], [0, -1]]
    """
    _check_k(k)
    r = k // 2
    d = torch.arange(-r, r + 1)
    return torch.stack(torch.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)


def _check_k(k: int) -> None:
    if not isinstance(k, int | np.integer) or k < 1 or k % 2 == 0:
        raise InputError(f"window size k must be a positive odd integer; got {k!r}")


def _check_features(features: Tensor, name: str = "features") -> None:
    if not isinstance(features, Tensor) or features.ndim != 4:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
        raise InputError(f"{name} must be a tensor (B, C, h, w); got {shape}")
    if not features.is_floating_point():
        raise InputError(f"{name} must be floating point; got {features.dtype}")
    if min(features.shape) < 1:
        raise InputError(f"{name} is empty: shape {tuple(features.shape)}")


def valid_mask(h: int, w: int, k: int, device: torch.device | None = None) -> Tensor:
    """Which window neighbours lie inside the image.

    Returns
    -------
    Tensor, shape (k*k, h, w), bool
        Cached per (h, w, k, device) and shared between callers: read it, never write it.

    Examples
    --------
    >>> valid_mask(2, 2, 3)[:, 0, 0].tolist()        # top-left node: 4 of 9 neighbours inside
    [False, False, False, False, True, True, False, True, True]
    """
    return _valid_mask(
        int(h), int(w), int(k), str(torch.device("cpu") if device is None else torch.device(device))
    )


@functools.lru_cache(maxsize=64)
def _valid_mask(h: int, w: int, k: int, device: str) -> Tensor:
    off = window_offsets(k).to(device)
    ys = torch.arange(h, device=device)[None, :, None] + off[:, 0, None, None]
    xs = torch.arange(w, device=device)[None, None, :] + off[:, 1, None, None]
    return (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)


def local_sq_distances(features: Tensor, k: int, other: Tensor | None = None) -> Tensor:
    """Squared feature distances to the k x k window neighbours.

    Parameters
    ----------
    features : Tensor, shape (B, C, h, w)
        Features of the centre nodes.
    k : int
        Odd window size.
    other : Tensor, shape (B, C, h, w), optional
        Features of the neighbours (default ``features``): ``out[b, o, y, x] =
        ||features[b, :, y, x] - other[b, :, y + dy_o, x + dx_o]||^2``.

    Returns
    -------
    Tensor, shape (B, k*k, h, w)
        Zero where the neighbour is outside the image.

    Notes
    -----
    Computed per row offset dy as a batched matrix product between each image row and the
    row dy below (``|f|^2 + |g|^2 - 2 f.g``), then the band of k diagonals is read with a
    strided view: O(k N w C) flops, O(N k^2) memory, differentiable.

    Examples
    --------
    >>> import torch
    >>> d = local_sq_distances(torch.zeros(1, 2, 3, 4), 3)
    >>> d.shape, float(d.max())
    (torch.Size([1, 9, 3, 4]), 0.0)
    """
    _check_k(k)
    _check_features(features)
    g = features if other is None else other
    if g.shape != features.shape:
        raise InputError(
            f"other must have the shape of features {tuple(features.shape)}; got {tuple(g.shape)}"
        )
    b, c, h, w = features.shape
    r = k // 2
    wp = w + 2 * r
    fa = features.permute(0, 2, 3, 1)  # (B, h, w, C)
    gp = F.pad(g, (r, r, r, r)).permute(0, 2, 1, 3)  # (B, h+2r, C, w+2r)
    na = (fa * fa).sum(-1)  # (B, h, w)
    ng = (gp * gp).sum(2)  # (B, h+2r, w+2r)
    rows = []
    for dy in range(k):
        gram = torch.matmul(fa, gp[:, dy : dy + h])  # (B, h, w, w+2r)
        d = na[..., None] + ng[:, dy : dy + h, None, :] - 2.0 * gram
        d = d.contiguous()
        band = d.as_strided((b, h, w, k), (h * w * wp, w * wp, wp + 1, 1), d.storage_offset())
        # copy the band out so that d (B, h, w, w + 2r) is freed: memory stays O(N k^2)
        rows.append(band.contiguous())  # (B, h, w, k): neighbour (dy - r, dx - r)
    dist = torch.stack(rows, 3).reshape(b, h, w, k * k).permute(0, 3, 1, 2)
    mask = valid_mask(h, w, k, features.device)
    return torch.where(mask, dist.clamp_min(0.0), torch.zeros((), dtype=dist.dtype))


# ----------------------------------------------------------------------------- kernels
#: Work (multiply-adds) below which the kernels run on one thread: on a loaded machine a
#: parallel region waits for a descheduled thread (~16 ms per call measured at load 7.7 on
#: 2 cores, against 0.04 ms serial for a 16 x 20 grid; benchmarks/bench_stencil_paths.py).
PARALLEL_MIN_WORK = 2_000_000


def _threads(work: int) -> int:
    """torch's thread count for work above :data:`PARALLEL_MIN_WORK`, else 1."""
    return torch.get_num_threads() if work >= PARALLEL_MIN_WORK else 1


def _stencil_generic(coef: np.ndarray, xpad: np.ndarray, out: np.ndarray, k: int) -> None:
    """``out[b, y, x, :] = sum_o coef[b, y, x, o] * xpad[b, y + dy, x + dx, :]`` with the
    generic compiled kernel (any k, float32 or float64; rows in parallel above
    :data:`PARALLEL_MIN_WORK`)."""
    dt = out.dtype
    coef, xpad = (np.ascontiguousarray(a, dtype=dt) for a in (coef, xpad))
    _kernels.stencil(coef, xpad, out, k, _threads(coef.size * out.shape[3]))


def _correlate_generic(grad: np.ndarray, xpad: np.ndarray, out: np.ndarray, k: int) -> None:
    """``out[b, y, x, o] = sum_j grad[b, y, x, j] * xpad[b, y + dy, x + dx, j]`` (the
    coefficient gradient), compiled, summed in float64."""
    dt = out.dtype
    grad, xpad = (np.ascontiguousarray(a, dtype=dt) for a in (grad, xpad))
    _kernels.correlate(grad, xpad, out, k, _threads(out.size * grad.shape[3]))


def transpose_coefficients(coef: Tensor, k: int) -> Tensor:
    """Coefficients of the transposed operator.

    ``A^T[j, j + o] = A[j + o, j]``, i.e. ``coefT[:, o, y, x] = coef[:, o', y + dy, x + dx]``
    with o' the offset -o.

    Parameters
    ----------
    coef : Tensor, shape (B, k*k, h, w)

    Returns
    -------
    Tensor, shape (B, k*k, h, w)

    Examples
    --------
    >>> import torch
    >>> op = gaussian_affinity(torch.zeros(1, 2, 3, 4), 1.0, 3)   # symmetric
    >>> torch.equal(transpose_coefficients(op.coef, 3), op.coef)
    True
    """
    b, kk, h, w = coef.shape
    r = k // 2
    flipped = F.pad(coef.flip(1), (r, r, r, r))  # channel o now holds offset -o
    off = window_offsets(k)
    parts = [
        flipped[:, o, r + dy : r + dy + h, r + dx : r + dx + w]
        for o, (dy, dx) in enumerate(off.tolist())
    ]
    return torch.stack(parts, 1)


def _c_kernel_ok(coef_cl: Tensor, x_cl: Tensor, k: int) -> bool:
    """Whether the C kernel handles this stencil (float32, k >= 5, built)."""
    return coef_cl.dtype == x_cl.dtype == torch.float32 and native.supports(k, np.dtype("float32"))


def _c_kernel_power(coef_cl: Tensor, x_cl: Tensor, k: int, n: int) -> Tensor:
    """A^n x with the C kernel on detached channels-last tensors."""
    big = coef_cl.numel() * x_cl.shape[3] >= PARALLEL_MIN_WORK
    out = native.stencil_power(
        coef_cl.contiguous().numpy(), x_cl.numpy(), k, n, torch.get_num_threads() if big else 1
    )
    return torch.from_numpy(out)


def _stencil_kernel(coef_cl: Tensor, x_cl: Tensor, k: int) -> Tensor:
    """Stencil on detached channels-last tensors: (B,h,w,K), (B,h,w,M) -> (B,h,w,M).

    float32 with k >= 5 runs the C kernel (:mod:`affseg.affinity.native`, channels
    zero-padded to a multiple of 8) unless disabled; everything else the generic kernel.
    """
    r = k // 2
    if _c_kernel_ok(coef_cl, x_cl, k):
        return _c_kernel_power(coef_cl, x_cl, k, 1)
    xpad = F.pad(x_cl, (0, 0, r, r, r, r)).contiguous()
    out = torch.empty_like(x_cl, memory_format=torch.contiguous_format)
    _stencil_generic(coef_cl.contiguous().numpy(), xpad.numpy(), out.numpy(), k)
    return out


class _StencilFn(torch.autograd.Function):
    """Differentiable stencil on channels-last vectors (the ``"kernel"`` backend)."""

    @staticmethod
    def forward(
        ctx,
        coef_cl: Tensor,
        coef_t_cl: Tensor | None,
        x_cl: Tensor,  # noqa: D102
        k: int,
    ) -> Tensor:
        ctx.k = k
        ctx.save_for_backward(coef_cl, coef_t_cl, x_cl)
        return _stencil_kernel(coef_cl.detach(), x_cl.detach(), k)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        coef_cl, coef_t_cl, x_cl = ctx.saved_tensors
        k = ctx.k
        grad = grad.contiguous()
        g_coef = g_x = None
        if ctx.needs_input_grad[2]:
            if coef_t_cl is None:  # symmetric operator
                coef_t_cl = coef_cl
            g_x = _stencil_kernel(coef_t_cl.detach(), grad, k)
        if ctx.needs_input_grad[0]:
            r = k // 2
            xpad = F.pad(x_cl.detach(), (0, 0, r, r, r, r)).contiguous()
            g_coef = torch.empty(coef_cl.shape, dtype=grad.dtype)
            _correlate_generic(grad.numpy(), xpad.numpy(), g_coef.numpy(), k)
        return g_coef, None, g_x, None


#: Former backend names.
_BACKEND_ALIASES = {"numba": "kernel", "torch": "unfold"}


@dataclass
class LocalOperator:
    """A sparse N x N operator on an (h, w) grid held as a k x k stencil.

    Attributes
    ----------
    coef : Tensor, shape (B, k*k, h, w)
        ``coef[b, o, y, x] = A[(y, x), (y, x) + offset_o]``; zero outside the image.
    k : int
        Odd window size.
    symmetric : bool
        Whether A = A^T (then the backward pass reuses ``coef``).
    backend : {"kernel", "unfold"}
        ``"kernel"``: the compiled stencil kernels (fast, CPU); ``"unfold"``: the torch
        reference (any device; used automatically for tensors not on the CPU). The former
        names ``"numba"`` and ``"torch"`` are accepted.

    Examples
    --------
    >>> import torch
    >>> op = gaussian_affinity(torch.zeros(1, 2, 4, 5, dtype=torch.float64), 1.0, k=3)
    >>> op.grid, op.n, op.backend
    ((4, 5), 20, 'kernel')
    >>> x = torch.ones(1, 20, 1, dtype=torch.float64)
    >>> torch.equal(op.apply(x)[0, :, 0], op.row_sums()[0])
    True
    """

    coef: Tensor
    k: int
    symmetric: bool = False
    backend: str = "kernel"

    def __post_init__(self) -> None:
        _check_k(self.k)
        if self.coef.ndim != 4 or self.coef.shape[1] != self.k * self.k:
            raise InputError(
                f"coef must be (B, {self.k * self.k}, h, w); got {tuple(self.coef.shape)}"
            )
        self.backend = _BACKEND_ALIASES.get(self.backend, self.backend)
        if self.backend not in ("kernel", "unfold"):
            raise InputError(f"backend must be 'kernel' or 'unfold'; got {self.backend!r}")
        if self.coef.device.type != "cpu":
            self.backend = "unfold"
        self._cl: Tensor | None = None
        self._cl_t: Tensor | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w)."""
        return int(self.coef.shape[2]), int(self.coef.shape[3])

    @property
    def n(self) -> int:
        """Number of nodes N = h * w."""
        return self.grid[0] * self.grid[1]

    def row_sums(self) -> Tensor:
        """A 1, shape (B, N)."""
        return self.coef.sum(1).flatten(1)

    def scaled(self, left: Tensor, right: Tensor) -> LocalOperator:
        """diag(left) A diag(right) for node vectors ``left``, ``right`` of shape (B, N)."""
        h, w = self.grid
        b = self.coef.shape[0]
        r = self.k // 2
        lv = left.reshape(b, 1, h, w)
        rp = F.pad(right.reshape(b, 1, h, w), (r, r, r, r))
        off = window_offsets(self.k).tolist()
        rs = torch.cat([rp[:, :, r + dy : r + dy + h, r + dx : r + dx + w] for dy, dx in off], 1)
        sym = self.symmetric and left is right
        return LocalOperator(self.coef * lv * rs, self.k, sym, self.backend)

    def transpose(self) -> LocalOperator:
        """A^T as a local operator."""
        if self.symmetric:
            return self
        return LocalOperator(transpose_coefficients(self.coef, self.k), self.k, False, self.backend)

    def _channels_last(self) -> tuple[Tensor, Tensor | None]:
        if self._cl is None:
            self._cl = self.coef.permute(0, 2, 3, 1).contiguous()
            if not self.symmetric:
                ct = transpose_coefficients(self.coef.detach(), self.k)
                self._cl_t = ct.permute(0, 2, 3, 1).contiguous()
        return self._cl, self._cl_t

    def _as_grid(self, x: Tensor) -> Tensor:
        """Validate node vectors and view them as (B, h, w, M)."""
        h, w = self.grid
        b = self.coef.shape[0]
        if x.ndim == 3 and x.shape[:2] == (b, h * w):
            xs = x.reshape(b, h, w, x.shape[2])
        elif x.ndim == 4 and x.shape[:3] == (b, h, w):
            xs = x
        else:
            raise InputError(
                f"vectors must be (B, N, M) or (B, h, w, M) with B={b}, "
                f"(h, w)={(h, w)}; got {tuple(x.shape)}"
            )
        if x.dtype != self.coef.dtype:
            raise InputError(f"dtype mismatch: vectors {x.dtype}, operator {self.coef.dtype}")
        return xs

    def apply(self, x: Tensor) -> Tensor:
        """A X for node vectors in channels-last layout.

        Parameters
        ----------
        x : Tensor, shape (B, N, M) or (B, h, w, M)

        Returns
        -------
        Tensor, same shape as ``x``
        """
        xs = self._as_grid(x)
        if self.backend == "unfold":
            out = self.apply_maps(xs.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            cl, cl_t = self._channels_last()
            out = _StencilFn.apply(cl, cl_t, xs.contiguous(), self.k)
        return out.reshape(x.shape)

    def apply_power(self, x: Tensor, n: int) -> Tensor:
        """A^n X: ``n`` applications of :meth:`apply`.

        Without autograd (no gradient needed for ``x`` or the coefficients) and on the
        C kernel (float32), the n applications run back to back on padded buffers
        with no intermediate copies; otherwise it is a loop of :meth:`apply`.

        Parameters
        ----------
        x : Tensor, shape (B, N, M) or (B, h, w, M)
        n : int
            Number of applications, >= 0.

        Returns
        -------
        Tensor, same shape as ``x``
        """
        if n < 0:
            raise InputError(f"n must be >= 0; got {n}")
        xs = self._as_grid(x)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.coef.requires_grad)
        cl = self._channels_last()[0] if self.backend == "kernel" else None
        if n <= 1 or needs_grad or cl is None or not _c_kernel_ok(cl, xs, self.k):
            for _ in range(n):
                x = self.apply(x)
            return x
        return _c_kernel_power(cl.detach(), xs.detach().contiguous(), self.k, n).reshape(x.shape)

    def apply_maps(self, maps: Tensor) -> Tensor:
        """A applied to maps in channels-first layout by ``unfold`` (torch reference path).

        Parameters
        ----------
        maps : Tensor, shape (B, M, h, w)

        Returns
        -------
        Tensor, shape (B, M, h, w)
        """
        h, w = self.grid
        b, m = maps.shape[:2]
        cols = F.unfold(maps, self.k, padding=self.k // 2).reshape(b, m, self.k**2, h * w)
        out = (cols * self.coef.reshape(b, 1, self.k**2, h * w)).sum(2)
        return out.reshape(b, m, h, w)

    def dense(self) -> Tensor:
        """The operator as a dense matrix (tests and small grids only).

        Built by scattering the N k^2 coefficients: O(N^2) memory for the result only.

        Returns
        -------
        Tensor, shape (B, N, N)
        """
        h, w = self.grid
        b = self.coef.shape[0]
        n = h * w
        dev = self.coef.device
        off = window_offsets(self.k).to(dev)
        ys = torch.arange(h, device=dev)[None, :, None] + off[:, 0, None, None]
        xs = torch.arange(w, device=dev)[None, None, :] + off[:, 1, None, None]
        mask = valid_mask(h, w, self.k, dev)  # (k*k, h, w)
        rows = torch.arange(n, device=dev).reshape(1, h, w).expand_as(mask)[mask]
        cols = (ys * w + xs)[mask]
        out = torch.zeros(b, n, n, dtype=self.coef.dtype, device=dev)
        out[:, rows, cols] = self.coef[:, mask]
        return out


def gaussian_affinity(
    features: Tensor, mu: Tensor | float, k: int = 17, backend: str = "kernel"
) -> LocalOperator:
    """W_ij = exp(-mu ||f_i - f_j||^2) for j in the k x k window of i (Eq. 1).

    Parameters
    ----------
    features : Tensor, shape (B, C, h, w)
    mu : Tensor (scalar) or float
        Positive bandwidth.
    k : int
        Odd window size (17 in the paper: the 3 x 3 adjacency to the 8th power).
    backend : str
        See :class:`LocalOperator`.

    Returns
    -------
    LocalOperator
        Symmetric, coefficients (B, k*k, h, w), zero outside the image, W_ii = 1.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> op = gaussian_affinity(torch.zeros(1, 2, 3, 4), 1.0, 3)
    >>> op.coef.shape, op.symmetric
    (torch.Size([1, 9, 3, 4]), True)
    """
    dist = local_sq_distances(features, k)
    mask = valid_mask(features.shape[2], features.shape[3], k, features.device)
    coef = torch.exp(-torch.as_tensor(mu, dtype=dist.dtype) * dist) * mask
    return LocalOperator(coef, k, symmetric=True, backend=backend)


def degrees(op: LocalOperator, eps: float = DEGREE_EPS) -> Tensor:
    """Degrees d = W 1, clamped from below by ``eps``.

    Returns
    -------
    Tensor, shape (B, N)

    Examples
    --------
    >>> import torch
    >>> degrees(gaussian_affinity(torch.zeros(1, 2, 3, 4), 1.0, 3))[0, :4].tolist()
    [4.0, 6.0, 6.0, 4.0]
    """
    return op.row_sums().clamp_min(eps)


def normalized_operator(op: LocalOperator, deg: Tensor | None = None) -> LocalOperator:
    """S = D^-1/2 W D^-1/2 (symmetric; same spectrum as P = D^-1 W).

    Parameters
    ----------
    op : LocalOperator
        W.
    deg : Tensor, shape (B, N), optional
        Degrees (default :func:`degrees`).

    Returns
    -------
    LocalOperator

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> s = normalized_operator(gaussian_affinity(torch.zeros(1, 2, 3, 4), 1.0, 3))
    >>> s.symmetric, s.coef.shape
    (True, torch.Size([1, 9, 3, 4]))
    """
    d = degrees(op) if deg is None else deg
    s = d.rsqrt()
    return op.scaled(s, s)


def transition_operator(op: LocalOperator, deg: Tensor | None = None) -> LocalOperator:
    """P = D^-1 W (row-stochastic, not symmetric).

    Returns
    -------
    LocalOperator

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> p = transition_operator(gaussian_affinity(torch.zeros(1, 2, 3, 4), 1.0, 3))
    >>> torch.allclose(p.row_sums(), torch.ones(1, 12))    # row-stochastic
    True
    """
    d = degrees(op) if deg is None else deg
    h, w = op.grid
    coef = op.coef / d.reshape(d.shape[0], 1, h, w)
    return LocalOperator(coef, op.k, symmetric=False, backend=op.backend)
