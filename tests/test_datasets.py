"""Dataset readers: BSDS500, MSRC-v2, Middlebury depth SR.

The synthetic tests build tiny datasets in tmp_path (always run); the data-backed ones use
the fixtures of conftest.py and skip without ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from affseg.data import bsds, middlebury, msrc
from affseg.errors import CorruptFileError, DatasetNotFoundError, InputError


# --------------------------------------------------------------------------- BSDS500
def _fake_bsds(root: Path, split: str, ids: list[str], shape=(6, 8), k: int = 3) -> None:
    img_dir = root / "BSDS500" / "images" / split
    gt_dir = root / "BSDS500" / "groundTruth" / split
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in ids:
        photo = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        Image.fromarray(photo).save(img_dir / f"{i}.jpg")
        cell = np.empty((1, k), dtype=object)
        for a in range(k):
            seg = (rng.integers(1, 4, shape)).astype(np.uint16)
            cell[0, a] = {"Segmentation": seg, "Boundaries": np.zeros(shape, np.uint8)}
        scipy.io.savemat(gt_dir / f"{i}.mat", {"groundTruth": cell})


def test_bsds_any_split_and_gt_roundtrip(tmp_path: Path) -> None:
    _fake_bsds(tmp_path, "test", ["2", "1"])
    assert bsds.available_splits(tmp_path) == ["test"]
    assert bsds.list_split(tmp_path, "test") == ["1", "2"]
    ds = bsds.BSDS500(tmp_path, split="test")
    image_id, image, gts = ds[0]
    assert image_id == "1" and image.shape == (6, 8, 3) and image.dtype == np.uint8
    raw = scipy.io.loadmat(tmp_path / "BSDS500/groundTruth/test/1.mat")["groundTruth"]
    assert len(gts) == 3
    for k, g in enumerate(gts):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, raw[0, k]["Segmentation"][0, 0].astype(np.int32))


def test_bsds_missing_split_lists_present(tmp_path: Path) -> None:
    _fake_bsds(tmp_path, "train", ["1"])
    with pytest.raises(DatasetNotFoundError, match=r"'val' not found .*splits present: train"):
        bsds.list_split(tmp_path, "val")


def test_bsds_missing_dataset_names_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "BSDS500")):
        bsds.list_split(tmp_path, "val")


@pytest.mark.parametrize("content", [b"", b"not a mat file at all" * 10])
def test_bsds_corrupt_mat(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.mat"
    p.write_bytes(content)
    with pytest.raises(CorruptFileError, match="x.mat"):
        bsds.load_ground_truth(p)


def test_bsds_mat_without_groundtruth(tmp_path: Path) -> None:
    p = tmp_path / "y.mat"
    scipy.io.savemat(p, {"other": np.zeros(3)})
    with pytest.raises(CorruptFileError, match="y.mat"):
        bsds.load_ground_truth(p)


def test_bsds_real_counts_and_shapes(bsds_dir: Path) -> None:
    root = bsds_dir.parent
    assert len(bsds.list_split(root, "train")) == 200
    val = bsds.list_split(root, "val")
    assert len(val) == 100 and val == sorted(val)
    ds = bsds.BSDS500(root, "val", limit=3)
    for image_id, image, gts in ds:
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert image.shape[:2] in ((321, 481), (481, 321))
        assert 4 <= len(gts) <= 9
        for g in gts:
            assert g.shape == image.shape[:2] and g.dtype == np.int32 and g.min() >= 1
        raw = scipy.io.loadmat(bsds_dir / "groundTruth" / "val" / f"{image_id}.mat")
        assert len(gts) == raw["groundTruth"].size


# --------------------------------------------------------------------------- MSRC-v2
def test_msrc_palette_roundtrip_synthetic() -> None:
    classes = np.arange(msrc.NUM_CLASSES + 1).reshape(4, 6)
    rgb = msrc.encode_colours(classes)
    np.testing.assert_array_equal(msrc.decode_colours(rgb), classes)
    assert (
        msrc.CLASS_NAMES[msrc.decode_colours(np.array([[[128, 64, 128]]], np.uint8))[0, 0]]
        == "road"
    )
    assert msrc.image_labels(classes) == list(range(1, 24))


def test_msrc21_mapping() -> None:
    names = msrc.CLASS_NAMES
    v21 = msrc.to_msrc21(np.arange(24))
    assert v21[names.index("horse")] == 0 and v21[names.index("mountain")] == 0
    assert msrc.NUM_CLASSES_21 == 21 and len(np.unique(v21)) == 22
    for i, n in enumerate(names):
        if n not in ("horse", "mountain"):
            assert msrc.MSRC21_CLASS_NAMES[v21[i]] == n


def test_msrc_unknown_colour() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(InputError, match=r"unknown colour \(1, 2, 3\)"):
        msrc.decode_colours(rgb)
    assert msrc.decode_colours(rgb, strict=False)[0, 0] == 0


def test_msrc_real(msrc_dir: Path) -> None:
    root = msrc_dir.parent
    assert len(msrc.list_split(root, "train")) == 298
    assert len(msrc.list_split(root, "val")) == 57
    palette = {tuple(int(v) for v in c): i for i, c in enumerate(msrc.CLASS_COLOURS)}
    for image_id, image, classes in msrc.MSRC(root, "val", limit=10):
        assert image.shape[:2] == classes.shape and image.shape[:2] in ((213, 320), (320, 213))
        gt_rgb = np.asarray(
            Image.open(msrc_dir / "groundTruth" / "val" / f"{image_id}_GT.png").convert("RGB")
        )
        np.testing.assert_array_equal(msrc.encode_colours(classes), gt_rgb)
        expected = sorted(
            palette[tuple(int(v) for v in c)] for c in np.unique(gt_rgb.reshape(-1, 3), axis=0)
        )
        assert msrc.image_labels(classes) == [c for c in expected if c != 0]
    ds21 = msrc.MSRC(root, "val", msrc21=True, limit=5)
    assert ds21.class_names == msrc.MSRC21_CLASS_NAMES
    for _, _, classes in ds21:
        assert classes.max() <= 21


# --------------------------------------------------------------------------- Middlebury
def test_middlebury_real(middlebury_dir: Path) -> None:
    root = middlebury_dir.parent
    assert {"art_big", "books_big"} <= set(middlebury.list_scenes(root))
    for scale in (2, 4, 8, 16):
        s = middlebury.load_scene("art_big", scale, root)
        h, w = s.gt.shape
        assert s.guide.shape == (h, w, 3) and s.guide.dtype == np.uint8
        assert s.lowres.shape == (h // scale, w // scale)
        assert s.barron_poole is not None and s.barron_poole.shape == (h, w)
        raw = np.asarray(
            Image.open(middlebury_dir / "art_big" / "barronpoole" /
                       f"output_{middlebury.SCALES[scale]}_n.png")
        ).astype(np.float64)  # fmt: skip
        # the published uint16 outputs are 256x the 8-bit disparity
        ratio = np.median(raw / s.gt)
        assert abs(ratio - middlebury.BARRON_POOLE_SCALE) < 1.0
        assert np.abs(s.barron_poole - s.gt).mean() < 5.0


def test_middlebury_bad_scale(middlebury_dir: Path) -> None:
    with pytest.raises(InputError, match="scale must be one of"):
        middlebury.load_lowres(middlebury_dir.parent, "art_big", 3)
    with pytest.raises(DatasetNotFoundError, match="scenes present: art_big, books_big"):
        middlebury.load_gt(middlebury_dir.parent, "nope")
