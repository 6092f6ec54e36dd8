"""EfficientNet-Lite0 backbone: ImageNet classification and the feature pyramid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affseg.backbones import load_backbone
from affseg.errors import InputError


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


def test_classifies_chelsea_as_a_cat(backbone) -> None:
    from skimage import data, transform

    img = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True)
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]
    with torch.no_grad():
        logits = backbone.classify(x)
    assert logits.shape == (1, 1000)
    assert 281 <= int(logits.argmax()) <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian


@pytest.mark.parametrize("size", [(64, 96), (321, 481), (37, 50)])
def test_pyramid_strides_and_channels(backbone, size) -> None:
    h, w = size
    with torch.no_grad():
        feats = backbone(torch.rand(2, 3, h, w))
    assert len(feats) == 4
    assert tuple(f.shape[1] for f in feats) == backbone.channels == (16, 24, 40, 112)
    for f, s in zip(feats, backbone.strides, strict=True):
        assert f.shape[0] == 2
        assert f.shape[2:] == (math.ceil(h / s), math.ceil(w / s))


def test_backbone_is_frozen(backbone) -> None:
    backbone.train()
    assert not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = backbone(x)[2]
        b = backbone(x)[2]
    assert torch.equal(a, b)


def test_bad_input(backbone) -> None:
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        backbone(torch.rand(1, 4, 32, 32))
    with pytest.raises(InputError, match="float"):
        backbone(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
