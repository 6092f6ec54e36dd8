"""Your own segmentations: the reader, void pixels in losses and scores, training and eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from affseg.data.io import write_png
from affseg.data.segmentations import open_segmentations, segments_of
from affseg.errors import DatasetNotFoundError, InputError
from affseg.metrics.region import RegionBenchmark
from affseg.models.boundary_head import boundary_loss, boundary_targets, boundary_weights


def _components_by_flood_fill(lab: np.ndarray, void: int | None) -> np.ndarray:
    """4-connected regions of equal labels by a plain breadth-first flood fill."""
    h, w = lab.shape
    out = np.full((h, w), -1, np.int64)
    n = 0
    for y0 in range(h):
        for x0 in range(w):
            if out[y0, x0] >= 0 or lab[y0, x0] == void:
                continue
            queue = [(y0, x0)]
            out[y0, x0] = n
            while queue:
                y, x = queue.pop()
                for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= yy < h and 0 <= xx < w and out[yy, xx] < 0:
                        if lab[yy, xx] == lab[y, x]:
                            out[yy, xx] = n
                            queue.append((yy, xx))
            n += 1
    return out


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("void", [None, 3])
def test_segments_are_the_connected_regions_of_each_label(void):
    lab = np.random.default_rng(0).integers(0, 4, (23, 31))
    seg = segments_of(lab, void, "components")
    ref = _components_by_flood_fill(lab, void)
    assert ((seg < 0) == (ref < 0)).all()
    assert _same_partition(seg[seg >= 0], ref[ref >= 0])
    assert seg.max() + 1 == len(np.unique(seg[seg >= 0]))  # 0..n-1
    by_label = segments_of(lab, void, "labels")
    assert _same_partition(by_label[by_label >= 0], lab[by_label >= 0])


def _layout(tmp_path, annotators=1, size=(20, 30)):
    h, w = size
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        for i in range(2):
            write_png(
                tmp_path / f"images/{split}/{split}{i}.png",
                rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
            )
            for a in range(annotators):
                folder = tmp_path / "masks" / split / (f"ann{a}" if annotators > 1 else "")
                folder.mkdir(parents=True, exist_ok=True)
                mask = np.zeros((h, w), np.uint8)
                mask[:, w // 2 + a :] = 1
                write_png(folder / f"{split}{i}.png", mask)
    return tmp_path


def test_canonical_layout_with_several_annotators(tmp_path):
    data = open_segmentations(data=_layout(tmp_path, annotators=3))
    assert data.splits == ("train", "val") and not data.is_bsds
    anns = data.items("train")[0].read_annotations()
    assert len(anns) == 3
    assert [int((a == 1).sum()) for a in anns] == [20 * 15, 20 * 14, 20 * 13]
    write_png(tmp_path / "masks/train/train0.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(InputError, match="both mask files and folders"):
        open_segmentations(data=tmp_path)


def test_pairs_of_folders_one_annotator_per_masks_folder(tmp_path):
    root = _layout(tmp_path, annotators=2)
    data = open_segmentations(
        images={"val": root / "images/val"},
        masks={"val": [root / "masks/val/ann0", root / "masks/val/ann1"]},
    )
    assert data.splits == ("val",)
    assert len(data.items("val")[1].read_annotations()) == 2


def test_reader_errors_name_the_problem(tmp_path):
    root = _layout(tmp_path)
    (root / "masks/train/train1.png").unlink()
    with pytest.raises(InputError, match="1 photo\\(s\\) have no mask"):
        open_segmentations(data=root)
    write_png(root / "masks/train/train1.png", np.zeros((5, 5), np.uint8))
    item = open_segmentations(data=root).items("train")[1]
    with pytest.raises(InputError, match="mask .*train1.png is 5x5 but its photo"):
        item.read_annotations()
    Image.new("RGB", (30, 20)).save(root / "masks/train/train1.jpg")
    with pytest.raises(InputError, match="not a mask format"):
        open_segmentations(data=root)
    with pytest.raises(DatasetNotFoundError, match="no segmentation dataset"):
        open_segmentations(data=tmp_path / "images")
    with pytest.raises(InputError, match="not both"):
        open_segmentations(data=root, images={"train": root}, masks={"train": [root]})


def test_colour_coded_masks_give_one_segment_per_colour(tmp_path):
    root = _layout(tmp_path)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, 10:] = (255, 0, 0)
    rgb[:, 20:] = (0, 0, 255)
    write_png(root / "masks/train/train0.png", rgb)
    seg = open_segmentations(data=root).items("train")[0].read_annotations()[0]
    assert np.unique(seg).tolist() == [0, 1, 2]
    assert (seg[:, :10] == seg[0, 0]).all() and (seg[:, 25] != seg[0, 0]).all()


def test_void_pixels_are_left_out_of_the_region_scores():
    # void on the last column: the scores equal those of the image without that column
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 3, (12, 16))
    seg = rng.integers(0, 4, (12, 16))
    gt_void = gt.copy()
    gt_void[:, -1] = -1
    seg_void = seg.copy()
    seg_void[:, -1] = 7  # any label: those pixels do not count
    a = RegionBenchmark().score(seg_void, [gt_void])
    b = RegionBenchmark().score(seg[:, :-1], [gt[:, :-1]])
    for key in ("covering", "pri", "vi", "pixel_accuracy"):
        assert np.allclose(a[key], b[key]), key
    with pytest.raises(InputError, match="every pixel .* is void"):
        RegionBenchmark().score(seg, [np.full_like(gt, -1)])


def test_boundary_loss_ignores_void_and_its_neighbours():
    lab = torch.zeros(2, 6, 8, dtype=torch.long)
    lab[:, :, 4:] = 1
    assert boundary_weights(lab) is None
    logits = torch.randn(1, 1, 6, 8, generator=torch.Generator().manual_seed(0))
    target = boundary_targets(lab)[None, None]
    ones = torch.ones_like(target)
    assert torch.allclose(boundary_loss(logits, target, 4.0, ones), boundary_loss(logits, target))
    lab[0, 0, 0] = -1
    w = boundary_weights(lab)
    assert w is not None and w[0, 0] == 0 and w[0, 1] == 0 and w[1, 0] == 0 and w[1, 1] == 1
    # the weighted loss is the mean over the weighted pixels only
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(4.0), reduction="none"
    )
    keep = w[None, None].bool()
    assert torch.allclose(boundary_loss(logits, target, 4.0, w[None, None]), per[keep].mean())


def test_train_and_eval_the_hierarchy_on_your_own_segmentations(tmp_path, capsys):
    from affseg.cli import main
    from affseg.data import toy

    assert toy.main([str(tmp_path / "toy")]) == 0
    data = ["--data", str(tmp_path / "toy")]
    common = ["--steps", "2", "--scales", "1.0", "--crop", "64", "--no-progress"]
    nd, bd = tmp_path / "ndd", tmp_path / "bnd"
    assert main(["train", "ndd", *data, *common, "--out", str(nd)]) == 0
    cache = ["--cache", str(nd / "cache")]
    assert main(["train", "boundary", *data, *common, *cache, "--out", str(bd)]) == 0
    blob = torch.load(nd / "spec_diff_net.pt", weights_only=True)
    rec = blob["record"]
    assert rec["data"] == str(tmp_path / "toy") and rec["init"].endswith("spec_diff_net.pt")
    assert "--data" in rec["command"] and rec["val_images"] == 2
    capsys.readouterr()
    assert main(["info", str(nd / "spec_diff_net.pt")]) == 0
    assert "spec-diff-net (affseg train ndd)" in capsys.readouterr().out
    head = torch.load(bd / "boundary_head.pt", weights_only=True)
    assert head["meta"]["init"].endswith("boundary_head.pt")
    sets = ["--set", f"weights={nd / 'spec_diff_net.pt'}"]
    sets += ["--set", f"boundary_head={bd / 'boundary_head.pt'}"]
    out = tmp_path / "scores.json"
    assert (
        main(["eval", "--method", "ndd", *data, "--split", "val", *sets, "--json", str(out)]) == 0
    )
    scores = json.loads(out.read_text())
    assert scores["images"] == 2 and 0.3 < scores["covering"]["ods"] <= 1.0
    # the cache refuses other data under the same split and names
    (tmp_path / "toy/masks/train/toy000.png").rename(tmp_path / "toy/masks/train/toy000.bmp")
    capsys.readouterr()
    assert main(["train", "ndd", *data, *common, *cache, "--out", str(nd)]) != 0
    assert "holds train/toy000 of other data" in capsys.readouterr().err


def test_training_cache_brings_large_photos_to_the_working_side(tmp_path):
    from affseg.backbones import load_backbone
    from affseg.train.ndd_cache import FeatureCache

    root = _layout(tmp_path, size=(48, 256))
    items = open_segmentations(data=root).items("train")
    cache = FeatureCache(tmp_path / "cache")
    backbone = load_backbone()
    keys = cache.build(backbone, items, "train", (1.0,), (False,), False, working_side=128)
    item = cache.load(keys[0])
    assert tuple(item["half"].shape) == (1, 16, 64)  # 48 x 256 -> 24 x 128 -> snapped 32 x 128
    assert tuple(item["grid"].shape) == (1, 4, 16)
    # another working side is other data for the cache
    with pytest.raises(InputError, match="other data"):
        cache.build(backbone, items, "train", (1.0,), (False,), False, working_side=None)
