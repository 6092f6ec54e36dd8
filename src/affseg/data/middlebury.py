"""Middlebury guided depth super-resolution reader (Ferstl et al., ICCV 2013 set-up).

Layout under ``<root>/Middlebury_depth_sr/<scene>``::

    input/<scene>_color.png     RGB guide, full resolution (1088 x 1376)
    input/depth_{1..4}_n.png    noisy low-resolution disparity, 8-bit, at x2, x4, x8, x16
    gt.png                      hole-filled ground-truth disparity, 8-bit, full resolution
    barronpoole/output_{1..4}_n.png
                                fast bilateral solver output (Barron & Poole, ECCV 2016),
                                uint16 at :data:`BARRON_POOLE_SCALE` times the gt scale

The Barron-Poole scale was measured on both scenes and all four factors: the least-squares
ratio output / gt is 254.7-256.0 and the median ratio 255.87-256.31, so
``output / 256`` is on the 8-bit gt scale (:func:`load_barron_poole` divides by it).

Example
-------
>>> from affseg.data.middlebury import load_scene
>>> s = load_scene("art_big", scale=8)            # doctest: +SKIP
>>> s.guide.shape, s.lowres.shape, s.gt.shape      # doctest: +SKIP
((1088, 1376, 3), (136, 172), (1088, 1376))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affseg.data.io import open_image, read_image
from affseg.data.paths import dataset_dir
from affseg.errors import CorruptFileError, DatasetNotFoundError, InputError

#: Upsampling factor -> file index of ``depth_<i>_n.png`` / ``output_<i>_n.png``.
SCALES: dict[int, int] = {2: 1, 4: 2, 8: 3, 16: 4}
#: Factor between the Barron-Poole uint16 outputs and the 8-bit gt disparity (measured).
BARRON_POOLE_SCALE = 256.0


@dataclass
class DepthSRScene:
    """One scene at one upsampling factor.

    Attributes
    ----------
    name : str
    scale : int
        2, 4, 8 or 16.
    guide : ndarray, shape (H, W, 3), uint8
    lowres : ndarray, shape (H / scale, W / scale), float64
        Noisy low-resolution disparity (8-bit values).
    gt : ndarray, shape (H, W), float64
        Ground-truth disparity (8-bit values).
    barron_poole : ndarray, shape (H, W), float64, or None
        Published bilateral-solver output on the gt scale (already divided by 256).
    """

    name: str
    scale: int
    guide: np.ndarray
    lowres: np.ndarray
    gt: np.ndarray
    barron_poole: np.ndarray | None = None


def list_scenes(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Scene folders (those with ``gt.png``), sorted."""
    base = dataset_dir("Middlebury_depth_sr", root)
    return sorted(p.name for p in base.iterdir() if (p / "gt.png").is_file())


def _scene_dir(root: str | os.PathLike[str] | None, scene: str) -> Path:
    base = dataset_dir("Middlebury_depth_sr", root)
    d = base / scene
    if not (d / "gt.png").is_file():
        raise DatasetNotFoundError(
            f"Middlebury scene {scene!r} not found at {d}; scenes present: "
            f"{', '.join(list_scenes(root)) or 'none'}"
        )
    return d


def _read_gray(path: Path) -> np.ndarray:
    from PIL import UnidentifiedImageError

    if not path.is_file():
        raise DatasetNotFoundError(f"Middlebury file not found: {path}")

    try:
        with open_image(path, "Middlebury file") as im:
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"cannot decode {path}: {exc}") from None
    if arr.ndim != 2:
        raise CorruptFileError(f"{path} has shape {arr.shape}; expected a single channel")
    return arr


def _check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise InputError(f"Middlebury scale must be one of {sorted(SCALES)}, got {scale}")
    return SCALES[scale]


def load_guide(root: str | os.PathLike[str] | None, scene: str) -> np.ndarray:
    """The colour guide, shape (H, W, 3) uint8."""
    return read_image(_scene_dir(root, scene) / "input" / f"{scene}_color.png")


def load_gt(root: str | os.PathLike[str] | None, scene: str) -> np.ndarray:
    """Ground-truth disparity, shape (H, W), float64 (8-bit values)."""
    return _read_gray(_scene_dir(root, scene) / "gt.png").astype(np.float64)


def load_lowres(root: str | os.PathLike[str] | None, scene: str, scale: int) -> np.ndarray:
    """Noisy low-resolution disparity at factor ``scale``, shape (H/s, W/s), float64."""
    i = _check_scale(scale)
    return _read_gray(_scene_dir(root, scene) / "input" / f"depth_{i}_n.png").astype(np.float64)


def load_barron_poole(root: str | os.PathLike[str] | None, scene: str, scale: int) -> np.ndarray:
    """Barron-Poole output at factor ``scale`` on the gt scale, shape (H, W), float64."""
    i = _check_scale(scale)
    raw = _read_gray(_scene_dir(root, scene) / "barronpoole" / f"output_{i}_n.png")
    return raw.astype(np.float64) / BARRON_POOLE_SCALE


def load_scene(scene: str, scale: int, root: str | os.PathLike[str] | None = None) -> DepthSRScene:
    """Everything of one scene at one factor (Barron-Poole output where present)."""
    d = _scene_dir(root, scene)
    i = _check_scale(scale)
    bp_path = d / "barronpoole" / f"output_{i}_n.png"
    return DepthSRScene(
        name=scene,
        scale=scale,
        guide=load_guide(root, scene),
        lowres=load_lowres(root, scene, scale),
        gt=load_gt(root, scene),
        barron_poole=load_barron_poole(root, scene, scale) if bp_path.is_file() else None,
    )
