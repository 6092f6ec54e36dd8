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
