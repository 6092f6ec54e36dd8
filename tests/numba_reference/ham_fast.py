"""Inference path of :class:`~affseg.models.ham.HAMAffinity`: one fused numba pass.

:meth:`HAMAffinity.forward` builds (B, K, D, H, W) neighbour stacks in torch, which costs
about a second per dilation on a 1376 x 1088 image. :func:`ham_affinity_fast` computes the
same affinities (geodesic or Euclidean distance, softmax of ``-d / tau``, beta-priority by
distance rank, times the strength) pixel by pixel, without autograd and without the
stacks. It equals the torch path to float tolerance when the module ranks ties stably
(``stable_rank=True``; exact ties are broken by neighbour index) and has no ranked head;
two distances equal to within float rounding may still be ranked differently by the two
paths (the rank priority is a step function of the order).

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

from affseg.affinity.hyperbolic import BALL_EPS, MIN_NORM
from affseg.affinity.propagation import neighbour_offsets
from affseg.errors import InputError
from affseg.models.ham import HAMAffinity


def ham_affinity_fast(
    module: HAMAffinity,
    emb: Tensor,
    strength: Tensor,
    dilation: int = 1,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    normalize: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
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
    normalize : bool
        Also apply :func:`~affseg.affinity.propagation.normalize_affinity` (``"clip"``) and
        return ``(affinity, centre)`` for ``propagate(..., norm="none", centre=centre)``.

    Returns
    -------
    Tensor, shape (B, k*k - 1, H, W), float32
        (and the centre weights, shape (B, 1, H, W), when ``normalize``).

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
    xn, fn = ham_points(module, emb) if points is None else points
    with torch.no_grad():
        c = float(module.curvature)
        sn = np.ascontiguousarray(strength[:, 0].float().numpy())
        prio = torch.sigmoid(module.beta).float().numpy()
        inv_tau = float(torch.exp(-module.log_tau))
    hyperbolic = module.geometry == "hyperbolic"
    offs = np.asarray(neighbour_offsets(module.k, dilation), np.int64)
    b_n, hh, ww = sn.shape
    kk = len(offs)
    # distances to the first half of the (symmetric) offsets; the second half reuses them
    half = np.empty((b_n, kk // 2, hh, ww), np.float32)
    sc = np.float32(math.sqrt(max(c, 1e-12)))
    _distance_kernel(xn, fn, offs[: kk // 2], hyperbolic, sc, half)
    out = np.empty((b_n, kk, hh, ww), np.float32)
    centre = np.empty((b_n, hh, ww), np.float32)
    _weight_kernel(
        xn, fn, half, sn, offs, hyperbolic, sc, np.float32(inv_tau), prio, normalize, out, centre
    )
    if normalize:
        return torch.from_numpy(out), torch.from_numpy(centre)[:, None]
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
        xn = np.ascontiguousarray(emb.detach().float().permute(0, 2, 3, 1).numpy())
    if module.geometry != "hyperbolic":
        return xn, np.ones(xn.shape[:3], np.float32)
    fac = np.empty(xn.shape[:3], np.float32)
    _expmap_kernel(xn, np.float32(c), fac)
    return xn, fac


@numba.njit(parallel=True, cache=True)
def _expmap_kernel(x, c, fac):  # pragma: no cover
    # in place: x <- project(expmap0(x)) as affseg.affinity.hyperbolic; fac <- conformal
    b_n, hh, ww, dd = x.shape
    sc = np.float32(math.sqrt(max(c, np.float32(1e-12))))
    maxnorm = (np.float32(1.0) - np.float32(BALL_EPS)) / sc
    for by in numba.prange(b_n * hh):
        b = by // hh
        y = by % hh
        for xx in range(ww):
            u = x[b, y, xx]
            n2 = np.float32(0.0)
            for k in range(dd):
                n2 += u[k] * u[k]
            norm = max(math.sqrt(n2), np.float32(MIN_NORM))
            g = math.tanh(sc * norm) / (sc * norm)
            pn2 = np.float32(0.0)
            for k in range(dd):
                u[k] = g * u[k]
                pn2 += u[k] * u[k]
            pn = max(math.sqrt(pn2), np.float32(MIN_NORM))
            if pn > maxnorm:
                pn2 = np.float32(0.0)
                for k in range(dd):
                    u[k] = u[k] / pn * maxnorm
                    pn2 += u[k] * u[k]
            fac[b, y, xx] = math.sqrt(max(np.float32(1.0) - c * pn2, np.float32(MIN_NORM)))


@numba.njit(cache=True, inline="always")
def _dist(x, f, b, y, xx, yy, xq, hyperbolic, sc):  # pragma: no cover
    p = x[b, y, xx]
    q = x[b, yy, xq]
    d2 = np.float32(0.0)
    for k in range(p.shape[0]):
        t = q[k] - p[k]
        d2 += t * t
    r = math.sqrt(max(d2, np.float32(1e-12)))
    if not hyperbolic:
        return r
    s = sc * r / (f[b, y, xx] * f[b, yy, xq])
    # asinh(s) = log1p(s + s^2 / (sqrt(s^2 + 1) + 1)), accurate for small s
    one = np.float32(1.0)
    return np.float32(2.0) / sc * math.log1p(s + s * s / (math.sqrt(s * s + one) + one))


@numba.njit(parallel=True, cache=True)
def _distance_kernel(x, f, offs, hyperbolic, sc, out):  # pragma: no cover
    b_n, hh, ww, _ = x.shape
    for by in numba.prange(b_n * hh):
        b = by // hh
        y = by % hh
        for n in range(offs.shape[0]):
            yy = min(max(y + offs[n, 0], 0), hh - 1)
            for xx in range(ww):
                xq = min(max(xx + offs[n, 1], 0), ww - 1)
                out[b, n, y, xx] = _dist(x, f, b, y, xx, yy, xq, hyperbolic, sc)


@numba.njit(parallel=True, cache=True)
def _weight_kernel(
    x, f, half, strength, offs, hyperbolic, sc, inv_tau, prio, normalize, out, centre
):  # noqa: E501  # pragma: no cover
    b_n, hh, ww, _ = x.shape
    kk = offs.shape[0]
    nh = kk // 2
    for by in numba.prange(b_n * hh):
        b = by // hh
        y = by % hh
        dist = np.empty(kk, np.float32)
        ex = np.empty(kk, np.float32)
        for xx in range(ww):
            for n in range(kk):
                if n < nh:
                    dist[n] = half[b, n, y, xx]
                    continue
                # offset n is the opposite of offset kk - 1 - n (row-major, centre removed)
                m = kk - 1 - n
                yy = min(max(y + offs[n, 0], 0), hh - 1)
                xq = min(max(xx + offs[n, 1], 0), ww - 1)
                if (
                    min(max(yy + offs[m, 0], 0), hh - 1) == y
                    and min(max(xq + offs[m, 1], 0), ww - 1) == xx
                ):
                    dist[n] = half[b, m, yy, xq]
                else:
                    dist[n] = _dist(x, f, b, y, xx, yy, xq, hyperbolic, sc)
            top = -dist[0] * inv_tau
            for n in range(1, kk):
                top = max(top, -dist[n] * inv_tau)
            tot = np.float32(0.0)
            for n in range(kk):
                ex[n] = math.exp(-dist[n] * inv_tau - top)
                tot += ex[n]
            scale = strength[b, y, xx] / tot
            asum = np.float32(0.0)
            for n in range(kk):
                dn = dist[n]
                r = 0
                for j in range(kk):  # stable rank: smaller, or tied with a lower index
                    r += (dist[j] < dn) | ((dist[j] == dn) & (j < n))
                ex[n] = scale * ex[n] * prio[r]
                asum += ex[n]
            div = max(np.float32(1.0), asum + np.float32(1e-6)) if normalize else np.float32(1.0)
            csum = np.float32(0.0)
            for n in range(kk):
                v = ex[n] / div
                out[b, n, y, xx] = v
                csum += v
            centre[b, y, xx] = np.float32(1.0) - csum
