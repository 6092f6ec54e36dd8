"""BSDS500 reader (Arbelaez et al., TPAMI 2011).

Layout under ``<root>/BSDS500``::

    images/<split>/<id>.jpg          RGB photos, 481x321 or 321x481
    groundTruth/<split>/<id>.mat     ``groundTruth``: 1xK cell of structs with
                                     ``Segmentation`` (uint16, labels 1..n) and ``Boundaries``

Any split folder that exists (``train``, ``val``, ``test``, ...) is accepted, so the same
code runs the official test protocol where the test split is present.

Example
-------
>>> from affseg.data.bsds import BSDS500
>>> ds = BSDS500(split="val")                      # doctest: +SKIP
>>> image_id, image, gts = ds[0]                   # doctest: +SKIP
>>> image.shape, len(gts), gts[0].shape            # doctest: +SKIP
((321, 481, 3), 5, (321, 481))
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from affseg.data.io import read_image
from affseg.data.paths import dataset_dir
from affseg.errors import CorruptFileError, DatasetNotFoundError

#: Image file suffixes tried, in order, for an id.
_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")


def available_splits(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The split folders under ``BSDS500/images`` (sorted).

    Raises
    ------
    DatasetNotFoundError
        No ``BSDS500`` folder under the data root.
    """
    images = dataset_dir("BSDS500", root) / "images"
    if not images.is_dir():
        return []
    return sorted(p.name for p in images.iterdir() if p.is_dir())


def split_dirs(split: str, root: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """The image folder and the ground-truth folder of one split.

    Returns
    -------
    (Path, Path)
        ``images/<split>`` and ``groundTruth/<split>`` (the latter may not exist, e.g. for
        a split shipped without annotations).

    Raises
    ------
    DatasetNotFoundError
        The split's image folder is missing; the message lists the splits that exist.
    """
    base = dataset_dir("BSDS500", root)
    img_dir = base / "images" / split
    if not img_dir.is_dir():
        have = available_splits(root)
        raise DatasetNotFoundError(
            f"BSDS500 split {split!r} not found at {img_dir}; splits present: "
            f"{', '.join(have) if have else 'none'}"
        )
    return img_dir, base / "groundTruth" / split


def list_split(root: str | os.PathLike[str] | None, split: str) -> list[str]:
    """Image ids of a split, sorted (e.g. ``['100007', '100039', ...]``).

    Raises
    ------
    DatasetNotFoundError
        Missing split folder (the message lists the splits present).
    """
    img_dir, _ = split_dirs(split, root)
    return sorted(p.stem for p in img_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def image_path(root: str | os.PathLike[str] | None, split: str, image_id: str) -> Path:
    """Path of the photo of ``image_id`` in ``split``.

    Raises
    ------
    DatasetNotFoundError
        The split or the image is missing.
    """
    img_dir, _ = split_dirs(split, root)
    for suf in _IMAGE_SUFFIXES:
        p = img_dir / f"{image_id}{suf}"
        if p.is_file():
            return p
    raise DatasetNotFoundError(f"BSDS500 image {image_id!r} not found in {img_dir}")


def load_image(root: str | os.PathLike[str] | None, split: str, image_id: str) -> np.ndarray:
    """The photo of ``image_id``.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    return read_image(image_path(root, split, image_id))


def gt_path(root: str | os.PathLike[str] | None, split: str, image_id: str) -> Path:
    """Path of the ground-truth ``.mat`` of ``image_id`` (may not exist)."""
    _, gt_dir = split_dirs(split, root)
    return gt_dir / f"{image_id}.mat"


def load_ground_truth(mat_path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every human segmentation stored in a BSDS ground-truth ``.mat``.

    Parameters
    ----------
    mat_path : path-like
        A ``groundTruth/<split>/<id>.mat`` file.

    Returns
    -------
    list of ndarray, each (H, W), int32
        One label map per annotator (K = 4..9 on BSDS500), labels as stored (1..n).

    Raises
    ------
    DatasetNotFoundError
        The file is missing.
    CorruptFileError
        The file cannot be read or lacks ``groundTruth{k}.Segmentation``.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    p = Path(mat_path)
    if not p.is_file():
        raise DatasetNotFoundError(f"BSDS500 ground truth not found: {p}")
    try:
        cell = scipy.io.loadmat(p)["groundTruth"]
        segs = [
            np.asarray(cell.flat[k]["Segmentation"][0, 0]).astype(np.int32)
            for k in range(cell.size)
        ]
    except (
        MatReadError,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
        OSError,
        NotImplementedError,
    ) as exc:
        raise CorruptFileError(f"cannot read BSDS ground truth {p}: {exc}") from None
    if not segs or any(s.ndim != 2 for s in segs):
        raise CorruptFileError(f"BSDS ground truth {p} holds no 2-D Segmentation")
    return segs


class BSDS500:
    """One split of BSDS500 as a sequence of ``(id, image, ground_truths)``.

    Parameters
    ----------
    root : path-like, optional
        The data root holding ``BSDS500/`` (default: :func:`affseg.data.paths.data_root`).
    split : str
        ``"train"``, ``"val"``, ``"test"`` or any split folder present.
    limit : int, optional
        Keep only the first ``limit`` ids (sorted order).

    Notes
    -----
    Items are read lazily: ``ds[i]`` returns ``(id, image (H, W, 3) uint8,
    [gt (H, W) int32, ...])``; ground truths are ``[]`` when the split has no
    ``groundTruth`` folder.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "val",
        limit: int | None = None,
    ) -> None:
        self.root = root
        self.split = split
        self.ids = list_split(root, split)
        if limit is not None:
            self.ids = self.ids[: max(int(limit), 0)]

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, image_id: str) -> np.ndarray:
        """The photo (H, W, 3) uint8 of ``image_id``."""
        return load_image(self.root, self.split, image_id)

    def ground_truth(self, image_id: str) -> list[np.ndarray]:
        """The human segmentations (each (H, W) int32) of ``image_id``."""
        return load_ground_truth(gt_path(self.root, self.split, image_id))

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, list[np.ndarray]]:
        image_id = self.ids[index]
        gp = gt_path(self.root, self.split, image_id)
        gts = load_ground_truth(gp) if gp.parent.is_dir() else []
        return image_id, self.image(image_id), gts

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, list[np.ndarray]]]:
        for i in range(len(self)):
            yield self[i]
