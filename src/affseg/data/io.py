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
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from affseg.errors import CorruptFileError, InputError, first_line

#: Suffixes (any case) of the image files affseg reads, in folders and as single files.
#: GIF is included; animated (multi-frame) files of any format are refused.
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".webp", ".gif",
)  # fmt: skip


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
    try:
        arr = np.asarray(image)
    except (ValueError, TypeError) as exc:  # ragged nested lists, odd objects
        raise InputError(f"{name} is not an array of pixels ({first_line(exc)})") from None
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
    if (
        arr.dtype == bool
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise InputError(f"{name} has dtype {arr.dtype}; expected uint8 or float in [0, 1]")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{name} is float but not within [0, 1] (or holds NaN/inf)")
        return np.round(arr * 255).astype(np.uint8)
    if arr.min() < 0 or arr.max() > 255:
        raise InputError(f"{name} has integer values outside [0, 255]")
    return arr.astype(np.uint8)


#: Largest image (width x height) affseg decodes; more is refused before decoding (a 2.6 MB
#: PNG can hold 30000 x 30000 pixels, 2.7 GB of RGB). ``$AFFSEG_MAX_PIXELS`` changes it.
MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The pixel limit of :func:`open_image`: ``$AFFSEG_MAX_PIXELS`` or :data:`MAX_PIXELS`."""
    raw = os.environ.get("AFFSEG_MAX_PIXELS")
    if raw is None or not raw.strip():
        return MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"AFFSEG_MAX_PIXELS must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise InputError(f"AFFSEG_MAX_PIXELS must be a positive integer, got {raw!r}")
    return value


def _open_lazy(p: Path, what: str) -> Any:
    """PIL image of ``p``, header read and checked, pixels not decoded yet."""
    from PIL import Image, UnidentifiedImageError

    if not p.is_file():
        if p.exists():
            raise InputError(f"{what} {p} is not a file")
        raise InputError(f"{what} not found: {p}")
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            # affseg applies its own limit below, before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError:
        raise InputError(
            f"{p} is larger than PIL's decompression-bomb limit; refused before decoding"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(f"cannot decode {what} {p}: {exc}") from None
    try:
        w, h = im.size
        if w * h > limit:
            raise InputError(
                f"{p} is {w}x{h} = {w * h / 1e6:.0f} megapixels, above affseg's limit of "
                f"{limit / 1e6:g} megapixels (refused before decoding: a decompression bomb?); "
                "set AFFSEG_MAX_PIXELS to raise the limit"
            )
        try:
            frames = int(getattr(im, "n_frames", 1) or 1)
        except (OSError, ValueError, SyntaxError) as exc:
            raise CorruptFileError(f"cannot decode {what} {p}: {exc}") from None
        if frames > 1:
            raise InputError(
                f"{p} holds {frames} frames (animation or multi-page file); affseg reads "
                "single images: extract one frame first"
            )
    except BaseException:
        im.close()
        raise
    return im


def _check_rgb_mode(p: Path, im: Any) -> None:
    mode = im.mode
    if mode in ("L", "1", "I", "I;16", "I;16B", "I;16L", "F", "LA", "La"):
        raise InputError(
            f"{p} is a grayscale image (mode {mode}); affseg expects RGB: convert it first"
        )
    if mode in ("RGBA", "PA", "RGBa"):
        raise InputError(f"{p} has an alpha channel (mode {mode}); convert it to RGB first")
    if mode == "P" and "transparency" in im.info:
        raise InputError(f"{p} has a transparent palette colour; convert it to RGB first")


def image_size(path: str | os.PathLike[str], what: str = "image") -> tuple[int, int]:
    """(height, width) of an RGB image file from its header, after :func:`read_image`'s
    checks that need no decoding (pixel limit, frames, grayscale / alpha modes).

    Nothing is decoded, so a whole batch can be checked before any work. The size is the
    upright one (EXIF orientation applied).
    """
    p = Path(path)
    im = _open_lazy(p, what)
    with im:
        _check_rgb_mode(p, im)
        w, h = im.size
        try:
            orientation = int(im.getexif().get(0x0112, 1))
        except Exception:  # noqa: BLE001 - unreadable EXIF: read_image will tell
            orientation = 1
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees
        w, h = h, w
    return int(h), int(w)


@contextmanager
def open_image(path: str | os.PathLike[str], what: str = "image") -> Iterator[Any]:
    """Open an image file with PIL, refusing what affseg cannot read safely.

    The header is checked before any pixel is decoded: more than :func:`max_pixels`
    pixels (a decompression bomb, or just too large) and multi-frame files (animated GIF /
    WebP / PNG, multi-page TIFF: affseg would silently read the first frame only) are
    refused. The yielded image is loaded and turned upright by its EXIF orientation tag,
    as every viewer shows it.

    Raises
    ------
    InputError
        Missing file, too many pixels, several frames.
    CorruptFileError
        The file cannot be decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    im = _open_lazy(p, what)
    with im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
                upright = ImageOps.exif_transpose(im)
        except Image.DecompressionBombError:
            raise InputError(f"{p} is larger than PIL's decompression-bomb limit") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise CorruptFileError(f"cannot decode {what} {p}: {exc}") from None
        yield upright if upright is not None else im


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an RGB image file, upright (its EXIF orientation applied).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Raises
    ------
    InputError
        The file is missing, grayscale, has an alpha channel, has several frames or more
        than :func:`max_pixels` pixels.
    CorruptFileError
        The file cannot be decoded.
    """
    p = Path(path)
    with open_image(p) as im:
        _check_rgb_mode(p, im)
        try:
            arr = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"cannot decode image {p}: {exc}") from None
    return as_rgb(arr, name=str(p))


def read_pixels(path: str | os.PathLike[str], what: str = "file") -> np.ndarray:
    """The pixels of an image file as stored (any mode: 8/16-bit grey, RGB, palette
    indices), after :func:`open_image`'s checks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.png"
    >>> _ = write_png(p, np.full((2, 3), 700, np.uint16))
    >>> read_pixels(p).max()
    np.uint16(700)
    """
    p = Path(path)
    with open_image(p, what) as im:
        try:
            return np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt file
            raise CorruptFileError(f"cannot decode {what} {p}: {exc}") from None


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label map written by :func:`write_label_png`.

    Returns
    -------
    ndarray, shape (H, W), int32
    """
    p = Path(path)
    with open_image(p, "label map") as im:
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise InputError(f"label map {p} has shape {arr.shape}; expected a single channel")
    return arr.astype(np.int32)


def list_images(path: str | os.PathLike[str]) -> list[Path]:
    """Image files named by ``path``: the file itself, or a folder's images sorted by name.

    One rule for files and folders: an image is a regular file whose suffix (any case) is
    one of :data:`IMAGE_SUFFIXES`. A folder contributes its own such files (not those of
    sub-folders, not hidden ``.*`` files, not folders named like images); a file given
    explicitly with another suffix is refused rather than guessed at.

    Raises
    ------
    InputError
        Missing path, a file that is not an image by this rule, or a folder without images.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(
                f"{p} is not an image file affseg reads (suffixes: {', '.join(IMAGE_SUFFIXES)})"
            )
        return [p]
    if p.is_dir():
        files = sorted(
            f
            for f in p.iterdir()
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()
        )
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
        return files
    if p.exists():
        raise InputError(
            f"{p} is neither a regular file nor a folder (a FIFO, socket or device?); "
            "affseg reads image files"
        )
    raise InputError(f"no such image or folder: {p}")


def check_writable_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Create folder ``path`` if needed and make sure files can be written into it.

    Called before any computation, so that an unwritable output fails at once.

    Raises
    ------
    InputError
        ``path`` exists and is not a folder, or cannot be created / written to.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".affseg-write-test.", dir=p)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError(f"{what} {p} is not writable: {exc.strerror or exc}") from None
    return p


def remove_if_empty(path: str | os.PathLike[str]) -> bool:
    """Remove folder ``path`` if it holds nothing; whether it was removed.

    For an output folder a command created before finding it had nothing to write.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> d.mkdir()
    >>> remove_if_empty(d), d.exists()
    (True, False)
    """
    try:
        Path(path).rmdir()  # fails unless empty
    except OSError:
        return False
    return True


def check_writable_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Make sure ``path`` can be written (atomically) as a file, before any computation.

    Raises
    ------
    InputError
        ``path`` is a folder, or its folder cannot be created / written to.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder; give a file name")
    if not p.name:
        raise InputError(f"{what} {p!s} names no file")
    check_writable_dir(p.parent if str(p.parent) else Path("."), what=f"{what} folder")
    return p


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


#: zlib level of the PNGs affseg writes: 1 encodes a BSDS overlay 4x faster than PIL's
#: default 6 for files ~9 % larger (labels and boundary maps compress alike at any level).
PNG_COMPRESS_LEVEL = 1


def write_png(
    path: str | os.PathLike[str], array: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL
) -> Path:
    """Write a uint8 (H, W) / (H, W, 3) or uint16 (H, W) array as PNG, atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> write_png(p, np.zeros((2, 3, 3), np.uint8)).name
    'a.png'
    """
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"PNG arrays must be uint8 or uint16, got {arr.dtype}")
    return atomic_write(
        path,
        lambda tmp: Image.fromarray(arr).save(tmp, format="PNG", compress_level=compress_level),
    )


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
    """Write ``obj`` as indented, strict JSON (NaN and inf become ``null``), atomically."""
    text = json.dumps(
        _finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False
    )
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


def read_ucm_mat(path: str | os.PathLike[str]) -> np.ndarray:
    """The ``ucm2`` array of a BSDS ``.mat`` file, shape (2H+1, 2W+1), float64.

    Raises
    ------
    CorruptFileError
        Unreadable file, no ``ucm2`` variable, or a ``ucm2`` that is not a real 2-D array
        of odd sides (a string, a cell, a 3-D or complex array), each named with the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.mat"
    >>> _ = write_ucm_mat(p, np.zeros((5, 7)))
    >>> read_ucm_mat(p).shape
    (5, 7)
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(path)
    except (MatReadError, ValueError, TypeError, OSError, IndexError, NotImplementedError) as exc:
        raise CorruptFileError(f"cannot read {path}: {first_line(exc)}") from None
    if "ucm2" not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise CorruptFileError(f"{path} holds no 'ucm2' variable (variables: {keys})")
    raw = np.asarray(mat["ucm2"])
    if raw.dtype.kind not in "biuf":
        what = {"c": "complex", "U": "a string", "S": "a string", "O": "a cell or struct"}
        raise CorruptFileError(
            f"{path}: ucm2 is {what.get(raw.dtype.kind, str(raw.dtype))}, not a real array"
        )
    if raw.ndim != 2 or raw.shape[0] % 2 == 0 or raw.shape[1] % 2 == 0:
        raise CorruptFileError(
            f"{path}: ucm2 has shape {raw.shape}; a BSDS ucm2 is 2-D with odd sides (2H+1, 2W+1)"
        )
    return raw.astype(np.float64)


def _finite(o: Any) -> Any:
    """``o`` with every non-finite float (NaN, inf) replaced by None (JSON has none)."""
    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray) and o.dtype.kind == "f":
        return _finite(o.tolist())
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
