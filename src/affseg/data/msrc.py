"""MSRC object-class recognition v2 reader (Shotton et al., 2006).

Layout under ``<root>/MSRC_v2``::

    images/<split>/<id>.png          RGB photos, 320x213 or 213x320
    groundTruth/<split>/<id>_GT.png  colour-coded classes (black = void)

Class ids: 0 = void, 1..23 the classes of :data:`CLASS_NAMES` (index = id). The MSRC-21
protocol (:data:`MSRC21_CLASS_NAMES`) also treats ``horse`` and ``mountain`` as void and
numbers the remaining 21 classes 1..21 in the same order.

Example
-------
>>> from affseg.data.msrc import MSRC
>>> ds = MSRC(split="val")                         # doctest: +SKIP
>>> image_id, image, classes = ds[0]               # doctest: +SKIP
>>> image_labels(classes)                          # doctest: +SKIP
[2, 4]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from affseg.data.io import open_image, read_image
from affseg.data.paths import dataset_dir
from affseg.errors import CorruptFileError, DatasetNotFoundError, InputError

#: Class names by id (0 = void), 23 classes in the order of the data README.
CLASS_NAMES: tuple[str, ...] = (
    "void", "building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain",
    "aeroplane", "water", "face", "car", "bicycle", "flower", "sign", "bird", "book",
    "chair", "road", "cat", "dog", "body", "boat",
)  # fmt: skip

#: RGB colour of every id in :data:`CLASS_NAMES`, shape (24, 3) uint8.
CLASS_COLOURS = np.array(
    [
        (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128),
        (0, 128, 128), (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0),
        (64, 0, 128), (192, 0, 128), (64, 128, 128), (192, 128, 128), (0, 64, 0),
        (128, 64, 0), (0, 192, 0), (128, 64, 128), (0, 192, 128), (128, 192, 128),
        (64, 64, 0), (192, 64, 0),
    ],
    dtype=np.uint8,
)  # fmt: skip

#: Number of non-void classes of MSRC-v2 (23) and of the MSRC-21 protocol (21).
NUM_CLASSES = len(CLASS_NAMES) - 1
#: Names of the MSRC-21 protocol (0 = void; horse and mountain dropped).
MSRC21_CLASS_NAMES: tuple[str, ...] = tuple(
    n for n in CLASS_NAMES if n not in ("horse", "mountain")
)
NUM_CLASSES_21 = len(MSRC21_CLASS_NAMES) - 1

#: Lookup table: MSRC-v2 id (0..23) -> MSRC-21 id (0..21; horse, mountain -> 0).
V2_TO_21 = np.array(
    [MSRC21_CLASS_NAMES.index(n) if n in MSRC21_CLASS_NAMES else 0 for n in CLASS_NAMES],
    dtype=np.int32,
)

_VOID = 0


def _colour_key(rgb: np.ndarray) -> np.ndarray:
    """Pack (..., 3) uint8 colours into one int32 key per pixel (..., )."""
    c = rgb.astype(np.int32)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


_KEYS = _colour_key(CLASS_COLOURS)
_KEY_ORDER = np.argsort(_KEYS)
_SORTED_KEYS = _KEYS[_KEY_ORDER]


def decode_colours(gt_rgb: np.ndarray, strict: bool = True) -> np.ndarray:
    """Colour-coded ground truth -> class ids (MSRC-v2 numbering).

    Parameters
    ----------
    gt_rgb : ndarray, shape (H, W, 3), uint8
    strict : bool
        Raise on a colour that is not in :data:`CLASS_COLOURS`; else map it to void.

    Returns
    -------
    ndarray, shape (H, W), int32
        0 = void, 1..23 classes.

    Raises
    ------
    InputError
        Wrong shape, or (strict) an unknown colour.

    Examples
    --------
    >>> import numpy as np
    >>> gt_rgb = np.zeros((2, 2, 3), np.uint8); gt_rgb[0, 0] = (128, 0, 0)   # building
    >>> decode_colours(gt_rgb).tolist()
    [[1, 0], [0, 0]]
    """
    a = np.asarray(gt_rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"MSRC ground truth has shape {a.shape}; expected (H, W, 3)")
    keys = _colour_key(a)
    pos = np.clip(np.searchsorted(_SORTED_KEYS, keys), 0, len(_SORTED_KEYS) - 1)
    known = _SORTED_KEYS[pos] == keys
    if strict and not known.all():
        bad = a[~known][0]
        raise InputError(f"MSRC ground truth holds an unknown colour {tuple(int(v) for v in bad)}")
    return np.where(known, _KEY_ORDER[pos], _VOID).astype(np.int32)


def encode_colours(classes: np.ndarray) -> np.ndarray:
    """Class ids (MSRC-v2 numbering) -> the dataset's colour code.

    Parameters
    ----------
    classes : ndarray, shape (H, W), int in 0..23

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> encode_colours(np.array([[1, 0]])).tolist()
    [[[128, 0, 0], [0, 0, 0]]]
    """
    c = np.asarray(classes)
    if c.size and (c.min() < 0 or c.max() > NUM_CLASSES):
        raise InputError(f"MSRC class ids must lie in 0..{NUM_CLASSES}")
    return CLASS_COLOURS[c]


def to_msrc21(classes: np.ndarray) -> np.ndarray:
    """MSRC-v2 ids (H, W) -> MSRC-21 ids (H, W) int32 (horse and mountain become void).

    Examples
    --------
    >>> import numpy as np
    >>> to_msrc21(np.array([[1, 0]])).tolist()
    [[1, 0]]
    """
    return V2_TO_21[np.asarray(classes)]


def image_labels(classes: np.ndarray) -> list[int]:
    """Image-level label set: the sorted non-void class ids present in a class map (H, W).

    Examples
    --------
    >>> import numpy as np
    >>> image_labels(np.array([[1, 0], [0, 0]]))
    [1]
    """
    u = np.unique(np.asarray(classes))
    return [int(v) for v in u if v != _VOID]


def available_splits(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The split folders under ``MSRC_v2/images`` (sorted)."""
    images = dataset_dir("MSRC_v2", root) / "images"
    return sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []


def _split_dirs(root: str | os.PathLike[str] | None, split: str) -> tuple[Path, Path]:
    base = dataset_dir("MSRC_v2", root)
    img_dir = base / "images" / split
    if not img_dir.is_dir():
        have = available_splits(root)
        raise DatasetNotFoundError(
            f"MSRC_v2 split {split!r} not found at {img_dir}; splits present: "
            f"{', '.join(have) if have else 'none'}"
        )
    return img_dir, base / "groundTruth" / split


def list_split(root: str | os.PathLike[str] | None, split: str) -> list[str]:
    """Image ids of a split (file stems, e.g. ``'10_12_s'``), sorted."""
    img_dir, _ = _split_dirs(root, split)
    return sorted(p.stem for p in img_dir.iterdir() if p.suffix.lower() in (".png", ".bmp"))


def load_image(root: str | os.PathLike[str] | None, split: str, image_id: str) -> np.ndarray:
    """The photo of ``image_id``, shape (H, W, 3) uint8."""
    img_dir, _ = _split_dirs(root, split)
    for suf in (".png", ".bmp"):
        p = img_dir / f"{image_id}{suf}"
        if p.is_file():
            return read_image(p)
    raise DatasetNotFoundError(f"MSRC_v2 image {image_id!r} not found in {img_dir}")


def load_ground_truth(
    root: str | os.PathLike[str] | None, split: str, image_id: str, *, msrc21: bool = False
) -> np.ndarray:
    """Class map of ``image_id``.

    Parameters
    ----------
    msrc21 : bool
        Return MSRC-21 ids (horse, mountain -> void) instead of MSRC-v2 ids.

    Returns
    -------
    ndarray, shape (H, W), int32
        0 = void.

    Raises
    ------
    DatasetNotFoundError
        Missing file.
    CorruptFileError
        Undecodable file or a colour outside the palette.
    """
    from PIL import UnidentifiedImageError

    _, gt_dir = _split_dirs(root, split)
    p = gt_dir / f"{image_id}_GT.png"
    if not p.is_file():
        raise DatasetNotFoundError(f"MSRC_v2 ground truth not found: {p}")

    try:
        with open_image(p, "MSRC ground truth") as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"cannot decode MSRC ground truth {p}: {exc}") from None
    try:
        classes = decode_colours(rgb)
    except InputError as exc:
        raise CorruptFileError(f"{p}: {exc}") from None
    return to_msrc21(classes) if msrc21 else classes


class MSRC:
    """One split of MSRC-v2 as a sequence of ``(id, image (H, W, 3) uint8, classes (H, W))``.

    Parameters
    ----------
    root : path-like, optional
        Data root holding ``MSRC_v2/``.
    split : str
        ``"train"`` or ``"val"`` (any split folder present).
    msrc21 : bool
        Class maps in MSRC-21 numbering.
    limit : int, optional
        First ``limit`` ids only.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        msrc21: bool = False,
        limit: int | None = None,
    ) -> None:
        self.root = root
        self.split = split
        self.msrc21 = msrc21
        self.ids = list_split(root, split)
        if limit is not None:
            self.ids = self.ids[: max(int(limit), 0)]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names by id (0 = void) of the numbering in use."""
        return MSRC21_CLASS_NAMES if self.msrc21 else CLASS_NAMES

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        image_id = self.ids[index]
        return (
            image_id,
            load_image(self.root, self.split, image_id),
            load_ground_truth(self.root, self.split, image_id, msrc21=self.msrc21),
        )

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def labels(self, image_id: str) -> list[int]:
        """Image-level label set of ``image_id`` (non-void class ids present)."""
        return image_labels(load_ground_truth(self.root, self.split, image_id, msrc21=self.msrc21))


def label_vector(label_ids: list[int], num_classes: int = NUM_CLASSES_21) -> np.ndarray:
    """Multi-hot vector (num_classes,) float32 of 1-based class ids (entry c-1 for id c).

    Examples
    --------
    >>> label_vector([1, 3], num_classes=4)
    array([1., 0., 1., 0.], dtype=float32)
    """
    v = np.zeros(num_classes, dtype=np.float32)
    for c in label_ids:
        if not 1 <= int(c) <= num_classes:
            raise InputError(f"class id {c} outside 1..{num_classes}")
        v[int(c) - 1] = 1.0
    return v


def weak_items(
    root: str | os.PathLike[str] | None, split: str, limit: int | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Weak supervision view of a split: ``(id, image (H, W, 3) uint8, labels (21,))``.

    The MSRC-21 image-level label vector (multi-hot over the 21 classes) is the only
    annotation yielded: the ground-truth map is read to find which classes are present and
    then dropped, so nothing downstream can see a pixel label.

    Examples
    --------
    >>> image_id, image, labels = next(weak_items(None, "val"))   # doctest: +SKIP
    >>> labels.shape                                              # doctest: +SKIP
    (21,)
    """
    ids = list_split(root, split)
    if limit is not None:
        ids = ids[: max(int(limit), 0)]
    for image_id in ids:
        present = image_labels(load_ground_truth(root, split, image_id, msrc21=True))
        yield image_id, load_image(root, split, image_id), label_vector(present)
