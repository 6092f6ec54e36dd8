"""Poincare-ball operations: Mobius identities, metric axioms, maps, boundary safety."""

from __future__ import annotations

import pytest
import torch

from affseg.affinity.hyperbolic import (
    beta_concat_ratio,
    distance,
    expmap0,
    gyro_log_distance,
    logmap0,
    mobius_add,
    mobius_matvec,
    project,
)
from affseg.errors import InputError


def _points(n: int, d: int, c: float, seed: int, scale: float = 0.9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = torch.rand(n, 1, generator=g, dtype=torch.float64) * scale / c**0.5
    return x / x.norm(dim=-1, keepdim=True) * r


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_mobius_identities(c: float) -> None:
    x, y = _points(50, 5, c, 0), _points(50, 5, c, 1)
    torch.testing.assert_close(mobius_add(x, torch.zeros_like(x), c), x)
    torch.testing.assert_close(mobius_add(torch.zeros_like(x), x, c), x)
    torch.testing.assert_close(mobius_add(-x, mobius_add(x, y, c), c), y)
    torch.testing.assert_close(mobius_add(-x, x, c), torch.zeros_like(x))


def test_mobius_add_matches_euclidean_limit() -> None:
    x, y = _points(10, 3, 1.0, 2), _points(10, 3, 1.0, 3)
    torch.testing.assert_close(mobius_add(x, y, 1e-12), x + y)


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_distance_is_a_metric(c: float) -> None:
    x, y, z = (_points(200, 4, c, s) for s in (4, 5, 6))
    assert torch.all(distance(x, x, c) == 0)
    torch.testing.assert_close(distance(x, y, c), distance(y, x, c))
    assert torch.all(distance(x, y, c) > 0)
    assert torch.all(distance(x, z, c) <= distance(x, y, c) + distance(y, z, c) + 1e-9)


def test_distance_closed_form_from_origin() -> None:
    # d(0, x) = (2 / sqrt(c)) artanh(sqrt(c) |x|), and along a line it is the known
    # 2 artanh form; check against an independent float64 computation.
    c = 0.5
    x = _points(20, 3, c, 7)
    expected = 2 / c**0.5 * torch.atanh(c**0.5 * x.norm(dim=-1))
    torch.testing.assert_close(distance(torch.zeros_like(x), x, c), expected)
    # conformal factor: for tiny steps d ~ 2 |dx| / (1 - c|x|^2)
    dx = torch.full_like(x, 1e-6)
    approx = 2 * dx.norm(dim=-1) / (1 - c * (x * x).sum(-1))
    torch.testing.assert_close(distance(x, x + dx, c), approx, rtol=1e-4, atol=0)


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_exp_log_round_trip(c: float) -> None:
    g = torch.Generator().manual_seed(8)
    u = torch.randn(100, 6, generator=g, dtype=torch.float64) * 0.5 / c**0.5
    torch.testing.assert_close(logmap0(expmap0(u, c), c), u)
    x = _points(100, 6, c, 9)
    torch.testing.assert_close(expmap0(logmap0(x, c), c), x)
    # feature axis other than the last
    u4 = torch.randn(2, 6, 5, 5, generator=g, dtype=torch.float64) * 0.3 / c**0.5
    torch.testing.assert_close(logmap0(expmap0(u4, c, dim=1), c, dim=1), u4)


def test_expmap_stays_inside_ball_and_project() -> None:
    c = 0.1
    u = torch.randn(1000, 8) * 100.0
    x = expmap0(u, c)
    assert torch.all(x.norm(dim=-1) < 1 / c**0.5)
    big = torch.randn(10, 3) * 50
    p = project(big, c)
    torch.testing.assert_close(p.norm(dim=-1), torch.full((10,), 0.999 / c**0.5))
    small = torch.randn(10, 3) * 0.01
    torch.testing.assert_close(project(small, c), small)


def test_gradients_finite_near_boundary_float32() -> None:
    c = torch.tensor(1.0, requires_grad=True)
    u = (torch.randn(64, 4) * 30).requires_grad_(True)  # tanh saturates: at the boundary
    v = (torch.randn(64, 4) * 30).requires_grad_(True)
    x, y = expmap0(u, c), expmap0(v, c)
    m = torch.randn(3, 4, requires_grad=True)
    loss = (
        distance(x, y, c).sum()
        + distance(x, x, c).sum()
        + logmap0(x, c).sum()
        + mobius_matvec(m, x, c).sum()
        + mobius_add(x, y, c).sum()
    )
    loss.backward()
    for t in (u, v, c, m):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert torch.isfinite(loss)
    # the origin too
    z = torch.zeros(2, 4, requires_grad=True)
    (expmap0(z, 1.0).sum() + logmap0(z, 1.0).sum()).backward()
    assert torch.isfinite(z.grad).all()


def test_mobius_matvec_equals_exp_of_linear_log() -> None:
    c = 0.3
    x = _points(30, 4, c, 10, scale=0.7)
    g = torch.Generator().manual_seed(11)
    m = torch.randn(2, 4, generator=g, dtype=torch.float64)
    expected = expmap0(logmap0(x, c) @ m.T, c)
    torch.testing.assert_close(mobius_matvec(m, x, c), expected)
    torch.testing.assert_close(mobius_matvec(torch.eye(4, dtype=torch.float64), x, c), x)


def test_beta_concat_ratio_matches_beta_functions() -> None:
    from scipy.special import beta

    for d, n in [(1, 1), (4, 2), (16, 8), (16, 48)]:
        assert beta_concat_ratio(d, n) == pytest.approx(
            beta(n * d / 2, 0.5) / beta(d / 2, 0.5), rel=1e-12
        )
    assert beta_concat_ratio(16, 1) == 1.0
    with pytest.raises(InputError, match="beta concatenation"):
        beta_concat_ratio(0, 3)


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_gyro_log_distance_equals_composition(c: float) -> None:
    x, y = _points(200, 6, c, 20, scale=0.95), _points(200, 6, c, 21, scale=0.95)
    tangent, d = gyro_log_distance(x, y, c)
    torch.testing.assert_close(tangent, logmap0(mobius_add(-x, y, c), c))
    torch.testing.assert_close(d, distance(x, y, c))
    torch.testing.assert_close(tangent.norm(dim=-1), d / 2)
    # broadcasting over a neighbour axis, feature axis in the middle (as in HAM)
    xb, yb = x[:10].T.reshape(1, 6, 10), y[:30].T.reshape(3, 6, 10)
    tb, db = gyro_log_distance(xb, yb, c, dim=1)
    assert tb.shape == (3, 6, 10) and db.shape == (3, 10)
    torch.testing.assert_close(db, distance(xb, yb, c, dim=1))
    # x == y: (almost) zero, finite gradients in float32 even at the boundary
    u = (torch.randn(64, 4) * 30).requires_grad_(True)
    p = expmap0(u, c)
    t0, d0 = gyro_log_distance(p, p, c)
    assert float(d0.detach().max()) < 2e-3
    (t0.sum() + d0.sum() + gyro_log_distance(p, p.flip(0), c)[1].sum()).backward()
    assert torch.isfinite(u.grad).all()
