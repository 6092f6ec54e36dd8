"""Learned boundary map on the frozen EfficientNet-Lite0 pyramid (NDD v2 merge term).

A small top-down decoder (feature-pyramid style, in the spirit of HED / RCF side outputs
fused coarse to fine) turns the frozen backbone's ``[f2, f4, f8, f16]`` into boundary
logits at stride 2. It is trained on the human boundaries of BSDS500 train
(:mod:`affseg.train.boundary`) and used by the ``leaves`` grouping of ``ndd`` as the mean
boundary probability along the border of two regions (:func:`border_map_sums`) and,
optionally, as the map the watershed leaves flood.

References
----------
.. [1] S. Xie and Z. Tu, "Holistically-Nested Edge Detection", ICCV 2015.
.. [2] Y. Liu et al., "Richer Convolutional Features for Edge Detection", CVPR 2017.
.. [3] T.-Y. Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.errors import CorruptFileError, InputError

#: Channels of the pyramid levels f2, f4, f8, f16 (EfficientNet-Lite0).
PYRAMID_CHANNELS = (16, 24, 40, 112)

#: File name of the shipped weights in ``affseg/weights``.
WEIGHTS_NAME = "boundary_head.pt"


class BoundaryHead(nn.Module):
    """Top-down decoder: pyramid -> boundary logits at stride 2.

    Parameters
    ----------
    width : int
        Channels of the decoder.
    channels : tuple of int
        Channels of ``f2, f4, f8, f16``.

    Examples
    --------
    >>> import torch
    >>> head = BoundaryHead(width=8)
    >>> sizes = zip((16, 24, 40, 112), (2, 4, 8, 16))
    >>> pyr = [torch.zeros(1, c, 64 // s, 96 // s) for c, s in sizes]
    >>> tuple(head(pyr).shape)
    (1, 1, 32, 48)
    """

    def __init__(self, width: int = 32, channels: tuple[int, ...] = PYRAMID_CHANNELS) -> None:
        super().__init__()
        if width < 1:
            raise InputError(f"width must be >= 1; got {width}")
        self.width = int(width)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
            for _ in channels[:-1]
        )
        self.top = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1))
        self.out = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1)
        )

    def forward(self, pyramid: list[Tensor]) -> Tensor:
        """Boundary logits.

        Parameters
        ----------
        pyramid : list of Tensor
            ``[f2, f4, f8, f16]``, each (B, C_l, H/s, W/s).

        Returns
        -------
        Tensor, shape (B, 1, H/2, W/2)
        """
        x = self.top(self.lateral[-1](pyramid[-1].float()))
        for level in range(len(pyramid) - 2, -1, -1):
            f = pyramid[level].float()
            x = F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[level](x + self.lateral[level](f))
        return self.out(x)


def boundary_targets(labels: Tensor) -> Tensor:
    """Fraction of the annotations that put a boundary at each pixel.

    A pixel is on a boundary of one annotation when a 4-neighbour has another label (both
    sides of the border are marked, so the map is centred on the border).

    Parameters
    ----------
    labels : Tensor, shape (K, H, W), int
        K human segmentations.

    Returns
    -------
    Tensor, shape (H, W), float32 in [0, 1]

    Examples
    --------
    >>> import torch
    >>> lab = torch.zeros(2, 3, 4, dtype=torch.long); lab[0, :, 2:] = 1
    >>> boundary_targets(lab)[0].tolist()
    [0.0, 0.5, 0.5, 0.0]
    """
    lab = torch.as_tensor(labels)
    if lab.ndim != 3:
        raise InputError(f"labels must be (K, H, W); got {tuple(lab.shape)}")
    edge = torch.zeros(lab.shape, dtype=torch.bool)
    dh = lab[:, :, 1:] != lab[:, :, :-1]
    dv = lab[:, 1:, :] != lab[:, :-1, :]
    edge[:, :, 1:] |= dh
    edge[:, :, :-1] |= dh
    edge[:, 1:, :] |= dv
    edge[:, :-1, :] |= dv
    return edge.float().mean(0)


def boundary_weights(labels: Tensor) -> Tensor | None:
    """Where a boundary target is known: 0 on void pixels (negative labels) and their
    4-neighbours in any annotation, 1 elsewhere; None when nothing is void.

    Parameters
    ----------
    labels : Tensor, shape (K, H, W), int

    Returns
    -------
    Tensor, shape (H, W), float32 in {0, 1}, or None

    Examples
    --------
    >>> import torch
    >>> lab = torch.zeros(1, 1, 5, dtype=torch.long); lab[0, 0, 0] = -1
    >>> boundary_weights(lab)[0].tolist()
    [0.0, 0.0, 1.0, 1.0, 1.0]
    >>> boundary_weights(torch.zeros(1, 2, 2, dtype=torch.long)) is None
    True
    """
    void = (torch.as_tensor(labels) < 0).any(0)
    if not bool(void.any()):
        return None
    near = void.clone()
    near[:, 1:] |= void[:, :-1]
    near[:, :-1] |= void[:, 1:]
    near[1:, :] |= void[:-1, :]
    near[:-1, :] |= void[1:, :]
    return (~near).float()


def boundary_loss(
    logits: Tensor, target: Tensor, pos_weight: float = 4.0, weight: Tensor | None = None
) -> Tensor:
    """Binary cross-entropy against the soft annotator fraction, positives up-weighted.

    Parameters
    ----------
    logits : Tensor, shape (B, 1, H, W)
    target : Tensor, shape (B, 1, H, W), in [0, 1]
    pos_weight : float
        Weight of the boundary term (boundaries cover ~5 % of the pixels).
    weight : Tensor, shape (B, 1, H, W), optional
        Per-pixel weight (:func:`boundary_weights`: 0 where the target is unknown); the
        loss is then the weighted mean.

    Returns
    -------
    Tensor, scalar

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(1, 1, 2, 2)          # p = 0.5 everywhere
    >>> target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    >>> round(float(boundary_loss(logits, target, pos_weight=4.0)), 4)  # (4 + 3) ln 2 / 4
    1.213
    """
    pw = torch.tensor(float(pos_weight), dtype=logits.dtype)
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def boundary_probability(
    head: BoundaryHead, pyramid: list[Tensor], size: tuple[int, int]
) -> np.ndarray:
    """Boundary probability of one image at image resolution.

    Parameters
    ----------
    head : BoundaryHead
    pyramid : list of Tensor
        The backbone pyramid of the image (batch of 1).
    size : tuple of int
        (H, W) of the image.

    Returns
    -------
    ndarray, shape (H, W), float32 in [0, 1]

    Examples
    --------
    >>> import torch
    >>> head = BoundaryHead(width=4).eval()
    >>> pyr = [torch.zeros(1, c, 64 // s, 96 // s) for c, s in zip(PYRAMID_CHANNELS, (2, 4, 8, 16))]
    >>> prob = boundary_probability(head, pyr, (60, 90))
    >>> prob.shape, bool(((prob > 0) & (prob < 1)).all())
    ((60, 90), True)
    """
    logits = head(pyramid)
    up = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return torch.sigmoid(up)[0, 0].numpy().astype(np.float32)


def default_weights_path() -> Path:
    """Path of the shipped boundary-head weights inside the package.

    Examples
    --------
    >>> default_weights_path().name
    'boundary_head.pt'
    """
    return Path(__file__).resolve().parent.parent / "weights" / WEIGHTS_NAME


def save_boundary_head(
    head: BoundaryHead, path: str | os.PathLike[str], meta: dict[str, Any] | None = None
) -> None:
    """Write weights and config (loadable with ``weights_only=True``), atomically.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> head = BoundaryHead(width=4)
    >>> path = Path(tempfile.mkdtemp()) / "head.pt"
    >>> save_boundary_head(head, path, {"steps": 0})
    >>> again = load_boundary_head(path)
    >>> all(torch.equal(a, b) for a, b in zip(head.parameters(), again.parameters()))
    True
    """
    from affseg.data.io import atomic_write

    blob = {
        "state": {k: v.detach().cpu() for k, v in head.state_dict().items()},
        "config": {"width": head.width},
        "meta": dict(meta or {}),
    }
    atomic_write(Path(path), lambda tmp: torch.save(blob, tmp))


def load_boundary_head(path: str | os.PathLike[str] | None = None) -> BoundaryHead:
    """A boundary head from a weights file (default: the shipped one), in eval mode.

    Raises
    ------
    CorruptFileError
        Missing, unreadable or mismatched weights.

    Examples
    --------
    >>> load_boundary_head("/no/such/head.pt")
    Traceback (most recent call last):
    ...
    affseg.errors.CorruptFileError: boundary-head weights not found: /no/such/head.pt
    """
    p = Path(path) if path is not None else default_weights_path()
    packaged = default_weights_path().parent / p.name
    if not p.is_file() and p.parent == Path(".") and packaged.is_file():
        p = packaged  # a bare name of a file shipped in affseg/weights/
    if not p.is_file():
        raise CorruptFileError(f"boundary-head weights not found: {p}")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        head = BoundaryHead(**blob["config"])
        head.load_state_dict(blob["state"])
    except Exception as exc:  # noqa: BLE001
        raise CorruptFileError(f"cannot load boundary-head weights {p}: {exc}") from None
    return head.eval()
