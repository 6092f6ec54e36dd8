"""Hyperbolic affinity learning (HAM, Park et al., ICML 2023) and a guided propagation network.

A small guidance network maps the image (plus, for depth, the upsampled input) to
per-pixel embeddings. :class:`HAMAffinity` turns embeddings into propagation affinities:

1. ``geometry="hyperbolic"``: embeddings are tangent vectors, mapped into the Poincare
   ball by ``expmap0`` (curvature ``c`` learned, init 0.1 as in UniDC); the distance of a
   pixel to each of its ``k^2 - 1`` neighbours is the geodesic distance.
   ``geometry="euclidean"`` ("naive"): the same embeddings, Euclidean distance. Everything
   else (network, training, propagation) is shared so the two compare on equal terms.
2. **Geodesic weight**: the distances are normalised per pixel by a softmax of
   ``-d / tau`` (learned temperature), so near neighbours get most of the weight.
3. **Beta-priority**: neighbours are ranked by distance and each rank ``r`` has a learned
   gain ``sigmoid(beta_r)`` (initialised decreasing with the rank): the closest neighbours
   have priority. (UniDC sorts the neighbour features and scales them by the HNN++
   beta-concatenation ratio before a Mobius linear layer; this is the per-pixel,
   position-preserving form of that ordering, see BENCHMARKS.md ``## HAM``.) With
   ``head_dim`` set, UniDC's form is added too:
   :class:`~affseg.models.ham_head.RankedNeighbourHead` (sorted, geodesic-weighted,
   beta-concatenated neighbour features -> Mobius linear layer -> per-rank logits).

The affinity of neighbour ``n`` is ``s_p * softmax(-d/tau)_n * sigmoid(beta_rank(n))``
with ``s_p`` a learned propagation strength in [0, 1]; its absolute sum is <= 1.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.affinity.propagation import (
    GEOMETRIES,
    Geometry,
    mix_kernels,
    neighbour_geometry,
    propagate,
)
from affseg.errors import InputError
from affseg.models.ham_head import RankedNeighbourHead


class HAMAffinity(nn.Module):
    """Affinities from embeddings: geodesic weight x beta-priority x strength.

    Parameters
    ----------
    geometry : {"hyperbolic", "euclidean"}
    k : int
        Neighbourhood size (3, 5, 7).
    c : float
        Initial curvature (learned when ``learn_c``).
    learn_c : bool
    head_dim : int, optional
        If given (the embedding size D), add the UniDC-style
        :class:`~affseg.models.ham_head.RankedNeighbourHead`: its per-neighbour logits are
        added to ``-d / tau`` inside the softmax (it starts near zero, i.e. near the plain
        geodesic weight). None (default): no head.
    c_param : {"softplus", "log"}
        Parametrisation of the learned curvature: ``softplus(raw) + 1e-4`` (default) or
        ``exp(raw)`` (scale-free: a step changes c by a fixed factor).
    stable_rank : bool
        Rank tied distances by neighbour index (a stable sort), so that the ranks are
        reproducible by another implementation (:mod:`affseg.models.ham_fast`); default
        False (the unspecified tie order of earlier models).

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> ham = HAMAffinity("hyperbolic", k=3)
    >>> ham(torch.zeros(1, 8, 3, 4), torch.ones(1, 1, 3, 4)).shape   # k*k - 1 neighbours
    torch.Size([1, 8, 3, 4])
    """

    def __init__(
        self,
        geometry: Geometry = "hyperbolic",
        k: int = 3,
        c: float = 0.1,
        learn_c: bool = True,
        head_dim: int | None = None,
        c_param: Literal["softplus", "log"] = "softplus",
        stable_rank: bool = False,
    ) -> None:
        super().__init__()
        self.stable_rank = stable_rank
        if geometry not in GEOMETRIES:
            raise InputError(f"unknown affinity geometry {geometry!r}; use hyperbolic or euclidean")
        if c_param not in ("softplus", "log"):
            raise InputError(f"unknown curvature parametrisation {c_param!r}; use softplus or log")
        self.geometry = geometry
        self.k = k
        self.c_param = c_param
        kk = k * k - 1
        raw_c = torch.tensor(math.log(math.expm1(c)) if c_param == "softplus" else math.log(c))
        self.raw_c = nn.Parameter(raw_c) if learn_c else nn.Parameter(raw_c, False)
        self.log_tau = nn.Parameter(torch.zeros(()))
        self.beta = nn.Parameter(torch.linspace(2.0, -1.0, kk))
        self.head = None if head_dim is None else RankedNeighbourHead(geometry, k, head_dim)

    @property
    def curvature(self) -> Tensor:
        """The ball curvature ``c > 0`` (scalar tensor)."""
        if self.c_param == "log":
            return self.raw_c.exp()
        return F.softplus(self.raw_c) + 1e-4

    def forward(self, emb: Tensor, strength: Tensor, dilation: int = 1) -> Tensor:
        """Affinities for :func:`~affseg.affinity.propagation.propagate` (``norm="clip"``).

        Parameters
        ----------
        emb : Tensor, shape (B, D, H, W)
        strength : Tensor, shape (B, 1, H, W)
            Propagation strength in [0, 1].
        dilation : int

        Returns
        -------
        Tensor, shape (B, k*k - 1, H, W)
            Non-negative, summing to at most ``strength`` per pixel.
        """
        c = self.curvature
        rel, d = neighbour_geometry(emb, self.k, dilation, self.geometry, c)
        logit = -d / self.log_tau.exp()
        order = (
            d.detach().argsort(dim=1, stable=True)
            if self.stable_rank
            else d.detach().argsort(dim=1)
        )
        rank = order.argsort(dim=1)
        if self.head is not None:
            logit = logit + self.head(rel, torch.softmax(logit, dim=1), order, c)
        priority = torch.sigmoid(self.beta)[rank]
        return strength * torch.softmax(logit, dim=1) * priority


def curvature_adam(
    model: nn.Module, affinity: HAMAffinity, lr: float, c_lr_mult: float = 1.0
) -> torch.optim.Adam:
    """Adam over ``model``'s parameters, with the curvature of ``affinity`` at ``lr * c_lr_mult``.

    Parameters
    ----------
    model : nn.Module
        The model that holds ``affinity``.
    affinity : HAMAffinity
    lr : float
    c_lr_mult : float
        The curvature's learning rate as a multiple of ``lr``.

    Examples
    --------
    >>> ham = HAMAffinity("hyperbolic")
    >>> [(len(g["params"]), g["lr"]) for g in curvature_adam(ham, ham, 1e-3, 10.0).param_groups]
    [(2, 0.001), (1, 0.01)]
    """
    rest = [q for q in model.parameters() if q is not affinity.raw_c]
    return torch.optim.Adam(
        [{"params": rest}, {"params": [affinity.raw_c], "lr": lr * c_lr_mult}], lr=lr
    )


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Two 3 x 3 conv + ReLU layers (the first with ``stride``): (B, cin, H, W) ->
    (B, cout, H / stride, W / stride). The unit of the guidance U-Nets.

    Examples
    --------
    >>> import torch
    >>> conv_block(3, 4, stride=2)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 4, 4, 4])
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class GuidanceNet(nn.Module):
    """A small three-level U-Net: input channels -> embeddings and auxiliary maps.

    Parameters
    ----------
    in_ch : int
    width : int
        Channels at full resolution (x2, x4 at strides 2, 4).
    embed_dim : int
        Embedding size D.
    n_aux : int
        Auxiliary logit maps (propagation strength, confidence, ...).

    Examples
    --------
    >>> import torch
    >>> emb, aux = GuidanceNet(in_ch=4, width=8, embed_dim=2)(torch.zeros(1, 4, 16, 16))
    >>> emb.shape, aux.shape
    (torch.Size([1, 2, 16, 16]), torch.Size([1, 2, 16, 16]))
    """

    def __init__(self, in_ch: int = 4, width: int = 16, embed_dim: int = 8, n_aux: int = 2) -> None:
        super().__init__()
        self.enc0 = conv_block(in_ch, width)
        self.enc1 = conv_block(width, 2 * width, 2)
        self.enc2 = conv_block(2 * width, 4 * width, 2)
        self.dec1 = conv_block(6 * width, 2 * width)
        self.dec0 = conv_block(3 * width, width)
        self.head = nn.Conv2d(width, embed_dim + n_aux, 1)
        self.embed_dim = embed_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map (B, in_ch, H, W) (H, W divisible by 4) to embeddings and auxiliary logits.

        Returns
        -------
        emb : Tensor, shape (B, embed_dim, H, W)
        aux : Tensor, shape (B, n_aux, H, W)
        """
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        d1 = self.dec1(
            torch.cat(
                [F.interpolate(e2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1
            )
        )
        d0 = self.dec0(
            torch.cat(
                [F.interpolate(d1, size=e0.shape[-2:], mode="bilinear", align_corners=False), e0], 1
            )
        )
        out = self.head(d0)
        return out[:, : self.embed_dim], out[:, self.embed_dim :]


# DepthSRPropagation (Task A) lives in affseg.models.depth_sr_net.


class SegRefinePropagation(nn.Module):
    """Refine coarse class scores by HAM (or naive) propagation at full resolution.

    The guidance network sees the image and the coarse class probabilities; the
    probabilities are propagated with its affinities, the coarse ones softly re-imposed
    with a learned per-pixel confidence.

    Parameters
    ----------
    num_classes : int
    geometry : {"hyperbolic", "euclidean"}
    k, iterations, width, embed_dim : int
    kernels : tuple of int, optional
        Several kernel sizes (e.g. ``(3, 5, 7)``, UniDC): one affinity module per size
        (sharing the curvature), mixed per pixel by softmax confidences predicted by the
        guidance network (:func:`~affseg.affinity.propagation.mix_kernels`). Default ``(k,)``.
    head : bool
        Add the UniDC-style ranked-neighbour head to every affinity module.
    c : float
        Initial curvature.
    c_param : {"softplus", "log"}
        Curvature parametrisation (see :class:`HAMAffinity`).

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = SegRefinePropagation(3, width=4, embed_dim=2, iterations=2)
    >>> net(torch.zeros(1, 3, 16, 16), torch.full((1, 3, 16, 16), 1 / 3)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        num_classes: int,
        geometry: Geometry = "hyperbolic",
        k: int = 3,
        iterations: int = 18,
        width: int = 16,
        embed_dim: int = 8,
        kernels: tuple[int, ...] | None = None,
        head: bool = False,
        c: float = 0.1,
        c_param: Literal["softplus", "log"] = "softplus",
    ) -> None:
        super().__init__()
        self.kernels = (k,) if kernels is None else tuple(kernels)
        n_aux = 2 + (len(self.kernels) if len(self.kernels) > 1 else 0)
        self.guide = GuidanceNet(3 + num_classes, width, embed_dim, n_aux=n_aux)
        self.affinities = nn.ModuleList(
            HAMAffinity(geometry, kk, c, head_dim=embed_dim if head else None, c_param=c_param)
            for kk in self.kernels
        )
        for a in self.affinities[1:]:  # one curvature for the whole model
            a.raw_c = self.affinities[0].raw_c
        self.k = max(self.kernels)
        self.iterations = iterations
        with torch.no_grad():
            self.guide.head.bias[embed_dim] = 2.0
            self.guide.head.bias[embed_dim + 1] = -3.0

    @property
    def affinity(self) -> HAMAffinity:
        """The (first) affinity module; it holds the shared curvature."""
        return self.affinities[0]

    def forward(self, rgb: Tensor, probs: Tensor) -> Tensor:
        """Refine ``probs``.

        Parameters
        ----------
        rgb : Tensor, shape (B, 3, H, W), float in [0, 1] (H, W divisible by 4)
        probs : Tensor, shape (B, C, H, W)
            Coarse class probabilities.

        Returns
        -------
        Tensor, shape (B, C, H, W)
            Refined probabilities (each pixel still sums to 1).
        """
        emb, aux = self.guide(torch.cat([rgb, probs], 1))
        strength = torch.sigmoid(aux[:, :1])
        affs = [m(emb, strength) for m in self.affinities]
        if len(affs) == 1:
            aff = affs[0]
        else:
            aff = mix_kernels(affs, self.kernels, torch.softmax(aux[:, 2:], dim=1))
        return propagate(
            probs,
            aff,
            self.k,
            self.iterations,
            h0=probs,
            mask=torch.sigmoid(aux[:, 1:2]),
            norm="clip",
        )
