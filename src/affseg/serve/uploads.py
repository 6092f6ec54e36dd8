"""Uploads: the request body read within limits, then checks on the uploaded image.

:func:`read_body` reads a request's body whole, within ``max_bytes`` (413, the rest of a
refused body drained so that the client reads the answer) and ``timeout`` seconds (408,
the connection closed). Then nothing is decoded before the header says the image is small
enough: :func:`decode_upload` reads width and height with ``PIL.Image.open`` (which parses only
the header), refuses more than ``max_pixels`` pixels, and only then loads the pixels.
Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is kept as a second
line: its error is reported as the same refusal.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from typing import Any

import numpy as np

from affseg.errors import InputError
from affseg.serve.errors import HTTPError

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


async def read_body(request: Any, *, max_bytes: int, timeout: float) -> bytes:
    """A request's body, whole within ``timeout`` seconds and about ``max_bytes`` bytes.

    Parameters
    ----------
    request : starlette.requests.Request
        Anything with ``headers`` and an async ``stream()`` of byte chunks.
    max_bytes : int
        Largest upload; the body may be 64 KiB larger (the multipart framing).
    timeout : float
        Seconds the whole body may take to arrive.

    Returns
    -------
    bytes

    Raises
    ------
    HTTPError
        400 for a bad ``Content-Length``, 413 for a larger body (declared or sent; up to 4
        times the limit is read and discarded first, so that the client, still sending,
        reads the answer instead of a reset connection), 408 (with ``Connection: close``:
        a stalled client does not keep its slot) when it does not arrive in time.

    Examples
    --------
    >>> import asyncio
    >>> class Request:
    ...     headers = {"content-length": "5"}
    ...     async def stream(self):
    ...         yield b"hello"
    >>> asyncio.run(read_body(Request(), max_bytes=10, timeout=1.0))
    b'hello'
    """
    try:
        async with asyncio.timeout(timeout):
            return await _read_body_unbounded(request, max_bytes)
    except TimeoutError:
        raise HTTPError(
            408,
            f"the upload did not arrive within {timeout:g} s",
            headers={"Connection": "close"},
        ) from None


async def _read_body_unbounded(request: Any, max_bytes: int) -> bytes:
    limit = max_bytes + 64 * 1024  # room for the multipart framing
    cap = 4 * limit  # a refused upload up to this size is drained before the answer
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if size > limit:
            if size <= cap:
                await _drain(request, cap)
            raise HTTPError(
                413,
                f"the upload is {size / 1e6:.1f} MB; this server accepts at "
                f"most {max_bytes / 1e6:.1f} MB",
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            body.clear()
            await _drain(request, cap)
            raise HTTPError(413, f"the upload exceeds {max_bytes / 1e6:.1f} MB")
    return bytes(body)


async def _drain(request: Any, cap: int) -> None:
    """Read and discard up to ``cap`` more bytes of a refused upload, so that the client,
    still sending, reads the 413 answer instead of a reset connection (a lingering
    close); nothing is kept, and a larger upload is cut off at ``cap``."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            break
