"""Task A (guided depth super-resolution): model, training helpers and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affseg.errors import InputError


@pytest.mark.parametrize("init", ["bicubic", "fgs", "bilateral"])
@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_fast_model_constant_depth_and_errors(geometry: str, init: str) -> None:
    from affseg.models.depth_sr_fast import FastDepthSR

    torch.manual_seed(0)
    model = FastDepthSR(geometry, init=init).eval()  # type: ignore[arg-type]
    rgb = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        out = model(rgb, torch.full((1, 1, 8, 6), 97.0), 8)
    assert out.shape == (1, 1, 64, 48)
    torch.testing.assert_close(out, torch.full_like(out, 97.0))  # constants survive
    assert set(model.timings) == {
        "upsample_and_pool", "global_smoother", "guidance_net", "coarse_propagation", "embeddings",
        "affinities", "propagation",
    }  # fmt: skip
    with pytest.raises(InputError, match="power-of-two"):
        model(rgb, torch.zeros(1, 1, 10, 6), 8)
    with pytest.raises(InputError, match="power-of-two"):
        model(rgb, torch.zeros(1, 1, 16, 12), 3)
    with pytest.raises(InputError, match="divisible by 16"):
        model(torch.rand(1, 3, 40, 40), torch.zeros(1, 1, 20, 20), 2)
    with pytest.raises(InputError, match="init"):
        FastDepthSR(geometry, init="nearest")  # type: ignore[arg-type]


@pytest.mark.parametrize("init", ["bicubic", "fgs", "bilateral"])
@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_fast_path_equals_reference_path(geometry: str, init: str) -> None:
    """The compiled inference path (fused affinities, no autograd) equals the autograd
    path; the output stays within the LR range (a convex combination)."""
    from affseg.models.depth_sr_fast import FastDepthSR

    torch.manual_seed(1)
    model = FastDepthSR(geometry, init=init).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # a trained-like state: non-trivial curvature, temperature
        model.affinity.raw_c.fill_(0.5)
        model.affinity.log_tau.fill_(-0.7)
    rgb = torch.rand(2, 3, 64, 80)
    lr = torch.rand(2, 1, 16, 20) * 200 + 20
    with torch.no_grad():
        fast = model(rgb, lr, 4)
        assert model(rgb, lr, 4, fast=True).equal(fast)
    slow = model(rgb, lr.requires_grad_(True), 4)
    torch.testing.assert_close(fast, slow.detach(), atol=2e-4, rtol=1e-6)
    assert fast.min() >= lr.min() - 1e-3 and fast.max() <= lr.max() + 1e-3
    slow.mean().backward()
    assert lr.grad is not None and torch.isfinite(lr.grad).all()


def test_no_blend_starts_from_the_smoothed_map_alone() -> None:
    """``blend=False``: the start and data term are the smoothed map itself, so a constant
    smoothed map comes out unchanged whatever the low-resolution input; with the blend the
    bicubic map leaks in."""
    from affseg.models.depth_sr_fast import FastDepthSR

    torch.manual_seed(0)
    rgb, lr = torch.rand(1, 3, 64, 48), torch.rand(1, 1, 16, 12) * 100 + 50
    smooth = torch.full((1, 1, 64, 48), 80.0)
    plain = FastDepthSR("hyperbolic", init="bilateral", blend=False).eval()
    blended = FastDepthSR("hyperbolic", init="bilateral", blend_detail=True).eval()
    assert plain.config()["blend"] is False and plain.blend_detail is None
    assert blended.config()["blend"] is True
    with torch.no_grad():
        torch.testing.assert_close(plain(rgb, lr, 4, smooth=smooth), smooth)
        assert not torch.allclose(blended(rgb, lr, 4, smooth=smooth), smooth)
        with pytest.raises(InputError, match="smoothed map"):
            plain(rgb, lr, 4, smooth=smooth[..., :32, :])
    # the plain model has one auxiliary output less (no blend logit)
    assert plain.guide.head.out_channels == blended.guide.head.out_channels - 1


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_ham_affinity_fast_equals_module(geometry: str) -> None:
    from affseg.affinity.propagation import normalize_affinity
    from affseg.models.ham import HAMAffinity
    from affseg.models.ham_fast import ham_affinity_fast

    torch.manual_seed(2)
    ham = HAMAffinity(geometry, stable_rank=True)  # type: ignore[arg-type]
    emb, s = torch.randn(2, 6, 9, 11) * 2, torch.rand(2, 1, 9, 11)
    s[0, 0, 0, 0] = 1.0  # the clip normalisation's divisor exceeds 1 here
    tied = torch.zeros(1, 6, 9, 11)
    tied[..., 5:] = 1.0  # many exactly tied distances: ranks broken by neighbour index
    for e, st in ((emb, s), (tied, torch.ones(1, 1, 9, 11))):
        for dil in (1, 2, 4):
            with torch.no_grad():
                ref = ham(e, st, dilation=dil)
                a, centre = ham_affinity_fast(ham, e, st, dil, normalize=True)
                ref_a, ref_c = normalize_affinity(ref, "clip")
            torch.testing.assert_close(ham_affinity_fast(ham, e, st, dil), ref)
            torch.testing.assert_close(a, ref_a)
            torch.testing.assert_close(centre, ref_c)


def test_degrade_is_area_downsampling_when_noise_free() -> None:
    from affseg.train.depth_sr import degrade

    g = torch.arange(64.0).reshape(1, 1, 8, 8)
    low = degrade(g, 4, torch.zeros(1, 1, 1, 1), torch.Generator().manual_seed(0))
    expected = np.round(g.numpy()[0, 0].reshape(2, 4, 2, 4).mean(axis=(1, 3)))
    np.testing.assert_array_equal(low[0, 0].numpy(), expected)


def test_augment_keeps_guide_and_depth_aligned() -> None:
    from affseg.train.depth_sr import augment

    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 16, 16)
    rgb = torch.cat([gt, 2 * gt, 3 * gt], 1)
    seen = set()
    for _ in range(20):
        g2, r2 = augment(gt, rgb, gen)
        assert g2.shape == gt.shape and r2.shape == rgb.shape
        scales = sorted(round(float((r2[:, i] / g2[:, 0]).mean()), 4) for i in range(3))
        assert scales == [1.0, 2.0, 3.0]  # every channel still a multiple of the depth
        seen.add(tuple(g2[0, 0, 0, :2].tolist()))
    assert len(seen) > 1  # the transform does change the crops


def test_bicubic_upsample_matches_torch() -> None:
    from affseg.methods.depth_baselines import bicubic_upsample

    lr = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    ref = F.interpolate(
        torch.from_numpy(lr)[None, None], size=(20, 28), mode="bicubic", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(bicubic_upsample(lr, 4), ref, atol=1e-6)


def test_dihedral_transforms_are_distinct_and_inverted() -> None:
    from affseg.methods.depth_sr import dihedral

    x = torch.arange(24.0).reshape(1, 1, 4, 6)
    outs = [dihedral(x, t) for t in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    assert outs[5].shape == (1, 1, 6, 4)
    torch.testing.assert_close(outs[3], x.rot90(2, (-2, -1)))
    for t in range(8):
        assert torch.equal(dihedral(outs[t], t, inverse=True), x)


def test_super_resolve_tta_is_the_mean_over_transformed_runs() -> None:
    from affseg.methods.depth_sr import super_resolve
    from affseg.models.depth_sr_fast import FastDepthSR

    torch.manual_seed(0)
    model = FastDepthSR("hyperbolic", iterations=1).eval()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    lr = (rng.random((4, 6)) * 100).astype(np.float32)
    g = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    d = torch.from_numpy(lr)[None, None]
    with torch.no_grad():
        plain = model(g, d, 8)[0, 0].numpy()
        lr_flip = model(g.flip(-1), d.flip(-1), 8).flip(-1)[0, 0].numpy()
        ud_flip = model(g.flip(-2), d.flip(-2), 8).flip(-2)[0, 0].numpy()
        both = model(g.flip(-1, -2), d.flip(-1, -2), 8).flip(-1, -2)[0, 0].numpy()
    np.testing.assert_allclose(super_resolve(model, rgb, lr, 8), plain, atol=1e-5)
    np.testing.assert_allclose(
        super_resolve(model, rgb, lr, 8, tta=2), (plain + lr_flip) / 2, atol=1e-4
    )
    np.testing.assert_allclose(
        super_resolve(model, rgb, lr, 8, tta=4), (plain + lr_flip + ud_flip + both) / 4, atol=1e-4
    )
    assert not np.allclose(plain, lr_flip, atol=1e-3)  # the model is not flip-equivariant
    with pytest.raises(InputError, match="tta"):
        super_resolve(model, rgb, lr, 8, tta=3)


def test_super_resolve_pads_sizes_the_model_cannot_take() -> None:
    from affseg.methods.depth_sr import super_resolve
    from affseg.models.depth_sr_fast import FastDepthSR

    torch.manual_seed(0)
    model = FastDepthSR("euclidean").eval()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (36, 52, 3), dtype=np.uint8)
    out = super_resolve(model, rgb, np.full((9, 13), 42.0, np.float32), 4)
    assert out.shape == (36, 52)
    np.testing.assert_allclose(out, 42.0, atol=1e-3)


@pytest.mark.parametrize(
    ("factor", "size"), [(2, (544, 688)), (4, (272, 344)), (8, (136, 172)), (16, (68, 86))]
)  # noqa: E501
def test_synthesis_reproduces_benchmark_sizes(factor: int, size: tuple[int, int]) -> None:
    """1376 x 1088 -> 688 x 544 ... 86 x 68, as the benchmark's depth_{1..4}_n.png; without
    noise the input is the rounded area downsampling; with noise its std is as asked."""
    from affseg.train.depth_sr import synthesize_input

    gt = np.random.default_rng(0).uniform(40, 200, (1088, 1376)).astype(np.float32)
    clean = synthesize_input(gt, factor, 0.0)
    assert clean.shape == size
    area = gt.reshape(size[0], factor, size[1], factor).mean(axis=(1, 3))
    assert np.all(np.abs(clean - area) <= 0.5 + 1e-4) and np.array_equal(clean, np.round(clean))
    noisy = synthesize_input(gt, factor, 5.5, seed=3)
    assert abs(float((noisy - area).std()) - np.sqrt(5.5**2 + 1 / 12)) < 0.25
    np.testing.assert_array_equal(noisy, synthesize_input(gt, factor, 5.5, seed=3))
    with pytest.raises(InputError, match="divisible"):
        synthesize_input(gt[:1087], factor, 5.5)


def test_benchmark_sizes_match_synthesis(middlebury_dir) -> None:  # noqa: ANN001
    from affseg.data import middlebury
    from affseg.train.depth_sr import synthesize_input

    for scene in middlebury.list_scenes(middlebury_dir.parent):
        gt = middlebury.load_gt(middlebury_dir.parent, scene)
        for f in (2, 4, 8, 16):
            lr = middlebury.load_lowres(middlebury_dir.parent, scene, f)
            assert synthesize_input(gt, f, 5.5).shape == lr.shape


def test_shipped_weights_load_safely() -> None:
    """Every shipped model loads with weights_only=True, is HAM v2 with the right
    geometry and start map, and was trained on RGBD_depth_train."""
    from affseg.methods.depth_sr import DEFAULT_WEIGHTS, WEIGHTS_DIR, load_model, memory_path
    from affseg.models.depth_sr_fast import FastDepthSR

    assert set(DEFAULT_WEIGHTS) == {"ham", "naive", "ham-bilateral", "naive-bilateral"}
    for name in DEFAULT_WEIGHTS:
        geometry = "hyperbolic" if name.startswith("ham") else "euclidean"
        path = WEIGHTS_DIR / DEFAULT_WEIGHTS[name]
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert payload["record"]["data"] == "RGBD_depth_train"
        assert path.stat().st_size < 3_000_000
        model = load_model(DEFAULT_WEIGHTS[name])
        assert isinstance(model, FastDepthSR) and model.affinity.geometry == geometry
        assert model.init == ("bilateral" if name.endswith("bilateral") else "fgs")
        # the solver's grid counts in the memory estimate of the models that start from it
        assert memory_path(model) == ("fast_bilateral" if model.init == "bilateral" else "fast")


def test_baselines_constant_and_errors() -> None:
    from affseg.methods.depth_baselines import baseline_upsample

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    for method in ("bicubic", "bilateral", "guided"):
        out = baseline_upsample(method, rgb, np.full((8, 12), 77.0), 4)
        assert out.shape == (32, 48)
        np.testing.assert_allclose(out, 77.0, atol=1e-2)
    with pytest.raises(InputError, match="unknown baseline"):
        baseline_upsample("nearest", rgb, np.zeros((8, 12)), 4)
    with pytest.raises(InputError, match="is not 4 x depth"):
        baseline_upsample("bicubic", rgb, np.zeros((8, 11)), 4)


def test_bilateral_solver_is_edge_aware_and_matches_a_dense_solve() -> None:
    """On a tiny image the grid solve equals the dense linear system it defines."""
    import scipy.sparse as sp

    from affseg.methods.depth_baselines import BilateralGrid, bilateral_solve, bistochastize

    rng = np.random.default_rng(1)
    rgb = np.zeros((12, 12, 3), np.uint8)
    rgb[:, 6:] = 200
    t = np.where(np.arange(12) < 6, 10.0, 50.0)[None].repeat(12, 0) + rng.normal(0, 2, (12, 12))
    out = bilateral_solve(rgb, t, sigma_spatial=4, lam=8.0, cg_iterations=500, cg_tol=1e-12)
    grid = BilateralGrid(rgb, 4, 8, 8)
    n, m = bistochastize(grid)
    a = 8.0 * (np.diag(m) - np.diag(n) @ grid.blur_matrix.toarray() @ np.diag(n))
    a += np.diag(grid.splat(np.ones(144)))
    y = np.linalg.solve(a, grid.splat(t.ravel()))
    np.testing.assert_allclose(out.ravel(), grid.slice(y), atol=1e-3)
    assert abs(out[:, :6].mean() - 10) < 1 and abs(out[:, 6:].mean() - 50) < 1  # edge kept
    assert out[:, :6].std() < t[:, :6].std()  # and the noise smoothed
    assert isinstance(grid.splat_matrix, sp.csr_matrix)


def test_cli_run_methods_and_errors(tmp_path, capsys) -> None:  # noqa: ANN001
    from PIL import Image

    from affseg.cli.depth_sr import main

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((16, 24), 120, np.uint8)).save(tmp_path / "d.png")
    for method in ("ham", "naive", "ham-bilateral", "naive-bilateral", "bicubic", "bilateral"):
        out = tmp_path / f"{method}.png"
        argv = ["run", "--guide", str(tmp_path / "g.png"), "--depth", str(tmp_path / "d.png"),
                "--out", str(out), "--method", method]  # fmt: skip
        assert main(argv) == 0
        arr = np.asarray(Image.open(out))
        assert arr.shape == (64, 96) and np.all(np.abs(arr / 256.0 - 120) < 0.05), method
    Image.fromarray(np.full((15, 24), 120, np.uint8)).save(tmp_path / "bad.png")
    bad = ["run", "--guide", str(tmp_path / "g.png"), "--depth", str(tmp_path / "bad.png"),
           "--out", str(tmp_path / "o2.png")]  # fmt: skip
    assert main(bad) == 2
    assert "power-of-two" in capsys.readouterr().err
    wrong = ["run", "--guide", str(tmp_path / "g.png"), "--depth", str(tmp_path / "d.png"),
             "--out", str(tmp_path / "o3.png"), "--method", "bicubic",
             "--weights", "x.pt"]  # fmt: skip
    assert main(wrong) == 2
    assert not (tmp_path / "o2.png").exists() and not (tmp_path / "o3.png").exists()


def test_train_round_trip(tmp_path) -> None:  # noqa: ANN001
    """A 2-step run on a synthetic RGBD_depth_train writes loadable weights + record."""
    from PIL import Image

    from affseg.methods.depth_sr import load_model
    from affseg.train.depth_sr import train

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        d = tmp_path / "RGBD_depth_train" / name
        d.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(d / "color.png")
        Image.fromarray(rng.integers(20, 200, (70, 90), dtype=np.uint8)).save(d / "depth.png")
    rec = train(
        "euclidean", tmp_path / "w.pt", steps=2, crop=32, batch=2, data=str(tmp_path),
        log_every=0, iterations=1, init="fgs", reimpose="bicubic", scales=(1.0, 1.5),
    )  # fmt: skip
    assert rec["scenes"] == 2 and rec["steps"] == 2 and np.isfinite(rec["final_loss"])
    assert rec["init"] == "fgs" and rec["scales"] == [1.0, 1.5]
    model = load_model(tmp_path / "w.pt")
    assert model.iterations == 1 and model.affinity.geometry == "euclidean"
    assert model.init == "fgs" and model.reimpose == "bicubic"


def test_scene_starts_crops_stay_aligned_under_augmentation() -> None:
    """Crops of whole-scene start maps: the low-resolution crop is the area mean of the gt
    crop (noise-free degradation), and the start map gets the gt's flips / transposition."""
    from affseg.affinity.bilateral_solver import depth_sr_solve
    from affseg.train.depth_sr import sample_scene_starts, scene_starts

    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 50, 70)
    gt = torch.rand(1, 50, 70) * 200 + 20
    bank = scene_starts([(rgb, gt)], (4, 8), 2, g, noise=(0.0, 0.0))
    assert set(bank) == {4, 8} and len(bank[4]) == 2
    im, g0, low, smooth = bank[4][0]
    assert g0.shape == (1, 48, 64) and low.shape == (1, 12, 16)
    up = F.interpolate(low[None], size=(48, 64), mode="bicubic", align_corners=False)
    up = up.clamp(float(low.min()), float(low.max()))
    guide = (im.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_allclose(smooth[0].numpy(), depth_sr_solve(guide, up[0, 0].numpy(), 4))
    # a bank whose start map is gt + 1 shows the crops' shared transform
    marked = {8: [(im, g0, F.avg_pool2d(g0, 8).round(), g0 + 1.0)]}
    for _ in range(6):
        for f, b in ((4, bank), (8, marked)):
            rgb_c, low_c, gt_c, sm_c = sample_scene_starts(b, 32, 3, f, g)
            assert rgb_c.shape == (3, 3, 32, 32) and low_c.shape == (3, 1, 32 // f, 32 // f)
            torch.testing.assert_close(low_c, F.avg_pool2d(gt_c, f).round())
        torch.testing.assert_close(sm_c, gt_c + 1.0)
    with pytest.raises(InputError, match="does not fit"):
        sample_scene_starts(bank, 64, 1, 4, g)


def test_train_with_scene_starts_round_trip(tmp_path) -> None:  # noqa: ANN001
    from PIL import Image

    from affseg.methods.depth_sr import load_model
    from affseg.train.depth_sr import train

    rng = np.random.default_rng(0)
    d = tmp_path / "RGBD_depth_train" / "a"
    d.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(d / "color.png")
    Image.fromarray(rng.integers(20, 200, (70, 90), dtype=np.uint8)).save(d / "depth.png")
    rec = train(
        "hyperbolic", tmp_path / "w.pt", steps=2, crop=32, batch=2, data=str(tmp_path),
        log_every=0, iterations=1, init="bilateral", scene_draws=1, factor_schedule=(4, 8),
    )  # fmt: skip
    assert rec["scene_draws"] == 1 and rec["init"] == "bilateral"
    assert load_model(tmp_path / "w.pt").init == "bilateral"
    with pytest.raises(InputError, match="init 'bilateral'"):
        train("hyperbolic", tmp_path / "x.pt", steps=1, data=str(tmp_path), scene_draws=2)


def test_train_curvature_options_round_trip(tmp_path) -> None:  # noqa: ANN001
    """The curvature's init, parametrisation and learning rate reach the model and the
    weights: with ``c_lr_mult=0`` it stays at its init, otherwise it moves, and a loaded
    model has the trained curvature."""
    from PIL import Image

    from affseg.methods.depth_sr import load_model
    from affseg.train.depth_sr import train

    rng = np.random.default_rng(0)
    d = tmp_path / "RGBD_depth_train" / "a"
    d.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(d / "color.png")
    Image.fromarray(rng.integers(20, 200, (70, 90), dtype=np.uint8)).save(d / "depth.png")
    common = dict(steps=2, crop=32, batch=2, data=str(tmp_path), log_every=0, iterations=1)
    for mult in (0.0, 10.0):
        out = tmp_path / f"w{mult}.pt"
        rec = train("hyperbolic", out, curvature=0.5, c_param="log", c_lr_mult=mult, **common)  # type: ignore[arg-type]
        model = load_model(out)
        c = float(model.affinity.curvature.detach())
        assert model.affinity.c_param == "log" and model.config()["curvature"] == 0.5
        assert c == pytest.approx(rec["final_curvature"], rel=1e-6)
        if mult == 0:
            assert c == pytest.approx(0.5, rel=1e-6)
        else:
            assert abs(c - 0.5) > 1e-3
    with pytest.raises(InputError, match="curvature must be a positive number"):
        from affseg.models.depth_sr_fast import FastDepthSR

        FastDepthSR("hyperbolic", curvature=0.0)


def test_depth_edge_mask_matches_independent_computation() -> None:
    """Edge pixels: the 3 x 3 dilation of the pixels that touch a 4-neighbour step above
    the jump, recomputed here with SciPy."""
    from scipy import ndimage

    from affseg.train.depth_sr import depth_edge_mask

    rng = np.random.default_rng(3)
    g = np.round(rng.normal(0, 1.5, (2, 1, 23, 31)).cumsum(-1))
    jump = 2.0
    touch = np.zeros(g.shape, bool)
    dx = np.abs(np.diff(g, axis=-1)) > jump
    dy = np.abs(np.diff(g, axis=-2)) > jump
    touch[..., 1:] |= dx
    touch[..., :-1] |= dx
    touch[..., 1:, :] |= dy
    touch[..., :-1, :] |= dy
    want = ndimage.maximum_filter(touch, size=(1, 1, 3, 3), mode="constant")
    got = depth_edge_mask(torch.from_numpy(g).float(), jump).numpy()
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert 0 < want.mean() < 1


def test_edge_weight_is_inert_without_depth_edges(tmp_path) -> None:  # noqa: ANN001
    """On a scene with a smooth ground truth the edge-weighted loss is the plain MSE, so
    the trained weights are identical; with depth steps they differ; a negative weight is
    refused."""
    from PIL import Image

    from affseg.train.depth_sr import train

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
    smooth = np.tile(np.linspace(60, 120, 90), (70, 1)).astype(np.uint8)  # < 1 per pixel
    steps = smooth.copy()
    steps[:, 45:] = 200
    common = dict(steps=2, crop=32, batch=2, log_every=0, iterations=1)
    states = {}
    for name, depth in (("smooth", smooth), ("steps", steps)):
        d = tmp_path / name / "RGBD_depth_train" / "a"
        d.mkdir(parents=True)
        Image.fromarray(rgb).save(d / "color.png")
        Image.fromarray(depth).save(d / "depth.png")
        for w in (0.0, 3.0):
            out = tmp_path / f"{name}{w}.pt"
            rec = train("euclidean", out, data=str(tmp_path / name), edge_weight=w, **common)  # type: ignore[arg-type]
            assert rec["edge_weight"] == w
            states[name, w] = torch.load(out, weights_only=True)["state_dict"]
    for k in states["smooth", 0.0]:
        torch.testing.assert_close(states["smooth", 0.0][k], states["smooth", 3.0][k])
    assert any(
        not torch.equal(states["steps", 0.0][k], states["steps", 3.0][k])
        for k in states["steps", 0.0]
    )
    with pytest.raises(InputError, match="edge weight must be a number >= 0"):
        bad = str(tmp_path / "smooth")
        train("euclidean", tmp_path / "x.pt", data=bad, edge_weight=-1, **common)  # type: ignore[arg-type]


def test_ranked_head_model_round_trip(tmp_path) -> None:  # noqa: ANN001
    """A model with the ranked-neighbour head stores it in its config, loads back with the
    same outputs, runs the torch path by default and refuses the compiled path."""
    from PIL import Image

    from affseg.methods.depth_sr import load_model
    from affseg.train.depth_sr import train

    rng = np.random.default_rng(0)
    d = tmp_path / "RGBD_depth_train" / "a"
    d.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(d / "color.png")
    Image.fromarray(rng.integers(20, 200, (70, 90), dtype=np.uint8)).save(d / "depth.png")
    out = tmp_path / "w.pt"
    common = dict(steps=2, crop=32, batch=2, data=str(tmp_path), log_every=0, iterations=1)
    train("hyperbolic", out, ranked_head=True, **common)  # type: ignore[arg-type]
    model = load_model(out)
    assert model.config()["ranked_head"] is True and model.affinity.head is not None
    rgb, low = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 16, 16) * 100
    with torch.no_grad():
        torch.testing.assert_close(model(rgb, low, 2), model(rgb, low, 2, fast=False))
        with pytest.raises(InputError, match="ranked head"):
            model(rgb, low, 2, fast=True)
    payload = torch.load(out, weights_only=True)
    assert any(k.startswith("affinity.head.") for k in payload["state_dict"])


@pytest.mark.slow
def test_eval_scene_without_published_outputs(middlebury_dir, tmp_path) -> None:  # noqa: ANN001
    """dolls_big has no barronpoole/: eval still tables every computed method."""
    import json

    from affseg.cli.depth_sr import main

    if not (middlebury_dir / "dolls_big").is_dir():
        pytest.skip("dolls_big not present")
    out = tmp_path / "t.json"
    argv = ["eval", "--scene", "dolls_big", "--data", str(middlebury_dir.parent), "--factors",
            "16", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = json.loads(out.read_text())["table"]
    models = {"ham", "naive", "ham-bilateral", "naive-bilateral"}
    assert set(table) == models | {"bicubic", "bilateral_solver", "guided_filter"}
    for m in table.values():
        assert set(m) == {"x16"} and m["x16"]["rmse"] > 0
    assert table["ham"]["x16"]["rmse"] < table["bicubic"]["x16"]["rmse"]
    # the models that start from the solver improve on it (dolls_big x16)
    solver = table["bilateral_solver"]["x16"]["rmse"]
    assert table["ham-bilateral"]["x16"]["rmse"] < solver


def test_memory_rule_refuses_a_guide_before_decoding(tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """The output has the guide's size: its header alone sets the estimate (the compiled path
    of the shipped models, the torch path of ranked-head models, the baselines)."""
    from PIL import Image

    from affseg.cli.depth_sr import main
    from affseg.methods import depth_sr as ds

    ham = ds.load_model(ds.DEFAULT_WEIGHTS["ham"])
    assert ds.memory_path(ham) == "fast" and ds.memory_path("bicubic") == "bicubic"
    assert ds.sr_memory(ham, 3000, 4000) == pytest.approx(0.45e9 + 260 * 12e6)
    assert ds.sr_memory(ham, 100, 100, tta=8) > ds.sr_memory(ham, 100, 100)
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "0.5")
    Image.fromarray(np.zeros((640, 960, 3), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((80, 120), 99, np.uint8)).save(tmp_path / "d.png")
    import affseg.data.io as io

    monkeypatch.setattr(io, "read_image", lambda *a, **k: pytest.fail("guide decoded"))
    for method in ("ham", "bilateral"):
        argv = ["run", "--guide", str(tmp_path / "g.png"), "--depth", str(tmp_path / "d.png"),
                "--out", str(tmp_path / "o.png"), "--method", method]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("affseg: error: guided depth super-resolution to a 960 x 640 guide")
        assert "AFFSEG_MAX_MEMORY_GB" in err and "megapixels" in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(InputError, match="above the limit of 0.5 GB"):  # the API too
        ds.super_resolve(ham, np.zeros((640, 960, 3), np.uint8), np.zeros((80, 120)), 8)


def test_rgbd_train_is_one_loader_for_both_trainers(tmp_path) -> None:  # noqa: ANN001
    """Depth super-resolution and depth completion read ``RGBD_depth_train`` through
    :func:`affseg.data.rgbd_train.load_scenes`: SR crops to multiples of 16, completion keeps
    the full scenes; the same pixels otherwise, and one line for an empty data set."""
    from PIL import Image

    from affseg.data import rgbd_train
    from affseg.train.depth_completion import load_train_scenes
    from affseg.train.depth_sr import load_training_pairs

    rng = np.random.default_rng(0)
    (tmp_path / "RGBD_depth_train").mkdir()
    with pytest.raises(InputError, match="no scenes"):
        load_train_scenes(str(tmp_path))
    for name in ("b", "a"):
        d = tmp_path / "RGBD_depth_train" / name
        d.mkdir()
        Image.fromarray(rng.integers(0, 255, (37, 50, 3), dtype=np.uint8)).save(d / "color.png")
        Image.fromarray(rng.integers(20, 200, (37, 50), dtype=np.uint8)).save(d / "depth.png")
    full = load_train_scenes(str(tmp_path))
    assert [d.shape for _, d in full] == [(37, 50), (37, 50)]
    assert all(r.dtype == np.uint8 and d.dtype == np.float32 for r, d in full)
    pairs = load_training_pairs(str(tmp_path))
    assert [d.shape for _, d in pairs] == [(1, 32, 48), (1, 32, 48)]
    for (rgb, depth), (im, d) in zip(full, pairs, strict=True):
        np.testing.assert_array_equal(d[0].numpy(), depth[:32, :48])
        np.testing.assert_array_equal(
            im.numpy(), rgb[:32, :48].transpose(2, 0, 1) / np.float32(255)
        )
    only_b = rgbd_train.load_scenes(str(tmp_path), ["b"], multiple=1)
    np.testing.assert_array_equal(only_b[0][1], full[1][1])


def test_ham_loop_needs_a_ham_affinity_and_records_every_loss() -> None:
    """The shared loop refuses a model without ``.affinity``, and hands back every step's
    loss (the mean of the last ``window`` as the final loss)."""
    from affseg.models.ham import HAMAffinity
    from affseg.train.ham_loop import train_loop

    with pytest.raises(AttributeError):
        train_loop(torch.nn.Linear(1, 1), lambda s: ((), torch.zeros(1)), torch.sub, 1, 0.1)

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.affinity = HAMAffinity("hyperbolic")
            self.w = torch.nn.Parameter(torch.zeros(()))

    model = Toy()
    seen: list[int] = []

    def make_batch(step: int) -> tuple[tuple[torch.Tensor], torch.Tensor]:
        seen.append(step)
        return (torch.ones(3),), torch.full((3,), 2.0)

    result = train_loop(
        model,
        make_batch,
        lambda p, t: ((p - t) ** 2).mean(),
        steps=4,
        lr=0.1,
        forward=lambda x: model.w * x,
        log_every=0,
    )
    assert seen == [0, 1, 2, 3] and len(result.losses) == 4 and result.losses[0] == 4.0
    assert result.losses[-1] < result.losses[0]
    assert result.final_loss(2) == pytest.approx(np.mean(result.losses[2:]))
