"""Training signals of the per-image methods: Hungarian label alignment, EMA, losses.

- :func:`align_labels`: one label map mapped into another's label space by Hungarian
  matching on their overlap (MMT's cross-network targets);
- :func:`ensemble_response`: two networks' softmax responses averaged after that alignment
  (MMT's output);
- :func:`ema_update`, :func:`ema_alpha`: the mean networks' exponential moving average;
- :func:`continuity_loss`: mean L1 spatial difference of a response (Kim 2020; MMT's TV
  loss).

References
----------
.. [1] Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
   Mean-Teaching".
.. [2] W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based on
   differentiable feature clustering", IEEE Transactions on Image Processing, 2020.

Examples
--------
>>> import numpy as np
>>> from affseg.methods.per_image.losses import align_labels
>>> align_labels(np.array([2, 2, 0]), np.array([0, 0, 1]), 3).tolist()
[1, 2, 0]
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from affseg.errors import InputError
from affseg.models.per_image_net import argmax_labels


def align_labels(source: np.ndarray, reference: np.ndarray, n_labels: int) -> np.ndarray:
    """Map ``source`` labels into ``reference``'s label space by Hungarian matching.

    The overlap matrix ``C[s, r] = #{pixels: source = s, reference = r}`` (zero-padded to
    ``n_labels`` x ``n_labels``) is matched one-to-one with maximum total overlap
    (``scipy.optimize.linear_sum_assignment``). Source labels left without a partner (more
    labels than the reference uses) take the unused reference labels.

    Parameters
    ----------
    source, reference : ndarray, same shape, integer labels in 0..n_labels-1
    n_labels : int
        Size of both label spaces.

    Returns
    -------
    ndarray, shape (n_labels,), int64
        A permutation ``perm`` of 0..n_labels-1; ``perm[source]`` is source in reference
        labels.

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import numpy as np
    >>> perm = align_labels(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2)
    >>> perm.tolist()
    [1, 0]
    """
    s = np.asarray(source).ravel().astype(np.int64)
    r = np.asarray(reference).ravel().astype(np.int64)
    if s.shape != r.shape:
        raise InputError(f"label maps differ in size: {s.size} vs {r.size}")
    if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n_labels):
        raise InputError(f"labels must lie in 0..{n_labels - 1}")
    overlap = np.bincount(s * n_labels + r, minlength=n_labels * n_labels)
    rows, cols = linear_sum_assignment(overlap.reshape(n_labels, n_labels), maximize=True)
    perm = np.empty(n_labels, dtype=np.int64)
    perm[rows] = cols
    return perm


@torch.no_grad()
def ema_update(mean_net: nn.Module, net: nn.Module, alpha: float) -> None:
    """``mean <- alpha * mean + (1 - alpha) * net`` for every parameter (buffers copied).

    Parameters
    ----------
    mean_net, net : nn.Module
        Same architecture.
    alpha : float
        In [0, 1].

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> ema_update(a, b, 0.0)                           # alpha 0: copy
    >>> torch.equal(a.weight, b.weight)
    True
    """
    for pm, p in zip(mean_net.parameters(), net.parameters(), strict=True):
        pm.mul_(alpha).add_(p.detach(), alpha=1.0 - alpha)
    for bm, b in zip(mean_net.buffers(), net.buffers(), strict=True):
        bm.copy_(b)


def ema_alpha(step: int, alpha: float, warmup: bool) -> float:
    """EMA coefficient at ``step`` (0-based): ``min(1 - 1/(step + 1), alpha)`` with warm-up.

    Examples
    --------
    >>> ema_alpha(0, 0.99, warmup=True), ema_alpha(500, 0.99, warmup=True)
    (0.0, 0.99)
    >>> ema_alpha(0, 0.99, warmup=False)
    0.99
    """
    return min(1.0 - 1.0 / (step + 1), alpha) if warmup else alpha


def ensemble_response(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Average of two networks' softmax responses after aligning the second's labels.

    The channels of ``r2`` are permuted into ``r1``'s label space by :func:`align_labels`
    on their argmax label maps, then the two softmax maps are averaged.

    Parameters
    ----------
    r1, r2 : Tensor, shape (1, q, h, w)

    Returns
    -------
    Tensor, shape (1, q, h, w)
        Mean class probabilities in ``r1``'s label space.

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import torch
    >>> r = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(ensemble_response(r, r), torch.softmax(r, dim=1))
    True
    """
    q = r1.shape[1]
    perm = align_labels(argmax_labels(r2).numpy(), argmax_labels(r1).numpy(), q)
    p2 = torch.empty_like(r2)
    p2[:, torch.from_numpy(perm)] = torch.softmax(r2, dim=1)
    return 0.5 * (torch.softmax(r1, dim=1) + p2)


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean absolute vertical + horizontal difference of a response (Kim 2020; TV, L1).

    Parameters
    ----------
    response : Tensor, shape (1, q, h, w)

    Returns
    -------
    Tensor, scalar

    References
    ----------
    W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based
    on differentiable feature clustering", IEEE Transactions on Image Processing, 2020.

    Examples
    --------
    >>> import torch
    >>> float(continuity_loss(torch.zeros(1, 2, 3, 3)))
    0.0
    """
    dy = (response[:, :, 1:] - response[:, :, :-1]).abs().mean()
    dx = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().mean()
    return dy + dx
