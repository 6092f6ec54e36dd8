"""Depth completion from sparse samples by HAM (or naive) spatial propagation.

The NLSPN / CSPN set-up with the HAM affinities of :mod:`affseg.models.ham`:

1. every pixel starts from an initial fill computed outside the network (``init``; by
   default the value of its nearest sample, a Voronoi fill, see
   :func:`affseg.methods.depth_completion.nearest_fill`);
2. a four-level guidance U-Net (:class:`~affseg.models.ham.GuidanceNet`) sees the RGB
   guide, ``init`` (normalised by the mean and standard deviation of the samples), the
   sample mask and the distance to the nearest
   sample, and outputs per-pixel embeddings and one propagation strength per stage;
3. ``init`` is propagated at full resolution with :class:`~affseg.models.ham.HAMAffinity`
   affinities (hyperbolic or Euclidean "naive" distances of the embeddings) over 3 x 3
   neighbourhoods of decreasing dilation (16, 8, 4, 2, 1), ``iterations`` steps each; the
   samples are re-imposed exactly after every step (``h <- (1 - m) A h + m s``, m = the
   sample mask, as in CSPN / NLSPN).

With ``init="fgs"`` the starting map is instead the classical colour-guided interpolation
(:func:`affseg.methods.depth_baselines.fgs_complete`) and the propagation refines it.

Consequences: the samples are reproduced at their pixels, the output stays within the
range of the samples, a constant map is preserved, and since the network sees the depth
only after normalisation, the model commutes with affine changes of the depth unit.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] J. Park, K. Joo, Z. Hu, C.-K. Liu and I. S. Kweon, "Non-Local Spatial Propagation
   Network for Depth Completion", ECCV 2020.
.. [3] X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with
   Convolutional Spatial Propagation Network", ECCV 2018.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from affseg.errors import InputError
from affseg.models.ham import Geometry, GuidanceNet, HAMAffinity, propagate_stages

#: Dilations of the propagation stages, far to near.
DILATIONS: tuple[int, ...] = (16, 8, 4, 2, 1)

#: Distances to the nearest sample are divided by this before entering the network.
DIST_SCALE = 16.0
#: Initial fills the model can be trained on (computed outside the network).
INITS: tuple[str, ...] = ("nearest", "fgs")


class DepthCompletionPropagation(nn.Module):
    """Sparse samples + RGB guide -> dense depth by guided propagation (see module doc).

    Parameters
    ----------
    geometry : {"hyperbolic", "euclidean"}
        HAM (hyperbolic) or naive (Euclidean) embedding distances.
    k : int
        Propagation kernel size.
    iterations : int
        Propagation steps per dilation stage.
    width, embed_dim : int
        Guidance-network size.
    init : {"nearest", "fgs"}
        Which initial fill the model expects as ``init`` (stored in its config):
        the nearest sample's value, or the colour-guided FGS interpolation
        (:func:`affseg.methods.depth_baselines.fgs_complete`).
    curvature : float
        Initial ball curvature of the hyperbolic geometry (learned).
    c_param : {"softplus", "log"}
        Parametrisation of the learned curvature (see
        :class:`~affseg.models.ham.HAMAffinity`).

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = DepthCompletionPropagation("euclidean", width=4, embed_dim=2, iterations=1)
    >>> init = torch.full((1, 1, 24, 32), 3.0)
    >>> mask = torch.zeros(1, 1, 24, 32)
    >>> mask[..., 5, 7] = 1.0
    >>> out = net(torch.zeros(1, 3, 24, 32), init, mask, torch.ones(1, 1, 24, 32))
    >>> out.shape, bool(torch.allclose(out, init))
    (torch.Size([1, 1, 24, 32]), True)
    """

    def __init__(
        self,
        geometry: Geometry = "hyperbolic",
        k: int = 3,
        iterations: int = 4,
        width: int = 16,
        embed_dim: int = 8,
        init: str = "nearest",
        curvature: float = 0.1,
        c_param: Literal["softplus", "log"] = "softplus",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise InputError(f"unknown initial fill {init!r}; use {' or '.join(INITS)}")
        if not (math.isfinite(curvature) and curvature > 0):
            raise InputError(f"curvature must be a positive number, got {curvature}")
        self.init = init
        self.guide = GuidanceNet(6, width, embed_dim, n_aux=len(DILATIONS), levels=4)
        self.affinity = HAMAffinity(geometry, k, c=float(curvature), c_param=c_param)
        self.init_curvature = float(curvature)
        self.k = k
        self.iterations = iterations
        with torch.no_grad():  # start with strong propagation
            self.guide.head.bias[embed_dim:] = 2.0

    def config(self) -> dict[str, object]:
        """Constructor arguments (stored with the weights)."""
        return {
            "geometry": self.affinity.geometry,
            "k": self.k,
            "iterations": self.iterations,
            "width": self.guide.enc0[0].out_channels,
            "embed_dim": self.guide.embed_dim,
            "init": self.init,
            "curvature": self.init_curvature,
            "c_param": self.affinity.c_param,
        }

    def forward(
        self,
        rgb: Tensor,
        init: Tensor,
        mask: Tensor,
        dist: Tensor,
        iterations: int | None = None,
    ) -> Tensor:
        """Complete a depth map.

        Parameters
        ----------
        rgb : Tensor, shape (B, 3, H, W), float in [0, 1]
        init : Tensor, shape (B, 1, H, W)
            Nearest-sample fill (equal to the samples where ``mask`` is 1); any unit.
        mask : Tensor, shape (B, 1, H, W)
            1 at the samples, 0 elsewhere (at least one sample per image).
        dist : Tensor, shape (B, 1, H, W)
            Distance of each pixel to its nearest sample, in pixels.
        iterations : int, optional
            Override the steps per dilation stage.

        Returns
        -------
        Tensor, shape (B, 1, H, W)
            Dense depth, equal to ``init`` where ``mask`` is 1.
        """
        shape = (rgb.shape[0], 1, *rgb.shape[-2:])
        if rgb.shape[1] != 3 or any(t.shape != shape for t in (init, mask, dist)):
            raise InputError(
                f"depth completion needs rgb (B, 3, H, W) and init/mask/dist {shape}; got "
                f"{tuple(rgb.shape)}, {tuple(init.shape)}, {tuple(mask.shape)}, "
                f"{tuple(dist.shape)}"
            )
        steps = self.iterations if iterations is None else iterations
        n = mask.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0)
        mean = (init * mask).sum(dim=(-2, -1), keepdim=True) / n
        var = (((init - mean) * mask) ** 2).sum(dim=(-2, -1), keepdim=True) / n
        scale = var.sqrt().clamp_min(1e-6 * (mean.abs() + 1.0))
        x = torch.cat([rgb, (init - mean) / scale, mask, dist / DIST_SCALE], 1)
        emb, aux = self.guide(x)
        strength = torch.sigmoid(aux)
        return propagate_stages(
            self.affinity, init, emb, strength, DILATIONS, steps, h0=init, mask=mask
        )[0]
