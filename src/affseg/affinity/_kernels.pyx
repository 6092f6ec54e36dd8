# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled generic kernels of the affinity package (private; built with the package).

- ``stencil`` / ``correlate``: the local operator's product and its coefficient gradient
  for any dtype and window (:mod:`affseg.affinity.graph`; float32 with k >= 5 uses the
  register-blocked C kernel of :mod:`affseg.affinity.native` instead);
- ``propagate``: the spatial propagation steps of :mod:`affseg.affinity.propagation`;
- ``segment_sums``: per-segment row sums of :mod:`affseg.affinity.spectral`.

Rows run in parallel on OpenMP threads (``nthreads``; 1: the calling thread only).
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t

import numpy as np

ctypedef fused real_t:
    float
    double


cdef inline void _stencil_row(const real_t[:, :, :, ::1] coef,
                              const real_t[:, :, :, ::1] xpad, real_t[:, :, :, ::1] out,
                              int k, Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t h = coef.shape[1], w = coef.shape[2], m = out.shape[3]
    cdef Py_ssize_t b = task // h, y = task - (task // h) * h, x, dy, dx, j
    cdef real_t c
    cdef real_t *o
    cdef const real_t *src
    for x in range(w):
        o = &out[b, y, x, 0]
        for j in range(m):
            o[j] = 0
        for dy in range(k):
            for dx in range(k):
                c = coef[b, y, x, dy * k + dx]
                src = &xpad[b, y + dy, x + dx, 0]
                for j in range(m):
                    o[j] += c * src[j]


def stencil(const real_t[:, :, :, ::1] coef, const real_t[:, :, :, ::1] xpad,
            real_t[:, :, :, ::1] out, int k, int nthreads):
    """``out[b, y, x, :] = sum_o coef[b, y, x, o] * xpad[b, y + dy, x + dx, :]`` (taps in
    row-major order)."""
    cdef Py_ssize_t rows = coef.shape[0] * coef.shape[1], t
    if out.shape[3] == 0 or rows == 0 or coef.shape[2] == 0:
        return
    if nthreads > 1:
        for t in prange(rows, nogil=True, schedule="static", num_threads=nthreads):
            _stencil_row(coef, xpad, out, k, t)
    else:
        with nogil:
            for t in range(rows):
                _stencil_row(coef, xpad, out, k, t)


cdef inline void _correlate_row(const real_t[:, :, :, ::1] grad,
                                const real_t[:, :, :, ::1] xpad, real_t[:, :, :, ::1] out,
                                int k, Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t h = grad.shape[1], w = grad.shape[2], m = grad.shape[3]
    cdef Py_ssize_t b = task // h, y = task - (task // h) * h, x, dy, dx, j
    cdef double s
    cdef const real_t *gv
    cdef const real_t *src
    for x in range(w):
        gv = &grad[b, y, x, 0]
        for dy in range(k):
            for dx in range(k):
                src = &xpad[b, y + dy, x + dx, 0]
                s = 0.0
                for j in range(m):
                    s += gv[j] * src[j]
                out[b, y, x, dy * k + dx] = <real_t>s


def correlate(const real_t[:, :, :, ::1] grad, const real_t[:, :, :, ::1] xpad,
              real_t[:, :, :, ::1] out, int k, int nthreads):
    """``out[b, y, x, o] = sum_j grad[b, y, x, j] * xpad[b, y + dy, x + dx, j]`` (summed in
    float64)."""
    cdef Py_ssize_t rows = grad.shape[0] * grad.shape[1], t
    if rows == 0 or grad.shape[2] == 0:
        return
    if nthreads > 1:
        for t in prange(rows, nogil=True, schedule="static", num_threads=nthreads):
            _correlate_row(grad, xpad, out, k, t)
    else:
        with nogil:
            for t in range(rows):
                _correlate_row(grad, xpad, out, k, t)


cdef inline void _propagate_row(const float[:, :, :, ::1] cur, float[:, :, :, ::1] nxt,
                                const float[:, :, :, ::1] a, const float[:, :, ::1] centre,
                                const int64_t[:, ::1] offs, const float[:, :, :, ::1] keep,
                                const float[:, :, :, ::1] fixed, bint use_mask,
                                Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t c_n = cur.shape[1], hh = cur.shape[2], ww = cur.shape[3]
    cdef Py_ssize_t kk = offs.shape[0], b = task // hh, y = task - (task // hh) * hh
    cdef Py_ssize_t c, n, x, yy, dx, x0, x1
    cdef float *row
    cdef const float *an
    cdef const float *srow
    cdef const float *src0
    for c in range(c_n):
        row = &nxt[b, c, y, 0]
        src0 = &cur[b, c, y, 0]
        for x in range(ww):
            row[x] = centre[b, y, x] * src0[x]
        for n in range(kk):
            yy = min(max(y + offs[n, 0], 0), hh - 1)
            dx = offs[n, 1]
            an = &a[b, n, y, 0]
            srow = &cur[b, c, yy, 0]
            x0 = min(max(-dx, 0), ww)
            x1 = max(min(ww - dx, ww), x0)
            for x in range(x0, x1):
                row[x] += an[x] * srow[x + dx]
            for x in range(0, x0):
                row[x] += an[x] * srow[0]
            for x in range(x1, ww):
                row[x] += an[x] * srow[ww - 1]
        if use_mask:
            for x in range(ww):
                row[x] = keep[b, c, y, x] * row[x] + fixed[b, c, y, x]


def propagate(const float[:, :, :, ::1] h, const float[:, :, :, ::1] a,
              const float[:, :, ::1] centre, const int64_t[:, ::1] offs, int iterations,
              const float[:, :, :, ::1] keep, const float[:, :, :, ::1] fixed, bint use_mask,
              int nthreads):
    """``iterations`` propagation steps (replicate-padded neighbours); returns the result
    as a new (B, C, H, W) float32 array."""
    cur_arr = np.array(h, dtype=np.float32, copy=True)
    nxt_arr = np.empty_like(cur_arr)
    cdef float[:, :, :, ::1] cur = cur_arr, nxt = nxt_arr, tmp
    cdef Py_ssize_t rows = h.shape[0] * h.shape[2], t
    cdef int it
    if rows == 0 or h.shape[1] == 0 or h.shape[3] == 0:
        return cur_arr
    for it in range(iterations):
        if nthreads > 1:
            for t in prange(rows, nogil=True, schedule="static", num_threads=nthreads):
                _propagate_row(cur, nxt, a, centre, offs, keep, fixed, use_mask, t)
        else:
            with nogil:
                for t in range(rows):
                    _propagate_row(cur, nxt, a, centre, offs, keep, fixed, use_mask, t)
        tmp = cur
        cur = nxt
        nxt = tmp
        cur_arr, nxt_arr = nxt_arr, cur_arr
    return cur_arr


def segment_sums(const real_t[:, ::1] f, const int64_t[::1] gid, Py_ssize_t n_seg):
    """Per-segment row sums (n_seg, d), float64, of ``f`` (M, d) with segment ids (M,)."""
    cdef Py_ssize_t m = f.shape[0], d = f.shape[1], i, c
    sums_arr = np.zeros((n_seg, d), dtype=np.float64)
    cdef double[:, ::1] sums = sums_arr
    cdef double *s
    if d == 0:
        return sums_arr
    with nogil:
        for i in range(m):
            s = &sums[gid[i], 0]
            for c in range(d):
                s[c] += f[i, c]
    return sums_arr
