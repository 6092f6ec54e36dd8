"""affseg.backbones.fused_lite: the batch-norm-folded pyramid matches the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affseg.backbones.efficientnet_lite import load_backbone
from affseg.backbones.fused_lite import fuse_pyramid


@pytest.mark.parametrize("shape", [(64, 96), (80, 48), (65, 97)])
def test_fused_pyramid_matches_the_module(shape: tuple[int, int]) -> None:
    net = load_backbone()
    fast = fuse_pyramid(net)
    x = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = net(x), fast(x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    for r, o in zip(ref, out, strict=True):
        assert o.is_contiguous()
        scale = float(r.abs().max())
        assert float((r - o).abs().max()) <= 1e-5 * max(scale, 1.0)


def test_ndd_uses_a_cached_fused_copy_and_rebuilds_it_after_changes() -> None:
    from affseg.methods.ndd import _fast_backbone

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = load_backbone()

    net = Net()
    f1 = _fast_backbone(net)
    assert f1 is not None and _fast_backbone(net) is f1
    with torch.no_grad():
        net.backbone.net._bn0.bias.add_(1.0)  # an in-place change: a new fused copy
    f2 = _fast_backbone(net)
    assert f2 is not f1
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        np.testing.assert_allclose(
            f2(x)[0].numpy(), net.backbone(x)[0].numpy(), rtol=1e-4, atol=1e-4
        )
    assert _fast_backbone(torch.nn.Linear(2, 2)) is None
