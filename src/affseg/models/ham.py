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
import time
from collections.abc import Sequence
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
    """A small U-Net: input channels -> embeddings and auxiliary maps.

    The guidance network of every HAM model: ``levels`` encoder levels at strides 1, 2,
    4, ... (channels ``width``, doubled per level, capped at ``4 * width``), decoders
    that upsample bilinearly and concatenate the skip connection, and a 1 x 1 head.
    Three levels (default) for :class:`SegRefinePropagation` and
    :class:`~affseg.models.depth_sr_fast.FastDepthSR`, four for
    :class:`~affseg.models.depth_completion_net.DepthCompletionPropagation`.

    Parameters
    ----------
    in_ch : int
    width : int
        Channels at full resolution.
    embed_dim : int
        Embedding size D.
    n_aux : int
        Auxiliary logit maps (propagation strength, confidence, ...).
    levels : int
        Encoder levels (>= 2); the input size must be divisible by ``2 ** (levels - 1)``.

    Examples
    --------
    >>> import torch
    >>> emb, aux = GuidanceNet(in_ch=4, width=8, embed_dim=2)(torch.zeros(1, 4, 16, 16))
    >>> emb.shape, aux.shape
    (torch.Size([1, 2, 16, 16]), torch.Size([1, 2, 16, 16]))
    >>> net = GuidanceNet(in_ch=4, width=8, embed_dim=2, n_aux=5, levels=4)
    >>> net(torch.zeros(1, 4, 16, 16))[1].shape
    torch.Size([1, 5, 16, 16])
    """

    def __init__(
        self, in_ch: int = 4, width: int = 16, embed_dim: int = 8, n_aux: int = 2, levels: int = 3
    ) -> None:
        super().__init__()
        if levels < 2:
            raise InputError(f"a guidance U-Net needs at least 2 levels, got {levels}")
        chans = [width * min(2**i, 4) for i in range(levels)]
        # enc0 .. enc{levels-1}, then dec{levels-2} .. dec0 (the state-dict keys and the
        # order of the random initialisation of the three- and four-level networks)
        for i, c in enumerate(chans):
            self.add_module(f"enc{i}", conv_block(chans[i - 1] if i else in_ch, c, 2 if i else 1))
        for i in reversed(range(levels - 1)):
            self.add_module(f"dec{i}", conv_block(chans[i + 1] + chans[i], chans[i]))
        self.head = nn.Conv2d(width, embed_dim + n_aux, 1)
        self.embed_dim = embed_dim
        self.levels = levels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map (B, in_ch, H, W) to embeddings and auxiliary logits.

        Parameters
        ----------
        x : Tensor, shape (B, in_ch, H, W)
            H and W divisible by ``2 ** (levels - 1)``.

        Returns
        -------
        emb : Tensor, shape (B, embed_dim, H, W)
        aux : Tensor, shape (B, n_aux, H, W)
        """
        skips = [self.enc0(x)]
        for i in range(1, self.levels):
            skips.append(getattr(self, f"enc{i}")(skips[-1]))
        d = skips[-1]
        for i in reversed(range(self.levels - 1)):
            e = skips[i]
            up = F.interpolate(d, size=e.shape[-2:], mode="bilinear", align_corners=False)
            d = getattr(self, f"dec{i}")(torch.cat([up, e], 1))
        out = self.head(d)
        return out[:, : self.embed_dim], out[:, self.embed_dim :]


def propagate_stages(
    affinity: HAMAffinity,
    h: Tensor,
    emb: Tensor,
    strength: Tensor,
    dilations: Sequence[int],
    iterations: int,
    *,
    h0: Tensor,
    mask: Tensor,
    fast: bool = False,
) -> tuple[Tensor, float]:
    """Propagate ``h`` over stages of decreasing dilation with HAM affinities.

    Stage ``i`` computes the affinities of ``emb`` at dilation ``dilations[i]`` with
    strength ``strength[:, i]`` and runs ``iterations`` steps of
    :func:`~affseg.affinity.propagation.propagate` (``norm="clip"``), re-imposing ``h0``
    with weight ``mask`` after every step. The stage loop of the depth models.

    Parameters
    ----------
    affinity : HAMAffinity
    h : Tensor, shape (B, C, H, W)
        Start of the propagation.
    emb : Tensor, shape (B, D, H, W)
        Embeddings.
    strength : Tensor, shape (B, len(dilations), H, W)
        Propagation strength in [0, 1] per stage.
    dilations : sequence of int
        One stage per dilation, in order (far to near).
    iterations : int
        Steps per stage.
    h0 : Tensor, shape (B, C, H, W)
        Data term.
    mask : Tensor, shape (B, 1 or C, H, W)
        Its weight (a confidence in [0, 1] or a 0/1 sample mask).
    fast : bool
        Affinities from the fused compiled kernel
        (:func:`~affseg.models.ham_fast.ham_affinity_fast`; no autograd, CPU, no ranked
        head, ``stable_rank`` for equality with the torch path).

    Returns
    -------
    Tensor, shape (B, C, H, W)
        The propagated map.
    float
        Seconds spent computing the affinities.

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> ham = HAMAffinity("euclidean")
    >>> h = torch.full((1, 1, 8, 8), 2.0)
    >>> out, _ = propagate_stages(
    ...     ham, h, torch.randn(1, 2, 8, 8), torch.ones(1, 2, 8, 8), (2, 1), 3,
    ...     h0=h, mask=torch.zeros(1, 1, 8, 8),
    ... )
    >>> bool(torch.allclose(out, h))
    True
    """
    points = None
    if fast:
        from affseg.models.ham_fast import ham_affinity_fast, ham_points

        points = ham_points(affinity, emb)
    cur, t_aff = h, 0.0
    for i, dil in enumerate(dilations):
        ta = time.perf_counter()
        if fast:
            aff, centre = ham_affinity_fast(
                affinity, emb, strength[:, i : i + 1], dil, points, normalize=True
            )
            tb = time.perf_counter()
            cur = propagate(
                cur,
                aff,
                affinity.k,
                iterations,
                h0=h0,
                mask=mask,
                dilation=dil,
                norm="none",
                centre=centre,
            )
        else:
            aff = affinity(emb, strength[:, i : i + 1], dilation=dil)
            tb = time.perf_counter()
            cur = propagate(
                cur, aff, affinity.k, iterations, h0=h0, mask=mask, dilation=dil, norm="clip"
            )
        t_aff += tb - ta
    return cur, t_aff


#: Re-imposition rules of :class:`SegRefinePropagation`.
REIMPOSE = ("learned", "confident")


class SegRefinePropagation(nn.Module):
    """Refine coarse class scores by HAM (or naive) propagation at the resolution given.

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
    reimpose : {"learned", "confident"}
        Confidence ``m`` with which the coarse probabilities ``p`` are re-imposed after
        every step (``h <- (1 - m) A h + m p``): ``"learned"`` a per-pixel sigmoid output
        of the guidance network, with the propagation strength (the affinities' sum) a
        free sigmoid output too; both can learn the identity (``m = 1`` or strength 0),
        and on a strong head they do. ``"confident"``: ``m = max_c p^2`` and the strength
        in [1/2, 1], so pixels the coarse scores are sure of stay and the others (object
        borders) are filled in by propagation from their neighbours, as seeds are by
        DifNet's random walk.

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.
    P. Jiang, F. Gu, Y. Wang, C. Tu and B. Chen, "DifNet: Semantic Segmentation by
    Diffusion Networks", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = SegRefinePropagation(3, width=4, embed_dim=2, iterations=2, reimpose="confident")
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
        reimpose: Literal["learned", "confident"] = "learned",
    ) -> None:
        super().__init__()
        if reimpose not in REIMPOSE:
            raise ValueError(f"reimpose must be one of {REIMPOSE}, got {reimpose!r}")
        self.reimpose = reimpose
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
        strength, mask = torch.sigmoid(aux[:, :1]), torch.sigmoid(aux[:, 1:2])
        if self.reimpose == "confident":  # seeds by confidence; propagation always on
            strength, mask = 0.5 + 0.5 * strength, probs.amax(1, keepdim=True).square()
        affs = [m(emb, strength) for m in self.affinities]
        if len(affs) == 1:
            aff = affs[0]
        else:
            aff = mix_kernels(affs, self.kernels, torch.softmax(aux[:, 2:], dim=1))
        return propagate(probs, aff, self.k, self.iterations, h0=probs, mask=mask, norm="clip")
