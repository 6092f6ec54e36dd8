"""The spectral loss of deep spectral clustering [1] and its oracle Laplacian.

For unit embeddings ``F`` (N, d) of the pixels of an image and the oracle kernel
``A[i, j] = 1`` iff pixels i and j lie in the same segment, the spectral loss is
``||F F^T - A||_F^2``. It is computed exactly without any N x N matrix from

    ||F F^T - A||_F^2 = ||F^T F||_F^2 - 2 sum_k ||F^T 1_k||^2 + sum_k n_k^2,

where ``1_k`` is the indicator of segment k and ``n_k`` its size: one (d, d) Gram matrix and
one (K, d) table of per-segment sums, O(N d^2) time and O(N d + K d) memory.
The paper instead samples pixels (:func:`sampled_spectral_loss`, unbiased).

Theorem 2.1 of the paper: ``L = A D`` (D the degree matrix) is symmetric PSD with one
non-zero eigenvalue n_k^2 per segment, and the rows of ``V = V_o Lambda^(1/4)`` have inner
product 1 within a segment and 0 across (:func:`oracle_laplacian`, :func:`oracle_embedding`).

References
----------
.. [1] M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
   ICLR workshop track, 2018.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from affseg.affinity import _kernels
from affseg.errors import InputError

__all__ = [
    "oracle_embedding",
    "oracle_laplacian",
    "sampled_spectral_loss",
    "spectral_loss",
    "spectral_loss_dense",
]


def _check(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Bring (N, d) / (N,) or (B, N, d) / (B, N) inputs to the batched form."""
    if not isinstance(embeddings, Tensor) or not isinstance(labels, Tensor):
        raise InputError("embeddings and labels must be torch tensors")
    if not embeddings.is_floating_point():
        raise InputError(f"embeddings must be floating point; got {embeddings.dtype}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise InputError(f"labels must be an integer tensor; got {labels.dtype}")
    batched = embeddings.ndim == 3
    if embeddings.ndim not in (2, 3) or labels.ndim != embeddings.ndim - 1:
        raise InputError(
            "embeddings must be (N, d) with labels (N,), or (B, N, d) with labels (B, N); "
            f"got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    if not batched:
        embeddings, labels = embeddings[None], labels[None]
    if labels.shape != embeddings.shape[:2]:
        raise InputError(
            f"labels {tuple(labels.shape)} do not match embeddings {tuple(embeddings.shape)}"
        )
    return embeddings, labels.to(embeddings.device), batched


def spectral_loss(embeddings: Tensor, labels: Tensor, *, normalize: bool = False) -> Tensor:
    """Exact spectral loss ``||F F^T - A||_F^2`` without forming N x N matrices.

    Parameters
    ----------
    embeddings : Tensor, shape (N, d) or (B, N, d)
        Pixel embeddings F (the model's are unit rows; the identity holds for any F).
    labels : Tensor, shape (N,) or (B, N), integer
        Segment of every pixel; pixels with a negative label are ignored (their rows and
        columns are dropped from both F F^T and A).
    normalize : bool
        Divide by N^2 (N = number of labelled pixels of each image), i.e. the mean squared
        error over pixel pairs, in [0, 1] for unit embeddings with non-negative inner products.

    Returns
    -------
    Tensor
        Scalar for unbatched input, shape (B,) for batched input; differentiable with
        respect to ``embeddings`` (closed-form backward ``4 (F F^T F - S[label])``, S the
        segment sums). The segment sums are accumulated and the three O(N^2) terms combined
        in float64, against their cancellation; the Gram matrix is in the input dtype.

    Examples
    --------
    >>> f = torch.nn.functional.one_hot(torch.tensor([0, 0, 1])).float()
    >>> float(spectral_loss(f, torch.tensor([0, 0, 1])))
    0.0
    """
    f, lab, batched = _check(embeddings, labels)
    b, n, d = f.shape
    valid = lab >= 0
    all_valid = bool(valid.all())
    if not all_valid:
        f = f * valid[..., None].to(f.dtype)
        lab = torch.where(valid, lab, torch.zeros_like(lab))
    lab = lab.long()
    k = int(lab.max()) + 1 if lab.numel() else 1
    if k > 4 * n + 16:  # sparse label values: compress them first (a sort, O(N log N))
        lab = torch.unique(lab, return_inverse=True)[1].reshape(b, n)
        k = int(lab.max()) + 1
    # per-image segment ids -> global ids (image b uses ids [b * K, (b + 1) * K))
    gid = (lab + k * torch.arange(b, device=lab.device)[:, None]).reshape(-1)
    w = valid.reshape(-1).to(torch.float64) if not all_valid else None
    counts = torch.bincount(gid, weights=w, minlength=b * k).to(torch.float64).reshape(b, k)
    loss = _ClosedForm.apply(f, gid, (counts**2).sum(1), k)
    if normalize:
        loss = loss / valid.sum(1).to(torch.float64).clamp_min(1.0) ** 2
    loss = loss.to(f.dtype)
    return loss if batched else loss[0]


def _segment_sums(f: Tensor, gid: Tensor, n_seg: int) -> Tensor:
    """Per-segment sums (n_seg, d) in float64 of rows ``f`` (M, d) with ids ``gid`` (M,).

    A compiled single pass over the rows on CPU (several times faster than ``index_add``
    over rows, and with no transposed copy); ``index_add`` elsewhere.
    """
    if f.device.type == "cpu":
        fn = f.contiguous().numpy()
        if fn.dtype not in (np.float32, np.float64):
            fn = fn.astype(np.float64)
        out = _kernels.segment_sums(
            fn, gid.contiguous().numpy().astype(np.int64, copy=False), n_seg
        )
        return torch.from_numpy(out)
    ft = f.to(torch.float64)
    return torch.zeros(n_seg, f.shape[1], dtype=torch.float64, device=f.device).index_add(
        0, gid, ft
    )


class _ClosedForm(torch.autograd.Function):
    """``||F^T F||^2 - 2 sum_k ||s_k||^2 + sum_k n_k^2`` per image, with its gradient.

    Forward: one (d, d) Gram matrix per image (BLAS) and the (B K, d) segment sums.
    Backward: ``dL/dF = 4 (F G - S[label])``, G = F^T F, S the segment sums: one (N, d) x
    (d, d) product and a gather, instead of autograd through a scatter.
    """

    @staticmethod
    def forward(ctx, f: Tensor, gid: Tensor, count_sq: Tensor, k: int) -> Tensor:  # noqa: D102
        b, _, d = f.shape
        f = f.detach()
        gram = f.transpose(1, 2) @ f  # (B, d, d)
        sums = _segment_sums(f.reshape(-1, d), gid, b * k)  # (B K, d) float64
        g64 = gram.to(torch.float64)
        loss = (g64 * g64).sum((1, 2)) - 2.0 * (sums * sums).reshape(b, -1).sum(1) + count_sq
        ctx.save_for_backward(f, gram, sums.to(f.dtype), gid)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        f, gram, sums, gid = ctx.saved_tensors
        b, n, d = f.shape
        g = torch.baddbmm(sums[gid].reshape(b, n, d), f, gram, beta=-1.0)  # F G - S[label]
        return g * (4.0 * grad.to(f.dtype))[:, None, None], None, None, None


def spectral_loss_dense(embeddings: Tensor, labels: Tensor, *, normalize: bool = False) -> Tensor:
    """The definition ``||F F^T - A||_F^2`` with dense N x N matrices (reference, small N).

    Parameters and returns as :func:`spectral_loss`.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([[0, 0, 1, 1]])
    >>> emb = torch.nn.functional.one_hot(labels).float()     # the oracle embedding
    >>> float(spectral_loss_dense(emb, labels))
    0.0
    """
    f, lab, batched = _check(embeddings, labels)
    out = []
    for fi, li in zip(f, lab, strict=True):
        keep = li >= 0
        fi, li = fi[keep], li[keep]
        a = (li[:, None] == li[None, :]).to(fi.dtype)
        val = ((fi @ fi.T - a) ** 2).sum()
        if normalize:
            val = val / max(int(keep.sum()), 1) ** 2
        out.append(val)
    loss = torch.stack(out)
    return loss if batched else loss[0]


def sampled_spectral_loss(
    embeddings: Tensor,
    labels: Tensor,
    n_samples: int = 1024,
    *,
    normalize: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The paper's sampled estimator of the spectral loss (unbiased).

    ``n_samples`` = m pixels are drawn uniformly with replacement; with
    ``g(i, j) = (f_i . f_j - A_ij)^2`` the estimate is
    ``N^2 / (m (m - 1)) * sum_{a != b} g(s_a, s_b)``. For a != b the pair (s_a, s_b) is
    uniform over all N^2 ordered pixel pairs (i = j included), so the expectation is exactly
    ``sum_ij g(i, j)``, the exact loss.

    Parameters
    ----------
    embeddings : Tensor, shape (N, d) or (B, N, d)
    labels : Tensor, shape (N,) or (B, N), integer
        Negative labels are ignored (sampling is over the labelled pixels).
    n_samples : int
        m >= 2 pixels per image; memory and time O(m^2 + m d).
    normalize : bool
        Estimate the loss divided by N^2.
    generator : torch.Generator, optional
        For reproducible draws.

    Returns
    -------
    Tensor
        Scalar, or shape (B,) for batched input.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([[0, 0, 1, 1]])
    >>> emb = torch.nn.functional.one_hot(labels).float()     # the oracle embedding
    >>> float(sampled_spectral_loss(emb, labels, 4, generator=torch.Generator().manual_seed(0)))
    0.0
    """
    if n_samples < 2:
        raise InputError(f"n_samples must be >= 2; got {n_samples}")
    f, lab, batched = _check(embeddings, labels)
    out = []
    for fi, li in zip(f, lab, strict=True):
        idx_valid = torch.nonzero(li >= 0).reshape(-1)
        n = idx_valid.numel()
        if n == 0:
            out.append(fi.sum() * 0.0)
            continue
        pick = torch.randint(n, (n_samples,), generator=generator, device="cpu")
        idx = idx_valid[pick.to(idx_valid.device)]
        fs, ls = fi[idx], li[idx]
        err = (fs @ fs.T - (ls[:, None] == ls[None, :]).to(fs.dtype)) ** 2
        off = err.sum() - err.diagonal().sum()
        scale = (1.0 if normalize else float(n) ** 2) / (n_samples * (n_samples - 1))
        out.append(off * scale)
    loss = torch.stack(out)
    return loss if batched else loss[0]


def _labels_1d(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be a non-empty 1-D integer array; got {lab.shape}")
    return lab


def oracle_laplacian(labels: np.ndarray) -> np.ndarray:
    """The oracle graph Laplacian ``L = A D`` of Theorem 2.1 (small n only).

    Parameters
    ----------
    labels : ndarray, shape (n,), int
        Cluster of each sample.

    Returns
    -------
    ndarray, shape (n, n), float64
        ``A[i, j] = 1`` iff labels match (diagonal included), ``D = diag(A 1)``; within a
        cluster of size n_k every entry of L is n_k, across clusters 0.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> oracle_laplacian(np.array([0, 0, 1])).tolist()
    [[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    lab = _labels_1d(labels)
    a = (lab[:, None] == lab[None, :]).astype(np.float64)
    return a * a.sum(1)[None, :]


def oracle_embedding(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normalised eigenvectors ``V = V_o Lambda^(1/4)`` of the oracle Laplacian.

    Computed numerically (``numpy.linalg.eigh`` of :func:`oracle_laplacian`), to check
    Theorem 2.1 rather than to assume it.

    Parameters
    ----------
    labels : ndarray, shape (n,), int

    Returns
    -------
    V : ndarray, shape (n, k)
        One column per non-zero eigenvalue (k = number of clusters, by Theorem 2.1).
    eigenvalues : ndarray, shape (k,)
        The non-zero eigenvalues, descending.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> v, lam = oracle_embedding(np.array([0, 0, 1]))
    >>> np.abs(v).round(6).tolist(), lam.round(6).tolist()
    ([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [4.0, 1.0])
    """
    lap = oracle_laplacian(labels)
    w, v = np.linalg.eigh(lap)
    keep = w > 1e-8 * max(float(w.max()), 1.0)
    order = np.argsort(w[keep])[::-1]
    lam, vo = w[keep][order], v[:, keep][:, order]
    return vo * lam[None, :] ** 0.25, lam
