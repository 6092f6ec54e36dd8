"""Diffusion engine: local graphs, accelerated simultaneous iteration, diffusion distance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from affseg.affinity.diffusion import (
    DiffusionDistance,
    abs_matrix_power,
    diffusion_map,
    simultaneous_iteration,
    subgrid_init,
)
from affseg.affinity.graph import (
    LocalOperator,
    gaussian_affinity,
    normalized_operator,
    transition_operator,
)
from affseg.errors import InputError


def dense_affinity(feats: np.ndarray, mu: float, k: int) -> np.ndarray:
    """Independent dense W (N x N) of a (C, h, w) feature grid with a k x k window."""
    c, h, w = feats.shape
    f = feats.reshape(c, -1).T
    ys, xs = np.divmod(np.arange(h * w), w)
    r = k // 2
    win = (np.abs(ys[:, None] - ys[None]) <= r) & (np.abs(xs[:, None] - xs[None]) <= r)
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    return np.exp(-mu * d2) * win


def dense_diffusion_distance(wm: np.ndarray, t: int, density: str) -> np.ndarray:
    """Eq. 3: sum_k (P^t_ik - P^t_jk)^2 w(k), w = 1/pi (stationary) or 1/d (degree)."""
    d = wm.sum(1)
    pt = np.linalg.matrix_power(wm / d[:, None], t)
    wk = d.sum() / d if density == "stationary" else 1.0 / d
    return (((pt[:, None, :] - pt[None, :, :]) ** 2) * wk).sum(-1)


def top_eigs(wm: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    d = wm.sum(1)
    s = wm / np.sqrt(d[:, None] * d[None])
    lam, vec = sl.eigh(s)
    order = np.argsort(-np.abs(lam))
    return lam[order[:n]], vec[:, order[:n]]


@pytest.fixture
def feats64() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(1, 3, 16, 20, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------- graph
def test_local_affinity_matches_dense(feats64):
    for k in (3, 5, 17):
        op = gaussian_affinity(feats64, 0.2, k)
        ref = dense_affinity(feats64[0].numpy(), 0.2, k)
        np.testing.assert_allclose(op.dense()[0].numpy(), ref, atol=1e-12)
        assert op.coef.shape == (1, k * k, 16, 20)


@pytest.mark.parametrize("shape", [(5, 1), (4, 3), (3, 7), (6, 2), (3, 9), (2, 4)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_stencil_odd_even_widths(shape, k):
    """The generic kernel handles any width, w = 1 and windows wider than the grid."""
    h, w = shape
    f = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    op = gaussian_affinity(f, 0.4, k)
    x = torch.randn(2, h * w, 4, dtype=torch.float64)
    for b in range(2):
        torch.testing.assert_close(op.apply(x)[b], op.dense()[b] @ x[b])


def test_operators_apply_like_dense(feats64):
    w = gaussian_affinity(feats64, 0.2, 5)
    x = torch.randn(1, 320, 7, dtype=torch.float64)
    wd = torch.from_numpy(dense_affinity(feats64[0].numpy(), 0.2, 5))
    d = wd.sum(1)
    s_ref = wd / torch.sqrt(d[:, None] * d[None])
    s = normalized_operator(w)
    torch.testing.assert_close(s.apply(x)[0], s_ref @ x[0])
    p = transition_operator(w)
    torch.testing.assert_close(p.apply(x)[0], (wd / d[:, None]) @ x[0])
    torch.testing.assert_close(p.transpose().apply(x)[0], (wd / d[:, None]).T @ x[0])
    # compiled and unfold backends agree, channels-last (B, h, w, M) input works too
    s_t = normalized_operator(gaussian_affinity(feats64, 0.2, 5, backend="torch"))
    torch.testing.assert_close(s_t.apply(x), s.apply(x))
    torch.testing.assert_close(s.apply(x.reshape(1, 16, 20, 7)).reshape(1, 320, 7), s.apply(x))


def test_stencil_gradcheck():
    g = torch.Generator().manual_seed(0)
    coef = torch.rand(2, 9, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 20, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, v: LocalOperator(c, 3).apply(v), (coef, x))


def test_bad_inputs_raise():
    with pytest.raises(InputError, match="odd"):
        gaussian_affinity(torch.randn(1, 2, 5, 5), 1.0, 4)
    with pytest.raises(InputError, match=r"\(B, C, h, w\)"):
        gaussian_affinity(torch.randn(2, 5, 5), 1.0, 3)
    with pytest.raises(InputError, match="floating"):
        gaussian_affinity(torch.ones(1, 2, 5, 5, dtype=torch.long), 1.0, 3)
    with pytest.raises(InputError, match="eigenvectors"):
        diffusion_map(torch.randn(1, 2, 3, 3), 1.0, 1.0, k=3, n_eig=10)
    op = gaussian_affinity(torch.randn(1, 2, 5, 5), 1.0, 3)
    with pytest.raises(InputError, match="vectors"):
        op.apply(torch.randn(1, 24, 2))


# ----------------------------------------------------------------------------- exactness
def test_subgrid_init_is_orthonormal_one_hot():
    u = subgrid_init(41, 41, 49, torch.float64)
    torch.testing.assert_close(u.T @ u, torch.eye(49, dtype=torch.float64))
    rows = u.argmax(0)
    ys, xs = rows // 41, rows % 41
    assert len(set(ys.tolist())) == 7 and len(set(xs.tolist())) == 7  # a 7 x 7 sub-grid
    for h, w, n in ((40, 60, 50), (5, 3, 15), (1, 30, 7)):
        u = subgrid_init(h, w, n)
        assert u.shape == (h * w, n) and torch.equal(u.sum(0), torch.ones(n))
        assert torch.equal(u.T @ u, torch.eye(n))


def test_eigenvalues_match_dense_eigh(feats64):
    n_eig = 12
    res = diffusion_map(feats64, 0.3, 2.0, k=5, n_eig=n_eig, n_outer=12, n_inner=40)
    ref, vec = top_eigs(dense_affinity(feats64[0].numpy(), 0.3, 5), n_eig)
    np.testing.assert_allclose(res.eigenvalues[0].numpy(), ref, rtol=1e-4)
    assert abs(ref[0] - 1.0) < 1e-12  # the constant vector of P
    # eigenvectors of S span the same space
    u = res.basis[0].numpy()
    assert np.linalg.norm(vec - u @ (u.T @ vec), 2) < 1e-4


@pytest.mark.parametrize("density", ["stationary", "degree"])
def test_full_spectrum_distances_match_eq3(feats64, density):
    f = feats64[:, :, :10, :12]
    n = 120
    res = diffusion_map(f, 0.3, 3.0, k=5, n_eig=n, n_outer=2, n_inner=8, density=density)
    ref = dense_diffusion_distance(dense_affinity(f[0].numpy(), 0.3, 5), 3, density)
    got = res.distances()[0].numpy()
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(got[off], ref[off], rtol=1e-3)
    # eigenvectors Phi reproduce Eq. 4 explicitly
    phi, lam = res.eigenvectors[0].numpy(), res.eigenvalues[0].numpy()
    eq4 = (lam**6 * (phi[:, None, :] - phi[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(eq4, got, atol=1e-9 * np.abs(ref).max())


def test_truncation_error_shrinks_with_ne(feats64):
    f = feats64[:, :, :12, :15]
    ref = dense_diffusion_distance(dense_affinity(f[0].numpy(), 0.3, 5), 5, "stationary")
    errs = []
    for n_eig in (10, 30, 90):
        res = diffusion_map(f, 0.3, 5.0, k=5, n_eig=n_eig, n_outer=20, n_inner=40)
        errs.append(np.abs(res.distances()[0].numpy() - ref).max() / ref.max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-3


def test_rows_kernel_and_maps_agree(feats64):
    mod = DiffusionDistance(mu=0.3, t=3.0, tau=0.5, k=5, n_eig=20).double()
    res = mod(feats64)
    kern = res.kernel()
    rows = res.rows([0, 17, 319])
    torch.testing.assert_close(rows, kern[:, [0, 17, 319]])
    torch.testing.assert_close(res.similarity_map(3, 4)[0].flatten(), kern[0, 3 * 20 + 4])
    torch.testing.assert_close(
        torch.diagonal(kern, dim1=1, dim2=2), torch.ones(1, 320, dtype=kern.dtype)
    )
    assert torch.allclose(kern, kern.transpose(1, 2))
    assert res.embedding.shape == (1, 320, 20) and res.eigenvalues.shape == (1, 20)
    for name in ("mu", "t", "tau"):
        assert getattr(mod, name) > 0
    with pytest.raises(InputError, match="outside"):
        res.similarity_map(16, 0)


def test_float32_close_to_float64(feats64):
    r64 = diffusion_map(feats64, 0.3, 3.0, k=5, n_eig=20)
    r32 = diffusion_map(feats64.float(), 0.3, 3.0, k=5, n_eig=20)
    assert r32.embedding.dtype == torch.float32
    np.testing.assert_allclose(r32.eigenvalues.numpy(), r64.eigenvalues.numpy(), atol=1e-4)
    d64 = r64.distances([5, 100])
    np.testing.assert_allclose(
        r32.distances([5, 100]).numpy(), d64.numpy(), atol=1e-3 * float(d64.max())
    )


def test_gradcheck_features_mu_t_tau():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(1, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    logs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (-1.0, 1.0, 0.0)]

    def fn(f, lmu, lt, ltau):
        r = diffusion_map(
            f, lmu.exp(), lt.exp(), k=3, n_eig=6, n_outer=2, n_inner=6, qr_every=3, tau=ltau.exp()
        )
        return r.rows([0, 7, 20]), r.eigenvalues

    assert torch.autograd.gradcheck(fn, (f, *logs))


def test_abs_matrix_power_degenerate_gradient_is_finite():
    h = torch.diag(torch.tensor([0.9, 0.9, 0.5], dtype=torch.float64)).requires_grad_()
    t = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    out = abs_matrix_power(h, t)
    out.sum().backward()
    assert torch.isfinite(h.grad).all() and torch.isfinite(t.grad)
    torch.testing.assert_close(
        torch.diagonal(h.grad), 3 * torch.tensor([0.81, 0.81, 0.25], dtype=torch.float64)
    )
    hs = torch.randn(4, 4, dtype=torch.float64)
    hs = (hs + hs.T).requires_grad_()
    tt = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(abs_matrix_power, (hs, tt))


# ----------------------------------------------------------------------------- properties
def _two_blobs() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Two 9 x 9 blobs joined by a 1-pixel, 9-long bridge; background far in feature space."""
    img = np.full((11, 29), 10.0)
    img[1:10, 1:10] = 0.0
    img[1:10, 19:28] = 0.0
    img[5, 10:19] = 0.0
    feats = torch.from_numpy(img)[None, None]
    left = np.flatnonzero(
        (np.arange(11 * 29) % 29 < 10) & (img.ravel() == 0) & (np.arange(11 * 29) % 29 >= 1)
    )
    right = np.flatnonzero((np.arange(11 * 29) % 29 >= 19) & (img.ravel() == 0))
    return feats, left, right


def test_two_blobs_bridge_separates():
    feats, left, right = _two_blobs()
    # t long enough for the walk to mix inside each 9 x 9 blob (at t = 8 a blob's far
    # corners are still apart) but far shorter than the bridge's mixing time.
    res = diffusion_map(feats, 1.0, 100.0, k=3, n_eig=12, n_outer=10, n_inner=40)
    d = res.distances(np.concatenate([left, right]))[0].numpy()
    nl = len(left)
    within = max(d[:nl][:, left].max(), d[nl:][:, right].max())
    across = d[:nl][:, right].min()
    assert within < 0.01 * across


def test_distance_decreases_with_t(feats64):
    f = feats64[:, :, :10, :12]
    prev = None
    for t in (1.0, 2.0, 5.0, 10.0, 20.0):
        d = diffusion_map(f, 0.3, t, k=5, n_eig=120, n_outer=2, n_inner=8).distances()[0]
        if prev is not None:
            assert bool((d <= prev + 1e-9).all()) and float((prev - d).max()) > 0
        prev = d


def _subspace_error(u: torch.Tensor, v: np.ndarray) -> float:
    """tan of the largest principal angle between span(u) and span(v); decays like rho^n."""
    cos = np.linalg.svd(v.T @ u[0].numpy(), compute_uv=False).min()
    return float(np.sqrt(1.0 - cos * cos) / cos)


def test_accelerated_iteration_converges_faster(feats64):
    """Proposition 1: per outer iteration the error shrinks like rho^m instead of rho."""
    n_eig, m = 6, 4
    op = normalized_operator(gaussian_affinity(feats64, 0.3, 5))
    lam, vec = top_eigs(dense_affinity(feats64[0].numpy(), 0.3, 5), n_eig + 1)
    rho = abs(lam[n_eig]) / abs(lam[n_eig - 1])  # ~0.99: a small spectral gap
    init = torch.linspace(0.5, 1.5, 320 * n_eig, dtype=torch.float64).reshape(320, n_eig)
    init = init + torch.randn(
        320, n_eig, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def errors(inner: int, outers: list[int]) -> np.ndarray:
        return np.array(
            [
                _subspace_error(
                    simultaneous_iteration(op, n_eig, n, inner, None, init), vec[:, :n_eig]
                )
                for n in outers
            ]
        )

    plain = errors(1, [100, 200, 400])
    acc = errors(m, [25, 50, 100])
    rate_plain = (plain[2] / plain[1]) ** (1 / 200)
    rate_acc = (acc[2] / acc[1]) ** (1 / 50)
    assert rate_plain == pytest.approx(rho, rel=1e-3)
    assert rate_acc == pytest.approx(rho**m, rel=1e-3)
    # m inner applications per QR step span the same subspace as m times more QR steps ...
    np.testing.assert_allclose(acc[:2], plain[:2], rtol=1e-6)
    # ... so after the same number of outer iterations (QR steps) it is far ahead
    assert acc[2] < 0.1 * plain[0]


def test_generic_kernels_same_at_any_thread_count():
    """The generic compiled stencil and correlation give the same numbers on 1 and 2
    threads (rows are independent) and match the float64 definitions."""
    from affseg.affinity import _kernels

    rng = np.random.default_rng(0)
    k, r = 3, 1
    coef = rng.random((2, 5, 7, k * k))
    x = rng.normal(size=(2, 5, 7, 4))
    xpad = np.ascontiguousarray(np.pad(x, ((0, 0), (r, r), (r, r), (0, 0))))
    ref = np.zeros_like(x)
    for o in range(k * k):
        dy, dx = divmod(o, k)
        ref += coef[..., o, None] * xpad[:, dy : dy + 5, dx : dx + 7]
    grad = rng.normal(size=x.shape)
    gref = np.stack(
        [(grad * xpad[:, o // k : o // k + 5, o % k : o % k + 7]).sum(-1) for o in range(k * k)],
        -1,
    )
    for threads in (1, 2):
        out = np.empty_like(x)
        _kernels.stencil(coef, xpad, out, k, threads)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        g = np.empty_like(coef)
        _kernels.correlate(grad, xpad, g, k, threads)
        np.testing.assert_allclose(g, gref, rtol=1e-12, atol=1e-12)


def test_backend_names():
    """Backends are named for what they are; the former names still work."""
    from affseg.affinity import graph

    coef = torch.ones(1, 9, 3, 4)
    assert graph.LocalOperator(coef, 3).backend == "kernel"
    assert graph.LocalOperator(coef, 3, backend="torch").backend == "unfold"  # former name
    assert graph.LocalOperator(coef, 3, backend="numba").backend == "kernel"  # former name
    with pytest.raises(InputError, match="backend"):
        graph.LocalOperator(coef, 3, backend="gpu")
