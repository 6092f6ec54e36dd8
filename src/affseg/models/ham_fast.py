"""Inference path of :class:`~affseg.models.ham.HAMAffinity`: one fused numba pass.

:meth:`HAMAffinity.forward` builds (B, K, D, H, W) neighbour stacks in torch, which costs
about a second per dilation on a 1376 x 1088 image. :func:`ham_affinity_fast` computes the
same affinities (geodesic or Euclidean distance, softmax of ``-d / tau``, beta-priority by
distance rank, times the strength) pixel by pixel, without autograd and without the
stacks. It equals the torch path to float tolerance when the module ranks ties stably
(``stable_rank=True``; ties are broken by neighbour index) and has no ranked head.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.

Example
-------
>>> import torch
>>> from affseg.models.ham import HAMAffinity
>>> ham = HAMAffinity("hyperbolic", stable_rank=True)
>>> emb, s = torch.randn(1, 4, 6, 7), torch.rand(1, 1, 6, 7)
>>> with torch.no_grad():
...     ok = torch.allclose(ham_affinity_fast(ham, emb, s, 2), ham(emb, s, 2), atol=1e-5)
>>> ok
True
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from affseg.affinity.hyperbolic import MIN_NORM, expmap0
from affseg.errors import InputError
from affseg.models.ham import HAMAffinity
from affseg.models.propagation import neighbour_offsets


def ham_affinity_fast(
    module: HAMAffinity,
    emb: Tensor,
    strength: Tensor,
    dilation: int = 1,
    points: tuple[np.ndarray, np.ndarray] | None = None,
) -> Tensor:
    """Affinities of ``module`` for ``emb`` (no autograd), as :meth:`HAMAffinity.forward`.

    Parameters
    ----------
    module : HAMAffinity
        Without a ranked head (``head_dim=None``).
    emb : Tensor, shape (B, D, H, W)
    strength : Tensor, shape (B, 1, H, W)
    dilation : int
    points : tuple of ndarray, optional
        ``ham_points(module, emb)``, to reuse for several dilations of the same embeddings.

    Returns
    -------
    Tensor, shape (B, k*k - 1, H, W), float32

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> from affseg.models.ham import HAMAffinity
    >>> ham = HAMAffinity("euclidean", stable_rank=True)
    >>> ham_affinity_fast(ham, torch.zeros(1, 2, 3, 4), torch.ones(1, 1, 3, 4)).shape
    torch.Size([1, 8, 3, 4])
    """
    if module.head is not None:
        raise InputError("ham_affinity_fast does not implement the ranked-neighbour head")
    if emb.ndim != 4 or strength.shape != (emb.shape[0], 1, *emb.shape[-2:]):
        raise InputError(
            f"embeddings (B, D, H, W) and strength (B, 1, H, W) expected, got "
            f"{tuple(emb.shape)} and {tuple(strength.shape)}"
        )
    xn, x2n = ham_points(module, emb) if points is None else points
    with torch.no_grad():
        c = float(module.curvature)
        hyperbolic = module.geometry == "hyperbolic"
        sn = np.ascontiguousarray(strength[:, 0].float().numpy())
        prio = torch.sigmoid(module.beta).float().numpy()
        inv_tau = float(torch.exp(-module.log_tau))
    offs = np.asarray(neighbour_offsets(module.k, dilation), np.int64)
    out = np.empty((emb.shape[0], len(offs), *emb.shape[-2:]), np.float32)
    sc = math.sqrt(max(c, 1e-12))
    _affinity_kernel(
        xn, x2n, sn, offs, hyperbolic, np.float32(c), np.float32(sc), np.float32(inv_tau), prio, out
    )
    return torch.from_numpy(out)


def ham_points(module: HAMAffinity, emb: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel points and conformal factors for :func:`ham_affinity_fast`.

    Parameters
    ----------
    module : HAMAffinity
    emb : Tensor, shape (B, D, H, W)

    Returns
    -------
    points : ndarray, shape (B, H, W, D), float32
        ``expmap0(emb)`` (hyperbolic) or ``emb`` (Euclidean), channels last.
    factor : ndarray, shape (B, H, W), float32
        ``sqrt(max(1 - c |x|^2, MIN_NORM))`` (unused for the Euclidean geometry).

    Examples
    --------
    >>> import torch
    >>> from affseg.models.ham import HAMAffinity
    >>> p, f = ham_points(HAMAffinity("hyperbolic"), torch.zeros(1, 2, 3, 4))
    >>> p.shape, f.shape
    ((1, 3, 4, 2), (1, 3, 4))
    """
    with torch.no_grad():
        c = float(module.curvature)
        x = (expmap0(emb, c, dim=1) if module.geometry == "hyperbolic" else emb).float()
        xn = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
        if module.geometry != "hyperbolic":
            return xn, np.ones(xn.shape[:3], np.float32)
        x2 = (x * x).sum(1)
        return xn, np.ascontiguousarray((1 - c * x2).clamp_min(MIN_NORM).sqrt().numpy())


@numba.njit(parallel=True, cache=True)
def _affinity_kernel(
    x, sq, strength, offs, hyperbolic, c, sc, inv_tau, prio, out
):  # pragma: no cover
    b_n, hh, ww, dd = x.shape
    kk = offs.shape[0]
    for by in numba.prange(b_n * hh):
        b = by // hh
        y = by % hh
        dist = np.empty(kk, np.float32)
        ex = np.empty(kk, np.float32)
        for xx in range(ww):
            xp = x[b, y, xx]
            rp = sq[b, y, xx]
            for n in range(kk):
                yy = min(max(y + offs[n, 0], 0), hh - 1)
                xq = min(max(xx + offs[n, 1], 0), ww - 1)
                q = x[b, yy, xq]
                d2 = np.float32(0.0)
                for k in range(dd):
                    t = q[k] - xp[k]
                    d2 += t * t
                if hyperbolic:
                    s = sc * math.sqrt(max(d2, np.float32(1e-12))) / (rp * sq[b, yy, xq])
                    # asinh(s) = log1p(s + s^2 / (sqrt(s^2 + 1) + 1)), accurate for small s
                    dist[n] = 2.0 / sc * math.log1p(s + s * s / (math.sqrt(s * s + 1) + 1))
                else:
                    dist[n] = math.sqrt(max(d2, np.float32(1e-12)))
            top = -dist[0] * inv_tau
            for n in range(1, kk):
                top = max(top, -dist[n] * inv_tau)
            tot = np.float32(0.0)
            for n in range(kk):
                ex[n] = math.exp(-dist[n] * inv_tau - top)
                tot += ex[n]
            sp = strength[b, y, xx]
            for n in range(kk):
                r = 0
                for j in range(kk):
                    if dist[j] < dist[n] or (dist[j] == dist[n] and j < n):
                        r += 1
                out[b, n, y, xx] = sp * (ex[n] / tot) * prio[r]
