"""Image validation, atomic writers, and the Hierarchy <-> UCM round trip."""

from __future__ import annotations

import numpy as np
import pytest

from affseg.data.io import as_rgb, read_image, read_label_png, write_label_png, write_ucm_mat
from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.ucm import BSDS_THRESHOLDS, ucm_to_labels


def test_as_rgb_rejects_grayscale_and_rgba() -> None:
    with pytest.raises(InputError, match="grayscale"):
        as_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="RGBA"):
        as_rgb(np.zeros((4, 4, 4), np.uint8))
    out = as_rgb(np.full((3, 3, 3), 0.5))
    assert out.dtype == np.uint8 and out[0, 0, 0] == 128


def test_read_image_rejects_grayscale_file(tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "g.png")
    with pytest.raises(InputError, match="grayscale"):
        read_image(tmp_path / "g.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="cannot decode"):
        read_image(tmp_path / "bad.png")


def test_label_png_round_trip(tmp_path) -> None:
    lab = np.random.default_rng(0).integers(0, 70000 // 2, size=(7, 9))
    write_label_png(tmp_path / "x.labels.png", lab)
    np.testing.assert_array_equal(read_label_png(tmp_path / "x.labels.png"), lab)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]


def _nested_levels(rng: np.random.Generator) -> list[np.ndarray]:
    # fine level: 4x4 blocks of a 12x16 grid; coarser levels merge blocks by column groups
    fine = (np.arange(12)[:, None] // 4) * 4 + np.arange(16)[None, :] // 4 + 1
    mid = (np.arange(12)[:, None] // 4) * 2 + np.arange(16)[None, :] // 8 + 1
    coarse = np.ones((12, 16), int) + (np.arange(12)[:, None] >= 8)
    return [fine, mid, coarse]


def test_ucm_reproduces_levels_under_benchmark_thresholds(tmp_path) -> None:
    levels = _nested_levels(np.random.default_rng(1))
    hier = Hierarchy(levels)
    ucm = hier.to_ucm()
    assert ucm.shape == (25, 33) and ucm.min() >= 0 and ucm.max() <= 1
    seen = {}
    for t in BSDS_THRESHOLDS:
        lab = ucm_to_labels(ucm, t)
        seen[int(lab.max())] = lab
    for lv in levels:
        k = len(np.unique(lv))
        got = seen[k]
        # same partition up to renaming
        pairs = np.unique(np.stack([got.ravel(), lv.ravel()]), axis=1)
        assert pairs.shape[1] == k
    write_ucm_mat(tmp_path / "h.mat", ucm)
    import scipy.io

    np.testing.assert_array_equal(scipy.io.loadmat(tmp_path / "h.mat")["ucm2"], ucm)
    back = Hierarchy.from_ucm(ucm)
    assert back.n_segments == [12, 6, 2]


def test_atomic_outputs_get_umask_permissions(tmp_path) -> None:
    import os

    from affseg.data.io import write_png

    old = os.umask(0o022)
    try:
        out = write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind
