"""Grouping grid nodes with a diffusion similarity kernel (Sun & Xu, NeurIPS 2019, Sect. 6).

The neural diffusion similarity of two feature-grid nodes is
``K_D(i, j) = exp(-tau * ||Phi_i - Phi_j||^2)`` where ``Phi`` is the diffusion embedding
(so that ``||Phi_i - Phi_j||^2`` is the diffusion distance D_t). On a grid of a few
thousand nodes the dense (N, N) kernel fits easily in memory, and this module works on it:

1. :func:`diffusion_kernel` builds K_D from ``Phi`` and ``tau``;
2. :func:`coverage_centres` picks cluster centres by greedy coverage (Eq. 9);
3. :func:`kernel_kmeans` runs soft kernel k-means with K_D as the kernel, started from those
   centres, and returns soft assignments ``Z`` (N, C).

Turning the assignments into nested full-resolution segments is the job of
:mod:`affseg.grouping.region_merging`.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from affseg.errors import InputError
from affseg.grouping import _kernels


def diffusion_kernel(phi: np.ndarray, tau: float) -> np.ndarray:
    """Dense diffusion similarity ``K = exp(-tau * D)`` with ``D_ij = ||phi_i - phi_j||^2``.

    Parameters
    ----------
    phi : ndarray, shape (N, Ne)
        Diffusion embedding of the N grid nodes.
    tau : float
        Positive scale of the similarity.

    Returns
    -------
    ndarray, shape (N, N), float32
        Symmetric, ones on the diagonal, values in (0, 1].

    Examples
    --------
    >>> k = diffusion_kernel(np.array([[0.0], [1.0]]), tau=2.0)
    >>> float(k[0, 1]) == float(np.float32(np.exp(-2.0)))
    True
    """
    f = np.asarray(phi, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] < 1:
        raise InputError(f"phi must have shape (N, Ne); got {f.shape}")
    if not np.isfinite(f).all():
        raise InputError("phi holds NaN or inf")
    if not tau > 0:
        raise InputError(f"tau must be positive; got {tau}")
    # torch: a multi-threaded Gram matrix and exp (numpy's exp is single-threaded, ~4x
    # slower); the rest in one compiled pass over the Gram matrix: the exponent
    # -tau max(|f_i|^2 + |f_j|^2 - 2 f_i.f_j, 0) (0 on the diagonal), set to -inf below
    # log(TINY) so that exp gives 0 there (values below 1e-30, incl. float32 denormals,
    # which make every later product ~30x slower on x86, are stored as 0)
    ft = torch.from_numpy(f)
    gram = np.ascontiguousarray((ft @ ft.T).numpy())
    sq = np.ascontiguousarray((ft * ft).sum(1).numpy())
    _kernels.exponent_in_place(
        gram,
        sq,
        float(np.float32(tau)),
        float(np.float32(np.log(TINY))),
    )
    return torch.from_numpy(gram).exp_().numpy()


#: Kernel values and soft assignments below this are stored as 0 (no float32 denormals).
TINY = 1e-30


def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise InputError(f"kernel must be a square (N, N) matrix; got {k.shape}")
    return k.astype(np.float32, copy=False)


def coverage_centres(
    kernel: np.ndarray,
    *,
    eps: float = 0.02,
    max_centres: int = 9,
    first: int | None = None,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster centres whose similarity maps cover the grid (Eq. 9 of Sun & Xu 2019).

    Start with ``first`` (default: the middle node) and coverage ``c = K[first]``; then add
    ``argmax_i (K (1 - c))_i`` and update ``c = min(c + K[i], 1)`` until the mean residual
    ``mean(1 - c)`` drops below ``eps`` or ``max_centres`` centres are chosen.

    Parameters
    ----------
    kernel : ndarray, shape (N, N)
        Symmetric similarity with values in [0, 1].
    eps : float
        Stop when the mean uncovered mass is below this (reference: 0.02).
    max_centres : int
        At most this many centres (reference code: 9).
    first : int, optional
        Index of the first centre; default ``N // 2`` (the middle node of a row-major grid
        whose row count is odd; callers with a grid pass its centre explicitly).
    candidates : ndarray, shape (M,), optional
        Nodes allowed as later centres (default: all). A sub-grid cuts the cost of each
        step from N^2 to M N; the coverage itself is always measured on all N nodes.

    Returns
    -------
    ndarray, shape (C,), int64
        Distinct node indices, in the order they were chosen, 1 <= C <= max_centres.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.1, 0.0],
    ...               [0.1, 0.1, 1.0, 0.9], [0.0, 0.0, 0.9, 1.0]])   # two groups of nodes
    >>> centres = coverage_centres(K, eps=0.2, first=0)
    >>> sorted(centres.tolist())
    [0, 2]
    """
    k = _check_kernel(kernel)
    n = k.shape[0]
    if max_centres < 1:
        raise InputError(f"max_centres must be >= 1; got {max_centres}")
    first = n // 2 if first is None else int(first)
    if not 0 <= first < n:
        raise InputError(f"first centre {first} outside 0..{n - 1}")
    centres = [first]
    cover = np.minimum(k[first].copy(), 1.0)
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    cand = np.arange(n) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if cand.size == 0 or cand.min() < 0 or cand.max() >= n:
        raise InputError(f"candidates must be node indices in 0..{n - 1}")
    # products in torch (its thread count, passive OpenMP waits), not OpenBLAS's own threads
    k_cand = torch.from_numpy(np.ascontiguousarray(k if candidates is None else k[cand]))
    while len(centres) < min(max_centres, n) and float(np.mean(1.0 - cover)) >= eps:
        gain = torch.mv(k_cand, torch.from_numpy(1.0 - cover)).numpy()
        gain[chosen[cand]] = -np.inf
        if not np.isfinite(gain).any():
            break
        i = int(cand[int(np.argmax(gain))])
        centres.append(i)
        chosen[i] = True
        np.minimum(cover + k[i], 1.0, out=cover)
    return np.asarray(centres, dtype=np.int64)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z[z < TINY] = 0.0  # no denormals (they slow the next products ~30x)
    z /= z.sum(axis=1, keepdims=True)
    return z


def kernel_kmeans(
    kernel: np.ndarray,
    centres: np.ndarray,
    *,
    beta: float = 50.0,
    n_iter: int = 20,
    sample: np.ndarray | None = None,
) -> np.ndarray:
    """Soft kernel k-means with ``kernel`` as the inner product of feature space.

    The squared feature-space distance of node i to the (soft) cluster c with weights
    ``z_c = Z[:, c]`` and mass ``n_c = sum(z_c)`` is
    ``d_ic = K_ii - 2 (K z_c)_i / n_c + z_c^T K z_c / n_c^2``, and the assignments are
    ``Z = softmax_c(-beta * d)``. The first step uses each centre as a one-node cluster;
    iterations stop after ``n_iter`` or when the hard assignment no longer changes.

    Parameters
    ----------
    kernel : ndarray, shape (N, N)
        Symmetric positive semi-definite kernel (K_D is one: it is a Gaussian kernel of
        the embedding).
    centres : ndarray, shape (C,)
        Node indices of the initial centres (e.g. from :func:`coverage_centres`).
    beta : float
        Inverse temperature of the soft assignment (reference: 50).
    n_iter : int
        Maximum number of updates (reference: 20).
    sample : ndarray, shape (M,), optional
        Nodes that define the cluster means (default: all). Every node is still assigned;
        with a sub-grid of M nodes an update costs M N instead of N^2.

    Returns
    -------
    ndarray, shape (N, C), float32
        Soft assignments, rows sum to 1.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019
    (kernel k-means on the diffusion kernel K_D).

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.1, 0.0],
    ...               [0.1, 0.1, 1.0, 0.9], [0.0, 0.0, 0.9, 1.0]])   # two groups of nodes
    >>> kernel_kmeans(K, np.array([0, 2])).argmax(axis=1).tolist()
    [0, 0, 1, 1]
    """
    k = _check_kernel(kernel)
    c_idx = np.asarray(centres, dtype=np.int64).ravel()
    n = k.shape[0]
    if c_idx.size < 1 or c_idx.min() < 0 or c_idx.max() >= n:
        raise InputError(f"centres must be 1 or more node indices in 0..{n - 1}")
    diag = np.diagonal(k)[:, None]
    # distance to one-node clusters: K_ii - 2 K_ic + K_cc
    d = diag - 2.0 * k[:, c_idx] + diag[c_idx, 0][None, :]
    z = _softmax_rows(-beta * d)
    hard = z.argmax(axis=1)
    idx: Any
    if sample is None:
        k_ns, idx = k, slice(None)
    else:
        idx = np.asarray(sample, dtype=np.int64)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise InputError(f"sample must be node indices in 0..{n - 1}")
        k_ns = k[:, idx]  # (N, M)
    k_t = torch.from_numpy(np.ascontiguousarray(k_ns))
    for _ in range(n_iter):
        zs = np.ascontiguousarray(z[idx])  # (M, C)
        mass = np.maximum(zs.sum(axis=0), 1e-8)  # (C,)
        kz = (k_t @ torch.from_numpy(zs)).numpy()  # (N, C)
        within = np.einsum("mc,mc->c", zs, kz[idx]) / mass**2
        d = diag - 2.0 * kz / mass[None, :] + within[None, :]
        z = _softmax_rows(-beta * d)
        new_hard = z.argmax(axis=1)
        if np.array_equal(new_hard, hard):
            break
        hard = new_hard
    return z.astype(np.float32, copy=False)
