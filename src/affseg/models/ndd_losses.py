"""Training losses of spec-diff-net (Sun & Xu, NeurIPS 2019, Eqs. 7 and 8).

- LR kernel matching (Eq. 7): ``-<K_D, K_gt>_F / (||K_D||_F ||K_gt||_F)`` on the feature
  grid, with ``K_gt[i, j] = 1`` iff grid nodes i and j carry the same label of one human
  annotation. ``K_gt`` is never formed: ``<K_D, K_gt>_F = sum_k 1_k^T K_D 1_k`` and
  ``||K_gt||_F^2 = sum_k n_k^2`` for the segments k with n_k nodes. ``K_D = exp(-tau D_t)``
  is full rank, so it is formed densely (N x N, N ~ 1600-2400 on a stride-8 grid: a few
  tens of MB), in row blocks for the norm.
- HR segment matching (Eq. 8): for one random grid node per GT segment, its K_D row is
  upsampled by feature-attentional interpolation and compared with the binary mask of the
  segment by ``-cosine``.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def pairwise_sq_dists(embedding: Tensor) -> Tensor:
    """Squared Euclidean distances between the rows of an embedding.

    Parameters
    ----------
    embedding : Tensor, shape (B, N, E)

    Returns
    -------
    Tensor, shape (B, N, N), >= 0

    Examples
    --------
    >>> import torch
    >>> emb = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0))   # (B, N, Ne)
    >>> d = pairwise_sq_dists(emb)
    >>> d.shape, bool((d.diagonal(dim1=1, dim2=2).abs() < 1e-5).all())
    (torch.Size([1, 6, 6]), True)
    """
    sq = (embedding * embedding).sum(-1)
    d = sq[:, :, None] + sq[:, None, :] - 2.0 * embedding @ embedding.transpose(1, 2)
    return d.clamp_min(0.0)


def diffusion_kernel(embedding: Tensor, tau: Tensor | float) -> Tensor:
    """Dense similarity ``K_D = exp(-tau D_t)`` from a diffusion embedding.

    Parameters
    ----------
    embedding : Tensor, shape (B, N, E)
        Rows whose squared distances are D_t.
    tau : Tensor (scalar or (B,)) or float

    Returns
    -------
    Tensor, shape (B, N, N)

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> emb = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0))   # (B, N, Ne)
    >>> diffusion_kernel(emb, 1.0).shape
    torch.Size([1, 6, 6])
    """
    tau_t = torch.as_tensor(tau, dtype=embedding.dtype, device=embedding.device)
    return torch.exp(-tau_t.reshape(-1, 1, 1) * pairwise_sq_dists(embedding))


def _one_hot(labels: Tensor) -> Tensor:
    """(B, N) ints -> (B, N, L) float one-hot over the labels present (compacted)."""
    _, inv = torch.unique(labels, return_inverse=True)
    return torch.nn.functional.one_hot(inv, int(inv.max()) + 1).to(torch.float32)


def kernel_cosine(kernel: Tensor, labels: Tensor) -> Tensor:
    """Cosine ``<K, K_gt>_F / (||K||_F ||K_gt||_F)`` per image (Eq. 7 without the sign).

    Parameters
    ----------
    kernel : Tensor, shape (B, N, N)
    labels : Tensor, shape (B, N), int
        Label of each grid node (any integers; negative: void, left out of both kernels).

    Returns
    -------
    Tensor, shape (B,)
        0 for an image without two labelled nodes.

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> kernel_cosine(torch.ones(1, 6, 6), torch.zeros(1, 6, dtype=torch.long))   # one segment
    tensor([1.])
    """
    out = []
    for k, lab in zip(kernel, labels, strict=True):
        valid = lab >= 0
        if not bool(valid.all()):
            if int(valid.sum()) < 2:
                out.append(k.sum() * 0.0)  # nothing to match; keeps the graph
                continue
            k, lab = k[valid][:, valid], lab[valid]
        y = _one_hot(lab[None])[0].to(k.dtype)  # (N, L)
        inner = ((k @ y) * y).sum()
        gt_norm = torch.sqrt((y.sum(0) ** 2).sum())
        out.append(inner / (torch.linalg.norm(k) * gt_norm))
    return torch.stack(out)


def lr_kernel_loss(embedding: Tensor, tau: Tensor | float, labels: Tensor) -> Tensor:
    """LR kernel matching loss (Eq. 7), averaged over the batch.

    Parameters
    ----------
    embedding : Tensor, shape (B, N, E)
        Diffusion embedding whose squared row distances are D_t.
    tau : Tensor or float
        Scale of ``K_D = exp(-tau D_t)``.
    labels : Tensor, shape (B, N), int
        One human annotation on the grid.

    Returns
    -------
    Tensor, scalar, in [-1, 0]
    """
    return -kernel_cosine(diffusion_kernel(embedding, tau), labels).mean()


def sample_segment_nodes(
    labels: np.ndarray, rng: np.random.Generator, max_segments: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One random grid node per segment of a grid label map.

    Parameters
    ----------
    labels : ndarray, shape (N,), int
        Negative labels (void) are never sampled.
    rng : numpy Generator
    max_segments : int, optional
        Keep at most this many segments, the largest ones.

    Returns
    -------
    nodes : ndarray, shape (M,), int64
        Index of the sampled node of each kept segment.
    segment_labels : ndarray, shape (M,)
        Their labels.
    """
    perm = rng.permutation(len(labels))
    seg, first, counts = np.unique(labels[perm], return_index=True, return_counts=True)
    nodes = perm[first]
    keep_valid = seg >= 0
    seg, nodes, counts = seg[keep_valid], nodes[keep_valid], counts[keep_valid]
    if max_segments is not None and len(seg) > max_segments:
        keep = np.sort(np.argsort(-counts, kind="stable")[:max_segments])
        seg, nodes = seg[keep], nodes[keep]
    return nodes.astype(np.int64), seg


def masked_cosine(maps: Tensor, masks: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine between maps and binary masks, per map.

    Parameters
    ----------
    maps : Tensor, shape (M, H, W)
    masks : Tensor, shape (M, H, W), {0, 1}

    Returns
    -------
    Tensor, shape (M,)

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> masked_cosine(torch.ones(2, 4), torch.ones(2, 4))
    tensor([1., 1.])
    """
    a, b = maps.flatten(1), masks.flatten(1).to(maps.dtype)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(eps)


def hr_segment_loss(upsampled_rows: Tensor, fine_labels: Tensor, segment_labels: Tensor) -> Tensor:
    """HR segment matching loss (Eq. 8) for one image.

    Parameters
    ----------
    upsampled_rows : Tensor, shape (M, H, W)
        K_D rows of one sampled node per segment, upsampled to the label resolution.
    fine_labels : Tensor, shape (H, W), int
        The same human annotation at that resolution (negative: void pixels, left out).
    segment_labels : Tensor, shape (M,)
        Label of the segment each row was sampled from.

    Returns
    -------
    Tensor, scalar, in [-1, 0]
    """
    masks = fine_labels[None] == segment_labels.reshape(-1, 1, 1)
    void = fine_labels < 0
    if bool(void.any()):
        upsampled_rows = upsampled_rows * (~void)[None].to(upsampled_rows.dtype)
    return -masked_cosine(upsampled_rows, masks).mean()
