"""``affseg segment --figure`` panels and ``affseg eval --plot`` curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affseg.errors import InputError
from affseg.figures import (
    covering_curve,
    load_curves,
    pick_levels,
    pick_pixels,
    plot_covering_curves,
    segment_figure,
)
from affseg.grouping.hierarchy import Hierarchy


def _scene():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, 40:] = 200
    rgb[30:, :40] = 90
    fine = np.ones((60, 80), np.int32)
    fine[:, 40:] = 2
    fine[30:, :40] = 3
    fine[30:, 60:] = 4
    mid = np.where(fine == 4, 2, fine)
    coarse = np.where(mid == 3, 1, mid)
    return rgb, Hierarchy([fine, mid, coarse, np.ones_like(fine)])


def test_pick_levels_and_pixels():
    assert pick_levels([800, 400, 200, 100, 50, 20, 8, 3, 1]) == [2, 4, 7]
    assert pick_levels([5, 1]) == [0]
    rgb, hier = _scene()
    px = pick_pixels(hier.levels[0])
    assert len(px) == 3 and len({hier.levels[0][p] for p in px}) == 3


def test_segment_figure_layout():
    rgb, hier = _scene()
    px = [(10, 10), (10, 70), (50, 10)]
    sims = np.stack([np.linspace(0, 1, 60 * 80).reshape(60, 80)] * 3)
    fig = segment_figure(rgb, hier, pixels=px, levels=[0, 1, 2], similarity=sims)
    assert fig.dtype == np.uint8 and fig.ndim == 3
    assert fig.shape[1] == 4 * 80 + 3 * 6 and fig.shape[0] == 2 * (60 + 22) + 6
    with pytest.raises(InputError):
        segment_figure(rgb, hier, pixels=[(99, 0)], similarity=sims[:1])
    with pytest.raises(InputError):
        segment_figure(rgb[:10], hier, similarity=sims)


def test_segment_cli_figure(tmp_path):
    from PIL import Image

    from affseg.cli import main

    assert main(["segment", "--example", "coffee", "--method", "slic", "--figure",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    fig = Image.open(tmp_path / "coffee.figure.png")
    assert fig.mode == "RGB" and fig.size[0] > 2 * fig.size[1]


def test_covering_curve_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    stats = [
        {"cntR": np.array([10.0, 30.0, 20.0]), "sumR": 40.0, "n_segments": [50, 10, 2]},
        {"cntR": np.array([20.0, 40.0, 10.0]), "sumR": 60.0, "n_segments": [70, 12, 1]},
    ]
    c = covering_curve(stats)
    assert c["segments"] == [60.0, 11.0, 1.5]
    np.testing.assert_allclose(c["covering"], [0.3, 0.7, 0.3])
    (tmp_path / "other.json").write_text(json.dumps({"source": {"method": "x"}, "curve": c}))
    curves = {"mine": c, **load_curves([tmp_path / "other.json"])}
    assert set(curves) == {"mine", "x"}
    plot_covering_curves(curves, tmp_path / "plot.png", "test")
    from PIL import Image

    assert Image.open(tmp_path / "plot.png").size[0] > 300
    with pytest.raises(InputError):
        load_curves([tmp_path / "plot.png"])
    with pytest.raises(InputError):
        covering_curve([])


def test_eval_plot_cli(tmp_path, bsds_dir):
    pytest.importorskip("matplotlib")
    from affseg.cli import main

    js = tmp_path / "slic.json"
    args = ["eval", "--method", "slic", "--limit", "1", "--data", str(bsds_dir.parent)]
    assert main([*args, "--json", str(js)]) == 0
    curve = json.loads(js.read_text())["curve"]
    assert len(curve["segments"]) == len(curve["covering"]) == 99
    png = tmp_path / "plot.png"
    assert main(["eval", "--method", "felzenszwalb", "--limit", "1", "--data",
                 str(bsds_dir.parent), "--plot", str(png), "--compare", str(js)]) == 0  # fmt: skip
    assert png.stat().st_size > 5000


def test_segment_figure_similarity_at_a_bounded_working_side(monkeypatch):
    """A large image's maps are computed at the working side (then shrunk to the panels);
    the default pixels of an upsampled hierarchy are image pixels."""
    import affseg.methods.similarity as sim

    rgb, hier = _scene()
    big = np.kron(rgb, np.ones((10, 10, 1), np.uint8))  # 600 x 800
    up = hier.upsampled((600, 800))
    seen = []

    def fake(image, pixels, working_side=None):
        seen.append((image.shape, list(pixels), working_side))
        return np.zeros((len(pixels), *image.shape[:2]), np.float32)

    monkeypatch.setattr(sim, "ndd_similarity", fake)
    fig = segment_figure(big, up, levels=[0, 1, 2], working_side=200, max_side=100)
    ((shape, px, ws),) = seen
    assert shape == (150, 200, 3) and ws is None  # the working image only
    assert all(0 <= y < 150 and 0 <= x < 200 for y, x in px)
    # the pixels are those of the largest segments, scaled from the 60 x 80 levels: each
    # lies in the segment pick_pixels chose on the levels
    lv = hier.levels[1]
    chosen = pick_pixels(lv)
    assert [lv[y * 60 // 150, x * 80 // 200] for y, x in px] == [lv[p] for p in chosen]
    assert fig.shape == (2 * (75 + 22) + 6, 4 * 100 + 3 * 6, 3)
    seen.clear()
    segment_figure(rgb, hier, working_side=200)  # within the working side: the image itself
    assert seen[0][0] == (60, 80, 3)


def test_segment_figure_without_bound_is_checked(monkeypatch):
    import affseg.methods.similarity as sim

    monkeypatch.setattr(sim, "ndd_similarity", lambda *a, **k: pytest.fail("maps computed"))
    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "0.3")
    rgb, hier = _scene()
    big = np.kron(rgb, np.ones((20, 20, 1), np.uint8))
    with pytest.raises(InputError, match="AFFSEG_MAX_MEMORY_GB"):
        segment_figure(big, hier.upsampled(big.shape[:2]), working_side=None)
