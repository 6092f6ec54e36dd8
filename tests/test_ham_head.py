"""HAM's UniDC-style affinity head, mixed 3/5/7 kernels and the segmentation refiner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affseg.affinity.propagation import (
    mix_kernels,
    neighbour_distances,
    neighbour_offsets,
    propagate,
    shift_stack,
)
from affseg.errors import InputError
from affseg.models.ham import HAMAffinity, SegRefinePropagation
from affseg.models.ham_head import RankedNeighbourHead


def _step(h: torch.Tensor, a: torch.Tensor, k: int) -> torch.Tensor:
    """One propagation step written out independently, pixel by pixel: ``out[p] = (1 -
    sum_n a_n[p]) h[p] + sum_n a_n[p] h[clamp(p + o_n)]``, neighbours in row-major order
    without the centre, the border replicated (CSPN's update with the affinities as given)."""
    hn, an = h.double().numpy(), a.double().numpy()
    b, c, hh, ww = hn.shape
    r = k // 2
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]
    out = np.empty_like(hn)
    for y in range(hh):
        for x in range(ww):
            acc = (1.0 - an[:, :, y, x].sum(1))[:, None] * hn[:, :, y, x]
            for n, (dy, dx) in enumerate(offsets):
                yy, xx = min(max(y + dy, 0), hh - 1), min(max(x + dx, 0), ww - 1)
                acc = acc + an[:, n, y, x][:, None] * hn[:, :, yy, xx]
            out[:, :, y, x] = acc
    return torch.from_numpy(out).to(h.dtype)


def test_step_reference_matches_propagate() -> None:
    """The loop above is the same update as one step of :func:`propagate`."""
    g = torch.Generator().manual_seed(1)
    for k in (3, 5):
        a = torch.rand(2, k * k - 1, 5, 6, generator=g)
        a = a / a.sum(1, keepdim=True) * 0.8
        h = torch.randn(2, 3, 5, 6, generator=g)
        torch.testing.assert_close(propagate(h, a, k, 1, norm="none"), _step(h, a, k))


def test_mix_kernels_equals_weighted_sum_of_steps() -> None:
    g = torch.Generator().manual_seed(0)
    kernels = (3, 5, 7)
    affs = []
    for k in kernels:
        a = torch.rand(2, k * k - 1, 6, 7, generator=g)
        affs.append(a / a.sum(1, keepdim=True) * 0.9)
    conf = torch.softmax(torch.randn(2, 3, 6, 7, generator=g), 1)
    mixed = mix_kernels(affs, kernels, conf)
    assert mixed.shape == (2, 48, 6, 7)
    torch.testing.assert_close(mixed.sum(1), torch.full((2, 6, 7), 0.9))
    h = torch.randn(2, 4, 6, 7, generator=g)
    expected = sum(
        conf[:, i : i + 1] * _step(h, a, k)
        for i, (a, k) in enumerate(zip(affs, kernels, strict=True))
    )
    torch.testing.assert_close(_step(h, mixed, 7), expected)
    # the 3x3 part lands on the 3x3 offsets of the 7x7 layout
    only3 = mix_kernels(
        affs, kernels, torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1).expand(2, 3, 6, 7)
    )
    big = neighbour_offsets(7)
    for n, o in enumerate(neighbour_offsets(3)):
        torch.testing.assert_close(only3[:, big.index(o)], affs[0][:, n])
    with pytest.raises(InputError, match="must match"):
        mix_kernels(affs[:2], kernels, conf)


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_ranked_head_follows_the_ranks(geometry: str) -> None:
    # a head whose only non-zero weight reads the first (nearest) part gives the nearest
    # neighbour that logit, wherever it lies; the rest get the bias
    g = torch.Generator().manual_seed(1)
    dim, k = 3, 3
    head = RankedNeighbourHead(geometry, k, dim)  # type: ignore[arg-type]
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 1.0
    b, kk, hh, ww = 1, 8, 5, 5
    rel = torch.randn(b, kk, dim, hh, ww, generator=g) * 0.1
    d = torch.rand(b, kk, hh, ww, generator=g)
    weight = torch.softmax(-d, 1)
    order = d.argsort(1)
    out = head(rel, weight, order, 1.0)
    nearest = order[:, :1]
    first = rel[:, :, 0].gather(1, nearest) * weight.gather(1, nearest) * head.scale
    # (hyperbolic: zero Mobius bias, logmap0(expmap0(v)) = v, so the same value)
    torch.testing.assert_close(out.gather(1, nearest), first, atol=1e-6, rtol=1e-5)
    rest = torch.ones_like(out, dtype=torch.bool).scatter(1, nearest, False)
    assert torch.allclose(out[rest], torch.zeros(()), atol=1e-6)


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_affinity_with_head_bounds_and_gradients(geometry: str) -> None:
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(2, 4, 9, 9, generator=g)
    ham = HAMAffinity(geometry, k=5, c=1.0, head_dim=4, c_param="log")  # type: ignore[arg-type]
    assert float(ham.curvature.detach()) == pytest.approx(1.0)
    strength = torch.rand(2, 1, 9, 9, generator=g)
    a = ham(emb, strength)
    assert a.shape == (2, 24, 9, 9)
    assert torch.all(a >= 0) and torch.all(a.sum(1, keepdim=True) <= strength + 1e-6)
    a.pow(2).sum().backward()
    for name, p in ham.named_parameters():
        if name == "raw_c" and geometry == "euclidean":
            assert p.grad is None  # the Euclidean variant has no curvature
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # a zero head reproduces the head-less affinity exactly
    plain = HAMAffinity(geometry, k=5, c=1.0, c_param="log")  # type: ignore[arg-type]
    with torch.no_grad():
        ham.head.weight.zero_()
        torch.testing.assert_close(ham(emb, strength), plain(emb, strength))


def test_neighbour_distances_match_pairwise() -> None:
    from affseg.affinity.hyperbolic import distance, expmap0

    g = torch.Generator().manual_seed(3)
    emb = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    x = expmap0(emb, 0.5, dim=1)
    expected = distance(x.unsqueeze(1), shift_stack(x, 3), 0.5, dim=2)
    got = neighbour_distances(emb, 3, 1, "hyperbolic", 0.5)
    same = expected == 0  # replicate-padded border: the neighbour is the pixel itself
    assert same.any() and float(got[same].max()) < 2e-3
    torch.testing.assert_close(got[~same], expected[~same])


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_seg_refiner_mixed_kernels(geometry: str) -> None:
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(0)
    model = SegRefinePropagation(
        5,
        geometry,
        iterations=3,
        embed_dim=6,  # type: ignore[arg-type]
        kernels=(3, 5, 7),
        head=True,
        c=1.0,
        c_param="log",
    )
    # one curvature for all kernels
    assert all(a.raw_c is model.affinities[0].raw_c for a in model.affinities)
    n_params = sum(p.numel() for p in model.parameters())
    torch.manual_seed(0)
    other = SegRefinePropagation(
        5,
        "euclidean" if geometry == "hyperbolic" else "hyperbolic",
        iterations=3,
        embed_dim=6,
        kernels=(3, 5, 7),
        head=True,
        c=1.0,
        c_param="log",
    )
    assert n_params == sum(p.numel() for p in other.parameters())  # same capacity
    rgb = torch.rand(1, 3, 16, 12, generator=g)
    probs = torch.softmax(torch.randn(1, 5, 16, 12, generator=g), 1)
    out = model(rgb, probs)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 16, 12))
    assert torch.all(out >= 0)
    out[:, 0].sum().backward()
    assert (model.affinity.raw_c.grad is not None) == (geometry == "hyperbolic")
    with torch.no_grad():  # compiled inference path == autograd path
        torch.testing.assert_close(model(rgb, probs), out.detach(), atol=1e-5, rtol=1e-4)


def test_seg_refiner_confident_reimposition() -> None:
    """``reimpose="confident"``: the coarse scores are re-imposed with confidence
    ``max_c p^2`` and the propagation strength is at least 1/2 (the refiner cannot learn
    the identity): the same propagation as an explicit call with that mask and strength;
    one-hot scores (certain everywhere) come back unchanged; a bad rule is refused."""
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    net = SegRefinePropagation(4, iterations=3, width=4, embed_dim=3, reimpose="confident")
    rgb = torch.rand(1, 3, 12, 16, generator=g)
    probs = torch.softmax(2 * torch.randn(1, 4, 12, 16, generator=g), 1)
    emb, aux = net.guide(torch.cat([rgb, probs], 1))
    aff = net.affinity(emb, 0.5 + 0.5 * torch.sigmoid(aux[:, :1]))
    mask = probs.max(1, keepdim=True).values ** 2
    want = propagate(probs, aff, 3, 3, h0=probs, mask=mask, norm="clip")
    torch.testing.assert_close(net(rgb, probs), want)
    assert not torch.allclose(want, probs, atol=1e-3)
    onehot = torch.nn.functional.one_hot(probs.argmax(1), 4).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(net(rgb, onehot), onehot)
    with pytest.raises(ValueError, match="reimpose"):
        SegRefinePropagation(4, reimpose="always")  # type: ignore[arg-type]
