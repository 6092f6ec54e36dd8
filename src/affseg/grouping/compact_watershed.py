"""Compact watershed from markers, compiled with numba (the leaves of the ``leaves`` grouping).

One job: :func:`compact_watershed` floods an image from markers by the priority
``image[p] + compactness * ||p - marker||`` (Neubert & Protzel 2014), ties broken by the
time of entry into the queue, exactly as ``skimage.segmentation.watershed(image, markers,
compactness=c)`` with ``c > 0`` (same markers, neighbourhood order, heap order and
floating-point expression, so the same labels), faster: the queue is a binary heap of
two parallel arrays (value, packed age / pixel / source) instead of pointers to structs,
and, once no two queued keys can tie, a push that cannot win (not below the best value
already queued for that pixel) is skipped.

References
----------
P. Neubert and P. Protzel, "Compact Watershed and Preemptive SLIC: On Improving
Trade-offs of Superpixel Segmentation Algorithms", ICPR 2014.
"""

from __future__ import annotations

import numba
import numpy as np

from affseg.errors import InputError

#: Bits of the pixel index and of the source index in a packed queue entry (the age above).
_BITS = 21


@numba.njit(cache=True, inline="always")
def _less(hv, hk, p, q):  # pragma: no cover - compiled
    """skimage's heap order: value, then age (the top bits of the packed entry)."""
    if hv[p] == hv[q]:
        return (hk[p] >> 42) < (hk[q] >> 42)
    return hv[p] < hv[q]


@numba.njit(cache=True, inline="always")
def _sift_up(hv, hk, c):  # pragma: no cover - compiled
    while c > 0:
        par = (c - 1) >> 1
        if _less(hv, hk, c, par):
            hv[c], hv[par] = hv[par], hv[c]
            hk[c], hk[par] = hk[par], hk[c]
            c = par
        else:
            break


@numba.njit(cache=True)
def _flood(image, markers_at, offsets, mask, width, compactness, output, tied):  # pragma: no cover
    """The compact branch of skimage's ``watershed_raveled`` on raveled padded arrays.

    Pruning: a push whose value is not below the best value already queued for that pixel
    is skipped (it would come off the queue after that entry, when the pixel is flooded
    already, and be discarded; its age is still counted). The order in which a heap pops
    equal keys depends on its layout, and only seeds share keys (value, age 0), so
    pruning starts once the last seed whose value is shared (``tied``) has been popped:
    from then on all queue keys differ, every heap pops them in the same order, and the
    result is skimage's.

    Queue entries are (value, age << 42 | pixel << 21 | source) in two parallel arrays
    (ages, pixels and sources below 2^21: at most ~520k pixels).
    """
    n_pix = image.size
    cap = 4 * n_pix + markers_at.size + 16
    hv = np.empty(cap)
    hk = np.empty(cap, dtype=np.int64)
    n = 0
    for q in range(markers_at.size):
        idx = markers_at[q]
        hv[n] = image[idx]
        hk[n] = (idx << 21) | idx
        n += 1
        _sift_up(hv, hk, n - 1)
    age = 1
    n_off = offsets.size
    best = np.full(n_pix, np.inf)
    n_tied = 0
    for q in range(markers_at.size):
        if tied[q]:
            n_tied += 1
    is_tied = np.zeros(n_pix, dtype=np.bool_)
    for q in range(markers_at.size):
        if tied[q]:
            is_tied[markers_at[q]] = True
    prune = n_tied == 0
    while n > 0:
        value = hv[0]
        key = hk[0]
        index = (key >> 21) & 0x1FFFFF
        source = key & 0x1FFFFF
        n -= 1
        if n > 0:
            hv[0] = hv[n]
            hk[0] = hk[n]
            c = 0
            while True:
                ch = 2 * c + 1
                if ch >= n:
                    break
                if ch + 1 < n and _less(hv, hk, ch + 1, ch):
                    ch += 1
                if _less(hv, hk, ch, c):
                    hv[c], hv[ch] = hv[ch], hv[c]
                    hk[c], hk[ch] = hk[ch], hk[c]
                    c = ch
                else:
                    break
        if output[index] and index != source:
            continue  # already flooded from another neighbour
        if not prune and index == source and is_tied[index]:
            n_tied -= 1
            prune = n_tied == 0
        output[index] = output[source]
        sy = source // width
        sx = source - sy * width
        for o in range(n_off):
            nb = offsets[o] + index
            if not mask[nb] or output[nb]:
                continue
            age += 1
            dy = np.float64(nb // width - sy)
            dx = np.float64(nb % width - sx)
            dist = 0.0
            dist += dy * dy
            dist += dx * dx
            v = image[nb] + compactness * np.sqrt(dist)
            if v < value:
                v = value
            if v >= best[nb]:
                if prune:
                    continue
            else:
                best[nb] = v
            if n == hv.size:  # cannot happen (each pixel enters at most 4 times)
                raise ValueError("watershed queue overflow")
            hv[n] = v
            hk[n] = (age << 42) | (nb << 21) | source
            n += 1
            _sift_up(hv, hk, n - 1)


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
    _flood(
        np.ascontiguousarray(img.ravel(), dtype=np.float64),
        seeds,
        neigh,
        mask.astype(np.bool_),
        int(img.shape[1]),
        float(compactness),
        flat,
        count[inv] > 1,
    )
    return output[1:-1, 1:-1].astype(np.int32, copy=False)
