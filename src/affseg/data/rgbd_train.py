"""Reader of ``RGBD_depth_train``: 30 real colour + disparity scenes for training depth models.

Layout under ``<root>/RGBD_depth_train/<name>``: ``color.png`` (RGB) and ``depth.png``
(8-bit, hole-filled disparity-like map). The benchmark scenes (art, books, dolls,
laundry, moebius, reindeer) are not among them.

The one loader of this data set: depth super-resolution training
(:func:`affseg.train.depth_sr.load_training_pairs`) and depth completion training
(:func:`affseg.train.depth_completion.load_train_scenes`) both read it through
:func:`load_scenes`.

Example
-------
>>> from affseg.data.rgbd_train import list_scenes
>>> len(list_scenes())            # doctest: +SKIP
30
"""

from __future__ import annotations

import os

import numpy as np

from affseg.data.io import read_image, read_pixels
from affseg.data.paths import dataset_dir
from affseg.errors import CorruptFileError, InputError

DATASET = "RGBD_depth_train"


def list_scenes(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Scene folders holding ``color.png`` and ``depth.png``, sorted.

    Examples
    --------
    >>> list_scenes()[:2]            # doctest: +SKIP
    ['lu_01', 'lu_02']
    """
    base = dataset_dir(DATASET, root)
    return sorted(
        p.name
        for p in base.iterdir()
        if (p / "color.png").is_file() and (p / "depth.png").is_file()
    )


def load_pair(
    name: str, root: str | os.PathLike[str] | None = None, multiple: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Guide and disparity of one scene, cropped (top-left) to a multiple of ``multiple``.

    Returns
    -------
    rgb : ndarray, shape (H, W, 3), uint8
    depth : ndarray, shape (H, W), float32 (8-bit values)

    Examples
    --------
    >>> rgb, depth = load_pair("lu_01")            # doctest: +SKIP
    >>> rgb.shape, depth.shape                      # doctest: +SKIP
    ((480, 640, 3), (480, 640))
    """
    d = dataset_dir(DATASET, root) / name
    rgb = read_image(d / "color.png")
    depth = read_pixels(d / "depth.png", "depth map")
    if depth.ndim != 2 or depth.shape != rgb.shape[:2]:
        raise CorruptFileError(f"{d}: depth {depth.shape} does not match colour {rgb.shape}")
    h, w = (depth.shape[0] // multiple) * multiple, (depth.shape[1] // multiple) * multiple
    return rgb[:h, :w], depth[:h, :w].astype(np.float32)


def load_scenes(
    root: str | os.PathLike[str] | None = None,
    names: list[str] | None = None,
    multiple: int = 16,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Guides and disparities (:func:`load_pair`) of the scenes ``names`` (default: every
    scene, :func:`list_scenes`), in that order.

    Parameters
    ----------
    root : path, optional
        Data root holding ``RGBD_depth_train/``.
    names : list of str, optional
    multiple : int
        Every scene is cropped (top-left) to a multiple of it; 1 keeps the full scene.

    Returns
    -------
    list of (ndarray (H, W, 3) uint8, ndarray (H, W) float32)

    Examples
    --------
    >>> load_scenes("/nonexistent")
    Traceback (most recent call last):
    ...
    affseg.errors.DatasetNotFoundError: dataset RGBD_depth_train not found at ...
    """
    names = names if names is not None else list_scenes(root)
    if not names:
        raise InputError(
            f"no scenes (<name>/color.png + depth.png) under {dataset_dir(DATASET, root)}"
        )
    return [load_pair(name, root, multiple) for name in names]
