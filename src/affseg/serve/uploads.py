"""Checks on uploaded images: size in bytes, pixels from the header, image formats only.

Nothing is decoded before the header says the image is small enough:
:func:`decode_upload` reads width and height with ``PIL.Image.open`` (which parses only
the header), refuses more than ``max_pixels`` pixels, and only then loads the pixels.
Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is kept as a second
line: its error is reported as the same refusal.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from affseg.errors import InputError

#: Pillow formats accepted from a request.
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "GIF")


class UploadRefused(InputError):
    """An upload that is refused, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Validate and decode an uploaded image.

    Parameters
    ----------
    data : bytes
        The file's content.
    max_bytes, max_pixels : int
        Limits; an image over either is refused before its pixels are decoded.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        Upright (the EXIF orientation applied, as :func:`affseg.data.io.read_image` does),
        grayscale stacked to RGB, an alpha channel composited on white, the first frame of
        an animated image.

    Raises
    ------
    UploadRefused
        413 for too many bytes or pixels, 415 for anything that is not an image of
        :data:`ALLOWED_FORMATS`, 400 for an empty or undecodable file.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadRefused("the uploaded file is empty", 400)
    if len(data) > max_bytes:
        raise UploadRefused(
            f"the upload is {len(data) / 1e6:.1f} MB; this server accepts at most "
            f"{max_bytes / 1e6:.1f} MB",
            413,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRefused(
            f"the image header declares too many pixels; this server accepts at most "
            f"{max_pixels:,} pixels",
            413,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadRefused(
            f"not an image (accepted: {', '.join(ALLOWED_FORMATS)})",
            415,
        ) from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise UploadRefused(
                f"the image is {w} x {h} = {w * h:,} pixels; this server accepts at most "
                f"{max_pixels:,} pixels",
                413,
            )
        if w < 2 or h < 2:
            raise UploadRefused(f"the image is too small ({w} x {h})", 400)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.seek(0)
                im.load()
                # upright, by the rule of affseg.data.io.open_image (the CLI's reader)
                up = upright(im)
                if up.mode in ("RGBA", "LA", "PA") or (
                    up.mode == "P" and "transparency" in up.info
                ):
                    rgba = up.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    rgb = Image.alpha_composite(bg, rgba).convert("RGB")
                else:
                    rgb = up.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadRefused("the image declares too many pixels", 413) from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure: one line, 400
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise UploadRefused(f"cannot decode the image: {msg}", 400) from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def upright(im: Any) -> Any:
    """A loaded PIL image turned upright by its EXIF orientation tag.

    The rule of :func:`affseg.data.io.open_image` (``PIL.ImageOps.exif_transpose``), so the
    viewer's labels and ``.mat`` files have the orientation of ``affseg segment``'s.

    Parameters
    ----------
    im : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        ``im`` itself when it needs no turn.

    Examples
    --------
    >>> from PIL import Image
    >>> im = Image.new("RGB", (4, 2))
    >>> exif = im.getexif()
    >>> exif[0x0112] = 6  # rotated: displayed turned 90 degrees clockwise
    >>> im.info["exif"] = exif.tobytes()
    >>> upright(im).size
    (2, 4)
    """
    from PIL import ImageOps

    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF: taken as upright, like image_size
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        out = ImageOps.exif_transpose(im)
        return im if out is None else out
    return im
