"""Fast guided depth super-resolution by HAM (or naive) propagation (HAM v2).

1. the noisy low-res disparity is upsampled bicubically to the guide's size (``up``,
   clamped to the input range); with ``init="fgs"`` it is also smoothed by the
   colour-guided fast global smoother (lambda ``fgs_lambda`` x factor), with
   ``init="bilateral"`` by the fast bilateral solver in the paper's depth-SR set-up
   (:func:`bilateral_smooth`), and the guidance network's extra output blends the two per
   pixel (``up`` := blend of both), which gives the propagation a global reach on large
   smooth surfaces (``init="bilateral"``: HAM starts where the classical solver ends);
2. a guidance U-Net runs at **1/stride resolution** (stride 4: 344 x 272 for a
   1376 x 1088 guide) on the area-downsampled guide, ``up`` and the factor, and outputs
   coarse embeddings, one propagation strength per dilation and a data confidence;
3. optionally (``coarse_dilations``, off by default: it raised the validation RMSE, see
   docs/notes/ham.md) a coarse propagation stage smooths ``up`` at the guidance
   resolution with the coarse embeddings; its change is upsampled bilinearly and added
   to ``up`` (the start and data term of the full-resolution stages);
4. full-resolution embeddings are the bilinear upsampling of the coarse ones plus a 3 x 3
   convolution of the full-resolution guide (sharp edges at the cost of one small conv);
   strengths and confidence are upsampled bilinearly;
5. the map is propagated with :class:`~affseg.models.ham.HAMAffinity` affinities over
   3 x 3 neighbourhoods of dilations 8, 4, 2, 1, ``iterations`` steps each, re-imposing
   ``up`` with the learned confidence after every step.

The stages are :func:`~affseg.models.ham.propagate_stages`. Inference (no autograd, CPU)
computes the affinities with the fused compiled kernel of :mod:`affseg.models.ham_fast`
and propagates with the compiled path of
:func:`~affseg.affinity.propagation.propagate`; training uses the torch (autograd) path.
Both give the same output to float tolerance.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] X. Cheng, P. Wang and R. Yang, "Depth Estimation via Affinity Learned with Convolutional
   Spatial Propagation Network", ECCV 2018.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.affinity.bilateral_solver import depth_sr_solve
from affseg.affinity.smoothing import fast_global_smoother
from affseg.errors import InputError
from affseg.models.ham import Geometry, GuidanceNet, HAMAffinity, propagate_stages

#: Fixed normalisation of disparity values (8-bit units) fed to the guidance network.
DEPTH_CENTER, DEPTH_SCALE = 128.0, 64.0
#: Scale of the bicubic-minus-smoothed residual fed to the guidance network (``init="fgs"``).
RESIDUAL_SCALE = 8.0
#: ``init="fgs"``: fast-global-smoother lambda = this x factor, colour sigma (8-bit units).
FGS_LAMBDA_PER_FACTOR, FGS_SIGMA = 25.0, 4.0

InitMode = Literal["bicubic", "fgs", "bilateral"]
#: Start maps that blend the bicubic map with a smoothing of it.
SMOOTHED_INITS = ("fgs", "bilateral")


def _numpy_inputs(rgb: Tensor, depth: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """8-bit guides (B, H, W, 3) and float32 maps (B, 1, H, W) for the classical smoothers."""
    guide = (rgb.detach().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
    return guide.cpu().numpy(), depth.detach().float().cpu().numpy()


def fgs_smooth(rgb: Tensor, depth: Tensor, lam: float, sigma: float) -> Tensor:
    """Colour-guided fast global smoother (Min et al. 2014) of each map of a batch.

    :func:`~affseg.affinity.smoothing.fast_global_smoother` on the 8-bit guide; no gradient flows
    through it (it prepares the network's input).

    Parameters
    ----------
    rgb : Tensor, shape (B, 3, H, W), float in [0, 1]
    depth : Tensor, shape (B, 1, H, W)
    lam, sigma : float
        Smoothness weight and colour scale (8-bit units).

    Returns
    -------
    Tensor, shape (B, 1, H, W), same dtype and device as ``depth``

    Examples
    --------
    >>> import torch
    >>> d = torch.full((1, 1, 8, 8), 5.0)
    >>> bool(torch.allclose(fgs_smooth(torch.zeros(1, 3, 8, 8), d, 100.0, 4.0), d))
    True
    """
    guide, dep = _numpy_inputs(rgb, depth)
    out = np.stack(
        [fast_global_smoother(guide[b], dep[b, 0], lam, sigma) for b in range(dep.shape[0])]
    )[:, None]
    return torch.from_numpy(out).to(depth)


def bilateral_smooth(rgb: Tensor, depth: Tensor, factor: int) -> Tensor:
    """The fast bilateral solver's depth super-resolution of each upsampled map of a batch.

    :func:`~affseg.affinity.bilateral_solver.depth_sr_solve` (the paper's set-up for this
    factor) on the 8-bit guide; no gradient flows through it (it prepares the network's
    input).

    Parameters
    ----------
    rgb : Tensor, shape (B, 3, H, W), float in [0, 1]
    depth : Tensor, shape (B, 1, H, W)
        The low-resolution map upsampled by ``factor``.
    factor : int

    Returns
    -------
    Tensor, shape (B, 1, H, W), same dtype and device as ``depth``

    References
    ----------
    J. T. Barron and B. Poole, "The Fast Bilateral Solver", ECCV 2016, Sec. 5.

    Examples
    --------
    >>> import torch
    >>> d = torch.full((1, 1, 8, 8), 5.0)
    >>> bool(torch.allclose(bilateral_smooth(torch.zeros(1, 3, 8, 8), d, 2), d))
    True
    """
    guide, dep = _numpy_inputs(rgb, depth)
    out = np.stack([depth_sr_solve(guide[b], dep[b, 0], factor) for b in range(dep.shape[0])])
    return torch.from_numpy(out[:, None]).to(depth)


class FastDepthSR(nn.Module):
    """Guided depth SR with a reduced-resolution guidance net (see module doc).

    Parameters
    ----------
    geometry : {"hyperbolic", "euclidean"}
    iterations : int
        Propagation steps per dilation stage.
    width, embed_dim : int
        Guidance-network size.
    stride : int
        Resolution reduction of the guidance network (the guide's size must be divisible
        by ``4 * stride``).
    dilations : tuple of int
        Full-resolution propagation stages, far to near.
    coarse_dilations : tuple of int
        Propagation stages at the guidance resolution, run first (empty: none).
    init : {"bicubic", "fgs", "bilateral"}
        Start and data term of the propagation: the bicubic map, or a learned per-pixel
        blend of it and its fast global smoothing (``"fgs"``, :func:`fgs_smooth`) or its
        fast bilateral solve (``"bilateral"``, :func:`bilateral_smooth`).
    reimpose : {"init", "bicubic"}
        Data term re-imposed after every step with a smoothed init: the blended start, or
        the bicubic map.
    blend : bool
        With a smoothed init: start from a learned per-pixel blend of the bicubic and the
        smoothed map (default), or (``False``) from the smoothed map itself.
    blend_detail : bool
        With a blended start: add a full-resolution 3 x 3 convolution of the guide and the
        bicubic-minus-smoothed residual to the (upsampled) blend logit.
    fgs_lambda, fgs_sigma : float
        Smoother lambda per unit of factor and colour sigma (8-bit units), ``init="fgs"``.
    curvature : float
        Initial ball curvature of the hyperbolic geometry (learned; unused by
        ``"euclidean"``).
    c_param : {"softplus", "log"}
        Parametrisation of the learned curvature (see
        :class:`~affseg.models.ham.HAMAffinity`).
    ranked_head : bool
        Add UniDC's ranked-neighbour head (Mobius / Euclidean linear layer over the
        distance-sorted neighbours, :class:`~affseg.models.ham_head.RankedNeighbourHead`)
        to the affinities. The compiled path does not implement it, so such a model always
        runs the torch path (slower); default False.

    References
    ----------
    J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
    Representation for Spatial Propagation", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = FastDepthSR("euclidean", width=4, embed_dim=2).eval()
    >>> net(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16), factor=2).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        geometry: Geometry = "hyperbolic",
        iterations: int = 2,
        width: int = 16,
        embed_dim: int = 8,
        stride: int = 4,
        dilations: tuple[int, ...] = (8, 4, 2, 1),
        coarse_dilations: tuple[int, ...] = (),
        init: InitMode = "bicubic",
        reimpose: Literal["init", "bicubic"] = "init",
        blend_detail: bool = False,
        fgs_lambda: float = FGS_LAMBDA_PER_FACTOR,
        fgs_sigma: float = FGS_SIGMA,
        curvature: float = 0.1,
        c_param: Literal["softplus", "log"] = "softplus",
        ranked_head: bool = False,
        blend: bool = True,
    ) -> None:
        super().__init__()
        if init not in ("bicubic", *SMOOTHED_INITS):
            raise InputError(f"init must be 'bicubic', 'fgs' or 'bilateral', got {init!r}")
        self.dilations = tuple(int(d) for d in dilations)
        self.coarse_dilations = tuple(int(d) for d in coarse_dilations)
        if reimpose not in ("init", "bicubic"):
            raise InputError(f"reimpose must be 'init' or 'bicubic', got {reimpose!r}")
        self.init = init
        self.reimpose = reimpose
        self.fgs_lambda = float(fgs_lambda)
        self.fgs_sigma = float(fgs_sigma)
        self.blend = bool(blend) and init in SMOOTHED_INITS
        n_aux = len(self.dilations) + 1 + (len(self.coarse_dilations) + 1) * bool(coarse_dilations)
        n_aux += self.blend
        self.guide = GuidanceNet(5 + (init in SMOOTHED_INITS), width, embed_dim, n_aux=n_aux)
        self.detail = nn.Conv2d(3, embed_dim, 3, padding=1)
        self.blend_detail: nn.Conv2d | None = None
        if self.blend and blend_detail:
            # full-resolution correction of the blend logit from the guide and the
            # bicubic-minus-smoothed residual (sharp switching at thin structures)
            self.blend_detail = nn.Conv2d(4, 1, 3, padding=1)
            with torch.no_grad():
                self.blend_detail.weight.mul_(0.1)
                self.blend_detail.bias.zero_()
        if not (math.isfinite(curvature) and curvature > 0):
            raise InputError(f"curvature must be a positive number, got {curvature}")
        self.affinity = HAMAffinity(
            geometry,
            3,
            c=float(curvature),
            c_param=c_param,
            stable_rank=True,
            head_dim=embed_dim if ranked_head else None,
        )
        self.init_curvature = float(curvature)
        self.iterations = iterations
        self.stride = stride
        self.width = width
        self.embed_dim = embed_dim
        self.timings: dict[str, float] = {}
        with torch.no_grad():
            self.guide.head.bias[embed_dim:] = 0.0

    def config(self) -> dict[str, object]:
        """Constructor arguments (stored with the weights)."""
        return {
            "geometry": self.affinity.geometry,
            "iterations": self.iterations,
            "width": self.width,
            "embed_dim": self.embed_dim,
            "stride": self.stride,
            "dilations": list(self.dilations),
            "coarse_dilations": list(self.coarse_dilations),
            "init": self.init,
            "reimpose": self.reimpose,
            "blend_detail": self.blend_detail is not None,
            "blend": self.blend,
            "fgs_lambda": self.fgs_lambda,
            "fgs_sigma": self.fgs_sigma,
            "curvature": self.init_curvature,
            "c_param": self.affinity.c_param,
            "ranked_head": self.affinity.head is not None,
        }

    def forward(
        self,
        rgb: Tensor,
        lr_depth: Tensor,
        factor: int,
        fast: bool | None = None,
        smooth: Tensor | None = None,
    ) -> Tensor:
        """Super-resolve ``lr_depth`` by ``factor`` guided by ``rgb``.

        Parameters
        ----------
        rgb : Tensor, shape (B, 3, H, W), float in [0, 1]
        lr_depth : Tensor, shape (B, 1, H / factor, W / factor)
            Disparity (8-bit units).
        factor : int
            Power of two >= 1 dividing H and W.
        fast : bool, optional
            Use the compiled inference path; default: when autograd is off, the inputs are
            on the CPU and the model has no ranked head. ``False`` forces the torch
            (reference) path.
        smooth : Tensor, shape (B, 1, H, W), optional
            With a smoothed init: the smoothed map computed elsewhere (training computes
            the bilateral solver on whole scenes and crops it); default: computed here
            from the bicubic map.

        Returns
        -------
        Tensor, shape (B, 1, H, W)
        """
        h, w = rgb.shape[-2:]
        m = 4 * self.stride
        if (
            factor < 1
            or 2 ** int(round(math.log2(factor))) != factor
            or lr_depth.shape[-2:] != (h // factor, w // factor)
            or h % factor
            or w % factor
        ):
            raise InputError(
                f"depth {tuple(lr_depth.shape[-2:])} and guide {(h, w)} do not match a "
                f"power-of-two factor {factor} (guide size must be divisible by it)"
            )
        if h % m or w % m:
            raise InputError(f"guide size {(h, w)} must be divisible by {m}")
        has_head = self.affinity.head is not None
        if fast and has_head:
            raise InputError("the compiled path does not implement the ranked head; use fast=False")
        if fast is None:
            fast = not (torch.is_grad_enabled() or has_head) and rgb.device.type == "cpu"
        t0 = time.perf_counter()
        up = F.interpolate(lr_depth, size=(h, w), mode="bicubic", align_corners=False)
        lo = lr_depth.amin(dim=(-2, -1), keepdim=True)
        hi = lr_depth.amax(dim=(-2, -1), keepdim=True)
        up = torch.minimum(torch.maximum(up, lo), hi)
        s = self.stride
        feats = [F.avg_pool2d(rgb, s)]
        t_fgs = 0.0
        if self.init in SMOOTHED_INITS:
            tf = time.perf_counter()
            if smooth is not None:
                if smooth.shape != up.shape:
                    raise InputError(f"smoothed map {tuple(smooth.shape)} != {tuple(up.shape)}")
            elif self.init == "fgs":
                smooth = fgs_smooth(rgb, up, self.fgs_lambda * factor, self.fgs_sigma)
            else:
                smooth = bilateral_smooth(rgb, up, factor)
            t_fgs = time.perf_counter() - tf
            feats += [
                (F.avg_pool2d(smooth, s) - DEPTH_CENTER) / DEPTH_SCALE,
                F.avg_pool2d(up - smooth, s) / RESIDUAL_SCALE,
            ]
        else:
            feats.append((F.avg_pool2d(up, s) - DEPTH_CENTER) / DEPTH_SCALE)
        feats.append(torch.full_like(up[..., ::s, ::s], math.log2(factor) / 4.0))
        small = torch.cat(feats, 1)
        t1 = time.perf_counter()
        emb_c, aux_c = self.guide(small)
        t2 = time.perf_counter()
        n = len(self.dilations)
        bicubic = up
        if self.init in SMOOTHED_INITS and not self.blend:
            up = smooth  # the smoothed map itself is the start and the data term
        elif self.init in SMOOTHED_INITS:
            # per-pixel blend of the bicubic map and its edge-aware global smoothing
            logit = F.interpolate(aux_c[:, -1:], size=(h, w), mode="bilinear", align_corners=False)
            if self.blend_detail is not None:
                res = (up - smooth) / RESIDUAL_SCALE
                logit = logit + self.blend_detail(torch.cat([rgb, res], 1))
            blend = torch.sigmoid(logit)
            up = up + blend * (smooth - up)
            aux_c = aux_c[:, :-1]
        up_c = F.avg_pool2d(up, s)
        if self.coarse_dilations:
            aux_s = torch.sigmoid(aux_c[:, n + 1 :])
            nc = len(self.coarse_dilations)
            cur_c, _ = propagate_stages(
                self.affinity,
                up_c,
                emb_c,
                aux_s[:, :nc],
                self.coarse_dilations,
                self.iterations,
                h0=up_c,
                mask=aux_s[:, nc : nc + 1],
                fast=fast,
            )
            delta = F.interpolate(cur_c - up_c, size=(h, w), mode="bilinear", align_corners=False)
            up = torch.minimum(torch.maximum(up + delta, lo), hi)
        t3 = time.perf_counter()
        emb = F.interpolate(emb_c, size=(h, w), mode="bilinear", align_corners=False)
        emb = emb + self.detail(rgb)
        aux = torch.sigmoid(
            F.interpolate(aux_c[:, : n + 1], size=(h, w), mode="bilinear", align_corners=False)
        )
        t4 = time.perf_counter()
        data = bicubic if self.reimpose == "bicubic" else up
        cur, t_aff = propagate_stages(
            self.affinity,
            up,
            emb,
            aux[:, :n],
            self.dilations,
            self.iterations,
            h0=data,
            mask=aux[:, n : n + 1],
            fast=fast,
        )
        t5 = time.perf_counter()
        self.timings = {
            "upsample_and_pool": t1 - t0 - t_fgs,
            "global_smoother": t_fgs,
            "guidance_net": t2 - t1,
            "coarse_propagation": t3 - t2,
            "embeddings": t4 - t3,
            "affinities": t_aff,
            "propagation": t5 - t4 - t_aff,
        }
        return cur
