"""Task A (guided depth super-resolution): model, training helpers and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affseg.errors import InputError


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_depth_sr_model_constant_depth_and_errors(geometry: str) -> None:
    from affseg.models.depth_sr_net import DepthSRPropagation

    torch.manual_seed(0)
    model = DepthSRPropagation(geometry).eval()  # type: ignore[arg-type]
    rgb = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        out = model(rgb, torch.full((1, 1, 8, 6), 97.0), 8)
    assert out.shape == (1, 1, 64, 48)
    torch.testing.assert_close(out, torch.full_like(out, 97.0))  # constants survive
    with pytest.raises(InputError, match="power-of-two"):
        model(rgb, torch.zeros(1, 1, 10, 6), 8)
    with pytest.raises(InputError, match="power-of-two"):
        model(rgb, torch.zeros(1, 1, 16, 12), 3)


def test_depth_sr_output_stays_in_input_range_and_paths_agree() -> None:
    """Propagation is a convex combination: the output stays within the LR range;
    the numba inference path equals the autograd path."""
    from affseg.models.depth_sr_net import DepthSRPropagation

    torch.manual_seed(1)
    model = DepthSRPropagation("hyperbolic", iterations=2).eval()
    rgb = torch.rand(1, 3, 64, 64)
    lr = torch.rand(1, 1, 16, 16) * 200 + 20
    with torch.no_grad():
        fast = model(rgb, lr, 4)
    with torch.enable_grad():
        slow = model(rgb, lr.requires_grad_(True), 4)
    torch.testing.assert_close(fast, slow.detach(), atol=1e-3, rtol=1e-5)
    assert fast.min() >= lr.min() - 1e-3 and fast.max() <= lr.max() + 1e-3
    slow.mean().backward()
    assert lr.grad is not None and torch.isfinite(lr.grad).all()


def test_degrade_is_area_downsampling_when_noise_free() -> None:
    from affseg.methods.depth_sr import degrade

    g = torch.arange(64.0).reshape(1, 1, 8, 8)
    low = degrade(g, 4, torch.zeros(1, 1, 1, 1), torch.Generator().manual_seed(0))
    expected = np.round(g.numpy()[0, 0].reshape(2, 4, 2, 4).mean(axis=(1, 3)))
    np.testing.assert_array_equal(low[0, 0].numpy(), expected)


def test_augment_keeps_guide_and_depth_aligned() -> None:
    from affseg.methods.depth_sr import augment

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
    from affseg.methods.depth_sr import bicubic_upsample

    lr = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    ref = F.interpolate(
        torch.from_numpy(lr)[None, None], size=(20, 28), mode="bicubic", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(bicubic_upsample(lr, 4), ref, atol=1e-6)


def test_depth_sr_cli_run(tmp_path) -> None:  # noqa: ANN001
    from PIL import Image

    from affseg.cli.depth_sr import main
    from affseg.methods.depth_sr import WEIGHTS_DIR

    weights = sorted(WEIGHTS_DIR.glob("ham_depth_sr_*.pt"))
    if not weights:
        pytest.skip("no shipped depth-sr weights")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((16, 24), 120, np.uint8)).save(tmp_path / "d.png")
    assert (
        main(
            [
                "run",
                "--weights",
                weights[0].name,
                "--guide",
                str(tmp_path / "g.png"),
                "--depth",
                str(tmp_path / "d.png"),
                "--out",
                str(tmp_path / "o.png"),
            ]
        )
        == 0
    )
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == (64, 96) and np.all(np.abs(out / 256.0 - 120) < 0.01)
    Image.fromarray(np.full((15, 24), 120, np.uint8)).save(tmp_path / "bad.png")
    assert (
        main(
            [
                "run",
                "--weights",
                weights[0].name,
                "--guide",
                str(tmp_path / "g.png"),
                "--depth",
                str(tmp_path / "bad.png"),
                "--out",
                str(tmp_path / "o2.png"),
            ]
        )
        == 2
    )


def test_train_round_trip_and_cross_scene_guard(middlebury_dir, tmp_path) -> None:  # noqa: ANN001
    """A 2-step training run writes loadable weights with its record; eval refuses the
    training scene."""
    from affseg.cli.depth_sr import main
    from affseg.methods.depth_sr import load_model, train

    rec = train(
        "books_big",
        "euclidean",
        tmp_path / "w.pt",
        steps=2,
        crop=32,
        batch=1,
        data=str(middlebury_dir.parent),
        log_every=0,
        iterations=1,
    )
    assert rec["scene"] == "books_big" and rec["steps"] == 2 and np.isfinite(rec["final_loss"])
    model = load_model(tmp_path / "w.pt")
    assert model.iterations == 1 and model.affinity.geometry == "euclidean"
    assert (
        main(
            [
                "eval",
                "--weights",
                str(tmp_path / "w.pt"),
                "--scene",
                "books_big",
                "--data",
                str(middlebury_dir.parent),
            ]
        )
        == 2
    )


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
    from affseg.models.depth_sr_net import DepthSRPropagation

    torch.manual_seed(0)
    model = DepthSRPropagation("hyperbolic", iterations=1).eval()
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


def test_train_continues_from_init_weights(middlebury_dir, tmp_path) -> None:  # noqa: ANN001
    from affseg.methods.depth_sr import load_model, train

    data = str(middlebury_dir.parent)
    train(
        "books_big",
        "euclidean",
        tmp_path / "a.pt",
        steps=1,
        crop=32,
        batch=1,
        data=data,
        log_every=0,
        iterations=1,
    )
    rec = train(
        "books_big",
        "euclidean",
        tmp_path / "b.pt",
        steps=1,
        crop=32,
        batch=1,
        data=data,
        log_every=0,
        iterations=3,
        lr=0.0,
        init_weights=tmp_path / "a.pt",
    )
    assert rec["init_weights"]["steps"] == 1 and rec["iterations"] == 1
    a, b = load_model(tmp_path / "a.pt"), load_model(tmp_path / "b.pt")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)  # lr 0: the weights are carried over unchanged
    with pytest.raises(InputError, match="cannot continue"):
        train(
            "art_big",
            "euclidean",
            tmp_path / "c.pt",
            steps=1,
            crop=32,
            batch=1,
            data=data,
            log_every=0,
            init_weights=tmp_path / "a.pt",
        )
    with pytest.raises(InputError, match="cannot continue"):
        train(
            "books_big",
            "hyperbolic",
            tmp_path / "c.pt",
            steps=1,
            crop=32,
            batch=1,
            data=data,
            log_every=0,
            init_weights=tmp_path / "a.pt",
        )
