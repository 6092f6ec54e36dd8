"""The viewer's pictures: overlays, label maps, similarity heat maps and PNG / ``.mat`` bytes.

Pure functions of arrays (no cache, no HTTP): :class:`~affseg.serve.viewer.Viewer` caches
what they return.

Example
-------
>>> import numpy as np
>>> rgb = np.zeros((4, 6, 3), np.uint8)
>>> lab = np.ones((4, 6), np.int32); lab[:, 3:] = 2
>>> overlay_png(rgb, lab)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np


def fast_overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Segments painted with their mean colour, one-pixel boundaries in yellow.

    The picture of :func:`affseg.grouping.visualize.overlay` drawn for interactive use, in
    8.8 fixed point: labels index the colour table directly and a pixel is a boundary when
    its right or lower neighbour has another label.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
        Non-negative labels.
    alpha : float
        Weight of the segment's mean colour.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.full((2, 4, 3), 100, np.uint8)
    >>> lab = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> out = fast_overlay(rgb, lab)
    >>> out[0, 0].tolist(), out[0, 1].tolist()   # inside (8.8 fixed point); boundary
    ([99, 99, 99], [255, 255, 0])
    """
    lab = np.asarray(labels).astype(np.intp, copy=False)
    flat = lab.ravel()
    n = int(flat.max()) + 1
    counts = np.maximum(np.bincount(flat, minlength=n), 1)
    px = rgb.reshape(-1, 3)
    paint = np.empty((n, 3), np.uint16)
    for c in range(3):
        paint[:, c] = np.bincount(flat, px[:, c], n) * (alpha * 256) / counts + 0.5
    base = px * np.uint16(round((1.0 - alpha) * 256))
    out = ((paint[flat] + base) >> 8).astype(np.uint8).reshape(rgb.shape)
    edge = np.zeros(lab.shape, bool)
    np.not_equal(lab[:, :-1], lab[:, 1:], out=edge[:, :-1])
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    out[edge] = (255, 255, 0)
    return out


def encode_png(arr: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a uint8 (H, W[, 3]) or uint16 (H, W) array.

    ``level`` is zlib's compression level. Level 0 (pictures shown live over loopback)
    writes 8-bit images directly (no row filters, stored deflate blocks: about 1 ms for
    600 x 400 RGB); other levels go through Pillow.

    Parameters
    ----------
    arr : ndarray
        uint8 (H, W), (H, W, 3) or (H, W, 4), or uint16 (H, W).
    level : int
        zlib compression level 0..9.

    Returns
    -------
    bytes

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(a, level=0)))), a)
    True
    """
    a = np.ascontiguousarray(arr)
    if level == 0 and a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] in (3, 4)):
        h, w = a.shape[:2]
        ch = 1 if a.ndim == 2 else a.shape[2]
        raw = np.zeros((h, 1 + w * ch), np.uint8)  # filter byte 0 ("none") per row
        raw[:, 1:] = a.reshape(h, -1)

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        colour_type = {1: 0, 3: 2, 4: 6}[ch]
        ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 0))
            + chunk(b"IEND", b"")
        )
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=max(0, int(level)))
    return buf.getvalue()


def overlay_png(rgb: np.ndarray, labels: np.ndarray) -> bytes:
    """PNG (zlib level 0) of :func:`fast_overlay`: a level shown over its image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int

    Returns
    -------
    bytes

    Examples
    --------
    >>> import numpy as np
    >>> png = overlay_png(np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.int32))
    >>> png.startswith(b"\\x89PNG")
    True
    """
    return encode_png(fast_overlay(rgb, labels), level=0)


def labels_png(labels: np.ndarray) -> bytes:
    """16-bit PNG of a label map, relabelled 1..K in order of first appearance.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Positive labels (at most 65535 of them).

    Returns
    -------
    bytes

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> png = labels_png(np.array([[5, 5, 9]], np.int32))
    >>> np.asarray(Image.open(io.BytesIO(png))).tolist()
    [[1, 1, 2]]
    """
    from skimage.segmentation import relabel_sequential

    return encode_png(relabel_sequential(labels)[0].astype(np.uint16))


def ucm_mat(levels: Sequence[np.ndarray], heights: Sequence[float]) -> bytes:
    """A hierarchy as a compressed BSDS ``.mat`` holding its ``ucm2`` (double resolution).

    Parameters
    ----------
    levels : sequence of ndarray, each (H, W), int
        Nested label maps, fine -> coarse.
    heights : sequence of float
        Height of every level.

    Returns
    -------
    bytes

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import scipy.io
    >>> fine = np.array([[1, 2]]); coarse = np.array([[1, 1]])
    >>> mat = scipy.io.loadmat(io.BytesIO(ucm_mat([fine, coarse], [0.0, 0.5])))
    >>> mat["ucm2"].shape
    (3, 5)
    """
    import scipy.io

    from affseg.grouping.hierarchy import Hierarchy

    hier = Hierarchy([lv.astype(np.int32) for lv in levels], np.asarray(heights))
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"ucm2": hier.to_ucm()}, do_compression=True, format="5")
    return buf.getvalue()


def similarity_png(similarity: np.ndarray, y: int, x: int) -> bytes:
    """PNG (zlib level 0) of a similarity map as a heat map, pixel (y, x) marked in cyan.

    Parameters
    ----------
    similarity : ndarray, shape (H, W)
        Values in [0, 1] (:meth:`~affseg.serve.similarity.SimilarityField.row`).
    y, x : int
        The pixel whose similarity it is.

    Returns
    -------
    bytes

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> img = np.asarray(Image.open(io.BytesIO(similarity_png(np.zeros((8, 8)), 0, 0))))
    >>> img[0, 0].tolist(), img[7, 7].tolist()
    ([0, 255, 255], [0, 0, 0])
    """
    from affseg.methods.similarity import heat

    img = heat(similarity)
    h, w = img.shape[:2]
    r = max(2, min(h, w) // 100)
    img[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = (0, 255, 255)
    return encode_png(img, level=0)
