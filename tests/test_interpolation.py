"""Feature-attentional interpolation (seed 001, Eq. 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affseg.affinity.interpolation import (
    FeatureAttentionalInterpolation,
    attention_upsample,
    feature_attentional_upsample,
)
from affseg.errors import InputError


def brute_force(maps: np.ndarray, guide: np.ndarray, gamma: float, window: int = 5):
    """Eq. 6 pixel by pixel, written from the definition (independent of the library)."""
    m, h, w = maps.shape
    c, hh, ww = guide.shape
    gc = F.interpolate(
        torch.from_numpy(guide)[None], size=(h, w), mode="bilinear", align_corners=False
    )[0].numpy()
    out = np.zeros((m, hh, ww))
    r = window // 2
    for y in range(hh):
        for x in range(ww):
            cy = int(np.clip(np.round((y + 0.5) * h / hh - 0.5), 0, h - 1))
            cx = int(np.clip(np.round((x + 0.5) * w / ww - 0.5), 0, w - 1))
            wts, vals = [], []
            for py in range(cy - r, cy + r + 1):
                for px in range(cx - r, cx + r + 1):
                    if 0 <= py < h and 0 <= px < w:
                        d = np.mean((guide[:, y, x] - gc[:, py, px]) ** 2)
                        wts.append(np.exp(-gamma * d))
                        vals.append(maps[:, py, px])
            wts = np.array(wts) / np.sum(wts)
            out[:, y, x] = (wts[:, None] * np.array(vals)).sum(0)
    return out


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    guide = torch.randn(2, 4, 10, 14, generator=g, dtype=torch.float64)
    return maps, guide


@pytest.mark.parametrize("method", ["phases", "gather"])
def test_matches_definition(data, method):
    maps, guide = data
    got = attention_upsample(maps, guide, 2.0, method=method)
    for b in range(2):
        ref = brute_force(maps[b].numpy(), guide[b].numpy(), 2.0)
        np.testing.assert_allclose(got[b].numpy(), ref, atol=1e-12)


def test_non_integer_ratio_matches_definition(data):
    maps, _ = data
    guide = torch.randn(2, 4, 12, 16, dtype=torch.float64)
    got = attention_upsample(maps, guide, 3.0)
    np.testing.assert_allclose(
        got[1].numpy(), brute_force(maps[1].numpy(), guide[1].numpy(), 3.0), atol=1e-12
    )


def test_phases_equal_gather_stride3(data):
    maps, _ = data
    guide = torch.randn(2, 4, 15, 21, dtype=torch.float64)
    torch.testing.assert_close(
        attention_upsample(maps, guide, 1.5, method="phases"),
        attention_upsample(maps, guide, 1.5, method="gather"),
    )


def test_convex_combination_and_limits(data):
    maps, guide = data
    ones = torch.ones(2, 1, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(
        attention_upsample(ones, guide, 4.0), torch.ones(2, 1, 10, 14, dtype=torch.float64)
    )
    up = attention_upsample(maps, guide, 4.0)
    assert up.max() <= maps.max() + 1e-12 and up.min() >= maps.min() - 1e-12
    # gamma -> 0: plain average of the in-image 5 x 5 coarse neighbours
    avg = attention_upsample(maps, guide, 1e-12)
    box = F.avg_pool2d(maps, 5, 1, 2, count_include_pad=False)
    torch.testing.assert_close(avg, box.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_edges_are_respected():
    """A step edge in the guide keeps the upsampled label map sharp across it."""
    h, w = 6, 6
    lab = torch.zeros(1, 1, h, w, dtype=torch.float64)
    lab[..., 3:] = 1.0  # coarse label: right half
    guide = torch.zeros(1, 1, 4 * h, 4 * w, dtype=torch.float64)
    guide[..., 12:] = 5.0  # fine edge exactly at the coarse boundary
    up = attention_upsample(attention_upsample(lab, guide[..., ::2, ::2], 8.0), guide, 8.0)
    assert up[..., :11].max() < 1e-6 and up[..., 13:].min() > 1 - 1e-6
    blurred = attention_upsample(lab, guide * 0, 8.0)  # constant guide: plain 5x5 average
    assert blurred[..., 2:4, 10:12].min() > 0.05  # without guidance the edge is blurred


def test_gradcheck_maps_guide_gamma():
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    guide = torch.randn(1, 2, 6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    gam = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, f, c: attention_upsample(m, f, c), (maps, guide, gam))


def test_module_pyramid_and_errors():
    mod = FeatureAttentionalInterpolation((8.0, 4.0, 1.0))
    maps = torch.rand(1, 5, 6, 8)
    guides = [torch.rand(1, 3, 12, 16), torch.rand(1, 2, 24, 32), torch.rand(1, 2, 48, 64)]
    out = mod(maps, guides)
    assert out.shape == (1, 5, 48, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out, feature_attentional_upsample(maps, guides, [8.0, 4.0, 1.0]))
    assert mod(maps, guides[:2]).shape == (1, 5, 24, 32)  # uses the last two gammas
    out.sum().backward()
    assert mod.log_gamma.grad is not None and torch.isfinite(mod.log_gamma.grad).all()
    with pytest.raises(InputError, match="gamma"):
        feature_attentional_upsample(maps, guides, [1.0])
    with pytest.raises(InputError, match="at least as fine"):
        attention_upsample(maps, torch.rand(1, 3, 3, 4), 1.0)
    with pytest.raises(InputError, match="maps"):
        attention_upsample(torch.rand(5, 6, 8), guides[0], 1.0)
