"""Depth completion (issue 16 B): sampling, model, baseline, weights and CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affseg.errors import CorruptFileError, InputError
from affseg.methods import depth_completion as dc
from affseg.methods.depth_baselines import fgs_complete
from affseg.methods.depth_sr import WEIGHTS_DIR, load_model


def test_sampling_is_reproducible_and_only_valid() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 200, (60, 80)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.4] = 0.0  # invalid pixels
    depth[0, :5] = np.nan
    a = dc.sample_sparse(depth, 100, seed=7)
    b = dc.sample_sparse(depth, 100, seed=7)
    c = dc.sample_sparse(depth, 100, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    picked = a > 0
    assert picked.sum() == 100
    assert np.all(np.isfinite(depth[picked]) & (depth[picked] > 0))
    np.testing.assert_array_equal(a[picked], depth[picked])
    assert np.all(a[~picked] == 0)
    # fewer valid pixels than asked: all of them
    few = np.zeros((5, 5), np.float32)
    few[1, 1], few[3, 2] = 4.0, 9.0
    np.testing.assert_array_equal(dc.sample_sparse(few, 500, seed=0), few)
    with pytest.raises(InputError, match="no valid pixel"):
        dc.sample_sparse(np.zeros((4, 4)), 3)


def test_nearest_fill_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    s = np.zeros((17, 23), np.float32)
    ys, xs = rng.integers(0, 17, 6), rng.integers(0, 23, 6)
    s[ys, xs] = rng.uniform(1, 9, 6)
    fill, dist = dc.nearest_fill(s)
    py, px = np.nonzero(s)
    gy, gx = np.mgrid[:17, :23]
    d2 = (gy[..., None] - py) ** 2 + (gx[..., None] - px) ** 2
    np.testing.assert_allclose(dist, np.sqrt(d2.min(-1)), atol=1e-5)
    # ties may pick either sample: the chosen one must be at the minimal distance
    chosen = np.sqrt(d2)[np.arange(17)[:, None], np.arange(23)[None], :]
    same = np.isclose(fill[..., None], s[py, px])
    assert np.all((same & np.isclose(chosen, dist[..., None])).any(-1))


def test_reduce_scene_block_mean_and_centre() -> None:
    rgb = np.arange(6 * 9 * 3, dtype=np.uint8).reshape(6, 9, 3)
    depth = np.arange(54, dtype=np.float32).reshape(6, 9)
    small, d = dc.reduce_scene(rgb, depth, 3)
    assert small.shape == (2, 3, 3) and d.shape == (2, 3)
    np.testing.assert_array_equal(d, depth[1::3, 1::3])
    expected = np.round(rgb[:3, :3].astype(float).mean(axis=(0, 1)))
    np.testing.assert_array_equal(small[0, 0], expected)


@pytest.mark.parametrize(
    ("geometry", "init"), [("hyperbolic", "fgs"), ("euclidean", "fgs"), ("hyperbolic", "nearest")]
)
def test_model_preserves_constants_and_reimposes_samples(geometry: str, init: str) -> None:
    from affseg.models.depth_completion_net import DepthCompletionPropagation

    torch.manual_seed(0)
    model = DepthCompletionPropagation(geometry, iterations=2, init=init).eval()  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    const = np.zeros((40, 56), np.float32)
    const[rng.integers(0, 40, 20), rng.integers(0, 56, 20)] = 83.5
    out = dc.complete(model, rgb, const)
    np.testing.assert_allclose(out, 83.5, rtol=0, atol=1e-4)
    sparse = dc.sample_sparse(rng.uniform(10, 250, (40, 56)), 30, seed=2)
    out = dc.complete(model, rgb, sparse)
    m = sparse > 0
    np.testing.assert_array_equal(out[m], sparse[m])  # samples reproduced exactly
    assert out.min() >= sparse[m].min() - 1e-3 and out.max() <= sparse[m].max() + 1e-3
    # affine equivariance: the network sees normalised depth only
    out2 = dc.complete(model, rgb, np.where(m, 2.0 * sparse + 5.0, 0.0).astype(np.float32))
    np.testing.assert_allclose(out2, 2.0 * out + 5.0, rtol=1e-4, atol=1e-2)


def test_fast_path_equals_autograd_path() -> None:
    from affseg.models.depth_completion_net import DepthCompletionPropagation

    torch.manual_seed(2)
    model = DepthCompletionPropagation("hyperbolic", iterations=2).eval()
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    sparse = dc.sample_sparse(rng.uniform(10, 250, (32, 48)), 25, seed=0)
    x = dc.network_inputs(rgb, sparse)
    with torch.no_grad():
        fast = model(*x)
    slow = model(x[0], x[1].requires_grad_(True), x[2], x[3])
    torch.testing.assert_close(fast, slow.detach(), atol=1e-3, rtol=1e-5)
    slow.mean().backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in model.parameters()
        if p.requires_grad and p is not model.affinity.raw_c
    )


def test_fgs_baseline_interpolates_and_keeps_range() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 200  # two regions of different colour and depth
    depth = np.where(np.arange(60)[None] < 30, 50.0, 150.0) * np.ones((40, 1))
    sparse = dc.sample_sparse(depth, 40, seed=1)
    out = fgs_complete(rgb, sparse)
    assert out.shape == (40, 60) and out.dtype == np.float32
    assert out.min() >= 50 - 1e-3 and out.max() <= 150 + 1e-3
    # the colour edge keeps the two depths apart: far better than a blind nearest fill
    assert np.abs(out - depth).mean() < 2.0
    with pytest.raises(InputError, match="no sample"):
        fgs_complete(rgb, np.zeros((40, 60), np.float32))
    with pytest.raises(InputError, match="does not match"):
        fgs_complete(rgb, sparse[:, :10])


@pytest.mark.parametrize("name", sorted(dc.DEFAULT_WEIGHTS.values()))
def test_shipped_weights_load_weights_only(name: str) -> None:
    path = WEIGHTS_DIR / name
    if not path.is_file():
        pytest.skip(f"{name} not shipped")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["record"]["task"] == "depth_completion"
    assert path.stat().st_size < 1.6e6
    model = load_model(name, "depth_completion")
    geometry = "hyperbolic" if "hyperbolic" in name else "euclidean"
    assert model.affinity.geometry == geometry  # type: ignore[union-attr]


def test_load_model_refuses_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match="not affseg depth-completion weights"):
        load_model(bad, "depth_completion")
    torch.save({"record": {"task": "depth_sr"}, "config": {}, "state_dict": {}}, bad)
    with pytest.raises(CorruptFileError, match="depth_sr"):
        load_model(bad, "depth_completion")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from affseg.cli import main

    rc = main(["depth-complete", *args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("method", ["ham", "naive", "fgs"])
def test_cli_writes_valid_map(
    method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    if method != "fgs" and not (WEIGHTS_DIR / dc.DEFAULT_WEIGHTS[method]).is_file():
        pytest.skip("weights not shipped")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "g.png")
    depth = rng.uniform(20, 200, (48, 64))
    sparse = dc.sample_sparse(depth, 40, seed=0)
    Image.fromarray(np.round(sparse * 256).astype(np.uint16)).save(tmp_path / "s.png")
    out = tmp_path / "o.png"
    rc, err = _cli(
        [
            "--guide",
            str(tmp_path / "g.png"),
            "--sparse",
            str(tmp_path / "s.png"),
            "--out",
            str(out),
            "--method",
            method,
        ],
        capsys,
    )
    assert rc == 0, err
    arr = np.asarray(Image.open(out))
    assert arr.shape == (48, 64) and arr.dtype == np.uint16
    m = sparse > 0
    q = np.round(sparse * 256) / 256
    np.testing.assert_allclose(arr[m] / 256.0, q[m], atol=1 / 256 + 1e-6)
    assert arr.min() / 256 >= q[m].min() - 0.01 and arr.max() / 256 <= q[m].max() + 0.01
    assert not list(tmp_path.glob("*.tmp*"))


def test_cli_refuses_bad_input_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "g.png")
    s = np.zeros((20, 30), np.uint8)
    s[3, 4] = 9
    Image.fromarray(s).save(tmp_path / "s.png")
    Image.fromarray(s[:10]).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "rgb_sparse.png")
    cases = {
        "small.png": "does not match",
        "empty.png": "no sample",
        "corrupt.png": "cannot decode",
        "rgb_sparse.png": "mode RGB",
        "missing.png": "",
    }
    for name, msg in cases.items():
        out = tmp_path / "o.png"
        rc, err = _cli(
            [
                "--guide",
                str(tmp_path / "g.png"),
                "--sparse",
                str(tmp_path / name),
                "--out",
                str(out),
                "--method",
                "fgs",
            ],
            capsys,
        )
        assert rc == 2 and err.startswith("affseg: error:") and err.count("\n") == 1, (name, err)
        assert msg in err and not out.exists()
    rc, err = _cli(["--sparse", str(tmp_path / "s.png"), "--out", str(tmp_path / "o.png")], capsys)
    assert rc == 2 and "--guide and --sparse are required" in err


@pytest.mark.slow
def test_val_scene_resolution(middlebury_dir: Path) -> None:
    rgb, gt = dc.load_val_scene("dolls_big", str(middlebury_dir.parent))
    assert rgb.shape == (362, 458, 3) and gt.shape == (362, 458)
    assert 480 <= round(dc.DENSITY * gt.size) <= 520


@pytest.mark.slow
def test_train_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 2-step CLI training run writes weights that load with their record."""
    from affseg.data.paths import data_root

    if not (data_root() / "RGBD_depth_train").is_dir():
        pytest.skip("RGBD_depth_train not available")
    out = tmp_path / "w.pt"
    rc, err = _cli(
        [
            "--train",
            "--geometry",
            "euclidean",
            "--out",
            str(out),
            "--steps",
            "2",
            "--crop",
            "64",
            "--batch",
            "1",
        ],
        capsys,
    )
    assert rc == 0, err
    payload = torch.load(out, map_location="cpu", weights_only=True)
    assert payload["record"]["steps"] == 2 and payload["record"]["init"] == "fgs"
    assert payload["record"]["samples_per_crop"] == round(dc.DENSITY * 64 * 64)
    model = load_model(out, "depth_completion")
    assert model.init == "fgs" and model.affinity.geometry == "euclidean"  # type: ignore[union-attr]


@pytest.mark.slow
def test_train_curvature_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The curvature's init and parametrisation reach the weights; the loaded model has
    the trained curvature; bad values get one line."""
    from affseg.data.paths import data_root

    for flag, value in (("--curvature", "0"), ("--curvature", "nan"), ("--c-lr-mult", "-1")):
        rc, err = _cli(["--train", "--out", str(tmp_path / "x.pt"), flag, value], capsys)
        assert rc == 2 and flag in err and err.count("\n") == 1
    if not (data_root() / "RGBD_depth_train").is_dir():
        pytest.skip("RGBD_depth_train not available")
    out = tmp_path / "w.pt"
    args = ["--train", "--out", str(out), "--steps", "2", "--crop", "64", "--batch", "1"]
    rc, err = _cli([*args, "--curvature", "0.5", "--c-param", "log", "--c-lr-mult", "10"], capsys)
    assert rc == 0, err
    rec = torch.load(out, map_location="cpu", weights_only=True)["record"]
    model = load_model(out, "depth_completion")
    assert model.affinity.c_param == "log" and model.config()["curvature"] == 0.5  # type: ignore[union-attr]
    c = float(model.affinity.curvature.detach())  # type: ignore[union-attr]
    assert c == pytest.approx(rec["final_curvature"], rel=1e-6) and abs(c - 0.5) > 1e-3


def test_memory_rule_refuses_a_guide_before_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output has the guide's size: its header alone sets the estimate."""
    from PIL import Image

    import affseg.data.io as io

    assert dc.completion_memory("ham", 100, 100) > dc.completion_memory("fgs", 100, 100)
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "0.5")
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "g.png")
    s = np.zeros((300, 400), np.uint8)
    s[3, 4] = 9
    Image.fromarray(s).save(tmp_path / "s.png")
    monkeypatch.setattr(io, "read_image", lambda *a, **k: pytest.fail("guide decoded"))
    out = tmp_path / "o.png"
    argv = ["--guide", str(tmp_path / "g.png"), "--sparse", str(tmp_path / "s.png")]
    rc, err = _cli([*argv, "--out", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("affseg: error: depth completion (ham) of a 400 x 300 guide")
    assert "AFFSEG_MAX_MEMORY_GB" in err and "--method fgs" in err and not out.exists()
    net = load_model(dc.DEFAULT_WEIGHTS["naive"], "depth_completion")
    with pytest.raises(InputError, match=r"depth completion \(naive\)"):  # the API too
        dc.complete(net, np.zeros((300, 400, 3), np.uint8), s.astype(np.float32))
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "0.355")
    with pytest.raises(InputError, match=r"depth completion \(fgs\)"):
        fgs_complete(np.zeros((300, 400, 3), np.uint8), s.astype(np.float32))
