"""CSPN-style propagation and HAM affinities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from affseg.affinity.hyperbolic import expmap0
from affseg.affinity.propagation import (
    neighbour_distances,
    neighbour_offsets,
    normalize_affinity,
    propagate,
    shift_stack,
    uniform_affinity,
)
from affseg.errors import InputError
from affseg.models.ham import HAMAffinity


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("grad", [False, True])
def test_uniform_affinity_is_box_filter(k: int, grad: bool) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(1, 2, 20, 23, generator=g, dtype=torch.float64)
    a = uniform_affinity((1, 20, 23), k, dtype=torch.float64).requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = propagate(h, a, k, iterations=3, norm="clip")
    ref = h.numpy()
    for _ in range(3):
        ref = ndimage.uniform_filter(ref, size=(1, 1, k, k), mode="nearest")
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("grad", [False, True])
def test_constants_preserved_with_any_affinity(grad: bool) -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.full((2, 1, 15, 17), 3.25)
    a = torch.rand(2, 24, 15, 17, generator=g).requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = propagate(h, a, 5, iterations=10, dilation=2)
    torch.testing.assert_close(out.detach(), h)
    # signed affinities too (float64 autograd path)
    a64 = torch.randn(2, 24, 15, 17, generator=g, dtype=torch.float64, requires_grad=True)
    out = propagate(h.double(), a64, 5, iterations=10, dilation=2)
    torch.testing.assert_close(out.detach(), h.double())


def test_smoothing_reduces_variance_and_keeps_mean_interior() -> None:
    g = torch.Generator().manual_seed(2)
    h = torch.rand(1, 1, 64, 64, generator=g, dtype=torch.float64)
    out = propagate(h, uniform_affinity((1, 64, 64), 3, dtype=torch.float64), 3, 6, norm="clip")
    assert out.var() < 0.2 * h.var()
    assert out.min() >= h.min() and out.max() <= h.max()  # a convex combination


@pytest.mark.parametrize("grad", [False, True])
def test_reimposed_values_are_kept(grad: bool) -> None:
    g = torch.Generator().manual_seed(3)
    h0 = torch.rand(1, 1, 30, 30, generator=g)
    mask = (torch.rand(1, 1, 30, 30, generator=g) < 0.05).float()
    a = torch.rand(1, 8, 30, 30, generator=g).requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = propagate(torch.zeros_like(h0), a, 3, 18, h0=h0, mask=mask)
    sel = mask.bool()
    torch.testing.assert_close(out.detach()[sel], h0[sel])
    # values spread from the known pixels: nothing stays at the zero initialisation
    assert (out.detach()[~sel] != 0).float().mean() > 0.9


@pytest.mark.parametrize(("k", "dilation", "width"), [(5, 1, 21), (3, 1, 1), (7, 3, 5)])
def test_compiled_and_torch_paths_agree(k: int, dilation: int, width: int) -> None:
    # includes neighbours further away than the image width (replicate border only)
    g = torch.Generator().manual_seed(4)
    h = torch.rand(2, 3, 19, width, generator=g)
    a = torch.randn(2, k * k - 1, 19, width, generator=g)
    m = torch.rand(2, 1, 19, width, generator=g)
    h0 = torch.rand(2, 3, 19, width, generator=g)
    with torch.no_grad():
        fast = propagate(h, a, k, 7, h0=h0, mask=m, norm="clip", dilation=dilation)
    slow = propagate(h, a.requires_grad_(True), k, 7, h0=h0, mask=m, norm="clip", dilation=dilation)
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-5)


def test_normalisation_bounds() -> None:
    a = torch.randn(3, 8, 5, 5) * 10
    for mode in ("sum", "clip"):
        n, centre = normalize_affinity(a, mode)  # type: ignore[arg-type]
        assert torch.all(n.abs().sum(1) <= 1 + 1e-6)
        torch.testing.assert_close(centre[:, 0], 1 - n.sum(1))
    small = torch.full((1, 8, 2, 2), 0.01)
    torch.testing.assert_close(normalize_affinity(small, "clip")[0], small)


def test_offsets_and_shift_stack() -> None:
    assert neighbour_offsets(3) == [
        (-1, -1),
        (-1, 0),
        (-1, 1),
        (0, -1),
        (0, 1),
        (1, -1),
        (1, 0),
        (1, 1),
    ]
    assert len(neighbour_offsets(7, 2)) == 48
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    s = shift_stack(x, 3)
    assert s.shape == (1, 8, 1, 4, 5)
    assert s[0, 4, 0, 1, 1] == x[0, 0, 1, 2]  # right neighbour
    assert s[0, 0, 0, 0, 0] == x[0, 0, 0, 0]  # replicate border


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="odd"):
        neighbour_offsets(4)
    with pytest.raises(InputError, match="affinity has shape"):
        propagate(torch.zeros(1, 1, 5, 5), torch.zeros(1, 8, 5, 4), 3, 2)
    with pytest.raises(InputError, match="geometry"):
        HAMAffinity("spherical")  # type: ignore[arg-type]


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_ham_affinity(geometry: str) -> None:
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(2, 4, 9, 9, generator=g)
    ham = HAMAffinity(geometry, k=3)  # type: ignore[arg-type]
    strength = torch.rand(2, 1, 9, 9, generator=g)
    a = ham(emb, strength)
    assert a.shape == (2, 8, 9, 9)
    assert torch.all(a >= 0) and torch.all(a.sum(1, keepdim=True) <= strength + 1e-6)
    d = neighbour_distances(emb, 3, 1, geometry, ham.curvature)  # type: ignore[arg-type]
    # geodesic weight x beta-priority: the nearest neighbour gets the largest affinity
    assert torch.equal(a.argmax(1), d.argmin(1))
    a.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in ham.parameters() if p.grad is not None)
    assert ham.beta.grad is not None and ham.log_tau.grad is not None


def test_hyperbolic_distances_grow_faster_near_boundary() -> None:
    # same Euclidean gap, farther from the origin -> larger geodesic distance
    c = 1.0
    e1 = torch.zeros(1, 2, 1, 2)
    e1[0, 0, 0, 1] = 0.1
    e2 = e1.clone()
    e2[0, 0] += 2.0
    d_near = neighbour_distances(e1, 3, 1, "hyperbolic", c)[0, 4, 0, 0]
    p = expmap0(e2, c, dim=1)
    gap = (p[0, :, 0, 1] - p[0, :, 0, 0]).norm()
    q = expmap0(e1, c, dim=1)
    gap1 = (q[0, :, 0, 1] - q[0, :, 0, 0]).norm()
    d_far = neighbour_distances(e2, 3, 1, "hyperbolic", c)[0, 4, 0, 0]
    assert d_far / gap > d_near / gap1
