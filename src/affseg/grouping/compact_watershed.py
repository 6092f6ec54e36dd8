"""Compact watershed from markers, compiled (the leaves of the ``leaves`` grouping).

One job: :func:`compact_watershed` floods an image from markers by the priority
``image[p] + compactness * ||p - marker||`` (Neubert & Protzel 2014), ties broken by the
time of entry into the queue, exactly as ``skimage.segmentation.watershed(image, markers,
compactness=c)`` with ``c > 0`` (same markers, neighbourhood order, heap order and
floating-point expression, so the same labels), faster: the queue is a binary heap of
two parallel arrays (value, packed age / pixel / source) instead of pointers to structs,
and, once no two queued keys can tie, a push that cannot win (not below the best value
already queued for that pixel) is skipped. The flood is ``flood`` of the extension
``affseg.grouping._kernels`` (built with the package).

Pruning: the order in which a heap pops equal keys depends on its layout, and only seeds
share keys (value, age 0), so pruning starts once the last seed whose value is shared has
been popped: from then on all queue keys differ, every heap pops them in the same order,
and the result is skimage's. Queue entries are (value, age << 42 | pixel << 21 | source)
in two parallel arrays (ages, pixels and sources below 2^21: at most ~520k pixels).

References
----------
P. Neubert and P. Protzel, "Compact Watershed and Preemptive SLIC: On Improving
Trade-offs of Superpixel Segmentation Algorithms", ICPR 2014.
"""

from __future__ import annotations

import numpy as np

from affseg.errors import InputError
from affseg.grouping import _kernels

#: Bits of the pixel index and of the source index in a packed queue entry (the age above).
_BITS = 21


def compact_watershed(image: np.ndarray, markers: int, compactness: float) -> np.ndarray:
    """Compact watershed of a 2-D map from ``markers`` regularly spaced seeds.

    Parameters
    ----------
    image : ndarray, shape (H, W), float
        The map to flood (e.g. a gradient magnitude); low values are flooded first.
    markers : int
        Number of seeds on a regular grid (``skimage.util.regular_seeds``).
    compactness : float
        Positive weight of the Euclidean distance to the seed in the priority.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..n (one per seed), equal to ``skimage.segmentation.watershed(image,
        markers, compactness=compactness)``.

    References
    ----------
    P. Neubert and P. Protzel, "Compact Watershed and Preemptive SLIC", ICPR 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.segmentation import watershed
    >>> img = np.random.default_rng(0).random((32, 48))
    >>> lab = compact_watershed(img, 24, 1e-3)
    >>> lab.shape, lab.dtype.name, int(lab.max())
    ((32, 48), 'int32', 24)
    >>> bool(np.array_equal(lab, watershed(img, 24, compactness=1e-3)))
    True
    """
    from skimage.morphology._util import _offsets_to_raveled_neighbors
    from skimage.segmentation._watershed import _validate_connectivity, _validate_inputs

    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(f"image must be 2-D; got shape {img.shape}")
    if not compactness > 0:
        raise InputError(f"compactness must be positive; got {compactness}")
    if not np.isfinite(img).all():
        raise InputError("image holds NaN or inf")
    if img.size == 0 or 4 * (img.shape[0] + 2) * (img.shape[1] + 2) + 16 >= 1 << _BITS:
        from skimage.segmentation import watershed  # too large to pack: skimage itself

        return np.asarray(watershed(img, markers=int(markers), compactness=compactness), np.int32)
    img, mk, mask = _validate_inputs(img, int(markers), None, 1)
    conn, offset = _validate_connectivity(img.ndim, 1, None)
    pad = [(p, p) for p in offset]
    img = np.pad(img, pad, mode="constant")
    mask = np.pad(mask, pad, mode="constant").ravel()
    output = np.pad(mk, pad, mode="constant")
    neigh = _offsets_to_raveled_neighbors(img.shape, conn, center=offset).astype(np.int64)
    flat = output.ravel()
    seeds = np.flatnonzero(flat).astype(np.int64)
    _, inv, count = np.unique(img.ravel()[seeds], return_inverse=True, return_counts=True)
    if flat.dtype not in (np.int32, np.int64) or not flat.flags.c_contiguous:
        output = output.astype(np.int64)
        flat = output.ravel()
    _kernels.flood(
        np.ascontiguousarray(img.ravel(), dtype=np.float64),
        seeds,
        np.ascontiguousarray(neigh),
        mask.astype(np.uint8),
        int(img.shape[1]),
        float(compactness),
        flat,
        (count[inv] > 1).astype(np.uint8),
    )
    return output[1:-1, 1:-1].astype(np.int32, copy=False)
