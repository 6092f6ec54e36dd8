"""``affseg similarity``: the Fig. 2-style figure of diffusion-similarity maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affseg.cli import main
from affseg.methods.similarity import colour_similarity

FAST = ["--grid", "12", "--n-eig", "8", "--k", "5"]


def two_halves() -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, :16] = (200, 30, 30)
    img[:, 16:] = (30, 60, 220)
    return img


def test_similarity_stays_in_the_region() -> None:
    maps = colour_similarity(
        two_halves(), [(12, 4), (12, 28)], grid=12, mu=0.5, t=10.0, tau=0.6, k=5, n_eig=8
    )
    assert maps.shape == (2, 24, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    left, right = maps[0], maps[1]
    assert left[:, :14].mean() > 5 * left[:, 18:].mean()
    assert right[:, 18:].mean() > 5 * right[:, :14].mean()


def test_cli_writes_figure(tmp_path: Path, capsys) -> None:
    src = tmp_path / "halves.png"
    Image.fromarray(two_halves()).save(src)
    out = tmp_path / "fig.png"
    assert main(["similarity", str(src), "--out", str(out), "--pixels", "12,4", "5,30",
                 *FAST]) == 0  # fmt: skip
    fig = np.asarray(Image.open(out))
    assert fig.shape == (24, 3 * 32 + 2 * 6, 3)  # image + 2 maps, 6-pixel gaps
    small = tmp_path / "small.png"
    assert main(["similarity", str(src), "--out", str(small), "--height", "12", *FAST]) == 0
    assert np.asarray(Image.open(small)).shape[0] == 12


@pytest.mark.parametrize(("argv", "needle"), [
    (["--pixels", "99,1"], "outside"),
    (["--pixels", "a,b"], "row,col"),
    (["--grid", "1"], "--grid"),
    (["--grid", "100000"], "--grid must be in 2..1024"),
    (["--mu", "nan"], "--mu must be a positive finite number"),
    (["--tau", "nan"], "--tau must be a positive finite number"),
    (["--t=-inf"], "--t must be a positive finite number"),
    (["--tau", "0"], "--tau must be a positive finite number"),
    (["--k", "4"], "--k must be an odd window size"),
    (["--k", "101"], "--k must be an odd window size"),
    (["--n-eig", "0"], "--n-eig must be in"),
    (["--height", "100000"], "--height must be in 8..16384"),
    (["--height", "7"], "--height must be in 8..16384"),
    (["--height", "16384"], "megapixels, above the limit"),  # a 1.2 gigapixel figure
    (["--working-side", "8"], "--working-side must be >= 64"),
])  # fmt: skip
def test_cli_errors(tmp_path: Path, capsys, argv: list[str], needle: str) -> None:
    src = tmp_path / "halves.png"
    Image.fromarray(two_halves()).save(src)
    assert main(["similarity", str(src), "--out", str(tmp_path / "f.png"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affseg: error: ") and "\n" not in err and needle in err


def test_cli_needs_one_source(tmp_path: Path, capsys) -> None:
    assert main(["similarity", "--out", str(tmp_path / "f.png")]) == 2
    assert "--example" in capsys.readouterr().err


def test_cli_memory_rule_names_options_it_has(tmp_path: Path, capsys, monkeypatch) -> None:
    """The estimate is made from the header, before decoding; the hint names real options."""
    import affseg.data.io as io

    src = tmp_path / "halves.png"
    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(src)
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "0.5")
    monkeypatch.setattr(io, "read_image", lambda *a, **k: pytest.fail("image decoded"))
    for features in ("colour", "ndd"):
        argv = ["similarity", str(src), "--out", str(tmp_path / "f.png"), "--features", features]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"affseg: error: similarity maps ({features}) of a 800 x 600 image")
        assert "AFFSEG_MAX_MEMORY_GB" in err and "--working-side" in err and "\n" not in err
    assert not (tmp_path / "f.png").exists()


def test_large_image_maps_at_the_working_side() -> None:
    """Above the working side the maps are computed on the downscaled image and upsampled;
    within it they are what they were (the same figure)."""
    img = np.asarray(Image.fromarray(two_halves()).resize((320, 240), Image.Resampling.NEAREST))
    kw = {"grid": 12, "mu": 0.5, "t": 10.0, "tau": 0.6, "k": 5, "n_eig": 8}
    maps = colour_similarity(img, [(120, 40), (120, 280)], working_side=64, **kw)
    assert maps.shape == (2, 240, 320) and maps.dtype == np.float32
    left, right = maps[0], maps[1]
    assert left[:, :140].mean() > 5 * left[:, 180:].mean()
    assert right[:, 180:].mean() > 5 * right[:, :140].mean()
    small = two_halves()
    same = colour_similarity(small, [(12, 4)], working_side=None, **kw)
    np.testing.assert_array_equal(colour_similarity(small, [(12, 4)], **kw), same)


def test_heat_per_channel_matches_the_stacked_formula() -> None:
    from affseg.methods.similarity import heat

    v = np.linspace(-0.2, 1.2, 1001, dtype=np.float32).reshape(7, 143)
    c = np.clip(v, 0.0, 1.0)
    ref = np.stack([np.clip(3 * c, 0, 1), np.clip(3 * c - 1, 0, 1), np.clip(3 * c - 2, 0, 1)], -1)
    np.testing.assert_array_equal(heat(v), (ref * 255).round().astype(np.uint8))
