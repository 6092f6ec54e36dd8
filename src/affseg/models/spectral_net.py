"""Embedding network of deep spectral clustering (Barnes & Dubrawski, 2018).

A small top-down head on the frozen EfficientNet-Lite0 pyramid
(:func:`affseg.backbones.efficientnet_lite.load_backbone`) predicts d-dimensional
(d = 21 as in the paper) unit embeddings at stride 4; :func:`embed_image` upsamples them
bilinearly to the image and renormalises, so the inner product of two pixels' embeddings
estimates whether they lie in the same segment (trained with
:func:`affseg.affinity.spectral.spectral_loss`).

Head (``width`` = w channels)::

    f16 (112) -> 1x1 -> ReLU -> 3x3 dil 2 -> ReLU --up--+
    f8  (40)  -> 1x1 ---------------------------------- + -> 3x3 -> ReLU --up--+
    f4  (24)  -> 1x1 ------------------------------------------------------- + -> 3x3 -> ReLU
              -> 3x3 -> ReLU -> 1x1 (d) -> unit normalisation

References
----------
.. [1] M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
   ICLR workshop track, 2018.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.backbones.efficientnet_lite import load_backbone, snapped_size
from affseg.errors import CorruptFileError, InputError, first_line

if TYPE_CHECKING:  # pragma: no cover
    pass

#: Shipped weights of the head (trained by ``affseg train spectral``).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "spectral_head.pt"


def _conv(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)


class SpectralHead(nn.Module):
    """Top-down head mapping the pyramid ``[f2, f4, f8, f16]`` to unit embeddings at stride 4.

    Parameters
    ----------
    in_channels : tuple of int
        Channels of ``f2, f4, f8, f16`` (EfficientNet-Lite0: ``(16, 24, 40, 112)``).
    dim : int
        Embedding dimension d.
    width : int
        Channels inside the head.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.

    Examples
    --------
    >>> import torch
    >>> pyramid = [torch.zeros(1, c, 32 // s, 32 // s)
    ...            for c, s in zip((16, 24, 40, 112), (2, 4, 8, 16))]   # strides 2..16
    >>> SpectralHead()(pyramid).shape                 # 21-d embeddings at stride 4
    torch.Size([1, 21, 8, 8])
    """

    def __init__(
        self,
        in_channels: tuple[int, ...] = (16, 24, 40, 112),
        dim: int = 21,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise InputError(f"in_channels must list 4 pyramid levels; got {in_channels}")
        _, c4, c8, c16 = in_channels
        self.config: dict[str, Any] = {
            "in_channels": tuple(in_channels),
            "dim": dim,
            "width": width,
        }
        self.ctx16 = nn.Sequential(
            nn.Conv2d(c16, width, 1),
            nn.ReLU(inplace=True),
            _conv(width, width, dilation=2),
            nn.ReLU(inplace=True),
        )
        self.lat8 = nn.Conv2d(c8, width, 1)
        self.fuse8 = nn.Sequential(_conv(width, width), nn.ReLU(inplace=True))
        self.lat4 = nn.Conv2d(c4, width, 1)
        self.fuse4 = nn.Sequential(
            _conv(width, width),
            nn.ReLU(inplace=True),
            _conv(width, width),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(width, dim, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Unit embeddings at stride 4.

        Parameters
        ----------
        feats : list of Tensor
            ``[f2, f4, f8, f16]`` with shapes (B, C_l, H_l, W_l) (``f2`` is unused).

        Returns
        -------
        Tensor, shape (B, dim, H_4, W_4)
            Unit vectors along dim 1.
        """
        _, f4, f8, f16 = (f.float() for f in feats)
        x = self.ctx16(f16)
        x = F.interpolate(x, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse8(x + self.lat8(f8))
        x = F.interpolate(x, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse4(x + self.lat4(f4))
        return F.normalize(self.out(x), dim=1, eps=1e-6)


def upsample_embeddings(emb: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of unit embeddings followed by renormalisation.

    Parameters
    ----------
    emb : Tensor, shape (B, d, h, w)
    size : (H, W)

    Returns
    -------
    Tensor, shape (B, d, H, W), unit vectors along dim 1.

    Examples
    --------
    >>> import torch
    >>> emb = torch.nn.functional.normalize(torch.ones(1, 3, 4, 4), dim=1)
    >>> upsample_embeddings(emb, (8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """
    up = F.interpolate(emb, size=size, mode="bilinear", align_corners=False)
    return F.normalize(up, dim=1, eps=1e-6)


def save_head(head: SpectralHead, path: str | os.PathLike[str], **meta: object) -> Path:
    """Save a head's config and float32 weights atomically (loadable with weights_only)."""
    from affseg.data.io import atomic_write

    state = {
        "config": dict(head.config, in_channels=list(head.config["in_channels"])),
        "state_dict": {k: v.detach().float().cpu() for k, v in head.state_dict().items()},
        "meta": meta,
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_head(path: str | os.PathLike[str] | None = None) -> SpectralHead:
    """Load a head saved by :func:`save_head` (default: the shipped weights), eval mode.

    Raises
    ------
    InputError
        The file does not exist.
    CorruptFileError
        The file cannot be read or does not hold a head.
    """
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise InputError(
            f"spectral head weights not found: {p} (train them with `affseg train spectral`)"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        cfg = state["config"]
        head = SpectralHead(tuple(cfg["in_channels"]), int(cfg["dim"]), int(cfg["width"]))
        head.load_state_dict(state["state_dict"])
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise CorruptFileError(
            f"cannot load spectral head weights {p}: not a head written by affseg "
            f"({first_line(exc)})"
        ) from None
    return head.eval()


def image_tensor(image: np.ndarray) -> Tensor:
    """An RGB uint8 image (H, W, 3) as a float tensor (1, 3, H', W') in [0, 1] of snapped size.

    The resize is bilinear with antialiasing, as in the training cache.

    Examples
    --------
    >>> import numpy as np
    >>> image_tensor(np.zeros((20, 30, 3), np.uint8)).shape    # sides snapped to multiples of 16
    torch.Size([1, 3, 16, 32])
    """
    h, w = image.shape[:2]
    arr = np.array(image, dtype=np.uint8, copy=True)
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0
    hs, ws = snapped_size(h, w)
    if (hs, ws) != (h, w):
        x = F.interpolate(x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0)


class SpectralNet(nn.Module):
    """Frozen backbone + :class:`SpectralHead`: image -> unit embeddings at full resolution.

    Parameters
    ----------
    head : SpectralHead, optional
        Default: the shipped weights (:func:`load_head`).
    backbone : nn.Module, optional
        Default: :func:`affseg.backbones.efficientnet_lite.load_backbone`.
    """

    def __init__(self, head: SpectralHead | None = None, backbone: nn.Module | None = None):
        super().__init__()
        if backbone is None:
            backbone = load_backbone()
        self.backbone = backbone
        self.head = head if head is not None else load_head()
        self.eval()

    @torch.no_grad()
    def embed_image(
        self, image: np.ndarray, stride: int | tuple[int, ...] = 1
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Embeddings of one image.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), uint8
        stride : int or tuple of int
            1: one embedding per pixel (bilinear upsampling + renormalisation); 4: the
            head's own grid of the snapped image, (H'/4, W'/4). A tuple returns several.

        Returns
        -------
        ndarray, shape (H, W, d) or (H'/4, W'/4, d), float32, unit rows (a tuple of them
        when ``stride`` is a tuple).
        """
        from affseg.data.io import as_rgb

        img = as_rgb(image)
        emb = self.head(self.backbone(image_tensor(img)))
        out = []
        for s in (stride,) if isinstance(stride, int) else stride:
            if s == 1:
                e = upsample_embeddings(emb, img.shape[:2])
            elif s == 4:
                e = emb
            else:
                raise InputError(f"stride must be 1 or 4; got {s}")
            out.append(e[0].permute(1, 2, 0).contiguous().numpy())
        return out[0] if isinstance(stride, int) else tuple(out)
