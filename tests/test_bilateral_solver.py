"""The fast bilateral solver (Barron & Poole 2016): affseg.affinity.bilateral_solver."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from affseg.errors import InputError
from affseg.methods.depth_baselines import (
    BILATERAL_PARAMS,
    BilateralGrid,
    bilateral_solve,
    bilateral_system,
    bilateral_upsample,
    bistochastize,
    depth_sr_confidence,
)


def _guide(h: int = 24, w: int = 32) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, w // 2 :] = (200, 40, 90)
    rgb[h // 2 :, : w // 4] = (30, 180, 60)
    return rgb


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_constant_target_stays_constant(interpolation: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)
    conf = rng.uniform(0.1, 1.0, (20, 28))
    out = bilateral_solve(
        rgb, np.full((20, 28), 42.5), conf, sigma_spatial=4, sigma_luma=4, sigma_chroma=3,
        lam=50.0, cg_iterations=200, cg_tol=1e-12, interpolation=interpolation,
    )  # fmt: skip
    np.testing.assert_allclose(out, 42.5, rtol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_lambda_to_zero_returns_the_target_where_confident(interpolation: str) -> None:
    # A target representable in the grid (constant per vertex, nearest) is reproduced
    # exactly as lam -> 0; with bilinear splatting, a target constant per colour region is.
    rgb = _guide()
    grid = BilateralGrid(rgb, 4, 4, 3, interpolation)
    y_true = np.random.default_rng(1).uniform(0, 100, grid.n_vertices)
    if interpolation == "nearest":
        t = grid.slice(y_true).reshape(rgb.shape[:2])
    else:
        t = np.where(rgb[..., 0] > 100, 80.0, np.where(rgb[..., 1] > 100, 20.0, 50.0))
    conf = np.ones(t.shape)
    conf[::3, ::5] = 0.0  # unconfident pixels take the grid's value
    out = bilateral_solve(
        rgb, t, conf, sigma_spatial=4, sigma_luma=4, sigma_chroma=3, lam=1e-9,
        cg_iterations=500, cg_tol=1e-14, interpolation=interpolation,
    )  # fmt: skip
    np.testing.assert_allclose(out[conf > 0], t[conf > 0], atol=1e-3)


def test_bistochastized_blur_rows_sum_to_the_vertex_masses() -> None:
    rgb = np.random.default_rng(2).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    grid = BilateralGrid(rgb, 4, 8, 8)
    n, m = bistochastize(grid, iterations=200)
    w_bar = sp.diags(n) @ grid.blur_matrix @ sp.diags(n)
    np.testing.assert_allclose(w_bar.sum(axis=1).A1, m, rtol=1e-12)  # exact by construction
    mass = grid.splat(np.ones(grid.n_pixels))
    np.testing.assert_allclose(m, mass, rtol=1e-6)  # converged: D_n B D_n 1 = S 1
    # so the pixel-space W_hat = S^T D_m^-1 (D_n B D_n) D_m^-1 S is bistochastic
    dinv = sp.diags(1.0 / m)
    w_hat = grid.splat_matrix.T @ dinv @ w_bar @ dinv @ grid.splat_matrix
    np.testing.assert_allclose(w_hat.sum(axis=1).A1, 1.0, rtol=1e-5)
    np.testing.assert_allclose(w_hat.sum(axis=0).A1, 1.0, rtol=1e-5)
    assert abs(w_bar - w_bar.T).max() < 1e-12


def test_splat_slice_on_one_vertex_reproduce_a_piecewise_constant_image() -> None:
    rgb = _guide(16, 16)
    grid = BilateralGrid(rgb, 8, 4, 3, interpolation="nearest")
    s = grid.splat_matrix
    np.testing.assert_allclose(s.sum(axis=0).A1, 1.0)  # each pixel in exactly one vertex
    labels = s.T.argmax(axis=1).A1.reshape(16, 16)
    img = np.asarray(labels, float) * 3.0 + 1.0  # constant on every vertex's pixels
    mass = grid.splat(np.ones(grid.n_pixels))
    y = grid.splat(img.ravel()) / mass
    np.testing.assert_allclose(grid.slice(y), img.ravel())
    one = np.zeros(grid.n_vertices)
    one[labels[0, 0]] = 1.0  # one vertex: its 8x8 block of one colour
    assert grid.slice(one).reshape(16, 16)[:8, :8].all()
    assert grid.slice(one).sum() == mass[labels[0, 0]] == 64
    bil = BilateralGrid(rgb, 8, 4, 3)  # bilinear: the weights of a pixel sum to 1
    np.testing.assert_allclose(bil.splat_matrix.sum(axis=0).A1, 1.0)
    flat = bil.slice(np.full(bil.n_vertices, 7.0))
    np.testing.assert_allclose(flat, 7.0)


def test_pcg_solution_matches_spsolve() -> None:
    rng = np.random.default_rng(3)
    rgb = _guide(20, 20)
    t = rng.normal(50, 10, (20, 20))
    c = rng.uniform(0.2, 1.0, (20, 20))
    kw = {"sigma_spatial": 4, "sigma_luma": 4, "sigma_chroma": 3}
    out = bilateral_solve(rgb, t, c, lam=16.0, cg_iterations=2000, cg_tol=1e-13, **kw)  # type: ignore[arg-type]
    grid = BilateralGrid(rgb, 4, 4, 3)
    a, b = bilateral_system(grid, t.ravel(), c.ravel(), 16.0)
    assert abs(a - a.T).max() < 1e-9
    y = spsolve(a.tocsc(), b)
    np.testing.assert_allclose(out.ravel(), grid.slice(y), atol=1e-4)
    # the sliced PCG output satisfies the normal equations
    y_pcg = spsolve(sp.csc_matrix(grid.splat_matrix @ grid.splat_matrix.T), grid.splat(out.ravel()))
    assert np.linalg.norm(a @ y_pcg - b) / np.linalg.norm(b) < 1e-5


def test_depth_sr_confidence_and_params() -> None:
    c = depth_sr_confidence(16, 16, 8)
    assert c.max() == pytest.approx(np.exp(-(0.5**2) * 2 / (2 * 2.0**2)))  # centre pixels
    assert c[3, 3] == c[4, 4] == c.max() and c[0, 0] < c[3, 3]
    np.testing.assert_allclose(depth_sr_confidence(6, 6, 2), np.exp(-1.0))
    assert [BILATERAL_PARAMS[f]["lam"] for f in (2, 4, 8, 16)] == [2.0, 8.0, 32.0, 128.0]
    sigmas = {
        (p["sigma_spatial"], p["sigma_luma"], p["sigma_chroma"]) for p in BILATERAL_PARAMS.values()
    }
    assert sigmas == {(8.0, 4.0, 3.0)}


def test_depth_sr_solve_is_the_baseline_and_the_models_bilateral_start() -> None:
    """One solve serves the classical baseline and the start map of the HAM models."""
    import torch

    from affseg.affinity.bilateral_solver import depth_sr_solve
    from affseg.methods.depth_baselines import bicubic_upsample
    from affseg.models.depth_sr_fast import FastDepthSR, bilateral_smooth

    rng = np.random.default_rng(3)
    rgb = np.repeat(np.repeat(_guide(8, 12), 4, 0), 4, 1)  # 32 x 48
    lr = rng.uniform(20, 200, (8, 12)).astype(np.float32)
    up = bicubic_upsample(lr, 4)
    ref = bilateral_solve(rgb, up, depth_sr_confidence(32, 48, 4), **BILATERAL_PARAMS[4])
    np.testing.assert_array_equal(depth_sr_solve(rgb, up, 4), ref)
    np.testing.assert_array_equal(bilateral_upsample(rgb, lr, 4), ref)
    # a factor outside the table: the x4 grid, lambda = 4 ** (log2(f) - 1/2)
    p3 = dict(BILATERAL_PARAMS[4], lam=4.0 ** (np.log2(3) - 0.5))
    np.testing.assert_array_equal(
        depth_sr_solve(rgb, up, 3), bilateral_solve(rgb, up, depth_sr_confidence(32, 48, 3), **p3)
    )
    # the model's smoothed map is that solve of its (clamped) bicubic map
    t_rgb = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    t_up = torch.from_numpy(up)[None, None]
    np.testing.assert_allclose(bilateral_smooth(t_rgb, t_up, 4)[0, 0].numpy(), ref)
    assert FastDepthSR("euclidean", init="bilateral").config()["init"] == "bilateral"


def test_errors() -> None:
    rgb = _guide(8, 8)
    with pytest.raises(InputError, match="interpolation"):
        BilateralGrid(rgb, 4, 4, 3, interpolation="cubic")
    with pytest.raises(InputError, match="confidence must be >= 0"):
        bilateral_solve(rgb, np.zeros((8, 8)), -np.ones((8, 8)))
    with pytest.raises(InputError, match="differ"):
        bilateral_solve(rgb, np.zeros((8, 8)), np.ones((4, 4)))
    os.environ["AFFSEG_MAX_MEMORY_GB"] = "0.000001"
    try:
        with pytest.raises(InputError, match="bilateral grid of a 8 x 8 guide"):
            BilateralGrid(rgb, 4, 4, 3)
    finally:
        del os.environ["AFFSEG_MAX_MEMORY_GB"]


def _data_root() -> Path:
    return Path(os.environ.get("AFFSEG_DATA", "/work/shared/data"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (_data_root() / "Middlebury_depth_sr" / "books_big" / "barronpoole").is_dir(),
    reason="Middlebury_depth_sr with published Barron-Poole outputs not available",
)
def test_middlebury_against_published_outputs() -> None:
    from affseg.methods.depth_sr import error_metrics, load_scene

    # Measured (benchmarks/bench_bilateral_solver.py): within 3 % of the published
    # outputs at x16 and art x8; 4-30 % worse at books x8 and at x2 / x4 (see the report).
    bound = {2: 1.35, 4: 1.16, 8: 1.05, 16: 1.02}
    for scene in ("art_big", "books_big"):
        sc = load_scene(scene, str(_data_root()))
        for f, most in bound.items():
            out = bilateral_upsample(sc["rgb"], sc[f"lr{f}"], f)
            ours = error_metrics(out, sc["gt"])["rmse"]
            assert ours / error_metrics(sc[f"bp{f}"], sc["gt"])["rmse"] < most, (scene, f)
