"""SPN-family spatial propagation (CSPN / CSPN++ / NLSPN style).

A map ``h`` (B, C, H, W) is propagated over local ``k x k`` neighbourhoods::

    h_p <- a_p0 h_p + sum_n a_pn h_{p+n}          (a_p0 = 1 - sum_n a_pn)
    h   <- (1 - m) h + m h0                        (optional re-imposition of known values)

for a fixed number of iterations, with per-pixel affinities ``a_pn`` for the ``k^2 - 1``
non-centre neighbours (offsets from :func:`neighbour_offsets`, row-major, centre left out).
Affinities are normalised so that ``sum_n |a_pn| <= 1``; the step is then a convex-like
combination and preserves constants. Borders use replicate padding (a constant map stays
constant). Vectorised: each iteration is ``k^2 - 1`` fused multiply-adds of shifted
views of one padded tensor.

Also the neighbour geometry of learned affinities: :func:`neighbour_distances` (geodesic
distances in the Poincare ball, or Euclidean ones, to the ``k^2 - 1`` neighbours) and
:func:`mix_kernels` (affinities of several kernel sizes as one kernel). The networks that
predict the embeddings and affinities are in :mod:`affseg.models.ham`.

References
----------
.. [1] X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with Convolutional
   Spatial Propagation Network", ECCV 2018.
.. [2] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from affseg.affinity import _kernels
from affseg.affinity.hyperbolic import expmap0, gyro_log_distance
from affseg.errors import InputError

NormMode = Literal["sum", "clip", "none"]
Geometry = Literal["hyperbolic", "euclidean"]
#: Geometries of the embedding distances (:func:`neighbour_distances`).
GEOMETRIES: tuple[str, ...] = ("hyperbolic", "euclidean")


def neighbour_offsets(k: int, dilation: int = 1) -> list[tuple[int, int]]:
    """Offsets ``(dy, dx)`` of the ``k^2 - 1`` non-centre neighbours, row-major.

    Parameters
    ----------
    k : int
        Odd kernel size (3, 5, 7, ...).
    dilation : int
        Spacing between neighbours.

    Returns
    -------
    list of (int, int), length k*k - 1

    Examples
    --------
    >>> neighbour_offsets(3)[:3], len(neighbour_offsets(3))
    ([(-1, -1), (-1, 0), (-1, 1)], 8)
    """
    if k < 3 or k % 2 == 0:
        raise InputError(f"propagation kernel size must be odd and >= 3, got {k}")
    if dilation < 1:
        raise InputError(f"dilation must be >= 1, got {dilation}")
    r = k // 2
    return [
        (dy * dilation, dx * dilation)
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
        if (dy, dx) != (0, 0)
    ]


def shift_stack(x: Tensor, k: int, dilation: int = 1) -> Tensor:
    """Neighbour values of every pixel, replicate-padded at the border.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
    k : int
    dilation : int

    Returns
    -------
    Tensor, shape (B, k*k - 1, C, H, W)
        ``out[:, n, :, y, x] = x[:, :, y + dy_n, x + dx_n]`` (clamped to the image).

    Examples
    --------
    >>> import torch
    >>> shift_stack(torch.zeros(1, 1, 3, 4), 3).shape
    torch.Size([1, 8, 1, 3, 4])
    """
    r = (k // 2) * dilation
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    views = [
        xp[..., r + dy : r + dy + h, r + dx : r + dx + w]
        for dy, dx in neighbour_offsets(k, dilation)
    ]
    return torch.stack(views, dim=1)


def normalize_affinity(
    affinity: Tensor, mode: NormMode = "sum", eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Normalise raw neighbour affinities and derive the centre weight.

    Parameters
    ----------
    affinity : Tensor, shape (B, K, H, W)
        Raw affinities of the K = k^2 - 1 non-centre neighbours.
    mode : {"sum", "clip", "none"}
        ``"sum"`` (CSPN++): ``a / (sum|a| + eps)``; ``"clip"`` (NLSPN):
        ``a / max(1, sum|a| + eps)``; ``"none"``: used as given (caller guarantees the bound).
    eps : float

    Returns
    -------
    neighbours : Tensor, shape (B, K, H, W)
        With ``sum_n |a_n| <= 1`` for ``"sum"`` and ``"clip"``.
    centre : Tensor, shape (B, 1, H, W)
        ``1 - sum_n a_n``.

    References
    ----------
    X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with Convolutional
    Spatial Propagation Network", ECCV 2018.

    Examples
    --------
    >>> a, centre = normalize_affinity(uniform_affinity((1, 3, 4), k=3))
    >>> a.shape, centre.shape
    (torch.Size([1, 8, 3, 4]), torch.Size([1, 1, 3, 4]))
    """
    if affinity.ndim != 4:
        raise InputError(f"affinity must be (B, K, H, W), got shape {tuple(affinity.shape)}")
    total = affinity.abs().sum(dim=1, keepdim=True)
    if mode == "sum":
        affinity = affinity / (total + eps)
    elif mode == "clip":
        affinity = affinity / (total + eps).clamp_min(1.0)
    elif mode != "none":
        raise InputError(f"unknown affinity normalisation {mode!r}; use sum, clip or none")
    return affinity, 1.0 - affinity.sum(dim=1, keepdim=True)


def propagate(
    h: Tensor,
    affinity: Tensor,
    k: int = 3,
    iterations: int = 18,
    *,
    h0: Tensor | None = None,
    mask: Tensor | None = None,
    dilation: int = 1,
    norm: NormMode = "sum",
    centre: Tensor | None = None,
) -> Tensor:
    """Run CSPN-style local propagation.

    Parameters
    ----------
    h : Tensor, shape (B, C, H, W)
        Initial map (e.g. an upsampled low-res depth or coarse class scores).
    affinity : Tensor, shape (B, k*k - 1, H, W)
        Raw neighbour affinities, normalised with :func:`normalize_affinity`.
    k : int
        Kernel size (3, 5, 7).
    iterations : int
        Number of propagation steps (>= 0).
    h0 : Tensor, shape (B, C, H, W), optional
        Known values re-imposed after every step where ``mask`` is set (default ``h``).
    mask : Tensor, shape (B, 1 or C, H, W), optional
        1 (or a confidence in [0, 1]) where ``h0`` is known; no re-imposition if None.
    dilation : int
        Neighbour spacing.
    norm : {"sum", "clip", "none"}
        Affinity normalisation.
    centre : Tensor, shape (B, 1, H, W), optional
        Centre weights of already normalised affinities (with ``norm="none"``): skips
        the normalisation pass (e.g. for :func:`affseg.models.ham_fast.ham_affinity_fast`
        with ``normalize=True``).

    Returns
    -------
    Tensor, shape (B, C, H, W)

    References
    ----------
    X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with Convolutional
    Spatial Propagation Network", ECCV 2018.
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    A constant map is a fixed point of any normalised propagation:

    >>> import torch
    >>> h = torch.ones(1, 1, 3, 4)
    >>> torch.allclose(propagate(h, uniform_affinity((1, 3, 4), k=3), k=3, iterations=2), h)
    True
    """
    if h.ndim != 4:
        raise InputError(f"propagated map must be (B, C, H, W), got shape {tuple(h.shape)}")
    kk = k * k - 1
    offsets = neighbour_offsets(k, dilation)
    if affinity.shape != (h.shape[0], kk, *h.shape[-2:]):
        raise InputError(
            f"affinity has shape {tuple(affinity.shape)}; expected "
            f"{(h.shape[0], kk, *h.shape[-2:])} for k={k}"
        )
    if iterations < 0:
        raise InputError(f"iterations must be >= 0, got {iterations}")
    if centre is None:
        a, centre = normalize_affinity(affinity, norm)
    elif norm != "none" or centre.shape != (h.shape[0], 1, *h.shape[-2:]):
        raise InputError('a given centre needs norm="none" and shape (B, 1, H, W)')
    else:
        a = affinity
    a = a.unsqueeze(2)  # (B, K, 1, H, W) broadcasts over channels
    if mask is not None:
        h0 = h if h0 is None else h0
        mask = mask.to(h.dtype)
        keep = 1.0 - mask
        fixed = mask * h0
    grad = torch.is_grad_enabled() and (
        h.requires_grad
        or a.requires_grad
        or (h0 is not None and h0.requires_grad)
        or (mask is not None and mask.requires_grad)
    )
    if not grad and h.device.type == "cpu" and iterations > 0:
        return _propagate_compiled(
            h,
            a[:, :, 0],
            centre[:, 0],
            offsets,
            iterations,
            None if mask is None else (keep, fixed),
        )
    r = (k // 2) * dilation
    hh, ww = h.shape[-2:]
    # unbind once: indexing a[:, n] inside the loop costs a full zero-filled gradient of
    # ``a`` per use in the backward pass (O(K^2) per step); unbind's backward stacks once.
    a_n = a.unbind(1)
    for _ in range(iterations):
        hp = torch.nn.functional.pad(h, (r, r, r, r), mode="replicate")
        out = centre * h
        for n, (dy, dx) in enumerate(offsets):
            out = out + a_n[n] * hp[..., r + dy : r + dy + hh, r + dx : r + dx + ww]
        h = out
        if mask is not None:
            h = keep * h + fixed
    return h


def _propagate_compiled(
    h: Tensor,
    a: Tensor,
    centre: Tensor,
    offsets: list[tuple[int, int]],
    iterations: int,
    masked: tuple[Tensor, Tensor] | None,
) -> Tensor:
    """Inference path of :func:`propagate`: one fused, multi-threaded pass per step.

    Shapes: ``h`` (B, C, H, W), ``a`` (B, K, H, W), ``centre`` (B, H, W); ``masked`` holds
    ``(1 - m, m * h0)`` broadcastable to ``h``. Same arithmetic as the torch path.
    """
    dtype = h.dtype
    hn = np.ascontiguousarray(h.detach().numpy(), dtype=np.float32)
    an = np.ascontiguousarray(a.detach().numpy(), dtype=np.float32)
    cn = np.ascontiguousarray(centre.detach().numpy(), dtype=np.float32)
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if masked is None:
        keep = fixed = np.zeros((1, 1, 1, 1), np.float32)
    else:
        keep = np.ascontiguousarray(
            np.broadcast_to(masked[0].detach().numpy(), hn.shape), dtype=np.float32
        )
        fixed = np.ascontiguousarray(
            np.broadcast_to(masked[1].detach().numpy(), hn.shape), dtype=np.float32
        )
    # compiled: one image row per OpenMP task; per row and neighbour the source row index
    # is clamped once and the x loop runs unclamped except for the |dx| border columns
    out = _kernels.propagate(
        hn, an, cn, offs, int(iterations), keep, fixed, masked is not None, torch.get_num_threads()
    )
    return torch.from_numpy(out).to(dtype)


def uniform_affinity(
    shape: tuple[int, int, int],
    k: int = 3,
    value: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Spatially constant affinities (a plain smoothing kernel), mainly for tests.

    Parameters
    ----------
    shape : (B, H, W)
    k : int
    value : float, optional
        Weight of each neighbour; default ``1 / k^2`` (a box filter).
    dtype : torch.dtype

    Returns
    -------
    Tensor, shape (B, k*k - 1, H, W)

    Examples
    --------
    >>> uniform_affinity((1, 3, 4), k=3).shape
    torch.Size([1, 8, 3, 4])
    """
    b, h, w = shape
    v = 1.0 / (k * k) if value is None else value
    return torch.full((b, k * k - 1, h, w), v, dtype=dtype)


def neighbour_distances(
    emb: Tensor,
    k: int = 3,
    dilation: int = 1,
    geometry: Geometry = "hyperbolic",
    c: float | Tensor = 0.1,
) -> Tensor:
    """Distance of every pixel's embedding to its ``k^2 - 1`` neighbours'.

    Parameters
    ----------
    emb : Tensor, shape (B, D, H, W)
        Embeddings (tangent vectors at the origin for the hyperbolic geometry).
    k, dilation : int
        Neighbourhood (see :func:`neighbour_offsets`).
    geometry : {"hyperbolic", "euclidean"}
    c : float or Tensor
        Ball curvature (hyperbolic only).

    Returns
    -------
    Tensor, shape (B, k*k - 1, H, W)

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> neighbour_distances(torch.zeros(1, 2, 3, 4), 3, geometry="euclidean").shape
    torch.Size([1, 8, 3, 4])
    """
    return neighbour_geometry(emb, k, dilation, geometry, c)[1]


def neighbour_geometry(
    emb: Tensor, k: int, dilation: int, geometry: Geometry, c: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Relative features and distances of every pixel's ``k^2 - 1`` neighbours.

    Hyperbolic: ``logmap0((-x_p) (+) x_n)`` and the geodesic distance of the ball points
    ``x = expmap0(emb)`` (:func:`~affseg.affinity.hyperbolic.gyro_log_distance`);
    Euclidean: ``e_n - e_p`` and its norm.

    Parameters
    ----------
    emb : Tensor, shape (B, D, H, W)
    k, dilation : int
    geometry : {"hyperbolic", "euclidean"}
    c : float or Tensor
        Ball curvature (hyperbolic only).

    Returns
    -------
    rel : Tensor, shape (B, k*k - 1, D, H, W)
    dist : Tensor, shape (B, k*k - 1, H, W)

    Examples
    --------
    >>> import torch
    >>> rel, d = neighbour_geometry(torch.zeros(1, 2, 3, 4), 3, 1, "hyperbolic", 0.1)
    >>> rel.shape, d.shape
    (torch.Size([1, 8, 2, 3, 4]), torch.Size([1, 8, 3, 4]))
    """
    if geometry == "hyperbolic":
        x = expmap0(emb, c, dim=1)
        return gyro_log_distance(x.unsqueeze(1), shift_stack(x, k, dilation), c, dim=2)
    if geometry == "euclidean":
        diff = shift_stack(emb, k, dilation) - emb.unsqueeze(1)
        return diff, (diff * diff).sum(dim=2).clamp_min(1e-12).sqrt()
    raise InputError(f"unknown affinity geometry {geometry!r}; use hyperbolic or euclidean")


def mix_kernels(affinities: list[Tensor], kernels: tuple[int, ...], conf: Tensor) -> Tensor:
    """Confidence-weighted sum of affinities of several kernel sizes, as one kernel.

    One propagation step with the mixed affinities equals the confidence-weighted sum of
    one step per kernel.

    Parameters
    ----------
    affinities : list of Tensor, shapes (B, k_i*k_i - 1, H, W)
        Per-kernel affinities (each summing to at most 1 per pixel).
    kernels : tuple of int
        The sizes ``k_i`` (odd, >= 3), same order.
    conf : Tensor, shape (B, len(kernels), H, W)
        Non-negative confidences summing to 1 per pixel.

    Returns
    -------
    Tensor, shape (B, K*K - 1, H, W) with ``K = max(kernels)``
        Affinities in :func:`neighbour_offsets` order of ``K``; their sum is the
        confidence-weighted sum of the parts' sums (so still <= 1).

    Examples
    --------
    >>> import torch
    >>> a3, a5 = uniform_affinity((1, 2, 2), 3), uniform_affinity((1, 2, 2), 5)
    >>> mixed = mix_kernels([a3, a5], (3, 5), torch.full((1, 2, 2, 2), 0.5))
    >>> mixed.shape
    torch.Size([1, 24, 2, 2])
    """
    if len(affinities) != len(kernels) or conf.shape[1] != len(kernels):
        raise InputError(
            f"{len(affinities)} affinities, {conf.shape[1]} confidences and "
            f"{len(kernels)} kernel sizes must match"
        )
    big = max(kernels)
    pos = {o: i for i, o in enumerate(neighbour_offsets(big))}
    b, _, h, w = affinities[0].shape
    out = affinities[0].new_zeros(b, big * big - 1, h, w)
    for i, (a, k) in enumerate(zip(affinities, kernels, strict=True)):
        index = torch.tensor([pos[o] for o in neighbour_offsets(k)], device=a.device)
        out = out.index_add(1, index, a * conf[:, i : i + 1])
    return out
