"""Image validation, reading and atomic writing.

Every image that enters affseg passes :func:`as_rgb` (arrays) or :func:`read_image`
(files): a bad input stops there with one clear :class:`~affseg.errors.InputError`.
Every file that affseg writes goes through an ``atomic_*`` writer: it is written to a
temporary file in the same folder and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from affseg.errors import CorruptFileError, InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def as_rgb(image: Any, name: str = "image") -> np.ndarray:
    """Validate an RGB image array and return it as uint8.

    Parameters
    ----------
    image : array_like, shape (H, W, 3)
        uint8 in [0, 255] or float in [0, 1].
    name : str
        How the error message calls it.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Raises
    ------
    InputError
        Grayscale (H, W), RGBA (H, W, 4), other shapes, empty images, non-numeric or
        out-of-range values.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        raise InputError(
            f"{name} is grayscale with shape {arr.shape}; affseg expects RGB (H, W, 3): "
            "stack it to three channels first"
        )
    if arr.ndim != 3 or arr.shape[2] != 3:
        extra = (
            " (RGBA: drop or composite the alpha channel first)"
            if (arr.ndim == 3 and arr.shape[2] == 4)
            else ""
        )
        raise InputError(f"{name} has shape {arr.shape}; expected (H, W, 3) RGB{extra}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{name} is empty or too small: shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} has dtype {arr.dtype}; expected uint8 or float in [0, 1]")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{name} is float but not within [0, 1] (or holds NaN/inf)")
        return np.round(arr * 255).astype(np.uint8)
    if arr.min() < 0 or arr.max() > 255:
        raise InputError(f"{name} has integer values outside [0, 255]")
    return arr.astype(np.uint8)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an RGB image file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Raises
    ------
    InputError
        The file is missing, grayscale or has an alpha channel.
    CorruptFileError
        The file cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("L", "1", "I", "I;16", "F", "LA"):
                raise InputError(
                    f"{p} is a grayscale image (mode {mode}); affseg expects RGB: convert it first"
                )
            if mode in ("RGBA", "PA"):
                raise InputError(f"{p} has an alpha channel (mode {mode}); convert it to RGB first")
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"cannot decode image {p}: {exc}") from None
    return as_rgb(arr, name=str(p))


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label map written by :func:`write_label_png`.

    Returns
    -------
    ndarray, shape (H, W), int32
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(f"cannot decode label map {p}: {exc}") from None
    if arr.ndim != 2:
        raise InputError(f"label map {p} has shape {arr.shape}; expected a single channel")
    return arr.astype(np.int32)


def list_images(path: str | os.PathLike[str]) -> list[Path]:
    """Image files named by ``path``: the file itself, or a folder's images sorted by name.

    Raises
    ------
    InputError
        Missing path, or a folder without images.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
        return files
    raise InputError(f"no such image or folder: {p}")


@contextmanager
def _atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the usual umask permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically."""
    with _atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a uint8 (H, W) / (H, W, 3) or uint16 (H, W) array as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"PNG arrays must be uint8 or uint16, got {arr.dtype}")
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def write_label_png(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write a label map (H, W) as a 16-bit PNG, atomically.

    Raises
    ------
    InputError
        Labels outside [0, 65535] or not 2-D.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"label map has shape {lab.shape}; expected (H, W)")
    if lab.size and (lab.min() < 0 or lab.max() > 65535):
        raise InputError("labels must lie in [0, 65535] to be written as a uint16 PNG")
    return write_png(path, lab.astype(np.uint16))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def write_ucm_mat(path: str | os.PathLike[str], ucm2: np.ndarray) -> Path:
    """Write a double-resolution UCM (2H+1, 2W+1) as a BSDS ``.mat`` holding ``ucm2``."""
    import scipy.io

    u = np.asarray(ucm2, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise InputError(f"ucm2 must be (2H+1, 2W+1); got shape {u.shape}")
    return atomic_write(
        path, lambda tmp: scipy.io.savemat(tmp, {"ucm2": u}, do_compression=True, format="5")
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
