"""Poincare-ball operations as pure tensor functions (Park et al., ICML 2023).

The Poincare ball of curvature ``-c`` (``c > 0``) is the open ball of radius
``1 / sqrt(c)``. Points are tensors whose feature axis is ``dim`` (default the last one);
every function broadcasts over the other axes. ``c`` may be a Python float or a tensor
(e.g. ``softplus`` of a learned parameter), so the curvature can be fixed or learned.

All functions are safe in float32 near the boundary: norms are clamped away from zero,
``artanh`` arguments are clamped below 1 and points are projected back inside radius
``(1 - eps) / sqrt(c)``, so values and gradients stay finite.

Formulas (Ganea et al. 2018; UniDC ``HALM``)::

    expmap0(u)   = tanh(sqrt(c)|u|) u / (sqrt(c)|u|)
    logmap0(x)   = artanh(sqrt(c)|x|) x / (sqrt(c)|x|)
    x (+) y      = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y)
                   / (1 + 2c<x,y> + c^2|x|^2|y|^2)
    d(x, y)      = (2 / sqrt(c)) artanh(sqrt(c) |(-x) (+) y|)
    M (x) x      = (1/sqrt(c)) tanh(|Mx|/|x| artanh(sqrt(c)|x|)) Mx / |Mx|

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from affseg.errors import InputError

#: Smallest norm used as a divisor (avoids 0/0 at the origin).
MIN_NORM = 1e-15
#: Relative margin kept from the boundary by :func:`project` (float32-safe).
BALL_EPS = 1e-3
#: Largest argument fed to ``artanh`` (keeps it finite in float32).
ATANH_MAX = 1.0 - 1e-6


def _sqrt_c(c: float | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(c, dtype=like.dtype, device=like.device).clamp_min(1e-12).sqrt()


def _norm(x: Tensor, dim: int) -> Tensor:
    return x.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)


def artanh(x: Tensor) -> Tensor:
    """``atanh`` with its argument clamped to ``(-ATANH_MAX, ATANH_MAX)``.

    Parameters
    ----------
    x : Tensor, any shape

    Returns
    -------
    Tensor, same shape

    Examples
    --------
    >>> import torch
    >>> round(float(artanh(torch.tensor(0.5))), 4)
    0.5493
    """
    return torch.atanh(x.clamp(-ATANH_MAX, ATANH_MAX))


def project(x: Tensor, c: float | Tensor = 1.0, dim: int = -1, eps: float = BALL_EPS) -> Tensor:
    """Pull points back inside the ball of radius ``(1 - eps) / sqrt(c)``.

    Parameters
    ----------
    x : Tensor, shape (..., D, ...)
        Points (feature axis ``dim``).
    c : float or Tensor
        Curvature magnitude, > 0 (a tensor must broadcast against ``x``'s norms).
    dim : int
        Feature axis.
    eps : float
        Relative margin from the boundary.

    Returns
    -------
    Tensor, same shape as ``x``
        ``x`` where it is inside the radius, else rescaled onto it.

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> project(torch.tensor([2.0, 0.0])).tolist()   # onto the ball of radius 1 - eps
    [0.9990000128746033, 0.0]
    """
    norm = _norm(x, dim)
    maxnorm = (1.0 - eps) / _sqrt_c(c, x)
    return torch.where(norm > maxnorm, x / norm * maxnorm, x)


def expmap0(u: Tensor, c: float | Tensor = 1.0, dim: int = -1) -> Tensor:
    """Exponential map at the origin: tangent vectors -> points of the ball.

    Parameters
    ----------
    u : Tensor, shape (..., D, ...)
        Tangent vectors at 0 (feature axis ``dim``).
    c : float or Tensor
        Curvature magnitude.
    dim : int
        Feature axis.

    Returns
    -------
    Tensor, same shape as ``u``
        Points strictly inside the ball (projected).

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> torch.allclose(logmap0(expmap0(x)), x)
    True
    """
    sc = _sqrt_c(c, u)
    norm = _norm(u, dim)
    return project(torch.tanh(sc * norm) * u / (sc * norm), c, dim)


def logmap0(x: Tensor, c: float | Tensor = 1.0, dim: int = -1) -> Tensor:
    """Logarithmic map at the origin, the inverse of :func:`expmap0`.

    Parameters
    ----------
    x : Tensor, shape (..., D, ...)
        Points of the ball.
    c : float or Tensor
    dim : int

    Returns
    -------
    Tensor, same shape as ``x``
        Tangent vectors at 0.

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> torch.allclose(expmap0(logmap0(x)), x)
    True
    """
    sc = _sqrt_c(c, x)
    norm = _norm(x, dim)
    return artanh(sc * norm) * x / (sc * norm)


def mobius_add(x: Tensor, y: Tensor, c: float | Tensor = 1.0, dim: int = -1) -> Tensor:
    """Mobius addition ``x (+) y`` in the Poincare ball.

    Parameters
    ----------
    x, y : Tensor, broadcastable shapes (..., D, ...)
    c : float or Tensor
    dim : int

    Returns
    -------
    Tensor, broadcast shape
        Not projected (so the identities hold exactly up to rounding); use
        :func:`project` if the result feeds further hyperbolic layers.

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> torch.allclose(mobius_add(x, torch.zeros(2)), x)
    True
    """
    c_t = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    xy = (x * y).sum(dim=dim, keepdim=True)
    x2 = (x * x).sum(dim=dim, keepdim=True)
    y2 = (y * y).sum(dim=dim, keepdim=True)
    num = (1 + 2 * c_t * xy + c_t * y2) * x + (1 - c_t * x2) * y
    den = 1 + 2 * c_t * xy + c_t**2 * x2 * y2
    return num / den.clamp_min(MIN_NORM)


def distance(x: Tensor, y: Tensor, c: float | Tensor = 1.0, dim: int = -1) -> Tensor:
    """Geodesic distance ``(2 / sqrt(c)) artanh(sqrt(c) |(-x) (+) y|)``.

    Parameters
    ----------
    x, y : Tensor, broadcastable shapes (..., D, ...)
    c : float or Tensor
    dim : int

    Returns
    -------
    Tensor, broadcast shape with axis ``dim`` removed
        Non-negative distances; ``d(x, x) = 0``.

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> float(distance(x, x)), round(float(distance(x, y)), 4)
    (0.0, 0.9283)
    """
    sc = _sqrt_c(c, x)
    diff = mobius_add(-x, y, c, dim)
    # sqrt of a clamped square: exact zero at x == y with a finite (zero) gradient.
    sq = (diff * diff).sum(dim=dim, keepdim=True)
    n = torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))
    d = (2.0 / sc * artanh(sc * n)).squeeze(dim)
    same = (x == y).all(dim=dim)  # exact zero despite rounding in (-x) (+) x
    return torch.where(same, torch.zeros_like(d), d)


def mobius_matvec(m: Tensor, x: Tensor, c: float | Tensor = 1.0) -> Tensor:
    """Mobius matrix-vector product ``M (x) x`` (a hyperbolic linear map).

    Parameters
    ----------
    m : Tensor, shape (D_out, D_in)
    x : Tensor, shape (..., D_in)
        Points of the ball (feature axis last).
    c : float or Tensor

    Returns
    -------
    Tensor, shape (..., D_out)
        ``expmap0(M logmap0(x))`` written in closed form; rows with ``Mx = 0`` map to 0.

    References
    ----------
    O.-E. Ganea, G. Becigneul and T. Hofmann, "Hyperbolic Neural Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> torch.allclose(mobius_matvec(torch.eye(2), x), x)
    True
    """
    sc = _sqrt_c(c, x)
    xn = _norm(x, -1)
    mx = x @ m.transpose(-1, -2)
    mxn = _norm(mx, -1)
    res = torch.tanh(mxn / xn * artanh(sc * xn)) * mx / (mxn * sc)
    zero = (mx == 0).all(dim=-1, keepdim=True)
    return project(torch.where(zero, torch.zeros_like(res), res), c)


def beta_concat_ratio(part_dim: int, n_parts: int) -> float:
    """Scale of each part in the Poincare beta-concatenation (HNN++, Shimizu et al. 2021).

    Concatenating ``n_parts`` tangent vectors of size ``part_dim`` multiplies each by
    ``B(n d / 2, 1/2) / B(d / 2, 1/2)`` (``B`` the Beta function) so the concatenated
    vector keeps the expected norm of a single part (``n = n_parts``, ``d = part_dim``).

    Parameters
    ----------
    part_dim : int
        Size ``d`` of each part (>= 1).
    n_parts : int
        Number of parts ``n`` (>= 1).

    Returns
    -------
    float
        The ratio, in (0, 1]; 1 for a single part.

    References
    ----------
    R. Shimizu, Y. Mukuta and T. Harada, "Hyperbolic Neural Networks++", ICLR 2021.

    Examples
    --------
    >>> round(beta_concat_ratio(4, 2), 4)
    0.6857
    """
    if part_dim < 1 or n_parts < 1:
        raise InputError(
            f"beta concatenation needs part_dim, n_parts >= 1, got {part_dim}, {n_parts}"
        )

    def log_beta_half(a: float) -> float:  # log B(a, 1/2)
        return math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)

    return math.exp(log_beta_half(n_parts * part_dim / 2) - log_beta_half(part_dim / 2))


def gyro_log_distance(
    x: Tensor, y: Tensor, c: float | Tensor = 1.0, dim: int = -1
) -> tuple[Tensor, Tensor]:
    """``logmap0((-x) (+) y)`` and ``d(x, y)`` from three squared norms (fast, same values).

    Uses ``d = (2/sqrt(c)) asinh(sqrt(c) |x - y| / sqrt((1 - c|x|^2)(1 - c|y|^2)))`` (equal
    to the artanh form of :func:`distance`) and writes ``(-x) (+) y = beta y - alpha x``
    with scalar ``alpha, beta`` from ``|x|^2, |y|^2, |x - y|^2``; the tangent vector has
    norm ``d / 2``. For many neighbours per point this needs a handful of full-size
    operations instead of the dozens of :func:`mobius_add` + :func:`logmap0`.

    Parameters
    ----------
    x, y : Tensor, broadcastable shapes (..., D, ...)
        Points of the ball (e.g. from :func:`expmap0`).
    c : float or Tensor
    dim : int

    Returns
    -------
    tangent : Tensor, broadcast shape
        ``logmap0((-x) (+) y)``: ``y`` seen from ``x``, in the tangent space at 0.
    dist : Tensor, broadcast shape with axis ``dim`` removed
        Geodesic distance (about ``2e-6 / (1 - c|x|^2)``, at most ~1e-3, instead of 0
        for ``x == y``).

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.0])
    >>> v, d = gyro_log_distance(x, y)
    >>> torch.allclose(d, distance(x, y)), torch.allclose(v, logmap0(mobius_add(-x, y)))
    (True, True)
    """
    c_t = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    sc = _sqrt_c(c, x)
    x2 = (x * x).sum(dim=dim, keepdim=True)
    y2 = (y * y).sum(dim=dim, keepdim=True)
    diff = y - x
    d2 = (diff * diff).sum(dim=dim, keepdim=True)
    conf = ((1 - c_t * x2).clamp_min(MIN_NORM) * (1 - c_t * y2).clamp_min(MIN_NORM)).sqrt()
    s = sc * d2.clamp_min(1e-12).sqrt() / conf
    half = torch.asinh(s)  # sqrt(c) d / 2
    f = half * (1 + s * s).sqrt() / s  # artanh(r) / r at r = sqrt(c)|(-x) (+) y| = tanh(half)
    xy = (x2 + y2 - d2) / 2
    den = (1 - 2 * c_t * xy + c_t**2 * x2 * y2).clamp_min(MIN_NORM)
    alpha = f * (1 - 2 * c_t * xy + c_t * y2) / den
    beta = f * (1 - c_t * x2) / den
    return beta * y - alpha * x, (2.0 / sc * half).squeeze(dim)
