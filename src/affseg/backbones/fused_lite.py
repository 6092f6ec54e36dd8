"""Inference-only EfficientNet-Lite0 pyramid with batch norm folded into the convolutions.

One job: :func:`fuse_pyramid` turns a frozen :class:`~affseg.backbones.efficientnet_lite.
EfficientNetLitePyramid` into a function with the same output (up to float rounding:
``conv(x) * g + b`` is computed as ``conv'(x) + b'`` with ``w' = w g``), that runs
without the batch-norm passes, in channels-last layout (so that oneDNN runs every
convolution, 1 x 1 ones included), pads only where TensorFlow's "same" padding is
asymmetric (stride 2) and applies ReLU6 in place (~0.55x the module's time at 1
thread). It is used under ``torch.no_grad()`` by inference code (the ``ndd`` method);
training keeps the module itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affseg.backbones.efficientnet_lite import _TAPS


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution (eval-mode statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.view(-1, *([1] * (conv.weight.ndim - 1)))
    b = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        b = b + conv.bias * scale
    return w.detach().contiguous(), b.detach().contiguous()


def _same_conv(x: Tensor, w: Tensor, b: Tensor, stride: int, groups: int) -> Tensor:
    """TensorFlow "same" convolution: symmetric padding inside conv2d, else F.pad first."""
    kh, kw = int(w.shape[-2]), int(w.shape[-1])
    ih, iw = int(x.shape[-2]), int(x.shape[-1])
    pad_h = max((math.ceil(ih / stride) - 1) * stride + kh - ih, 0)
    pad_w = max((math.ceil(iw / stride) - 1) * stride + kw - iw, 0)
    if pad_h % 2 == 0 and pad_w % 2 == 0:
        return F.conv2d(x, w, b, stride, (pad_h // 2, pad_w // 2), 1, groups)
    x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    return F.conv2d(x, w, b, stride, 0, 1, groups)


def fuse_pyramid(pyramid: nn.Module) -> Callable[[Tensor], list[Tensor]]:
    """Batch-norm-folded forward of an EfficientNet-Lite pyramid (inference only).

    Parameters
    ----------
    pyramid : EfficientNetLitePyramid
        The frozen backbone (eval mode; its parameters are read once, now).

    Returns
    -------
    callable
        ``images (B, 3, H, W) in [0, 1] -> [f2, f4, f8, f16]``, as ``pyramid(images)``
        up to float rounding (~1e-6 relative); run it under ``torch.no_grad()``.

    Examples
    --------
    >>> import torch
    >>> from affseg.backbones.efficientnet_lite import load_backbone
    >>> net = load_backbone()
    >>> fast = fuse_pyramid(net)
    >>> x = torch.rand(1, 3, 64, 96)
    >>> with torch.no_grad():
    ...     ref, out = net(x), fast(x)
    >>> max(float((a - b).abs().max()) for a, b in zip(ref, out)) < 1e-4
    True
    """
    net = pyramid.net
    if not isinstance(getattr(net, "_swish", None), nn.ReLU6):
        raise ValueError("fuse_pyramid: only the ReLU6 (Lite) variant is supported")
    stem_w, stem_b = _fold(net._conv_stem, net._bn0)
    stem_stride = int(net._conv_stem.stride[0])
    blocks = []
    for idx, blk in enumerate(net._blocks):
        if idx > max(_TAPS):
            break
        if getattr(blk, "has_se", False):
            raise ValueError("fuse_pyramid: squeeze-and-excitation blocks are not supported")
        args = blk._block_args
        expand = _fold(blk._expand_conv, blk._bn0) if args.expand_ratio != 1 else None
        dw = _fold(blk._depthwise_conv, blk._bn1)
        proj = _fold(blk._project_conv, blk._bn2)
        stride = int(blk._depthwise_conv.stride[0])
        skip = bool(args.id_skip and stride == 1 and args.input_filters == args.output_filters)
        blocks.append((expand, dw, int(blk._depthwise_conv.groups), stride, proj, skip))

    def forward(images: Tensor) -> list[Tensor]:
        # channels-last: every convolution (1 x 1 ones included) runs in oneDNN
        x = pyramid._check(images).contiguous(memory_format=torch.channels_last)
        x = F.hardtanh_(_same_conv(x, stem_w, stem_b, stem_stride, 1), 0.0, 6.0)
        feats: list[Tensor] = []
        for idx, (expand, dw, groups, stride, proj, skip) in enumerate(blocks):
            inp = x
            if expand is not None:
                x = F.hardtanh_(F.conv2d(x, expand[0], expand[1]), 0.0, 6.0)
            x = F.hardtanh_(_same_conv(x, dw[0], dw[1], stride, groups), 0.0, 6.0)
            x = F.conv2d(x, proj[0], proj[1])
            if skip:
                x = x + inp
            if idx in _TAPS:
                feats.append(x.contiguous())
        return feats

    return forward
