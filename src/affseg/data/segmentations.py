"""Datasets of human segmentations: what the hierarchy (``affseg train ndd``, ``affseg train
boundary``, ``affseg eval --task region``) trains on and is scored against.

A segmentation is a label map in which each region is one segment, whatever the labels
mean: BSDS500's free-form annotations, instance masks, or class masks (then, by default,
each connected region of a class is one segment). An image may have several annotators.

Layouts
-------
**BSDS500** (``open_segmentations()`` or ``data=ROOT`` holding ``BSDS500/``, or the
``BSDS500`` folder itself): ``images/<split>/<id>.jpg`` and
``groundTruth/<split>/<id>.mat`` (one label map per annotator).

**Canonical** (``data=DIR`` holding ``images/``)::

    DIR/images/<split>/<stem>.<ext>           photos
    DIR/masks/<split>/<stem>.png              one annotator, or
    DIR/masks/<split>/<annotator>/<stem>.png  several annotators (one folder each)

The canonical layout of semantic training (:mod:`affseg.data.segdata`) is one of these:
its class masks are segmentations too.

**Pairs of folders** (``images={split: DIR}``, ``masks={split: [DIR, ...]}``): images and
masks matched by stem, e.g. CamVid's ``train/`` + ``trainannot/``; every mask folder given
for a split is one more annotator.

Rules
-----
Masks
    Lossless single-channel PNG / BMP / TIFF (8 or 16 bit) or palette PNG: the value is
    the label; colour-coded RGB: each colour is one label. JPEG is refused. A mask has the
    size of its photo.
Void
    ``ignore_index`` (e.g. CamVid's 11) marks unlabelled pixels: they are in no segment,
    carry no training signal and are left out of the scores. Read annotations hold -1
    there.
Regions
    ``regions="components"`` (default) splits every label into its 4-connected regions
    (a class mask's two cars are two segments); ``"labels"`` keeps each label one segment
    (instance masks whose instances may be occluded into several pieces).

Examples
--------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from affseg.data.io import write_png
>>> root = Path(tempfile.mkdtemp())
>>> for sub in ("images/train", "masks/train"):
...     (root / sub).mkdir(parents=True)
>>> _ = write_png(root / "images/train/a.png", np.zeros((4, 6, 3), np.uint8))
>>> mask = np.zeros((4, 6), np.uint8); mask[:, 1] = 1; mask[:, 4] = 1; mask[0] = 9
>>> _ = write_png(root / "masks/train/a.png", mask)
>>> data = open_segmentations(data=root, ignore_index=9)
>>> data.splits, len(data.items("train"))
(('train',), 1)
>>> data.items("train")[0].read_annotations()[0]
array([[-1, -1, -1, -1, -1, -1],
       [ 0,  1,  2,  2,  3,  4],
       [ 0,  1,  2,  2,  3,  4],
       [ 0,  1,  2,  2,  3,  4]], dtype=int32)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affseg.data import bsds
from affseg.data.io import IMAGE_SUFFIXES, open_image, read_image
from affseg.data.paths import data_root
from affseg.data.segdata import MASK_SUFFIXES, _list_files
from affseg.errors import DatasetNotFoundError, InputError

#: How a label map becomes segments (see the module docstring).
REGION_MODES = ("components", "labels")
#: PIL modes of masks whose pixel values are the labels.
_INDEX_MODES = ("1", "L", "P", "I;16", "I;16L", "I;16B", "I")


@dataclass(frozen=True)
class SegmentationItem:
    """One photo and its human segmentations (picklable; read on demand).

    Attributes
    ----------
    stem : str
        The image's name (its file stem, the BSDS id).
    image : Path
    annotations : tuple of Path
        BSDS500: one ``.mat`` (holding every annotator); other layouts: one mask file per
        annotator.
    ignore_index : int or None
        Mask value of void pixels.
    regions : str
        ``"components"`` or ``"labels"``.

    Examples
    --------
    >>> item = SegmentationItem("a", Path("a.png"), (Path("a_mask.png"),))
    >>> item.is_bsds, item.regions
    (False, 'components')
    """

    stem: str
    image: Path
    annotations: tuple[Path, ...]
    ignore_index: int | None = None
    regions: str = "components"

    @property
    def is_bsds(self) -> bool:
        """Whether the annotations are one BSDS500 ground-truth ``.mat``."""
        return len(self.annotations) == 1 and self.annotations[0].suffix.lower() == ".mat"

    def read_image(self) -> np.ndarray:
        """The photo, (H, W, 3) uint8 (every check of :func:`affseg.data.io.read_image`)."""
        return read_image(self.image)

    def read_annotations(self) -> list[np.ndarray]:
        """Every annotator's segmentation, each (H, W) int32, segments 0..n-1, void -1.

        Raises
        ------
        InputError
            A mask that is not a label map, or whose size differs from the photo's.
        """
        size = _image_size(self.image)
        if self.is_bsds:  # as stored (labels 1..n, no void): the official benchmark's input
            segs = bsds.load_ground_truth(self.annotations[0])
            paths = self.annotations * len(segs)
        else:
            segs = [_read_label_map(p) for p in self.annotations]
            paths = self.annotations
        out = []
        for path, seg in zip(paths, segs, strict=True):
            if seg.shape != size:
                raise InputError(
                    f"mask {path} is {seg.shape[1]}x{seg.shape[0]} but its photo "
                    f"{self.image.name} is {size[1]}x{size[0]}"
                )
            out.append(seg if self.is_bsds else segments_of(seg, self.ignore_index, self.regions))
        return out


def segments_of(
    labels: np.ndarray, ignore_index: int | None = None, regions: str = "components"
) -> np.ndarray:
    """A label map as segments 0..n-1 with void pixels -1.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
    ignore_index : int, optional
        Label of void pixels.
    regions : {"components", "labels"}
        Split each label into 4-connected regions, or keep it one segment.

    Returns
    -------
    ndarray, shape (H, W), int32

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[5, 0, 5], [5, 0, 5]])
    >>> segments_of(lab).tolist()
    [[0, 1, 2], [0, 1, 2]]
    >>> segments_of(lab, regions="labels").tolist()
    [[1, 0, 1], [1, 0, 1]]
    >>> segments_of(lab, ignore_index=0).tolist()
    [[0, -1, 1], [0, -1, 1]]
    """
    from skimage.measure import label as connected

    if regions not in REGION_MODES:
        raise InputError(f"regions must be one of {', '.join(REGION_MODES)}; got {regions!r}")
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"a label map is (H, W); got shape {lab.shape}")
    void = lab == ignore_index if ignore_index is not None else np.zeros(lab.shape, bool)
    if regions == "components":
        marked = np.where(void, -1, lab.astype(np.int64))
        seg = connected(marked, background=-1, connectivity=1).astype(np.int32) - 1
    else:
        _, inv = np.unique(np.where(void, lab.min() - 1, lab), return_inverse=True)
        seg = inv.reshape(lab.shape).astype(np.int32) - int(void.any())
    seg[void] = -1
    return seg


class SegmentationData:
    """The splits of a segmentation dataset (see :func:`open_segmentations`).

    Parameters
    ----------
    name : str
        Where the data comes from (for messages).
    splits : mapping of str to list of SegmentationItem

    Examples
    --------
    >>> data = SegmentationData("toy", {"train": []})
    >>> data.items("val")
    Traceback (most recent call last):
    ...
    affseg.errors.DatasetNotFoundError: toy has no split 'val'; splits: train
    """

    def __init__(self, name: str, splits: Mapping[str, Sequence[SegmentationItem]]) -> None:
        self.name = name
        self._splits = {k: tuple(v) for k, v in splits.items()}

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names, sorted."""
        return tuple(sorted(self._splits))

    @property
    def is_bsds(self) -> bool:
        """Whether this is BSDS500 (its ground truth in ``.mat`` files)."""
        return any(it.is_bsds for items in self._splits.values() for it in items)

    def items(self, split: str) -> tuple[SegmentationItem, ...]:
        """The items of one split, sorted by stem.

        Raises
        ------
        DatasetNotFoundError
            The split does not exist or holds no annotated image.
        """
        if split not in self._splits:
            raise DatasetNotFoundError(
                f"{self.name} has no split {split!r}; splits: {', '.join(self.splits) or 'none'}"
            )
        return self._splits[split]


def item_digest(item: SegmentationItem) -> str:
    """A digest of an item's files (resolved paths) and reading rules, not their contents.

    Examples
    --------
    >>> a = SegmentationItem("a", Path("a.png"), (Path("m.png"),))
    >>> item_digest(a) == item_digest(SegmentationItem("a", Path("a.png"), (Path("m.png"),), 11))
    False
    """
    parts = [item.stem, str(item.image.resolve()), *(str(a.resolve()) for a in item.annotations)]
    text = "|".join(parts) + f"|{item.ignore_index}|{item.regions}"
    return hashlib.sha256(text.encode()).hexdigest()


def open_segmentations(
    data: str | os.PathLike[str] | None = None,
    images: Mapping[str, str | os.PathLike[str]] | None = None,
    masks: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
    ignore_index: int | None = None,
    regions: str = "components",
) -> SegmentationData:
    """Open a segmentation dataset in any of the module's layouts.

    Parameters
    ----------
    data : path-like, optional
        A folder holding ``BSDS500/``, a ``BSDS500`` folder, or a canonical layout. Default
        (with no ``images``): BSDS500 under the data root (``$AFFSEG_DATA``).
    images, masks : mapping, optional
        Pairs of folders: split -> image folder, split -> mask folders (one per annotator).
    ignore_index : int, optional
        Mask value of void pixels (not used for BSDS500, which has none).
    regions : {"components", "labels"}

    Returns
    -------
    SegmentationData

    Raises
    ------
    DatasetNotFoundError
        A folder is missing.
    InputError
        Inconsistent options, a photo without its mask (or a mask without its photo), a
        lossy mask format.

    Examples
    --------
    >>> open_segmentations(images={"train": "/nonexistent"}, masks={})
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: split 'train' has images but no --masks folder
    """
    if regions not in REGION_MODES:
        raise InputError(f"--regions must be one of {', '.join(REGION_MODES)}; got {regions!r}")
    if images is not None or masks is not None:
        if data is not None:
            raise InputError("give --data DIR or --images/--masks folders, not both")
        return _open_pairs(dict(images or {}), dict(masks or {}), ignore_index, regions)
    root = data_root(data)
    for cand in (root / "BSDS500", root):
        if (cand / "groundTruth").is_dir() and (cand / "images").is_dir():
            return _open_bsds(cand)
    if (root / "images").is_dir():
        return _open_canonical(root, ignore_index, regions)
    raise DatasetNotFoundError(
        f"no segmentation dataset at {root}: expected BSDS500/ (images/ + groundTruth/) or "
        "images/<split>/ with masks/<split>/"
    )


def _open_bsds(base: Path) -> SegmentationData:
    root = base.parent
    splits: dict[str, list[SegmentationItem]] = {}
    for split in bsds.available_splits(root):
        items = []
        for i in bsds.list_split(root, split):
            gt = bsds.gt_path(root, split, i)
            if gt.is_file():
                image = bsds.image_path(root, split, i)
                items.append(SegmentationItem(i, image, (gt,), None, "labels"))
        if items:
            splits[split] = items
    if not splits:
        raise DatasetNotFoundError(f"BSDS500 at {base} holds no images with ground truth")
    return SegmentationData(f"BSDS500 ({base})", splits)


def _open_canonical(root: Path, ignore_index: int | None, regions: str) -> SegmentationData:
    splits: dict[str, list[SegmentationItem]] = {}
    for split_dir in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
        mask_dir = root / "masks" / split_dir.name
        if not mask_dir.is_dir():
            continue  # an unannotated split (e.g. tags only): not a segmentation split
        entries = [p for p in mask_dir.iterdir() if not p.name.startswith(".")]
        subdirs = sorted(p for p in entries if p.is_dir())
        if subdirs and any(p.is_file() for p in entries):
            raise InputError(
                f"{mask_dir} holds both mask files and folders: give one mask per photo, or "
                "one folder per annotator"
            )
        folders = subdirs or [mask_dir]
        splits[split_dir.name] = _match(split_dir.name, split_dir, folders, ignore_index, regions)
    if not splits:
        raise DatasetNotFoundError(f"{root}: no split has both images/<split>/ and masks/<split>/")
    return SegmentationData(str(root), splits)


def _open_pairs(
    images: dict[str, str | os.PathLike[str]],
    masks: dict[str, Sequence[str | os.PathLike[str]]],
    ignore_index: int | None,
    regions: str,
) -> SegmentationData:
    for split in images:
        if not masks.get(split):
            raise InputError(f"split {split!r} has images but no --masks folder")
    for split in masks:
        if split not in images:
            raise InputError(f"split {split!r} has --masks but no --images folder")
    splits = {
        split: _match(split, Path(folder), [Path(m) for m in masks[split]], ignore_index, regions)
        for split, folder in images.items()
    }
    folders = ", ".join(f"{split}={Path(folder)}" for split, folder in sorted(images.items()))
    return SegmentationData(f"image folders {folders}", splits)


def _match(
    split: str,
    image_dir: Path,
    mask_dirs: Sequence[Path],
    ignore_index: int | None,
    regions: str,
) -> list[SegmentationItem]:
    """Items of one split: each photo with one mask per annotator folder, by stem."""
    photos = _list_files(image_dir, IMAGE_SUFFIXES, "images")
    per_annotator = [_list_files(d, MASK_SUFFIXES, "masks") for d in mask_dirs]
    for d, found in zip(mask_dirs, per_annotator, strict=True):
        missing = sorted(set(photos) - set(found))
        extra = sorted(set(found) - set(photos))
        if missing:
            raise InputError(
                f"split {split!r}: {len(missing)} photo(s) have no mask in {d} "
                f"(e.g. {missing[0]!r})"
            )
        if extra:
            raise InputError(
                f"split {split!r}: {len(extra)} mask(s) in {d} have no photo in {image_dir} "
                f"(e.g. {extra[0]!r})"
            )
    if not photos:
        raise DatasetNotFoundError(f"split {split!r}: no photos in {image_dir}")
    return [
        SegmentationItem(
            stem, photos[stem], tuple(f[stem] for f in per_annotator), ignore_index, regions
        )
        for stem in sorted(photos)
    ]


def _image_size(path: Path) -> tuple[int, int]:
    with open_image(path, "image") as im:
        return im.size[1], im.size[0]


def _read_label_map(path: Path) -> np.ndarray:
    """A mask file as (H, W) int64 labels (palette / grey values, or one label per colour)."""
    with open_image(path, "mask") as im:
        mode = im.mode
        arr = np.asarray(im)
    if mode in _INDEX_MODES:
        return arr.astype(np.int64)
    if mode == "RGB":
        flat = arr.reshape(-1, 3).astype(np.int64)
        keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
        return keys.reshape(arr.shape[:2])
    raise InputError(
        f"mask {path} has mode {mode}; a segmentation is a single-channel label map (8/16-bit "
        "or palette PNG) or a colour-coded RGB image"
    )
