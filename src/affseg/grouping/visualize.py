"""Pictures of segmentations: coloured overlays and boundary maps.

Example
-------
>>> import numpy as np
>>> from affseg.grouping.visualize import boundaries_image, overlay
>>> img = np.zeros((4, 6, 3), np.uint8)
>>> lab = np.repeat([[1, 1, 1, 2, 2, 2]], 4, axis=0)
>>> overlay(img, lab).shape, boundaries_image(lab)[0].tolist()
((4, 6, 3), [0, 0, 255, 255, 0, 0])
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from affseg.data.io import as_rgb
from affseg.errors import InputError


def _check_labels(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be an integer (H, W) map; got {lab.dtype} {lab.shape}")
    if shape is not None and lab.shape != shape:
        raise InputError(f"labels have shape {lab.shape} but the image is {shape}")
    return lab


def boundaries_image(labels: np.ndarray) -> np.ndarray:
    """Segment boundaries as a white-on-black picture.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int

    Returns
    -------
    ndarray, shape (H, W), uint8
        255 on the pixels on either side of a label change (``mode="thick"``), else 0.

    Examples
    --------
    >>> import numpy as np
    >>> out = boundaries_image(np.array([[1, 1, 2, 2], [1, 1, 2, 2]]))
    >>> out.shape, out.dtype
    ((2, 4), dtype('uint8'))
    """
    lab = _check_labels(labels)
    return (find_boundaries(lab, mode="thick") * 255).astype(np.uint8)


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    mode: str = "mean",
    alpha: float = 0.6,
    boundary_colour: tuple[int, int, int] = (255, 255, 0),
    seed: int = 0,
) -> np.ndarray:
    """Segments painted over the photo, with their boundaries drawn.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), int
    mode : {"mean", "random"}
        Paint each segment with its mean colour, or with a random colour (seeded).
    alpha : float
        Weight of the paint against the photo, in [0, 1].
    boundary_colour : (int, int, int)
        RGB colour of the boundary pixels (inner boundaries, one pixel wide).
    seed : int
        Seed of the random colours.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 6, 3), np.uint8); image[:, 3:] = 255
    >>> overlay(image, np.array([[1, 1, 1, 2, 2, 2]] * 4)).shape
    (4, 6, 3)
    """
    img = as_rgb(image)
    lab = _check_labels(labels, img.shape[:2])
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1], got {alpha}")
    _, inv = np.unique(lab, return_inverse=True)
    inv = inv.reshape(lab.shape)
    n = int(inv.max()) + 1
    if mode == "mean":
        counts = np.bincount(inv.ravel(), minlength=n)
        paint = (
            np.stack(
                [
                    np.bincount(inv.ravel(), weights=img[..., c].ravel(), minlength=n)
                    for c in range(3)
                ],
                axis=1,
            )
            / counts[:, None]
        )
    elif mode == "random":
        paint = np.random.default_rng(seed).integers(0, 256, size=(n, 3)).astype(np.float64)
    else:
        raise InputError(f"overlay mode must be 'mean' or 'random', got {mode!r}")
    out = alpha * paint[inv] + (1.0 - alpha) * img.astype(np.float64)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[find_boundaries(lab, mode="inner")] = boundary_colour
    return out
