"""The small fully convolutional network fitted to one image (Kanezaki 2018, Kim 2020, MMT).

``M`` blocks of conv3x3 + ReLU + BatchNorm with ``q`` channels, then a conv1x1 + BatchNorm
(that last BN keeps all ``q`` responses on the same scale, which favours many labels at the
start). Labels are the argmax over the ``q`` response channels. Convolutions pad by
replicating the border (zero padding, as in the reference code, gives the image border
responses of its own that survive as thin spurious segments).

References
----------
.. [1] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.
.. [2] Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
   Mean-Teaching".
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from affseg.errors import InputError


class PerImageNet(nn.Module):
    """Per-image segmentation network.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    channels : int
        ``q``: width of every layer and maximum number of labels.
    n_conv : int
        ``M``: number of conv3x3 + ReLU + BN blocks (>= 1).

    References
    ----------
    A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

    Examples
    --------
    >>> import torch
    >>> PerImageNet(in_channels=3, channels=4, n_conv=2)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, in_channels: int = 3, channels: int = 100, n_conv: int = 3) -> None:
        super().__init__()
        if n_conv < 1 or channels < 2 or in_channels < 1:
            raise InputError(
                f"need n_conv >= 1 and channels >= 2; got n_conv={n_conv}, channels={channels}"
            )
        layers: list[nn.Module] = []
        c_in = in_channels
        for _ in range(n_conv):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1, padding_mode="replicate"),
                       nn.ReLU(inplace=True),
                       nn.BatchNorm2d(channels)]  # fmt: skip
            c_in = channels
        layers += [nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Responses.

        Parameters
        ----------
        x : Tensor, shape (1, C_in, H, W), float

        Returns
        -------
        Tensor, shape (1, q, H, W)
        """
        return self.body(x)


def argmax_labels(response: torch.Tensor) -> torch.Tensor:
    """Per-pixel label of a response.

    Parameters
    ----------
    response : Tensor, shape (1, q, H, W)

    Returns
    -------
    Tensor, shape (H, W), int64, values in 0..q-1

    Examples
    --------
    >>> import torch
    >>> argmax_labels(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([8, 8])
    """
    return response[0].argmax(dim=0)


def image_tensor(
    image: np.ndarray, max_side: int | None = None, coords: float = 0.0
) -> torch.Tensor:
    """An RGB image as a network input, optionally shrunk so its longer side is ``max_side``.

    Channels are scaled to [0, 1] and standardised per channel (zero mean, unit variance)
    so that the first BN sees comparable inputs for every image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    max_side : int, optional
        Longer side after antialiased bilinear shrinking (never enlarged).
    coords : float
        When > 0, append the pixel coordinates (y, x), each scaled to unit variance and
        multiplied by ``coords``, as two more channels (not in the papers; it makes
        segments spatially compact).

    Returns
    -------
    Tensor, shape (1, 3, h, w) or (1, 5, h, w) with ``coords``, float32, channels-last

    Examples
    --------
    >>> import numpy as np
    >>> image_tensor(np.zeros((8, 10, 3), np.uint8), max_side=5).shape
    torch.Size([1, 3, 4, 5])
    """
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    h, w = image.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True,
                                      align_corners=False)  # fmt: skip
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    x = (x - mean) / std
    if coords > 0:
        hh, ww = x.shape[2:]
        yy, xx = torch.meshgrid(torch.arange(hh, dtype=torch.float32),
                                torch.arange(ww, dtype=torch.float32), indexing="ij")  # fmt: skip
        scale = float(np.hypot(hh, ww)) / np.sqrt(12.0)  # std of a uniform diagonal extent
        grid = torch.stack([yy - yy.mean(), xx - xx.mean()])[None] * (coords / scale)
        x = torch.cat([x, grid], dim=1)
    return x.contiguous(memory_format=torch.channels_last)


#: Per-pixel inputs the per-image methods accept (see :func:`input_tensor`).
INPUTS = ("rgb", "backbone")


@functools.lru_cache(maxsize=1)
def _backbone() -> nn.Module:
    from affseg.backbones.efficientnet_lite import EfficientNetLitePyramid

    return EfficientNetLitePyramid(pretrained=True)


def backbone_features(image: np.ndarray, size: tuple[int, int], n_components: int) -> torch.Tensor:
    """Frozen ImageNet EfficientNet-Lite0 features of an image, reduced per image by PCA.

    The stride-4 (24 channels) and stride-8 (40 channels) maps of the full-resolution image
    are resized (bilinear, antialiased) to ``size`` (images under 32 pixels on a side are
    enlarged to 32 first), each map scaled to unit mean variance
    per channel, concatenated and projected on their ``n_components`` leading principal
    components (computed on this image's pixels). Components keep their relative variance;
    the whole block is scaled so that the mean component variance is 1. Component signs
    are fixed (largest absolute loading positive) so the result is deterministic.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    size : tuple of int
        ``(h, w)`` of the output.
    n_components : int
        Components kept (1 .. 64).

    Returns
    -------
    Tensor, shape (1, n_components, h, w), float32
    """
    if not 1 <= n_components <= 64:
        raise InputError(f"n_components must lie in 1..64, got {n_components}")
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    if min(x.shape[2:]) < 32:  # the backbone needs a few pixels at stride 8
        s = 32 / min(x.shape[2:])
        x = nn.functional.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
    with torch.no_grad():
        pyramid = _backbone()(x)
        maps = []
        for f in pyramid[1:3]:
            f = nn.functional.interpolate(f, size=size, mode="bilinear", antialias=True,
                                          align_corners=False)  # fmt: skip
            f = f - f.mean(dim=(2, 3), keepdim=True)
            maps.append(f / f.pow(2).mean().sqrt().clamp_min(1e-6))
        feats = torch.cat(maps, dim=1)[0].reshape(-1, size[0] * size[1]).T.double()  # (N, C)
    _, s, vt = torch.linalg.svd(feats, full_matrices=False)
    comps = vt[:n_components]  # (n, C)
    sign = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    proj = feats @ (comps * sign).T  # (N, n)
    proj = proj / proj.pow(2).mean().sqrt().clamp_min(1e-12)
    return proj.T.reshape(1, n_components, *size).float()


def input_tensor(
    image: np.ndarray,
    max_side: int | None = None,
    coords: float = 0.0,
    input: str = "rgb",
    n_components: int = 8,
    feature_weight: float = 1.0,
) -> torch.Tensor:
    """Network input: :func:`image_tensor`, optionally with backbone feature channels.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    max_side, coords
        As in :func:`image_tensor`.
    input : {"rgb", "backbone"}
        ``"rgb"``: standardised RGB only (the papers). ``"backbone"``: RGB followed by
        ``n_components`` channels of :func:`backbone_features` times ``feature_weight``.
    n_components : int
    feature_weight : float

    Returns
    -------
    Tensor, shape (1, C, h, w), float32, channels-last
        C = 3 (+ 2 with ``coords``) (+ ``n_components`` with ``"backbone"``).

    Examples
    --------
    >>> import numpy as np
    >>> input_tensor(np.zeros((8, 10, 3), np.uint8), input="rgb").shape
    torch.Size([1, 3, 8, 10])
    """
    if input not in INPUTS:
        raise InputError(f"unknown input {input!r}; choose one of: {', '.join(INPUTS)}")
    x = image_tensor(image, max_side, coords)
    if input == "backbone":
        f = backbone_features(image, tuple(x.shape[2:]), n_components) * feature_weight
        x = torch.cat([x, f], dim=1)
    return x.contiguous(memory_format=torch.channels_last)
