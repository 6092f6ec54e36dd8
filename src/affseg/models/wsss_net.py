"""Networks of weakly supervised semantic segmentation guided by NDD (seed 001 Sect. 7).

All of them work on the stride-8 feature grid (h, w), N = h w nodes, on features of the
frozen EfficientNet-Lite0 and the K_D of the fixed spec-diff-net (Fig. 5):

- :class:`FeatureAdapter`: the backbone features F (levels at strides 8, 16, 32 and the
  1280-d head) through a learned 1x1 projection per level, summed on the grid, ReLU.
- :func:`region_mask` / :func:`rfp`: regional feature pooling, M = [K_D > mu],
  F_M = diag(M 1)^-1 M F (mu fixed, default 0.5; M 1 >= 1 since K_D(i, i) = 1).
- :class:`WSSSNet`: RFP -> PRED (P_sg = softmax_classes(F_M H + b)) -> PC-WAP
  (F_gl_c = F^T softmax_spatial(P_sg_c / theta_c), theta_c learned, log-parametrised) ->
  CLAS (P_cl_c = H_c^T F_gl_c + b_c, the PRED classifier shared unless ``share=False``);
  :func:`wsss_loss` = BCE(P_cl, y) + BCE(max_spatial P_sg, y) (the MIL term).
  ``rfp=False`` is the ablation "w/o RFP" (F_M = F), ``share=False`` "w/o sharing".
- :class:`CAMNet`: the GAP baseline (Zhou et al. 2016), class activation maps F H.
- :class:`SegHead`: the segmenter trained on pseudo labels (or on true pixel labels for
  the fully supervised reference): conv3x3-ReLU-conv1x1-ReLU-conv1x1 on F.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Default semantic feature levels (name -> channels) of :class:`FeatureAdapter`.
DEFAULT_LEVELS: dict[str, int] = {"f8": 40, "f16": 112, "f32": 320, "head": 1280}


class FeatureAdapter(nn.Module):
    """Project backbone levels (each at its own resolution) and fuse them on the grid.

    A 1x1 projection commutes with bilinear resizing, so each level is projected at its
    native (coarse) resolution first and then resized to the grid: cheap for the 1280-d
    head at stride 32.

    Parameters
    ----------
    levels : dict of str to int
        Level name -> channels.
    dim : int
        Output channels.
    dropout : float
        Channel dropout on the inputs while training.

    Examples
    --------
    >>> import torch
    >>> a = FeatureAdapter({"f8": 4, "head": 6}, dim=8)
    >>> a({"f8": torch.rand(1, 4, 6, 8), "head": torch.rand(1, 6, 2, 2)}, (6, 8)).shape
    torch.Size([1, 8, 6, 8])
    """

    def __init__(
        self, levels: dict[str, int] | None = None, dim: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.levels = dict(DEFAULT_LEVELS if levels is None else levels)
        self.proj = nn.ModuleDict({k: nn.Conv2d(c, dim, 1) for k, c in self.levels.items()})
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.dim = dim

    def forward(self, feats: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        """Fused features (B, dim, h, w) from ``feats[name]`` (B, C, h_s, w_s)."""
        out = 0.0
        for name, proj in self.proj.items():
            y = proj(self.dropout(feats[name].to(proj.weight.dtype)))
            if tuple(y.shape[-2:]) != tuple(grid):
                y = F.interpolate(y, size=tuple(grid), mode="bilinear", align_corners=False)
            out = out + y
        return F.relu(out)


def diffusion_kernel(emb: Tensor, tau: Tensor | float) -> Tensor:
    """K_D = exp(-tau D_t) (B, N, N) from a diffusion embedding (B, N, Ne).

    Examples
    --------
    >>> import torch
    >>> k = diffusion_kernel(torch.zeros(1, 3, 2), 1.0)
    >>> k.shape, float(k[0, 0, 1])
    (torch.Size([1, 3, 3]), 1.0)
    """
    sq = (emb * emb).sum(-1)
    d = (sq[:, :, None] + sq[:, None, :] - 2.0 * emb @ emb.transpose(1, 2)).clamp_min(0.0)
    t = torch.as_tensor(tau, dtype=emb.dtype, device=emb.device).reshape(-1, 1, 1)
    return torch.exp(-t * d)


def region_mask(kernel: Tensor, mu: float = 0.5) -> Tensor:
    """M = [K_D > mu] as float (B, N, N); the diagonal is forced to 1 (K_D(i, i) = 1).

    Examples
    --------
    >>> import torch
    >>> region_mask(torch.tensor([[[1.0, 0.7], [0.2, 1.0]]]), 0.5)
    tensor([[[1., 1.],
             [0., 1.]]])
    """
    m = (kernel > mu).to(kernel.dtype)
    eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    return torch.maximum(m, eye)


def rfp(features: Tensor, mask: Tensor) -> Tensor:
    """Regional feature pooling F_M = diag(M 1)^-1 M F.

    Parameters
    ----------
    features : Tensor, shape (B, N, d)
    mask : Tensor, shape (B, N, N)
        Binary region masks (row i = the region of node i).

    Returns
    -------
    Tensor, shape (B, N, d)

    Examples
    --------
    >>> import torch
    >>> m = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    >>> rfp(torch.tensor([[[2.0], [4.0]]]), m)
    tensor([[[3.],
             [4.]]])
    """
    return (mask @ features) / mask.sum(-1, keepdim=True).clamp_min(1.0)


class WSSSNet(nn.Module):
    """The network of Fig. 5 on the grid (see the module docstring).

    Parameters
    ----------
    num_classes : int
    dim : int
        Width of F.
    use_rfp : bool
        False: ablation "w/o RFP" (PRED on F directly).
    share : bool
        False: ablation "w/o sharing" (CLAS has its own classifier).
    theta : float
        Initial PC-WAP temperature of every class.
    levels : dict, optional
        Backbone levels (see :class:`FeatureAdapter`).
    dropout : float
    mu : float
        RFP threshold (fixed, not learned, unless ``soft_tau`` is set).
    soft_tau : float, optional
        Soft RFP: M = sigmoid((K_D - mu) / soft_tau) with mu learned (initialised at
        ``mu``); None: the hard mask [K_D > mu] of the paper.

    Examples
    --------
    >>> import torch
    >>> net = WSSSNet(num_classes=3, dim=8, levels={"f8": 4})
    >>> out = net({"f8": torch.rand(2, 4, 3, 5)}, torch.rand(2, 15, 6), 0.5)
    >>> out["p_sg"].shape, out["p_cl"].shape
    (torch.Size([2, 15, 3]), torch.Size([2, 3]))
    """

    def __init__(
        self,
        num_classes: int = 21,
        dim: int = 256,
        use_rfp: bool = True,
        share: bool = True,
        theta: float = 0.1,
        levels: dict[str, int] | None = None,
        dropout: float = 0.0,
        mu: float = 0.5,
        soft_tau: float | None = None,
    ) -> None:
        super().__init__()
        self.config = {
            "num_classes": num_classes,
            "dim": dim,
            "use_rfp": use_rfp,
            "share": share,
            "theta": theta,
            "levels": dict(DEFAULT_LEVELS if levels is None else levels),
            "dropout": dropout,
            "mu": mu,
            "soft_tau": soft_tau,
        }
        self.adapter = FeatureAdapter(levels, dim, dropout)
        self.soft_tau = None if soft_tau is None else float(soft_tau)
        self.mu_param = None if soft_tau is None else nn.Parameter(torch.tensor(float(mu)))
        self.pred = nn.Linear(dim, num_classes)
        self.clas = None if share else nn.Linear(dim, num_classes)
        self.log_theta = nn.Parameter(torch.full((num_classes,), math.log(theta)))
        self.use_rfp = use_rfp
        self.mu = float(mu)

    def forward(
        self,
        feats: dict[str, Tensor],
        emb: Tensor,
        tau: Tensor | float,
        mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Scores of a batch of images with one grid size.

        Parameters
        ----------
        feats : dict of Tensor
            Backbone levels (B, C, h_s, w_s).
        emb : Tensor, shape (B, N, Ne)
            Diffusion embedding on the (h, w) grid.
        tau : float or Tensor (B,)
        mask : Tensor, shape (B, N, N), optional
            Precomputed :func:`region_mask` of these images (at this net's ``mu``).

        Returns
        -------
        dict
            ``p_sg`` (B, N, C) per-pixel class probabilities, ``logits`` (B, N, C) before
            the softmax, ``p_cl`` (B, C) image class logits, ``weights`` (B, N, C) PC-WAP
            weights (each column sums to 1).
        """
        n = emb.shape[1]
        h = feats["f8"].shape[-2]
        grid = (h, n // h)
        f = self.adapter(feats, grid).flatten(2).transpose(1, 2)  # F (B, N, d)
        scores = self.pred(f)  # F H + 1 b^T  (B, N, C)
        if self.use_rfp:
            # F_M H + 1 b^T = diag(M 1)^-1 M (F H + 1 b^T): the rows of diag(M 1)^-1 M sum
            # to one, so pooling the class scores is RFP exactly, at C instead of d columns
            if self.mu_param is not None and self.soft_tau is not None:
                k = diffusion_kernel(emb, tau).to(scores.dtype)
                soft = torch.sigmoid((k - self.mu_param) / self.soft_tau)
                logits = (soft @ scores) / soft.sum(-1, keepdim=True).clamp_min(1e-6)
            else:
                if mask is None:
                    mask = region_mask(diffusion_kernel(emb, tau), self.mu)
                logits = rfp(scores, mask.to(scores.dtype))
        else:
            logits = scores
        p_sg = logits.softmax(-1)
        theta = self.log_theta.exp()
        weights = (p_sg / theta).softmax(1)  # spatial softmax per class
        # CLAS: P_cl_c = H_c^T F_gl_c + b_c with F_gl_c = F^T w_c, i.e. sum_n w_nc (F H)_nc + b_c
        clas = scores if self.clas is None else self.clas(f)
        p_cl = (weights * clas).sum(1)
        return {"p_sg": p_sg, "logits": logits, "p_cl": p_cl, "weights": weights}


def mil_loss(p_sg: Tensor, labels: Tensor) -> Tensor:
    """BCE(max_spatial P_sg, y): P_sg (B, N, C) probabilities, y (B, C) in {0, 1}.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    >>> float(mil_loss(p, torch.tensor([[1.0, 0.0]]))) < 1e-5
    True
    """
    pmax = p_sg.amax(1).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(pmax, labels)


def wsss_loss(out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 12: BCE(P_cl, y) + BCE(max P_sg, y); returns (total, class term, MIL term).

    Examples
    --------
    >>> import torch
    >>> net = WSSSNet(num_classes=2, dim=4, levels={"f8": 3})
    >>> out = net({"f8": torch.rand(1, 3, 2, 4)}, torch.rand(1, 8, 5), 0.5)
    >>> total, cls, mil = wsss_loss(out, torch.tensor([[1.0, 0.0]]))
    >>> bool(torch.isclose(total, cls + mil))
    True
    """
    cls = F.binary_cross_entropy_with_logits(out["p_cl"], labels)
    mil = mil_loss(out["p_sg"], labels)
    return cls + mil, cls, mil


class CAMNet(nn.Module):
    """GAP classifier on F; its class activation maps are F H (Zhou et al. 2016).

    Examples
    --------
    >>> import torch
    >>> net = CAMNet(num_classes=3, dim=8, levels={"f8": 4})
    >>> net({"f8": torch.rand(1, 4, 3, 5)}, (3, 5))["cam"].shape
    torch.Size([1, 15, 3])
    """

    def __init__(
        self,
        num_classes: int = 21,
        dim: int = 256,
        levels: dict[str, int] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = {
            "num_classes": num_classes,
            "dim": dim,
            "levels": dict(DEFAULT_LEVELS if levels is None else levels),
            "dropout": dropout,
        }
        self.adapter = FeatureAdapter(levels, dim, dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, feats: dict[str, Tensor], grid: tuple[int, int]) -> dict[str, Tensor]:
        """``p_cl`` (B, C) logits of GAP features and ``cam`` (B, N, C) = F H^T."""
        f = self.adapter(feats, grid).flatten(2).transpose(1, 2)
        cam = f @ self.fc.weight.t()
        return {"p_cl": self.fc(f.mean(1)), "cam": cam}


class SegHead(nn.Module):
    """Segmentation head on F: conv3x3-ReLU-conv1x1-ReLU-conv1x1 -> class logits on the grid.

    Examples
    --------
    >>> import torch
    >>> head = SegHead(num_classes=3, dim=8, hidden=8, levels={"f8": 4})
    >>> head({"f8": torch.rand(1, 4, 3, 5)}, (3, 5)).shape
    torch.Size([1, 3, 3, 5])
    """

    def __init__(
        self,
        num_classes: int = 21,
        dim: int = 256,
        hidden: int = 256,
        levels: dict[str, int] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config = {
            "num_classes": num_classes,
            "dim": dim,
            "hidden": hidden,
            "levels": dict(DEFAULT_LEVELS if levels is None else levels),
            "dropout": dropout,
        }
        self.adapter = FeatureAdapter(levels, dim, dropout)
        self.net = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def forward(self, feats: dict[str, Tensor], grid: tuple[int, int]) -> Tensor:
        """Class logits (B, C, h, w)."""
        return self.net(self.adapter(feats, grid))
