"""spec-diff-net: neural diffusion distance on a learned feature grid ([1], Sect. 4).

Pipeline for an image (H, W):

1. the image is resized to (H', W'), the nearest multiples of 16 (aspect ratio kept);
2. the frozen EfficientNet-Lite0 pyramid gives features at strides 2, 4, 8, 16;
3. :class:`FeatureHead` fuses them into grid features at **stride 8** (h, w) = (H'/8, W'/8);
4. the diffusion engine (:mod:`affseg.affinity.diffusion`) builds the local graph on the
   grid, runs the accelerated simultaneous iteration and returns the diffusion embedding
   whose squared row distances are D_t; ``K_D = exp(-tau D_t)``;
5. maps on the grid (K_D rows, segment masks) are brought to image resolution by
   feature-attentional interpolation (Eq. 6) guided by the stride-4 and stride-2 backbone
   features, then by a bilinear resize from (H'/2, W'/2) to (H, W).

Grid: the paper resizes every image to a fixed 41 x 41 grid. Here the grid is the stride-8
grid of the aspect-preserving resized image (40 x 60 = 2400 nodes for a 321 x 481 BSDS
image): nodes are square in the image, so the isotropic graph window and the
interpolation neighbourhoods are isotropic too, and thin horizontal/vertical structures
are not squashed; the cost (N = 2400 instead of 1681) stays small because the engine's
graph is local.

References
----------
.. [1] J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.backbones import load_backbone
from affseg.backbones.efficientnet_lite import snapped_size
from affseg.errors import AffsegError, CorruptFileError, InputError, first_line

#: File name of the shipped head weights in ``affseg/weights/``.
WEIGHTS_NAME = "spec_diff_net.pt"


@dataclass
class NDDOutput:
    """What :meth:`SpecDiffNet.encode` returns for a batch.

    Attributes
    ----------
    embedding : Tensor, shape (B, N, Ne)
        Diffusion embedding on the grid (N = h * w, row-major); squared distances between
        its rows are the diffusion distances D_t.
    tau : Tensor, scalar
        Scale of the similarity ``K_D = exp(-tau D_t)``.
    grid : tuple of int
        (h, w) of the feature grid.
    features : Tensor, shape (B, C, h, w)
        Grid features that built the graph.
    guide : list of Tensor
        Guidance features for the interpolation, fine to coarse:
        ``[f2 (B, C2, H'/2, W'/2), f4 (B, C4, H'/4, W'/4)]``.
    image_size : tuple of int
        (H, W) of the input images.
    """

    embedding: Tensor
    tau: Tensor
    grid: tuple[int, int]
    features: Tensor
    guide: list[Tensor]
    image_size: tuple[int, int]


class FeatureHead(nn.Module):
    """Fuse a stride-(2, 4, 8, 16) pyramid into features on the stride-8 grid.

    Each level is brought to the stride-8 grid (average pooling for the finer ones,
    bilinear upsampling for the coarser one), the levels are concatenated and passed
    through conv3x3-ReLU-conv3x3-ReLU-conv1x1 (no batch norm, as in the reference).

    Parameters
    ----------
    in_channels : tuple of int
        Channels of the pyramid levels, strides (2, 4, 8, 16).
    hidden : int
    out_channels : int

    References
    ----------
    J. Sun and Z. Xu, "Neural Diffusion Distance for Image Segmentation", NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> pyramid = [torch.zeros(1, c, 32 // s, 32 // s)
    ...            for c, s in zip((16, 24, 40, 112), (2, 4, 8, 16))]   # strides 2..16
    >>> FeatureHead()(pyramid).shape                  # 64-d features at stride 8
    torch.Size([1, 64, 4, 4])
    """

    def __init__(
        self,
        in_channels: tuple[int, ...] = (16, 24, 40, 112),
        hidden: int = 128,
        out_channels: int = 64,
    ) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.net = nn.Sequential(
            nn.Conv2d(sum(in_channels), hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def forward(self, pyramid: list[Tensor]) -> Tensor:
        """Grid features.

        Parameters
        ----------
        pyramid : list of Tensor
            ``[f2, f4, f8, f16]``, shapes (B, C_l, H/s, W/s) with H, W multiples of 16.

        Returns
        -------
        Tensor, shape (B, out_channels, H/8, W/8)
        """
        f2, f4, f8, f16 = (p.float() for p in pyramid)
        size = f8.shape[-2:]
        parts = [
            F.avg_pool2d(f2, 4),
            F.avg_pool2d(f4, 2),
            f8,
            F.interpolate(f16, size=size, mode="bilinear", align_corners=False),
        ]
        return self.net(torch.cat(parts, 1))


class SpecDiffNet(nn.Module):
    """spec-diff-net: frozen backbone -> feature head -> diffusion -> K_D -> interpolation.

    Parameters
    ----------
    backbone : EfficientNetLitePyramid, optional
        Frozen pyramid (default: :func:`affseg.backbones.load_backbone`).
    hidden, feat_dim : int
        Widths of the :class:`FeatureHead`.
    **engine : Any
        Options of the diffusion module (window, number of eigenvectors, iterations, ...).

    Notes
    -----
    Only the head, the diffusion parameters and the interpolation gammas are trained and
    saved (:meth:`trainable_state_dict`); the backbone comes from its PyPI package.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        hidden: int = 128,
        feat_dim: int = 64,
        pretrained_backbone: bool = True,
        **engine: Any,
    ) -> None:
        super().__init__()
        if backbone is None:
            backbone = load_backbone(pretrained_backbone)
        self.backbone = backbone
        self.head = FeatureHead(tuple(backbone.channels), hidden, feat_dim)
        self.config: dict[str, Any] = {"hidden": hidden, "feat_dim": feat_dim, **engine}
        self._build_engine(**engine)

    # ------------------------------------------------------------------ engine glue
    def _build_engine(
        self,
        k: int = 17,
        n_eig: int = 50,
        n_outer: int = 2,
        n_inner: int = 20,
        grad_inner: int = 4,
        mu: float = 0.05,
        t: float = 10.0,
        tau: float = 0.6,
        gammas: tuple[float, ...] = (8.0, 4.0),
        **_: Any,
    ) -> None:
        from affseg.affinity.diffusion import DiffusionDistance

        self.config.update(
            k=k,
            n_eig=n_eig,
            n_outer=n_outer,
            n_inner=n_inner,
            grad_inner=grad_inner,
            mu=mu,
            t=t,
            tau=tau,
            gammas=list(gammas),
        )
        self.diffusion = DiffusionDistance(
            mu=mu, t=t, tau=tau, k=k, n_eig=n_eig, n_outer=n_outer, n_inner=n_inner
        )
        self.grad_inner = int(grad_inner)
        self._build_interpolation(tuple(gammas))

    def _diffuse(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Diffusion embedding (B, N, Ne) and tau of grid features (B, C, h, w).

        The accelerated simultaneous iteration (T = ``n_outer`` QR steps of ``n_inner``
        applications of S) runs without autograd; one more outer step of ``grad_inner``
        applications, the Rayleigh-Ritz projection and the diffusion embedding are
        differentiated. The forward value is that of T + 1 outer steps; the gradient keeps
        the first-order dependence of the eigenvalues (through U^T S U), of the degrees and
        of the last applications, and costs ``grad_inner`` stencils instead of T x
        ``n_inner`` (the training budget is 2 CPU cores). Same path at inference.
        """
        from affseg.affinity.diffusion import simultaneous_iteration, spectral_embedding
        from affseg.affinity.graph import degrees, gaussian_affinity, normalized_operator

        mod = self.diffusion
        dt = features.dtype
        w = gaussian_affinity(features, mod.mu.to(dt), mod.k)
        deg = degrees(w)
        s = normalized_operator(w, deg)
        with torch.no_grad():
            s0 = type(s)(s.coef.detach(), s.k, s.symmetric, s.backend)
            basis = simultaneous_iteration(s0, mod.n_eig, mod.n_outer, mod.n_inner, mod.qr_every)
        if self.grad_inner > 0:
            basis = simultaneous_iteration(s, mod.n_eig, 1, self.grad_inner, None, basis)
        res = spectral_embedding(s, deg, basis, mod.t.to(dt), mod.density, mod.tau.to(dt))
        return res.embedding, mod.tau.to(dt)

    def _build_interpolation(self, gammas: tuple[float, ...]) -> None:
        from affseg.affinity.interpolation import FeatureAttentionalInterpolation

        self.interp = FeatureAttentionalInterpolation(gammas=gammas, window=5)

    def _interpolate(self, maps: Tensor, guide: list[Tensor]) -> Tensor:
        """Stride 8 -> 4 -> 2 (guides are stored fine to coarse: [f2, f4])."""
        return self.interp(maps, [guide[1], guide[0]])

    def diffusion_parameters(self) -> dict[str, float | list[float]]:
        """Current values of the learnable scalars (for logs)."""
        mod = self.diffusion
        gam = [round(float(g), 4) for g in self.interp.gammas.detach()]
        return {
            "mu": float(mod.mu.detach()),
            "t": float(mod.t.detach()),
            "tau": float(mod.tau.detach()),
            "gammas": gam,
        }

    # ------------------------------------------------------------------ public API
    def encode_pyramid(self, pyramid: list[Tensor], image_size: tuple[int, int]) -> NDDOutput:
        """Diffusion embedding from a precomputed backbone pyramid.

        Parameters
        ----------
        pyramid : list of Tensor
            ``[f2, f4, f8, f16]`` of an image of snapped size (H', W') (multiples of 16).
        image_size : tuple of int
            (H, W) that :meth:`upsample` returns by default.

        Returns
        -------
        NDDOutput
        """
        feats = self.head(pyramid)
        emb, tau = self._diffuse(feats)
        h, w = feats.shape[-2:]
        return NDDOutput(
            embedding=emb,
            tau=tau,
            grid=(int(h), int(w)),
            features=feats,
            guide=[pyramid[0].float(), pyramid[1].float()],
            image_size=(int(image_size[0]), int(image_size[1])),
        )

    def pyramid(self, images: Tensor, backbone: Any | None = None) -> list[Tensor]:
        """Frozen backbone pyramid ``[f2, f4, f8, f16]`` of images resized to multiples of 16.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB in [0, 1].
        backbone : callable, optional
            Used instead of ``self.backbone``.

        Returns
        -------
        list of Tensor
            Level s has shape (B, C_s, H' / s, W' / s), (H', W') the snapped size.
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(f"images must be a tensor (B, 3, H, W); got {shape}")
        if not images.is_floating_point():
            raise InputError(f"images must be float RGB in [0, 1]; got dtype {images.dtype}")
        h, w = images.shape[-2:]
        hs, ws = snapped_size(int(h), int(w))
        x = images.float()
        if (hs, ws) != (h, w):
            x = F.interpolate(
                x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
            ).clamp(0, 1)
        with torch.no_grad():
            return list((self.backbone if backbone is None else backbone)(x))

    def encode(self, images: Tensor, backbone: Any | None = None) -> NDDOutput:
        """Diffusion embedding of a batch of images.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB in [0, 1]. They are resized to the nearest multiples of 16, so the
            grid is (h, w) = (round(H / 16) * 2, round(W / 16) * 2), e.g. 40 x 60 for BSDS.
        backbone : callable, optional
            Used instead of ``self.backbone`` (e.g. its batch-norm-folded inference copy,
            :func:`affseg.backbones.fused_lite.fuse_pyramid`).

        Returns
        -------
        NDDOutput

        Notes
        -----
        Gradients flow unless called under ``torch.no_grad()`` (do so for inference).
        """
        pyramid = self.pyramid(images, backbone)
        return self.encode_pyramid(pyramid, (int(images.shape[-2]), int(images.shape[-1])))

    def similarity_rows(self, out: NDDOutput, idx: Tensor | list[int]) -> Tensor:
        """Rows of ``K_D = exp(-tau D_t)`` for some grid nodes.

        Parameters
        ----------
        out : NDDOutput
        idx : Tensor or list of int, shape (M,)
            Node indices in [0, N) (row-major on the grid).

        Returns
        -------
        Tensor, shape (B, M, N)
        """
        emb = out.embedding
        idx_t = torch.as_tensor(idx, dtype=torch.long, device=emb.device)
        sel = emb[:, idx_t]  # (B, M, E)
        d = (
            (sel * sel).sum(-1)[:, :, None]
            + (emb * emb).sum(-1)[:, None, :]
            - 2.0 * sel @ emb.transpose(1, 2)
        ).clamp_min(0.0)
        return torch.exp(-out.tau * d)

    def kernel(self, out: NDDOutput) -> Tensor:
        """Dense ``K_D`` on the grid.

        Returns
        -------
        Tensor, shape (B, N, N)
        """
        from affseg.models.ndd_losses import diffusion_kernel

        return diffusion_kernel(out.embedding, out.tau)

    def upsample(self, maps: Tensor, out: NDDOutput, size: tuple[int, int] | None = None) -> Tensor:
        """Feature-attentional interpolation of grid maps to image resolution (Eq. 6).

        Stride 8 -> 4 -> 2 by feature-attentional interpolation guided by the backbone's
        stride-4 and stride-2 features, then bilinear to ``size``.

        Parameters
        ----------
        maps : Tensor, shape (B, M, h, w)
            Maps on the grid (K_D rows, soft masks, ...).
        out : NDDOutput
        size : tuple of int, optional
            Output size; default ``out.image_size``.

        Returns
        -------
        Tensor, shape (B, M, H, W)
        """
        if maps.ndim != 4 or tuple(maps.shape[-2:]) != out.grid:
            raise InputError(
                f"maps must be (B, M, {out.grid[0]}, {out.grid[1]}); got {tuple(maps.shape)}"
            )
        fine = self._interpolate(maps, out.guide)
        target = out.image_size if size is None else (int(size[0]), int(size[1]))
        if tuple(fine.shape[-2:]) != target:
            fine = F.interpolate(fine, size=target, mode="bilinear", align_corners=False)
        return fine

    # ------------------------------------------------------------------ weights
    def trainable_state_dict(self) -> dict[str, Tensor]:
        """State of everything but the backbone (what is trained and shipped)."""
        return {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.")
        }

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load a :meth:`trainable_state_dict` (strict on the non-backbone keys)."""
        own = set(self.trainable_state_dict())
        missing, unexpected = own - set(state), set(state) - own
        if missing or unexpected:
            raise AffsegError(
                f"spec-diff-net weights do not match the model: missing "
                f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(state, strict=False)

    def train(self, mode: bool = True) -> SpecDiffNet:
        """Set train mode (the backbone always stays frozen in eval mode)."""
        super().train(mode)
        self.backbone.train(False)
        return self


def default_weights_path() -> Path:
    """``affseg/weights/spec_diff_net.pt`` inside the installed package.

    Examples
    --------
    >>> default_weights_path().name
    'spec_diff_net.pt'
    """
    return Path(__file__).resolve().parents[1] / "weights" / WEIGHTS_NAME


def save_weights(
    model: SpecDiffNet, path: str | os.PathLike[str], record: dict[str, Any] | None = None
) -> Path:
    """Write the trainable weights, the model config and a training record, atomically.

    The file holds only tensors and plain Python values, so it loads with
    ``torch.load(..., weights_only=True)``.
    """
    from affseg.data.io import atomic_write

    blob = {
        "format": 1,
        "config": dict(model.config),
        "state_dict": model.trainable_state_dict(),
        "record": _plain(record or {}),
    }
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _plain(obj: Any) -> Any:
    """JSON-like copy (NaN kept) so ``weights_only`` loading accepts it."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    return str(obj)


def load_pretrained(
    path: str | os.PathLike[str] | None = None, backbone: nn.Module | None = None
) -> SpecDiffNet:
    """spec-diff-net with trained weights, in eval mode.

    Parameters
    ----------
    path : path-like, optional
        A file written by :func:`save_weights`, or the bare name of one shipped in
        ``affseg/weights/`` (``spec_diff_net_train_only.pt``: the model validated on
        BSDS500 val); default ``$AFFSEG_NDD_WEIGHTS`` when set (to evaluate other trained
        models through the ``ndd`` method), else the shipped ``affseg/weights/spec_diff_net.pt``
        (trained on train+val).
    backbone : EfficientNetLitePyramid, optional
        Reuse an already loaded backbone.

    Returns
    -------
    SpecDiffNet

    Raises
    ------
    AffsegError
        Missing or unreadable weights file.
    """
    if path is None:
        path = os.environ.get("AFFSEG_NDD_WEIGHTS") or default_weights_path()
    p = Path(path)
    packaged = default_weights_path().parent / p.name
    if not p.is_file() and p.parent == Path(".") and packaged.is_file():
        p = packaged  # a bare name of a file shipped in affseg/weights/
    if not p.is_file():
        raise AffsegError(
            f"spec-diff-net weights not found at {p}; train them with "
            "`affseg train ndd --ship` (see BENCHMARKS.md)"
        )
    try:
        # weights_only: a crafted file cannot run code while it is read
        blob = torch.load(p, map_location="cpu", weights_only=True)
        config, state = dict(blob["config"]), blob["state_dict"]
    except Exception as exc:  # noqa: BLE001 - random bytes, pickled code, foreign files
        raise CorruptFileError(
            f"{p} is not spec-diff-net weights written by affseg ({first_line(exc)})"
        ) from None
    try:
        model = SpecDiffNet(backbone=backbone, **config)
        model.load_trainable_state_dict(state)
        model.record = dict(blob.get("record", {}))
    except Exception as exc:  # noqa: BLE001 - another model's config / tensors
        raise CorruptFileError(
            f"{p} does not match spec-diff-net (wrong kind of weights file: {first_line(exc)})"
        ) from None
    return model.eval()
