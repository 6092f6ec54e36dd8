"""Feature-attentional interpolation (Sun & Xu, NeurIPS 2019, Sect. 4.3, Eq. 6).

A map y on a coarse grid (h, w) (K_D rows, class probabilities, label one-hots, ...) is
brought to a finer grid (H, W) guided by features g (B, C, H, W) of the finer level:

    y_fine[i] = sum_{j in nbhd(i)} softmax_j(-gamma * mean_c (g_i - g~_j)^2) * y[j]

where nbhd(i) are the ``window x window`` (5 x 5) coarse nodes nearest to fine pixel i
(centred on round((i + 0.5) * h / H - 0.5) per axis; nodes outside the grid are left out)
and g~_j is the fine feature map bilinearly sampled at coarse node j's position
(align_corners=False: coarse node p sits at fine coordinate (p + 0.5) H / h - 0.5). The mean
over channels of the squared difference follows the reference code (gamma = 8, 4, 1 for
strides 8 -> 4 -> 2 -> 1 of a coarse-to-fine pyramid).

When H / h and W / w are integers (strides 8 -> 4 -> 2 -> 1) each of the (H/h)(W/w)
sub-pixel phases is a 5 x 5 local operator on the coarse grid, applied with the compiled
stencil of :mod:`affseg.affinity.graph`: memory O(H W (25 + M)), no (25, M, H, W)
intermediate, also in the backward pass. Other ratios use a gather path.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.affinity.graph import LocalOperator, local_sq_distances, valid_mask
from affseg.errors import InputError


def _check(maps: Tensor, guide: Tensor) -> None:
    if not isinstance(maps, Tensor) or maps.ndim != 4 or not maps.is_floating_point():
        raise InputError(
            f"maps must be a float tensor (B, M, h, w); got "
            f"{tuple(maps.shape) if isinstance(maps, Tensor) else type(maps)}"
        )
    if not isinstance(guide, Tensor) or guide.ndim != 4 or guide.shape[0] != maps.shape[0]:
        raise InputError(
            f"guide must be a tensor (B={maps.shape[0]}, C, H, W); got "
            f"{tuple(guide.shape) if isinstance(guide, Tensor) else type(guide)}"
        )
    if guide.shape[2] < maps.shape[2] or guide.shape[3] < maps.shape[3]:
        raise InputError(
            f"guide {tuple(guide.shape[-2:])} must be at least as fine as the "
            f"maps {tuple(maps.shape[-2:])}"
        )


def _centres(fine: int, coarse: int, device: torch.device) -> Tensor:
    """Nearest coarse index of each fine index (align_corners=False geometry)."""
    u = (torch.arange(fine, device=device, dtype=torch.float64) + 0.5) * coarse / fine - 0.5
    return torch.round(u).long().clamp(0, coarse - 1)


def _upsample_phases(
    maps: Tensor, guide: Tensor, coarse_feat: Tensor, gamma: Tensor, window: int
) -> Tensor:
    b, m, h, w = maps.shape
    c, hh, ww = guide.shape[1:]
    sy, sx = hh // h, ww // w
    maps_cl = maps.permute(0, 2, 3, 1).contiguous()
    mask = valid_mask(h, w, window, maps.device)
    phases = []
    for a in range(sy):
        for bb in range(sx):
            g = guide[:, :, a::sy, bb::sx].contiguous()  # strided views hit a slow matmul
            d = local_sq_distances(g, window, other=coarse_feat) / c
            logits = torch.where(mask, -gamma * d, torch.full((), -math.inf, dtype=d.dtype))
            wts = torch.softmax(logits, 1)
            phases.append(LocalOperator(wts, window).apply(maps_cl))  # (B, h, w, M)
    out = torch.stack(phases, 1).reshape(b, sy, sx, h, w, m)
    return out.permute(0, 5, 3, 1, 4, 2).reshape(b, m, hh, ww)


def _upsample_gather(
    maps: Tensor, guide: Tensor, coarse_feat: Tensor, gamma: Tensor, window: int
) -> Tensor:
    b, m, h, w = maps.shape
    c, hh, ww = guide.shape[1:]
    r = window // 2
    py, px = _centres(hh, h, maps.device), _centres(ww, w, maps.device)
    logits, index = [], []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            qy, qx = py + dy, px + dx
            ok = ((qy >= 0) & (qy < h))[:, None] & ((qx >= 0) & (qx < w))[None, :]
            qy, qx = qy.clamp(0, h - 1), qx.clamp(0, w - 1)
            gc = coarse_feat[:, :, qy][:, :, :, qx]  # (B, C, H, W)
            d = ((guide - gc) ** 2).mean(1)
            logits.append(torch.where(ok, -gamma * d, torch.full((), -math.inf, dtype=d.dtype)))
            index.append((qy, qx))
    wts = torch.softmax(torch.stack(logits, 1), 1)  # (B, window^2, H, W)
    out = None
    for o, (qy, qx) in enumerate(index):
        term = wts[:, o : o + 1] * maps[:, :, qy][:, :, :, qx]
        out = term if out is None else out + term
    return out


def attention_upsample(
    maps: Tensor, guide: Tensor, gamma: Tensor | float, window: int = 5, method: str = "auto"
) -> Tensor:
    """One step of feature-attentional interpolation (Eq. 6).

    Parameters
    ----------
    maps : Tensor, shape (B, M, h, w)
        Maps on the coarse grid.
    guide : Tensor, shape (B, C, H, W)
        Features of the finer level (H >= h, W >= w).
    gamma : Tensor (scalar) or float
        Positive attention sharpness (applied to the channel-mean squared difference).
    window : int
        Odd size of the coarse neighbourhood (5 in the paper).
    method : {"auto", "phases", "gather"}
        ``phases`` needs integer ratios H / h, W / w; ``auto`` picks it when possible.

    Returns
    -------
    Tensor, shape (B, M, H, W)
        Convex combinations of the coarse values (weights sum to one).

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> maps, guide = torch.ones(1, 1, 4, 4), torch.zeros(1, 3, 8, 8)
    >>> attention_upsample(maps, guide, gamma=1.0).shape
    torch.Size([1, 1, 8, 8])
    """
    _check(maps, guide)
    g = guide.to(maps.dtype)
    h, w = maps.shape[-2:]
    hh, ww = g.shape[-2:]
    gam = torch.as_tensor(gamma, dtype=maps.dtype, device=maps.device)
    coarse_feat = F.interpolate(g, size=(h, w), mode="bilinear", align_corners=False)
    integer = hh % h == 0 and ww % w == 0
    if method == "phases" and not integer:
        raise InputError(f"phases method needs integer ratios; got {(h, w)} -> {(hh, ww)}")
    if method not in ("auto", "phases", "gather"):
        raise InputError(f"method must be auto, phases or gather; got {method!r}")
    if method == "gather" or not integer or maps.device.type != "cpu":
        return _upsample_gather(maps, g, coarse_feat, gam, window)
    return _upsample_phases(maps, g, coarse_feat, gam, window)


def feature_attentional_upsample(
    maps: Tensor, guides: Sequence[Tensor], gammas: Sequence[float] | Tensor, window: int = 5
) -> Tensor:
    """Coarse-to-fine feature-attentional interpolation through a pyramid.

    Parameters
    ----------
    maps : Tensor, shape (B, M, h, w)
    guides : sequence of Tensor, shapes (B, C_l, H_l, W_l)
        Guidance features of the target levels, coarse to fine (e.g. strides 4, 2, 1 for
        maps at stride 8).
    gammas : sequence of float or Tensor, shape (L,)
        One gamma per level.
    window : int

    Returns
    -------
    Tensor, shape (B, M, H_L, W_L)

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> maps, guide = torch.ones(1, 1, 4, 4), torch.zeros(1, 3, 8, 8)
    >>> feature_attentional_upsample(maps, [guide], [1.0]).shape
    torch.Size([1, 1, 8, 8])
    """
    if len(guides) != len(gammas):
        raise InputError(
            f"need one gamma per guide level; got {len(gammas)} gammas for {len(guides)} levels"
        )
    y = maps
    for g, gam in zip(guides, gammas, strict=True):
        y = attention_upsample(y, g, gam, window)
    return y


class FeatureAttentionalInterpolation(nn.Module):
    """Learnable feature-attentional interpolation (log-parametrised gammas).

    Parameters
    ----------
    gammas : sequence of float
        Initial gamma per level, coarse to fine (reference: 8, 4, 1).
    window : int
        Coarse neighbourhood size (5).
    learnable : bool
        Train the gammas (the paper) or keep them fixed (the reference code).

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> maps, guide = torch.ones(1, 1, 4, 4), torch.zeros(1, 3, 8, 8)
    >>> FeatureAttentionalInterpolation(gammas=(1.0,))(maps, [guide]).shape
    torch.Size([1, 1, 8, 8])
    """

    def __init__(
        self, gammas: Sequence[float] = (8.0, 4.0, 1.0), window: int = 5, learnable: bool = True
    ) -> None:
        super().__init__()
        if not gammas or min(gammas) <= 0:
            raise InputError(f"gammas must be positive; got {list(gammas)}")
        logs = torch.log(torch.tensor([float(g) for g in gammas]))
        if learnable:
            self.log_gamma = nn.Parameter(logs)
        else:
            self.register_buffer("log_gamma", logs)
        self.window = window

    @property
    def gammas(self) -> Tensor:
        """Current gammas, shape (L,)."""
        return self.log_gamma.exp()

    def forward(self, maps: Tensor, guides: Sequence[Tensor]) -> Tensor:
        """Upsample ``maps`` (B, M, h, w) through ``guides`` (coarse to fine).

        Uses the last ``len(guides)`` gammas (so a module built for strides 8 -> 4 -> 2 -> 1
        also serves 4 -> 2 -> 1).

        Returns
        -------
        Tensor, shape (B, M, H_L, W_L)
        """
        n = len(guides)
        if not 1 <= n <= self.log_gamma.numel():
            raise InputError(
                f"got {n} guide levels; this module has {self.log_gamma.numel()} gammas"
            )
        gam = self.gammas[-n:].to(maps.dtype)
        return feature_attentional_upsample(maps, guides, list(gam), self.window)
