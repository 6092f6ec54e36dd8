"""Leaves of the leaf grouping: an edge-following over-segmentation, and the Lab colour and
gradient it follows.

:func:`superpixel_leaves` makes the finest level of :func:`affseg.grouping.leaf_hierarchy.
leaf_hierarchy` (SLIC, compact watershed of the colour gradient or Felzenszwalb
superpixels, made 4-connected); :func:`lab_image` and :func:`lab_gradient` are the CIE-Lab
image and its Sobel magnitude, cached for the last image (the watershed, the colour
contrast and the edge term of :mod:`affseg.grouping.leaf_statistics` share them).

Example
-------
>>> import numpy as np
>>> img = np.zeros((16, 16, 3), np.uint8); img[:, 8:] = 255
>>> g = lab_gradient(img)
>>> g.shape, bool(g[:, 7:9].min() > g[:, :6].max())
((16, 16), True)
"""

from __future__ import annotations

import functools

import numpy as np
from skimage.color import xyz2lab
from skimage.color.colorconv import xyz_from_rgb
from skimage.segmentation import felzenszwalb, slic, watershed
from skimage.util import img_as_float64

from affseg.errors import InputError
from affseg.grouping.compact_watershed import compact_watershed
from affseg.grouping.leaf_kernels import sobel_magnitude
from affseg.grouping.region_merging import connected_cleanup

LEAF_METHODS = ("slic", "watershed", "felzenszwalb")


@functools.lru_cache(maxsize=1)
def _srgb_linear() -> np.ndarray:
    """skimage's sRGB -> linear RGB of the 256 uint8 values (its own expression)."""
    arr = np.array(img_as_float64(np.arange(256, dtype=np.uint8)), dtype=np.float64)
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    return arr


@functools.lru_cache(maxsize=1)
def _lab_of(key: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """CIE-Lab of an RGB image given as bytes (cached: leaves and contrast share it).

    ``skimage.color.rgb2lab`` with its per-value sRGB linearisation read from a 256-entry
    table (the same values, without the per-pixel power).
    """
    lin = _srgb_linear()[np.frombuffer(key, dtype=np.uint8).reshape(shape)]
    return xyz2lab(lin @ xyz_from_rgb.T.astype(lin.dtype))


@functools.lru_cache(maxsize=1)
def _gradient_of(key: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Sobel magnitude of the Lab image (cached: the watershed and the edge term share it)."""
    # = np.sqrt(sum(sobel(lab[..., k]) ** 2 for k in range(3))), one compiled pass
    return sobel_magnitude(np.ascontiguousarray(_lab_of(key, shape), dtype=np.float64))


def lab_gradient(image: np.ndarray) -> np.ndarray:
    """Sobel magnitude of the CIE-Lab image (what the watershed leaves flood).

    ``sqrt(sum_c skimage.filters.sobel(lab[..., c]) ** 2)``, computed in one compiled pass
    (:func:`~affseg.grouping.leaf_kernels.sobel_magnitude`) and cached for the last image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8

    Returns
    -------
    ndarray, shape (H, W), float64

    Examples
    --------
    >>> import numpy as np
    >>> float(lab_gradient(np.zeros((4, 5, 3), np.uint8)).max())
    0.0
    """
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return _gradient_of(img.tobytes(), img.shape)


def lab_image(image: np.ndarray) -> np.ndarray:
    """CIE-Lab of an RGB image (``skimage.color.rgb2lab``'s values), cached for the last image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8

    Returns
    -------
    ndarray, shape (H, W, 3), float64

    Examples
    --------
    >>> import numpy as np
    >>> lab_image(np.full((1, 1, 3), 255, np.uint8)).round(2).tolist()
    [[[100.0, -0.0, 0.0]]]
    """
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return _lab_of(img.tobytes(), img.shape)


def superpixel_leaves(
    image: np.ndarray,
    *,
    method: str = "slic",
    n_segments: int = 400,
    compactness: float | None = None,
    min_size: int = 0,
    elevation: np.ndarray | None = None,
) -> np.ndarray:
    """Edge-following over-segmentation of an image (the finest level).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    method : {"slic", "watershed", "felzenszwalb"}
        "slic": SLIC in CIE-Lab (``compactness`` default 10); "watershed": compact
        watershed of the Sobel magnitude of Lab from a regular grid of ``n_segments``
        markers (``compactness`` default 1e-3); "felzenszwalb": graph segmentation with
        ``scale = compactness`` (default 100).
    n_segments : int
        Approximate number of leaves (slic, watershed).
    compactness : float, optional
    min_size : int
        Pieces smaller than this many pixels join a neighbour.
    elevation : ndarray, shape (H, W), optional
        The map the watershed floods instead of the Sobel magnitude (e.g. a learned
        boundary map scaled to the gradient's range); watershed only.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..S, each one 4-connected region. Deterministic.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((24, 32, 3), np.uint8); img[:, 16:] = 200
    >>> leaves = superpixel_leaves(img, method="watershed", n_segments=8)
    >>> leaves.shape, int(leaves.min()), bool(leaves.max() >= 2)
    ((24, 32), 1, True)
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3); got {img.shape}")
    if method not in LEAF_METHODS:
        raise InputError(f"leaves must be one of {LEAF_METHODS}; got {method!r}")
    n = max(int(n_segments), 1)
    if method == "slic":
        c = 10.0 if compactness is None else float(compactness)
        raw = slic(img, n_segments=n, compactness=c, start_label=1, convert2lab=True)
    elif method == "watershed":
        c = 1e-3 if compactness is None else float(compactness)
        if elevation is None:
            grad = lab_gradient(img)
        else:
            grad = np.ascontiguousarray(elevation, dtype=np.float64)
            if grad.shape != img.shape[:2]:
                raise InputError(f"elevation has shape {grad.shape}; image {img.shape[:2]}")
        raw = compact_watershed(grad, n, c) if c > 0 else watershed(grad, markers=n)
    else:
        c = 100.0 if compactness is None else float(compactness)
        raw = felzenszwalb(img, scale=c, sigma=0.8, min_size=max(int(min_size), 1))
    return connected_cleanup(raw, min_size=int(min_size))
