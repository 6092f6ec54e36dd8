"""Inference path of :class:`~affseg.models.ham.HAMAffinity`: one fused compiled pass.

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

import numpy as np
import torch
from torch import Tensor

from affseg.affinity.hyperbolic import BALL_EPS, MIN_NORM
from affseg.affinity.propagation import neighbour_offsets
from affseg.errors import InputError
from affseg.models import _kernels
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
    nt = torch.get_num_threads()
    xn = np.ascontiguousarray(xn, dtype=np.float32)
    fn = np.ascontiguousarray(fn, dtype=np.float32)
    _kernels.distance(
        xn, fn, np.ascontiguousarray(offs[: kk // 2]), hyperbolic, float(sc), half, nt
    )
    out = np.empty((b_n, kk, hh, ww), np.float32)
    centre = np.empty((b_n, hh, ww), np.float32)
    _kernels.weights(
        xn,
        fn,
        half,
        sn,
        offs,
        hyperbolic,
        float(sc),
        float(np.float32(inv_tau)),
        np.ascontiguousarray(prio, dtype=np.float32),
        bool(normalize),
        out,
        centre,
        nt,
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
    _kernels.expmap(xn, float(np.float32(c)), BALL_EPS, MIN_NORM, fac, torch.get_num_threads())
    return xn, fac
