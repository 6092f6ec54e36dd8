"""Diffusion maps and diffusion distances on local pixel graphs (Sun & Xu, NeurIPS 2019, Eqs. 3-5).

Given grid features F (B, C, h, w):

1. W = local Gaussian affinities in a k x k window
   (:func:`~affseg.affinity.graph.gaussian_affinity`), degrees d = W 1 (clamped >= 1e-5),
   S = D^-1/2 W D^-1/2 (same spectrum as P = D^-1 W).
2. Accelerated simultaneous iteration (Eq. 5, Proposition 1): U <- QR(S^m U), T outer
   iterations of m = ``n_inner`` operator applications (the reference: P^2 twenty times,
   m = 40, T = 2), starting from one-hot columns on a sub-grid. For float32 robustness the
   block is re-orthonormalised every ``qr_every`` applications: in exact arithmetic this spans
   the same subspace as S^m U (so it is the same algorithm), but it keeps the small
   eigen-directions alive in float32 and bounds the QR backward (1 / R_kk).
3. Rayleigh-Ritz on the final basis U (N x Ne): H = U^T S U, H = V diag(lambda) V^T. The
   eigenvectors of P are Phi = D^-1/2 U V; the diffusion embedding is
   ``E = c D^-1/2 U |H|^t`` (= c Phi diag(|lambda|^t) V^T: the same rows up to a rotation),
   so that ``D_t(i, j) = ||E_i - E_j||^2 = sum_k |lambda_k|^(2t) (Phi_ik - Phi_jk)^2 * c^2``
   (Eq. 4). ``|H|^t`` has a custom backward (Daleckii-Krein divided differences) that stays
   finite for (near-)degenerate eigenvalues, where differentiating eigenvectors does not.

Normalisation (Eq. 3). With ``p(k, t | i) = (P^t)_ik`` and weights w(k) = 1 / (local
density at k):

- ``density="stationary"`` (default): w(k) = 1 / pi(k), pi = d / vol, vol = sum(d); then
  D_t(i, j) = vol * sum_k |lambda_k|^(2t) (Phi_ik - Phi_jk)^2 (c = sqrt(vol)). This is the
  Coifman-Lafon diffusion distance; it is scale free (two disconnected halves are at
  distance ~1/pi(A) + 1/pi(B) = 4 for t -> inf), independent of N and of the mean degree,
  so tau has the same meaning for any grid. The reference's orthonormal-vector distances
  are ~N times smaller (for uniform degrees), hence its tau = 1000 on a 41 x 41 grid
  corresponds to tau ~ 1000 / 1681 ~ 0.6 here (the default).
- ``density="degree"``: w(k) = 1 / d_k, c = 1.

With all N eigenpairs kept these equal the dense definition exactly (tests check it).

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from affseg.affinity.graph import (
    LocalOperator,
    degrees,
    gaussian_affinity,
    normalized_operator,
)
from affseg.errors import InputError

DENSITIES = ("stationary", "degree")


# ----------------------------------------------------------------------------- |H|^t
class _AbsMatrixPower(torch.autograd.Function):
    """Symmetric H -> V diag(|lambda|^t) V^T with a degeneracy-safe backward."""

    @staticmethod
    def forward(ctx, h: Tensor, t: Tensor) -> Tensor:  # noqa: D102
        hs = 0.5 * (h + h.transpose(-1, -2))
        lam, v = torch.linalg.eigh(hs)
        a = lam.abs().clamp_min(1e-30)
        f = a**t
        ctx.save_for_backward(lam, v, t)
        return (v * f[..., None, :]) @ v.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        lam, v, t = ctx.saved_tensors
        a = lam.abs().clamp_min(1e-30)
        f = a**t
        gs = 0.5 * (grad + grad.transpose(-1, -2))
        gv = v.transpose(-1, -2) @ gs @ v
        g_h = g_t = None
        if ctx.needs_input_grad[0]:
            li, lj = lam[..., :, None], lam[..., None, :]
            diff = li - lj
            close = diff.abs() <= 1e-8 * torch.maximum(li.abs(), lj.abs()).clamp_min(1.0)
            mid = 0.5 * (li + lj)
            deriv = t * torch.sign(mid) * mid.abs().clamp_min(1e-30) ** (t - 1)
            safe = torch.where(close, torch.ones_like(diff), diff)
            dd = torch.where(close, deriv, (f[..., :, None] - f[..., None, :]) / safe)
            g_h = v @ (dd * gv) @ v.transpose(-1, -2)
        if ctx.needs_input_grad[1]:
            diag = torch.diagonal(gv, dim1=-2, dim2=-1)
            g_t = (diag * f * torch.log(a)).sum().reshape(t.shape)
        return g_h, g_t


def abs_matrix_power(h: Tensor, t: Tensor | float) -> Tensor:
    """|H|^t = V diag(|lambda|^t) V^T for symmetric H, differentiable in H and t.

    Parameters
    ----------
    h : Tensor, shape (..., n, n)
        Symmetric (it is symmetrised).
    t : Tensor (scalar) or float
        Positive power.

    Returns
    -------
    Tensor, shape (..., n, n)

    Examples
    --------
    >>> import torch
    >>> abs_matrix_power(torch.diag(torch.tensor([0.5, -1.0])), 2.0).diag().tolist()
    [0.25, 1.0]
    """
    tt = torch.as_tensor(t, dtype=h.dtype, device=h.device).reshape(())
    return _AbsMatrixPower.apply(h, tt)


# ----------------------------------------------------------------------------- iteration
def subgrid_init(
    h: int, w: int, n: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """One-hot starting vectors on a regular sub-grid of an (h, w) grid.

    The reference uses 49 columns on a 7 x 7 sub-grid of its 41 x 41 grid. For ``n``
    columns a sub-grid of ny x nx >= n cell centres with ny / nx ~ h / w is laid out and
    ``n`` of its cells, spread evenly in row-major order, get a one.

    Parameters
    ----------
    h, w : int
        Grid size (N = h * w >= n).
    n : int
        Number of columns.

    Returns
    -------
    Tensor, shape (N, n)
        Orthonormal (distinct one-hot columns).

    Examples
    --------
    >>> subgrid_init(4, 4, 3).shape
    torch.Size([16, 3])
    """
    big_n = h * w
    if not 1 <= n <= big_n:
        raise InputError(f"number of eigenvectors must be in [1, N={big_n}]; got {n}")
    ny = max(1, min(h, round(math.sqrt(n * h / w))))
    nx = max(1, min(w, math.ceil(n / ny)))
    ny = max(ny, math.ceil(n / nx))
    ys = torch.floor((torch.arange(ny) + 0.5) * h / ny).long().clamp_max(h - 1)
    xs = torch.floor((torch.arange(nx) + 0.5) * w / nx).long().clamp_max(w - 1)
    cells = (ys[:, None] * w + xs[None, :]).flatten().unique()
    if cells.numel() < n:  # degenerate tiny grids: fall back to an even spread of nodes
        cells = torch.linspace(0, big_n - 1, n).round().long().unique()
        if cells.numel() < n:
            cells = torch.arange(n)
    pick = torch.linspace(0, cells.numel() - 1, n).round().long()
    idx = cells[pick]
    u = torch.zeros(big_n, n, dtype=dtype, device=device)
    u[idx, torch.arange(n)] = 1.0
    return u


def simultaneous_iteration(
    op: LocalOperator,
    n_eig: int,
    n_outer: int = 2,
    n_inner: int = 40,
    qr_every: int | None = 10,
    init: Tensor | None = None,
) -> Tensor:
    """Orthonormal basis of the dominant Ne-dimensional invariant subspace of S.

    Accelerated simultaneous iteration (Eq. 5 with S^m in place of S, Proposition 1).

    Parameters
    ----------
    op : LocalOperator
        Symmetric operator S (B batches on an (h, w) grid).
    n_eig : int
        Ne, number of vectors.
    n_outer : int
        T, number of QR steps with m applications each.
    n_inner : int
        m, operator applications per outer step (40 = the reference's P^2 twenty times).
    qr_every : int or None
        Re-orthonormalise every this many applications inside an outer step (numerical
        safeguard; the same subspace in exact arithmetic). None: only at the end of a step.
    init : Tensor, shape (N, Ne) or (B, N, Ne), optional
        Starting block (default :func:`subgrid_init`).

    Returns
    -------
    Tensor, shape (B, N, Ne)
        Orthonormal columns.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> feats = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> from affseg.affinity.graph import gaussian_affinity, normalized_operator
    >>> op = normalized_operator(gaussian_affinity(feats, 0.5, 5))
    >>> simultaneous_iteration(op, 6, n_inner=10).shape          # (B, N, n_eig)
    torch.Size([1, 64, 6])
    """
    h, w = op.grid
    b = op.coef.shape[0]
    if init is None:
        init = subgrid_init(h, w, n_eig, op.coef.dtype, op.coef.device)
    if init.ndim == 2:
        init = init.expand(b, *init.shape)
    if init.shape != (b, h * w, n_eig):
        raise InputError(
            f"init must be (N, Ne) or (B, N, Ne) = ({b}, {h * w}, {n_eig}); got {tuple(init.shape)}"
        )
    if n_outer < 1 or n_inner < 1:
        raise InputError(f"n_outer and n_inner must be >= 1; got {n_outer}, {n_inner}")
    u = init.to(op.coef.dtype)
    step = qr_every if qr_every else n_inner
    for _ in range(n_outer):
        z = u
        done = 0
        while done < n_inner:
            n = min(step, n_inner - done)
            z = op.apply_power(z, n)
            done += n
            if done < n_inner:
                z = torch.linalg.qr(z).Q
        u = torch.linalg.qr(z).Q
    return u


# ----------------------------------------------------------------------------- results
@dataclass
class DiffusionResult:
    """Output of :func:`diffusion_map` / :class:`DiffusionDistance`.

    Attributes
    ----------
    eigenvalues : Tensor, shape (B, Ne)
        Top-Ne eigenvalues of P (Ritz values), sorted by decreasing magnitude.
    embedding : Tensor, shape (B, N, Ne)
        Diffusion embedding: ``D_t(i, j) = ||embedding[:, i] - embedding[:, j]||^2``.
    basis : Tensor, shape (B, N, Ne)
        Orthonormal basis U of the dominant subspace of S.
    ritz_vectors : Tensor, shape (B, Ne, Ne)
        V with eigenvectors of S = U V (columns ordered as ``eigenvalues``).
    degrees : Tensor, shape (B, N)
    t : Tensor, scalar
    tau : Tensor, scalar or None
        Scale of K_D = exp(-tau D_t) (None when not given).
    grid : tuple of int
        (h, w); node index i = y * w + x.
    scale : Tensor, shape (B,)
        The factor c of the density convention (sqrt(vol) or 1).

    Examples
    --------
    >>> import torch
    >>> feats = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> res = diffusion_map(feats, mu=0.5, t=2.0, k=5, n_eig=6, n_inner=10)
    >>> res.grid, res.eigenvalues.shape
    ((8, 8), torch.Size([1, 6]))
    """

    eigenvalues: Tensor
    embedding: Tensor
    basis: Tensor
    ritz_vectors: Tensor
    degrees: Tensor
    t: Tensor
    tau: Tensor | None
    grid: tuple[int, int]
    scale: Tensor

    @property
    def eigenvectors(self) -> Tensor:
        """Right eigenvectors Phi of P, shape (B, N, Ne), with
        ``D_t = sum_k |lambda_k|^(2t) (Phi_ik - Phi_jk)^2`` (density convention included).

        Gradients through them are unstable for close eigenvalues: use ``embedding``.
        """
        s = self.scale[:, None, None] * self.degrees.rsqrt()[..., None]
        return s * (self.basis @ self.ritz_vectors)

    def _idx(self, idx: Tensor | list[int] | int) -> Tensor:
        n = self.embedding.shape[1]
        i = torch.as_tensor(idx, dtype=torch.long, device=self.embedding.device).reshape(-1)
        if i.numel() and (int(i.min()) < 0 or int(i.max()) >= n):
            raise InputError(f"node indices must be in [0, {n}); got {i.tolist()[:8]}")
        return i

    def distances(self, idx: Tensor | list[int] | int | None = None) -> Tensor:
        """Diffusion distances D_t from some nodes (all nodes: dense, N x N).

        Parameters
        ----------
        idx : Tensor or list of int, shape (M,), optional
            Node indices (row-major). None: all nodes.

        Returns
        -------
        Tensor, shape (B, M, N), >= 0
        """
        e = self.embedding
        sel = e if idx is None else e[:, self._idx(idx)]
        sq_s = (sel * sel).sum(-1)
        sq_e = (e * e).sum(-1)
        d = sq_s[:, :, None] + sq_e[:, None, :] - 2.0 * sel @ e.transpose(1, 2)
        return d.clamp_min(0.0)

    def _tau(self, tau: Tensor | float | None) -> Tensor:
        if tau is None:
            if self.tau is None:
                raise InputError("no tau: pass tau= or build the result with one")
            return self.tau
        return torch.as_tensor(tau, dtype=self.embedding.dtype)

    def rows(self, idx: Tensor | list[int] | int, tau: Tensor | float | None = None) -> Tensor:
        """Rows of K_D = exp(-tau D_t) for some nodes.

        Returns
        -------
        Tensor, shape (B, M, N)
        """
        return torch.exp(-self._tau(tau) * self.distances(idx))

    def kernel(self, tau: Tensor | float | None = None) -> Tensor:
        """Dense K_D = exp(-tau D_t) (only when asked: N x N memory).

        Returns
        -------
        Tensor, shape (B, N, N)
        """
        return torch.exp(-self._tau(tau) * self.distances(None))

    def similarity_map(self, y: int, x: int, tau: Tensor | float | None = None) -> Tensor:
        """K_D of grid node (y, x) against all nodes, as a map.

        Returns
        -------
        Tensor, shape (B, h, w)
        """
        h, w = self.grid
        if not (0 <= y < h and 0 <= x < w):
            raise InputError(f"node ({y}, {x}) is outside the {h} x {w} grid")
        return self.rows([y * w + x], tau)[:, 0].reshape(-1, h, w)


def spectral_embedding(
    op: LocalOperator,
    deg: Tensor,
    basis: Tensor,
    t: Tensor | float,
    density: str = "stationary",
    tau: Tensor | None = None,
) -> DiffusionResult:
    """Rayleigh-Ritz on a basis of S and the diffusion embedding (Eq. 4).

    Parameters
    ----------
    op : LocalOperator
        S = D^-1/2 W D^-1/2.
    deg : Tensor, shape (B, N)
        Degrees d.
    basis : Tensor, shape (B, N, Ne)
        Orthonormal basis (from :func:`simultaneous_iteration`).
    t : Tensor (scalar) or float
        Diffusion time (real, > 0).
    density : {"stationary", "degree"}
        Weights of Eq. 3 (see the module notes).
    tau : Tensor, optional
        Stored in the result.

    Returns
    -------
    DiffusionResult

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> feats = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> from affseg.affinity.graph import degrees, gaussian_affinity, normalized_operator
    >>> w = gaussian_affinity(feats, 0.5, 5)
    >>> s = normalized_operator(w)
    >>> basis = simultaneous_iteration(s, 6, n_inner=10)
    >>> spectral_embedding(s, degrees(w), basis, t=2.0).embedding.shape
    torch.Size([1, 64, 6])
    """
    if density not in DENSITIES:
        raise InputError(f"density must be one of {DENSITIES}; got {density!r}")
    tt = torch.as_tensor(t, dtype=basis.dtype, device=basis.device).reshape(())
    su = op.apply(basis)
    hm = basis.transpose(1, 2) @ su
    hm = 0.5 * (hm + hm.transpose(1, 2))
    lam, vec = torch.linalg.eigh(hm)
    order = lam.abs().argsort(dim=-1, descending=True)
    lam = lam.gather(-1, order)
    vec = vec.gather(-1, order[:, None, :].expand_as(vec))
    if density == "stationary":
        scale = deg.sum(-1).sqrt()
    else:
        scale = torch.ones(deg.shape[0], dtype=deg.dtype, device=deg.device)
    emb = (scale[:, None, None] * deg.rsqrt()[..., None]) * (basis @ abs_matrix_power(hm, tt))
    return DiffusionResult(
        eigenvalues=lam,
        embedding=emb,
        basis=basis,
        ritz_vectors=vec,
        degrees=deg,
        t=tt,
        tau=tau,
        grid=op.grid,
        scale=scale,
    )


def diffusion_map(
    features: Tensor,
    mu: Tensor | float,
    t: Tensor | float,
    *,
    k: int = 17,
    n_eig: int = 50,
    n_outer: int = 2,
    n_inner: int = 40,
    qr_every: int | None = 10,
    density: str = "stationary",
    tau: Tensor | float | None = None,
    init: Tensor | None = None,
    backend: str = "kernel",
) -> DiffusionResult:
    """Diffusion embedding of grid features (functional API).

    Parameters
    ----------
    features : Tensor, shape (B, C, h, w)
        Float32 or float64.
    mu : Tensor (scalar) or float
        Affinity bandwidth of W_ij = exp(-mu ||f_i - f_j||^2).
    t : Tensor (scalar) or float
        Diffusion time.
    k : int
        Odd window size.
    n_eig, n_outer, n_inner, qr_every, init
        See :func:`simultaneous_iteration`.
    density : {"stationary", "degree"}
        See the module notes.
    tau : Tensor or float, optional
        Scale of K_D kept in the result.
    backend : {"kernel", "unfold"}
        Stencil implementation.

    Returns
    -------
    DiffusionResult

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> feats = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> res = diffusion_map(feats, mu=0.5, t=2.0, k=5, n_eig=6, n_inner=10)
    >>> res.embedding.shape, round(float(res.eigenvalues[0, 0]), 3)   # top eigenvalue of S: 1
    (torch.Size([1, 64, 6]), 1.0)
    """
    w = gaussian_affinity(features, mu, k, backend=backend)
    deg = degrees(w)
    s = normalized_operator(w, deg)
    basis = simultaneous_iteration(s, n_eig, n_outer, n_inner, qr_every, init)
    tau_t = None if tau is None else torch.as_tensor(tau, dtype=features.dtype).reshape(())
    return spectral_embedding(s, deg, basis, t, density, tau_t)


class DiffusionDistance(nn.Module):
    """Learnable neural diffusion distance module (spec-diff-net's diffusion block).

    mu, t and tau are positive, stored as logs.

    Parameters
    ----------
    mu : float
        Initial bandwidth (reference: 1e-3 for 1024-dim features; scale it with the
        squared feature distances of your features).
    t : float
        Initial diffusion time (10 in the paper).
    tau : float
        Initial kernel scale of K_D = exp(-tau D_t). Default 0.6: the reference's 1000 on
        its 41 x 41 grid translated to the scale-free ``density="stationary"`` distances.
    k, n_eig, n_outer, n_inner, qr_every, density, backend
        See :func:`diffusion_map`.
    learnable : bool
        Whether mu, t, tau are trainable parameters (else buffers).

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> feats = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> dd = DiffusionDistance(mu=0.5, t=2.0, k=5, n_eig=6, n_inner=10)
    >>> dd(feats.float()).embedding.shape
    torch.Size([1, 64, 6])
    """

    def __init__(
        self,
        mu: float = 1e-3,
        t: float = 10.0,
        tau: float = 0.6,
        k: int = 17,
        n_eig: int = 50,
        n_outer: int = 2,
        n_inner: int = 40,
        qr_every: int | None = 10,
        density: str = "stationary",
        learnable: bool = True,
        backend: str = "kernel",
    ) -> None:
        super().__init__()
        for name, val in (("mu", mu), ("t", t), ("tau", tau)):
            if not val > 0:
                raise InputError(f"{name} must be > 0; got {val}")
            p = torch.tensor(math.log(val), dtype=torch.float32)
            if learnable:
                self.register_parameter(f"log_{name}", nn.Parameter(p))
            else:
                self.register_buffer(f"log_{name}", p)
        if density not in DENSITIES:
            raise InputError(f"density must be one of {DENSITIES}; got {density!r}")
        self.k, self.n_eig, self.n_outer, self.n_inner = k, n_eig, n_outer, n_inner
        self.qr_every, self.density, self.backend = qr_every, density, backend

    @property
    def mu(self) -> Tensor:
        """Affinity bandwidth (positive scalar)."""
        return self.log_mu.exp()

    @property
    def t(self) -> Tensor:
        """Diffusion time (positive scalar)."""
        return self.log_t.exp()

    @property
    def tau(self) -> Tensor:
        """Kernel scale (positive scalar)."""
        return self.log_tau.exp()

    def forward(self, features: Tensor, init: Tensor | None = None) -> DiffusionResult:
        """Diffusion embedding of grid features.

        Parameters
        ----------
        features : Tensor, shape (B, C, h, w)
        init : Tensor, shape (N, Ne), optional

        Returns
        -------
        DiffusionResult
        """
        dt = features.dtype
        return diffusion_map(
            features,
            self.mu.to(dt),
            self.t.to(dt),
            k=self.k,
            n_eig=self.n_eig,
            n_outer=self.n_outer,
            n_inner=self.n_inner,
            qr_every=self.qr_every,
            density=self.density,
            tau=self.tau.to(dt),
            init=init,
            backend=self.backend,
        )

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"k={self.k}, n_eig={self.n_eig}, n_outer={self.n_outer}, "
            f"n_inner={self.n_inner}, qr_every={self.qr_every}, density={self.density}"
        )
