"""affseg.data.segdata: the reader of user semantic-segmentation datasets.

Small datasets are built in tmp_path; the data-backed tests (CamVid, MSRC-v2) skip when
the data root lacks them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affseg.data import msrc
from affseg.data.paths import dataset_dir
from affseg.data.segdata import (
    VOC_CLASSES,
    Sample,
    SegDataset,
    default_palette,
    open_dataset,
    open_msrc,
    read_classes,
)
from affseg.errors import DatasetNotFoundError, InputError

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- builders
def write_image(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray, palette: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask)
    if palette is not None:
        full = np.zeros((256, 3), np.uint8)
        full[: len(palette)] = palette
        im.putpalette(full.ravel().tolist())
    im.save(path)
    return path


def make_canonical(
    root: Path,
    classes: str,
    splits: dict[str, dict[str, np.ndarray | None]],
    tags: str | None = None,
    suffix: str = ".png",
) -> Path:
    """``root`` in the canonical layout; a None mask = no masks folder for that split."""
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(classes)
    for split, items in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i, (stem, mask) in enumerate(items.items()):
            if mask is None:
                write_image(root / "images" / split / f"{stem}{suffix}", 6, 8, seed=i)
            else:
                h, w = mask.shape
                write_image(root / "images" / split / f"{stem}{suffix}", h, w, seed=i)
                write_mask(root / "masks" / split / f"{stem}.png", mask)
    if tags is not None:
        (root / "tags.csv").write_text(tags)
    return root


def tiling(k: int, h: int, w: int, offset: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """A (h, w) mask cycling through 0..k-1, with an ignore (255) corner."""
    m: np.ndarray = ((np.arange(h * w) + offset) % k).reshape(h, w).astype(dtype)
    m[0, 0] = 255 if dtype == np.uint8 else np.iinfo(dtype).max
    return m


TWO = "background 0 0 0\nfg 255 255 255\n"
THREE = "# a comment\n\nroad 128 64 128\n\ncar 64 0 128\nsky 128 128 128\n"


def simple(root: Path, classes: str = THREE, k: int = 3, **kw) -> Path:
    m = tiling(k, 6, 8)
    return make_canonical(root, classes, {"train": {"a": m, "b": m}, "val": {"c": m}}, **kw)


def message(exc_info: pytest.ExceptionInfo) -> str:
    return str(exc_info.value)


# --------------------------------------------------------------------------- classes.txt
def test_default_palette_is_vocs() -> None:
    pal = default_palette(256)
    assert pal[15].tolist() == [192, 128, 128]  # VOC person
    assert pal[255].tolist() == [224, 224, 192]  # VOC's border (ignore) colour
    assert len(np.unique(pal @ np.array([65536, 256, 1]))) == 256
    assert len({tuple(c) for c in default_palette(1000).tolist()}) == 1000


def test_read_classes_format(tmp_path: Path) -> None:
    p = tmp_path / "classes.txt"
    p.write_text("\ufeff# header\n\nSky 128 128 128\n  traffic   light 250 170 30  \n")
    names, colours = read_classes(p)
    assert names == ("Sky", "traffic light")
    assert colours is not None and colours.dtype == np.uint8
    p.write_text("class 1\nclass 2\n")  # names may end in numbers without colours
    names, colours = read_classes(p)
    assert names == ("class 1", "class 2") and colours is None


@pytest.mark.parametrize(
    "text, expect",
    [
        ("a 1 2 3\nb 300 0 0\n", "line 2 ('b 300 0 0'): bad colour (300, 0, 0)"),
        ("a 1 2 3\nb 4 5\n", "line 2 ('b 4 5') has no colour"),
        ("a\nb 1 2 3\n", "line 1 ('a') has no colour"),
        ("car\nroad\nCar\n", "duplicate class name 'Car' on lines 1 and 3"),
        ("a 1 2 3\nb 1 2 3\n", "lines 1 and 2 give the same colour (1, 2, 3)"),
        ("a;b\nc\n", "cannot contain ',' or ';'"),
        ("1 2 3\nb\n", "no class name"),
        ("# nothing\n\n", "lists no class"),
    ],
)
def test_malformed_classes(tmp_path: Path, text: str, expect: str) -> None:
    p = tmp_path / "classes.txt"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_classes(p)
    assert expect in message(e) and str(p) in message(e)


def test_fewer_than_two_classes(tmp_path: Path) -> None:
    simple(tmp_path, classes="only 1 2 3\n", k=1)
    with pytest.raises(InputError, match="lists 1 class; .* at least 2"):
        open_dataset(tmp_path)


# --------------------------------------------------------------------------- canonical
@pytest.mark.parametrize("k", [2, 3, 30])
def test_canonical_k_classes(tmp_path: Path, k: int) -> None:
    classes = "".join(f"class{i}\n" for i in range(k))
    dtype = np.uint16 if k == 30 else np.uint8
    m1 = tiling(k, 6, 8, dtype=np.uint8)
    m2 = tiling(k, 5, 7, offset=1, dtype=np.uint8)
    if dtype == np.uint16:
        m1, m2 = m1.astype(np.uint16), m2.astype(np.uint16)
    m2[1, :] = 255  # an ignored row
    make_canonical(tmp_path, classes, {"train": {"a": m1, "b": m2}, "val": {"c": m1}})
    ds = open_dataset(tmp_path)
    assert ds.layout == "canonical" and ds.num_classes == k and ds.ignore_index == 255
    assert ds.classes == tuple(f"class{i}" for i in range(k))
    assert ds.colours.shape == (k, 3) and not ds.colours_given
    assert ds.splits() == ("train", "val") and ds.stems("train") == ("a", "b")
    assert ds.has_masks("train") and ds.has_masks("val")
    mask = ds.mask("train", "b")
    assert mask.dtype == np.int64 and mask.shape == (5, 7)
    np.testing.assert_array_equal(mask, m2.astype(np.int64))
    assert ds.image("train", "b").shape == (5, 7, 3)
    img, mk = ds.pair("val", "c")
    assert img.dtype == np.uint8 and mk.shape == img.shape[:2]
    expect = tuple(int(c) for c in np.unique(m2) if c < k)
    assert ds.tags("train", "b") == expect
    tm = ds.tag_matrix("train", progress=True)
    assert tm.shape == (2, k) and tm.dtype == bool and tm.any(axis=0).all()
    r = ds.validate("train")
    assert r.num_images == 2 and r.has_masks
    assert r.ignore_pixels == int((m1 == 255).sum() + (m2 == 255).sum())
    assert (
        r.pixel_counts is not None and r.pixel_counts.sum() == m1.size + m2.size - r.ignore_pixels
    )
    np.testing.assert_array_equal(r.image_counts, tm.sum(axis=0))


def test_uint16_masks_many_classes(tmp_path: Path) -> None:
    k = 300
    m = (np.arange(20 * 16) % k).reshape(20, 16).astype(np.uint16)
    m[0, :3] = 65535  # the default ignore index above 255 classes
    make_canonical(tmp_path, "".join(f"c{i}\n" for i in range(k)), {"train": {"a": m}})
    ds = open_dataset(tmp_path)
    assert ds.ignore_index == 65535
    assert ds.mask("train", "a").max() == 65535 and ds.mask("train", "a")[1].max() < k
    assert ds.validate("train").ignore_pixels == 3


def test_tags_csv_wins_over_masks(tmp_path: Path) -> None:
    tags = "stem,tags\n# labels\na,car;road\n\nb,\n"
    simple(tmp_path, tags=tags)
    ds = open_dataset(tmp_path)
    assert ds.tags("train", "a") == (0, 1)  # the row, not the mask's (0, 1, 2)
    assert ds.tags("train", "b") == ()  # an empty row
    assert ds.tags("val", "c") == (0, 1, 2)  # no row: from the mask
    with pytest.raises(InputError, match="carries class 'sky'"):
        ds.validate("train")


def test_weak_train_split(tmp_path: Path) -> None:
    m = tiling(3, 6, 8)
    make_canonical(
        tmp_path,
        THREE,
        {"train": {"a": None, "b": None}, "val": {"c": m}},
        tags="a,road;car\nb,sky\n",
        suffix=".jpg",
    )
    ds = open_dataset(tmp_path)
    assert not ds.has_masks("train") and ds.has_masks("val")
    assert ds.samples("train")[0].mask is None
    with pytest.raises(InputError, match="split 'train' .* has no masks"):
        ds.mask("train", "a")
    np.testing.assert_array_equal(ds.tag_matrix("train"), [[1, 1, 0], [0, 0, 1]])
    r = ds.validate("train")
    assert not r.has_masks and r.pixel_counts is None and r.image_counts.tolist() == [1, 1, 1]
    # an image with neither a mask nor a tags row
    (tmp_path / "tags.csv").write_text("a,road;car;sky\n")
    ds = open_dataset(tmp_path)
    with pytest.raises(InputError) as e:
        ds.validate("train")
    assert "b.jpg has no mask and no row in" in message(e) and "tags.csv" in message(e)
    with pytest.raises(InputError, match="b.jpg has no mask"):
        ds.tags("train", "b")


def test_rgb_masks_decoded_by_colour(tmp_path: Path) -> None:
    simple(tmp_path)
    colours = np.array([[128, 64, 128], [64, 0, 128], [128, 128, 128]], np.uint8)
    idx = tiling(3, 6, 8)
    idx[idx == 255] = 0
    Image.fromarray(colours[idx]).save(tmp_path / "masks" / "val" / "c.png")
    ds = open_dataset(tmp_path)
    np.testing.assert_array_equal(ds.mask("val", "c"), idx)
    # a void line (the ignore index names the last class) gives the ignore colour
    (tmp_path / "classes.txt").write_text(THREE + "void 0 0 0\n")
    rgb = colours[idx]
    rgb[0, 0] = 0
    Image.fromarray(rgb).save(tmp_path / "masks" / "val" / "c.png")
    ds = open_dataset(tmp_path, ignore_index=3)
    assert ds.num_classes == 3 and ds.void_name == "void" and ds.void_colour == (0, 0, 0)
    assert ds.mask("val", "c")[0, 0] == 3
    rgb[1, 1] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "masks" / "val" / "c.png")
    with pytest.raises(InputError, match=r"c.png holds 1 colour that no class .* \(1, 2, 3\)"):
        ds.mask("val", "c")
    (tmp_path / "classes.txt").write_text("road\ncar\nsky\n")
    with pytest.raises(InputError, match=r"c.png is colour-coded \(RGB\) but .* gives no colours"):
        open_dataset(tmp_path).mask("val", "c")


# --------------------------------------------------------------------------- bad inputs
def test_value_outside_classes(tmp_path: Path) -> None:
    m = tiling(3, 6, 8)
    m[2, 2] = 7
    make_canonical(tmp_path, THREE, {"train": {"a": tiling(3, 6, 8), "b": m}})
    ds = open_dataset(tmp_path)
    with pytest.raises(InputError) as e:
        ds.validate("train")
    assert "masks/train/b.png holds value 7 (1 pixels), neither a class (0..2)" in message(e)
    with pytest.raises(InputError, match="b.png holds value 7"):
        ds.mask("train", "b")


def test_size_mismatch(tmp_path: Path) -> None:
    simple(tmp_path)
    write_image(tmp_path / "images" / "train" / "a.png", 6, 9)
    with pytest.raises(InputError) as e:
        open_dataset(tmp_path).validate("train")
    assert "masks/train/a.png is 8x6 but its image" in message(e) and "a.png is 9x6" in message(e)


def test_several_problems_in_one_message(tmp_path: Path) -> None:
    simple(tmp_path)
    write_image(tmp_path / "images" / "train" / "a.png", 6, 9)
    write_image(tmp_path / "images" / "train" / "b.png", 7, 8)
    with pytest.raises(InputError, match=r"a.png .* \(and 1 more problem in split 'train'; "):
        open_dataset(tmp_path).validate("train")


def test_mask_without_image(tmp_path: Path) -> None:
    simple(tmp_path)
    write_mask(tmp_path / "masks" / "train" / "zz.png", tiling(3, 6, 8))
    with pytest.raises(InputError, match=r"mask .*masks/train/zz.png has no image in"):
        open_dataset(tmp_path).stems("train")
    assert open_dataset(tmp_path).stems("val") == ("c",)  # the other split still reads


def test_image_without_mask(tmp_path: Path) -> None:
    simple(tmp_path)
    write_image(tmp_path / "images" / "train" / "zz.png", 6, 8)
    with pytest.raises(InputError, match=r"image .*images/train/zz.png has no mask in"):
        open_dataset(tmp_path).validate("train")


def test_duplicate_stems(tmp_path: Path) -> None:
    simple(tmp_path)
    write_image(tmp_path / "images" / "train" / "a.jpg", 6, 8)
    with pytest.raises(InputError, match=r"duplicate stem 'a': .*a.jpg and .*a.png"):
        open_dataset(tmp_path).validate("train")


def test_tag_naming_no_class(tmp_path: Path) -> None:
    simple(tmp_path, tags="a,road\nb,road;zebra\n")
    with pytest.raises(InputError) as e:
        open_dataset(tmp_path)
    assert "tags.csv line 2: tag 'zebra' names no class" in message(e)


def test_tags_csv_malformed(tmp_path: Path) -> None:
    simple(tmp_path, tags="a,road,car\n")
    with pytest.raises(InputError, match="line 1: expected 'stem,name;name;...' .* with ';'"):
        open_dataset(tmp_path)
    (tmp_path / "tags.csv").write_text("a,road\na,car\n")
    with pytest.raises(InputError, match="line 2: stem 'a' already has a row \\(line 1\\)"):
        open_dataset(tmp_path)
    (tmp_path / "tags.csv").write_text("a,road\nghost,car\n")
    with pytest.raises(InputError, match="row for 'ghost', which is an image of no split"):
        open_dataset(tmp_path).validate("val")


def test_class_no_training_image_carries(tmp_path: Path) -> None:
    m = tiling(2, 6, 8)  # classes 0, 1 only: 'sky' never appears
    make_canonical(tmp_path, THREE, {"train": {"a": m}, "val": {"b": m}})
    ds = open_dataset(tmp_path)
    with pytest.raises(InputError, match="no image of split 'train' carries class 'sky'"):
        ds.validate("train")
    assert ds.validate("val").image_counts.tolist() == [1, 1, 0]  # not a training split
    with pytest.raises(InputError, match="carries class 'sky'"):
        ds.validate("val", training=True)


def test_empty_split(tmp_path: Path) -> None:
    simple(tmp_path)
    (tmp_path / "images" / "test").mkdir()
    ds = open_dataset(tmp_path)
    with pytest.raises(InputError, match=r"split 'test' is empty: no images .* in .*images/test"):
        ds.validate("test")


def test_palette_mask_colours(tmp_path: Path) -> None:
    simple(tmp_path)
    idx = tiling(3, 6, 8)
    good = np.array([[128, 64, 128], [64, 0, 128], [128, 128, 128]], np.uint8)
    write_mask(tmp_path / "masks" / "val" / "c.png", idx, palette=good)
    ds = open_dataset(tmp_path)
    np.testing.assert_array_equal(ds.mask("val", "c"), idx)
    write_mask(tmp_path / "masks" / "val" / "c.png", idx, palette=default_palette(3))
    with pytest.raises(InputError) as e:
        ds.validate("val")
    assert "palette mask" in message(e) and "c.png: its colour for index 0 is (0, 0, 0)" in message(
        e
    )
    assert "class 0 ('road') the colour (128, 64, 128)" in message(e)


def test_jpeg_mask_refused(tmp_path: Path) -> None:
    simple(tmp_path)
    Image.fromarray(tiling(3, 6, 8)).save(tmp_path / "masks" / "val" / "d.jpg")
    with pytest.raises(InputError, match=r"mask .*d.jpg: .jpg is not a mask format"):
        open_dataset(tmp_path).stems("val")


def test_mask_mode_refused(tmp_path: Path) -> None:
    simple(tmp_path)
    Image.new("LA", (8, 6)).save(tmp_path / "masks" / "val" / "c.png")
    with pytest.raises(InputError, match=r"c.png has mode LA; masks are single-channel"):
        open_dataset(tmp_path).mask("val", "c")


def test_ignore_index_rules(tmp_path: Path) -> None:
    simple(tmp_path, classes=THREE + "void 0 0 0\n")
    ds = open_dataset(tmp_path, ignore_index=3)  # names the last line: a void class
    assert ds.classes == ("road", "car", "sky") and ds.ignore_index == 3
    with pytest.raises(InputError, match="ignore_index 0 names class 'road' .* not the last"):
        open_dataset(tmp_path, ignore_index=0)
    with pytest.raises(InputError, match="ignore_index must be an integer"):
        open_dataset(tmp_path, ignore_index=True)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="outside 0..65535"):
        open_dataset(tmp_path, ignore_index=70000)
    # four classes, ignore 255: the mask's 255 corner is ignored
    assert open_dataset(tmp_path).num_classes == 4


def test_missing_and_unrecognised_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="dataset folder not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    with pytest.raises(InputError, match="no dataset layout affseg reads"):
        open_dataset(tmp_path / "junk")
    simple(tmp_path / "ds")
    (tmp_path / "ds" / "classes.txt").unlink()
    with pytest.raises(InputError, match=r"has no classes.txt"):
        open_dataset(tmp_path / "ds")
    simple(tmp_path / "ds")
    with pytest.raises(DatasetNotFoundError, match="no split 'test' .* splits: train, val"):
        open_dataset(tmp_path / "ds").stems("test")
    (tmp_path / "ds" / "masks" / "extra").mkdir()
    with pytest.raises(InputError, match=r"masks/extra has no images folder"):
        open_dataset(tmp_path / "ds")
    loose = tmp_path / "loose"
    write_image(loose / "images" / "x.png", 4, 4)
    (loose / "classes.txt").write_text(TWO)
    with pytest.raises(InputError, match="no split folders .* move them to images/train/"):
        open_dataset(loose)
    with pytest.raises(InputError, match="either data=DIR or images="):
        open_dataset(tmp_path / "ds", images=tmp_path)
    with pytest.raises(InputError, match="give data=DIR"):
        open_dataset()


# --------------------------------------------------------------------------- VOC
def make_voc(root: Path, wrong_palette: bool = False) -> Path:
    pal = default_palette(256)
    if wrong_palette:
        pal = pal.copy()
        pal[15] = (1, 2, 3)
    stems = {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"]}
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split, names in stems.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for i, stem in enumerate(names):
            write_image(root / "JPEGImages" / f"{stem}.jpg", 10, 12, seed=i)
            m = np.zeros((10, 12), np.uint8)
            m[2:8, 3:9] = 255  # object border
            m[3:7, 4:8] = 15 if i == 0 else 12  # person / dog
            write_mask(root / "SegmentationClass" / f"{stem}.png", m, palette=pal)
    (root / "ImageSets" / "Segmentation" / "test.txt").write_text("2008_000009\n")
    write_image(root / "JPEGImages" / "2008_000009.jpg", 10, 12)
    return root


def test_voc_layout(tmp_path: Path) -> None:
    make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    ds = open_dataset(tmp_path)  # found under VOCdevkit/VOC2012
    assert ds.layout == "voc" and ds.classes == VOC_CLASSES and ds.ignore_index == 255
    assert ds.splits() == ("test", "train", "val")
    assert ds.colours[15].tolist() == [192, 128, 128]
    m = ds.mask("train", "2007_000001")
    assert set(np.unique(m).tolist()) == {0, 15, 255}
    assert ds.tags("train", "2007_000001") == (0, 15)
    assert not ds.has_masks("test")
    r = ds.validate("val")
    assert r.image_counts[[0, 15]].tolist() == [1, 1] and r.image_counts.sum() == 2
    with pytest.raises(InputError, match="carries classes 'aeroplane'"):
        ds.validate("train")


def test_voc_wrong_palette_refused(tmp_path: Path) -> None:
    ds = open_dataset(make_voc(tmp_path, wrong_palette=True))
    with pytest.raises(
        InputError, match=r"2007_000001.png: its colour for index 15 is \(1, 2, 3\)"
    ):
        ds.mask("train", "2007_000001")
    ds.mask("train", "2007_000002")  # index 15 unused there


def test_voc_listing_problems(tmp_path: Path) -> None:
    root = make_voc(tmp_path)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000003\nmissing_1\n")
    with pytest.raises(InputError, match=r"val.txt line 2 names 'missing_1', but .* is missing"):
        open_dataset(root).stems("val")


# --------------------------------------------------------------------------- pairs
def test_pairs_of_folders(tmp_path: Path) -> None:
    m = tiling(3, 6, 8)
    for split in ("train", "val"):
        for stem in ("f1", "f2"):
            write_image(tmp_path / split / f"{stem}.jpg", 6, 8)
            write_mask(tmp_path / f"{split}annot" / f"{stem}.png", np.where(m == 255, 3, m))
    (tmp_path / "classes.txt").write_text("Sky 128 128 128\nRoad 128 64 128\nCar 64 0 128\n")
    one = open_dataset(
        images=tmp_path / "val", masks=tmp_path / "valannot", classes=tmp_path / "classes.txt",
        ignore_index=3, split="val",
    )  # fmt: skip
    assert one.layout == "pairs" and one.splits() == ("val",) and one.ignore_index == 3
    assert one.mask("val", "f1")[0, 0] == 3 and one.tags("val", "f1") == (0, 1, 2)
    both = open_dataset(
        images={"train": tmp_path / "train", "val": tmp_path / "val"},
        masks={"val": tmp_path / "valannot"},  # train: weakly supervised
        classes=["Sky", "Road", "Car"],
        ignore_index=3,
        tags=None,
    )
    assert both.splits() == ("train", "val") and not both.has_masks("train")
    with pytest.raises(InputError, match="f1.jpg has no mask and no row"):
        both.validate("train")
    with pytest.raises(InputError, match="need classes="):
        open_dataset(images=tmp_path / "val", masks=tmp_path / "valannot")
    with pytest.raises(InputError, match="give masks= as one too"):
        open_dataset(
            images={"val": tmp_path / "val"}, masks=tmp_path / "valannot", classes=["a", "b"]
        )
    with pytest.raises(InputError, match="masks= has split 'test'"):
        open_dataset(images={"val": tmp_path / "val"}, masks={"test": tmp_path}, classes=["a", "b"])
    with pytest.raises(DatasetNotFoundError, match="masks folder of split 'val' not found"):
        open_dataset(
            images=tmp_path / "val", masks=tmp_path / "nope", classes=["a", "b"], split="val"
        )


def test_explicit_samples(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", 2, 3)
    write_mask(tmp_path / "x_gt.png", np.array([[0, 1, 2], [2, 1, 0]], np.uint8))
    ds = SegDataset(
        ["a", "b", "c"], {"val": [Sample("x", tmp_path / "x.png", tmp_path / "x_gt.png")]}
    )
    assert ds.layout == "custom" and ds.tags("val", "x") == (0, 1, 2)
    with pytest.raises(InputError, match="split 'val' .* is empty"):
        SegDataset(["a", "b"], {"val": []}).stems("val")
    with pytest.raises(InputError, match="no image 'y' in split 'val'"):
        ds.image("val", "y")


# --------------------------------------------------------------------------- guard
def test_tags_only_guard(tmp_path: Path) -> None:
    ds = open_dataset(simple(tmp_path))
    weak = ds.tags_only()
    for split in ("train", "val"):
        assert weak.is_tags_only(split) and not weak.has_masks(split)
        assert all(s.mask is None for s in weak.samples(split))
        with pytest.raises(InputError, match=f"split '{split}' is opened tags-only"):
            weak.mask(split, weak.stems(split)[0])
    with pytest.raises(InputError, match="tags-only"):
        weak.pair("train", "a")
    assert weak.tags("train", "a") == (0, 1, 2)  # derived from the mask, internally
    assert weak.tag_matrix("train").all() and weak.image("train", "a").shape == (6, 8, 3)
    assert weak.validate("train").pixel_counts is None
    assert ds.mask("train", "a").shape == (6, 8)  # the dataset itself is unchanged
    part = ds.tags_only("train")
    assert part.mask("val", "c").shape == (6, 8)
    with pytest.raises(InputError, match="tags-only"):
        part.mask("train", "a")
    with pytest.raises(DatasetNotFoundError):
        ds.tags_only("nope")


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint(tmp_path: Path) -> None:
    root = simple(tmp_path / "ds")
    fp = open_dataset(root).fingerprint("train")
    assert len(fp) == 64 and open_dataset(root).fingerprint("train") == fp
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # new mtimes, same bytes
    assert open_dataset(copy).fingerprint("train") == fp
    quick = open_dataset(root).fingerprint("train", quick=True)
    m = tiling(3, 6, 8)
    m[3, 3] = (m[3, 3] + 1) % 3  # same size, one pixel changed
    write_mask(root / "masks" / "train" / "b.png", m)
    assert open_dataset(root).fingerprint("train") != fp
    assert open_dataset(root).fingerprint("train", quick=True) != quick
    assert open_dataset(root).fingerprint("val") == open_dataset(copy).fingerprint("val")
    (root / "tags.csv").write_text("a,road\n")
    fp2 = open_dataset(root).fingerprint("train")
    (root / "tags.csv").write_text("a,car\n")
    assert open_dataset(root).fingerprint("train") != fp2


# --------------------------------------------------------------------------- real data
def data_folder(name: str) -> Path:
    try:
        return dataset_dir(name)
    except DatasetNotFoundError:
        pytest.skip(f"dataset {name} not available")


@pytest.mark.data
def test_camvid(tmp_path: Path) -> None:
    c = data_folder("CamVid")
    images = {"train": c / "train", "val": c / "val"}
    masks = {"train": c / "trainannot", "val": c / "valannot"}
    ds = open_dataset(images=images, masks=masks, classes=c / "classes.txt", ignore_index=11)
    assert ds.num_classes == 11 and ds.ignore_index == 11 and ds.colours_given
    assert ds.classes[0] == "Sky" and ds.classes[-1] == "Bicyclist"
    assert len(ds.stems("train")) == 367 and len(ds.stems("val")) == 101
    r = ds.validate("train")
    assert r.image_counts.min() > 0 and r.ignore_pixels > 0
    assert ds.validate("val").num_images == 101
    # a classes.txt that lists Unlabelled too: the same 11 classes
    with_void = tmp_path / "classes.txt"
    with_void.write_text((c / "classes.txt").read_text().rstrip("\n") + "\nUnlabelled 0 0 0\n")
    ds12 = open_dataset(images=images, masks=masks, classes=with_void, ignore_index=11)
    assert ds12.classes == ds.classes and ds12.void_name == "Unlabelled"
    stem = ds.stems("val")[0]
    np.testing.assert_array_equal(ds12.mask("val", stem), ds.mask("val", stem))


@pytest.mark.data
@pytest.mark.parametrize("vocabulary, k", [("msrc21", 21), ("msrc23", 23)])
def test_msrc_adapters(vocabulary: str, k: int) -> None:
    folder = data_folder("MSRC_v2")
    ds = open_msrc(vocabulary=vocabulary)
    assert ds.num_classes == k and ds.ignore_index == 255 and ds.layout == vocabulary
    assert ("horse" in ds.classes) == (k == 23) and ds.classes[0] == "building"
    assert len(ds.stems("train")) == 298 and len(ds.stems("val")) == 57
    stem = ds.stems("val")[0]
    gt = msrc.load_ground_truth(folder.parent, "val", stem, msrc21=k == 21)
    np.testing.assert_array_equal(ds.mask("val", stem), np.where(gt == 0, 255, gt - 1))
    assert ds.tags("val", stem) == tuple(c - 1 for c in msrc.image_labels(gt))
    assert ds.validate("val").num_images == 57
    r = ds.validate("train")  # every class in some train image
    assert r.image_counts.min() > 0
    if k == 21:
        auto = open_dataset(folder)  # detected: MSRC-21
        assert auto.layout == "msrc21" and auto.fingerprint("val") == ds.fingerprint("val")


@pytest.mark.data
def test_make_msrc23_layout(tmp_path: Path) -> None:
    folder = data_folder("MSRC_v2")
    script = ROOT / "benchmarks" / "make_msrc23_layout.py"
    out = tmp_path / "msrc23"
    run = subprocess.run(
        [sys.executable, str(script), str(out), "--data-root", str(folder.parent)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ds = open_dataset(out)
    assert ds.layout == "canonical" and ds.num_classes == 23 and ds.colours_given
    assert ds.classes == msrc.CLASS_NAMES[1:]
    assert not ds.has_masks("train") and ds.has_masks("val")
    assert len(ds.stems("train")) == 298 and len(ds.stems("val")) == 57
    for stem in ds.stems("train"):
        gt = msrc.load_ground_truth(folder.parent, "train", stem)
        assert ds.tags("train", stem) == tuple(c - 1 for c in msrc.image_labels(gt)), stem
    adapter = open_msrc(folder.parent, vocabulary="msrc23")
    for stem in ds.stems("val")[:5]:
        np.testing.assert_array_equal(ds.mask("val", stem), adapter.mask("val", stem))
    # rerunning into its own folder is fine; a foreign non-empty folder is refused
    again = subprocess.run(
        [sys.executable, str(script), str(out), "--data-root", str(folder.parent)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert open_dataset(out).fingerprint("train") == ds.fingerprint("train")


def test_make_msrc23_layout_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    script = ROOT / "benchmarks" / "make_msrc23_layout.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode == 2 and "is not empty and was not written by this script" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
