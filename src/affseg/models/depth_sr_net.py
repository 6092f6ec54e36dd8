"""Guided depth super-resolution by full-resolution HAM (or naive) propagation.

The CSPN / NLSPN depth-completion set-up applied to super-resolution:

1. the noisy low-res disparity is upsampled bicubically to the guide's resolution (``up``);
2. a guidance U-Net sees the RGB guide, ``up`` and the factor and outputs per-pixel
   embeddings, one propagation strength per dilation and a data confidence ``m``;
3. ``up`` is propagated at **full resolution** with :class:`~affseg.models.ham.HAMAffinity`
   affinities (hyperbolic or Euclidean "naive" distances of the embeddings) over 3 x 3
   neighbourhoods of decreasing dilation (16, 8, 4, 2, 1: far reach first, then detail),
   ``iterations`` steps each, re-imposing ``up`` softly with the learned confidence ``m``
   after every step (``h <- (1 - m) A h + m up``: a learned, edge-aware data term instead
   of hard re-imposition of the noisy samples).

One model serves every factor (the factor is an input channel; training cycles 2..16).
Propagation never leaves the range of ``up`` and preserves constants.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with Convolutional
   Spatial Propagation Network", ECCV 2018.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.affinity.propagation import propagate
from affseg.errors import InputError
from affseg.models.ham import Geometry, HAMAffinity, conv_block

#: Fixed normalisation of disparity values (8-bit units) fed to the guidance network.
DEPTH_CENTER, DEPTH_SCALE = 128.0, 64.0
#: Dilations of the propagation stages, far to near.
DILATIONS: tuple[int, ...] = (16, 8, 4, 2, 1)


class DepthGuideNet(nn.Module):
    """Four-level U-Net (strides 1, 2, 4, 8): guide -> embeddings and auxiliary logits.

    Parameters
    ----------
    in_ch : int
    width : int
        Channels at full resolution (doubled per level, capped at ``4 * width``).
    embed_dim : int
    n_aux : int
    """

    def __init__(self, in_ch: int, width: int, embed_dim: int, n_aux: int) -> None:
        super().__init__()
        w0, w1, w2, w3 = width, 2 * width, 4 * width, 4 * width
        self.enc0 = conv_block(in_ch, w0)
        self.enc1 = conv_block(w0, w1, 2)
        self.enc2 = conv_block(w1, w2, 2)
        self.enc3 = conv_block(w2, w3, 2)
        self.dec2 = conv_block(w3 + w2, w2)
        self.dec1 = conv_block(w2 + w1, w1)
        self.dec0 = conv_block(w1 + w0, w0)
        self.head = nn.Conv2d(w0, embed_dim + n_aux, 1)
        self.embed_dim = embed_dim

    @staticmethod
    def _up_cat(x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat(
            [F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map (B, in_ch, H, W) to embeddings (B, embed_dim, H, W) and (B, n_aux, H, W)."""
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(self._up_cat(e3, e2))
        d1 = self.dec1(self._up_cat(d2, e1))
        d0 = self.dec0(self._up_cat(d1, e0))
        out = self.head(d0)
        return out[:, : self.embed_dim], out[:, self.embed_dim :]


class DepthSRPropagation(nn.Module):
    """Full-resolution guided propagation from the bicubic upsampling (see module doc).

    Parameters
    ----------
    geometry : {"hyperbolic", "euclidean"}
    k : int
        Propagation kernel size.
    iterations : int
        Propagation steps per dilation stage.
    width, embed_dim : int
        Guidance-network size.

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = DepthSRPropagation("euclidean", width=4, embed_dim=2, iterations=1)
    >>> net(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16), factor=2).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        geometry: Geometry = "hyperbolic",
        k: int = 3,
        iterations: int = 4,
        width: int = 16,
        embed_dim: int = 8,
    ) -> None:
        super().__init__()
        n_stage = len(DILATIONS)
        self.guide = DepthGuideNet(5, width, embed_dim, n_aux=n_stage + 1)
        self.affinity = HAMAffinity(geometry, k)
        self.k = k
        self.iterations = iterations
        self.init_aux(2.0, -3.0)  # start with strong propagation, weak data term

    def init_aux(self, strength_logit: float, conf_logit: float) -> None:
        """Set the head biases of the propagation strengths and the data confidence."""
        d, n = self.guide.embed_dim, len(DILATIONS)
        with torch.no_grad():
            self.guide.head.bias[d : d + n] = strength_logit
            self.guide.head.bias[d + n] = conf_logit

    def config(self) -> dict[str, object]:
        """Constructor arguments (stored with the weights)."""
        return {
            "geometry": self.affinity.geometry,
            "k": self.k,
            "iterations": self.iterations,
            "width": self.guide.enc0[0].out_channels,
            "embed_dim": self.guide.embed_dim,
        }

    def forward(
        self, rgb: Tensor, lr_depth: Tensor, factor: int, iterations: int | None = None
    ) -> Tensor:
        """Super-resolve ``lr_depth`` by ``factor`` guided by ``rgb``.

        Parameters
        ----------
        rgb : Tensor, shape (B, 3, H, W), float in [0, 1]
        lr_depth : Tensor, shape (B, 1, H / factor, W / factor)
            Disparity (any unit; the network input is normalised for 8-bit disparity).
        factor : int
            Power of two >= 1 dividing H and W.
        iterations : int, optional
            Override the steps per dilation stage.

        Returns
        -------
        Tensor, shape (B, 1, H, W)
        """
        h, w = rgb.shape[-2:]
        if (
            factor < 1
            or 2 ** int(round(math.log2(factor))) != factor
            or (lr_depth.shape[-2:] != (h // factor, w // factor))
            or h % factor
            or w % factor
        ):
            raise InputError(
                f"depth {tuple(lr_depth.shape[-2:])} and guide {(h, w)} do not match a "
                f"power-of-two factor {factor} (guide size must be divisible by it)"
            )
        steps = self.iterations if iterations is None else iterations
        up = F.interpolate(lr_depth, size=(h, w), mode="bicubic", align_corners=False)
        lo = lr_depth.amin(dim=(-2, -1), keepdim=True)
        hi = lr_depth.amax(dim=(-2, -1), keepdim=True)
        up = torch.minimum(torch.maximum(up, lo), hi)  # no bicubic overshoot
        fchan = torch.full_like(up, math.log2(factor) / 4.0)
        emb, aux = self.guide(torch.cat([rgb, (up - DEPTH_CENTER) / DEPTH_SCALE, fchan], 1))
        n_stage = len(DILATIONS)
        strength = torch.sigmoid(aux[:, :n_stage])
        conf = torch.sigmoid(aux[:, n_stage : n_stage + 1])
        cur = up
        for i, dil in enumerate(DILATIONS):
            aff = self.affinity(emb, strength[:, i : i + 1], dilation=dil)
            cur = propagate(cur, aff, self.k, steps, h0=up, mask=conf, dilation=dil, norm="clip")
        return cur
