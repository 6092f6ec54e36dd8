# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled inference kernels of :mod:`affseg.models.ham_fast` (private; built with the
package): the exponential map to the Poincare ball, the neighbour distances and the fused
softmax / rank-priority weights, in float32, one image row per OpenMP task."""

from cython.parallel cimport prange, threadid
from libc.math cimport expf, log1pf, sqrtf, tanhf
from libc.stdint cimport int64_t

import numpy as np


cdef inline float _fmax(float a, float b) noexcept nogil:
    """Python's max(a, b)."""
    return b if b > a else a


cdef inline Py_ssize_t _clamp(Py_ssize_t v, Py_ssize_t hi) noexcept nogil:
    return min(max(v, 0), hi)


cdef inline void _expmap_row(float[:, :, :, ::1] x, float c, float sc, float maxnorm,
                             float min_norm, float[:, :, ::1] fac,
                             Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t hh = x.shape[1], ww = x.shape[2], dd = x.shape[3]
    cdef Py_ssize_t b = task // hh, y = task % hh, xx, k
    cdef float n2, norm, g, pn2, pn
    cdef float *u
    for xx in range(ww):
        u = &x[b, y, xx, 0]
        n2 = 0.0
        for k in range(dd):
            n2 += u[k] * u[k]
        norm = _fmax(sqrtf(n2), min_norm)
        g = tanhf(sc * norm) / (sc * norm)
        pn2 = 0.0
        for k in range(dd):
            u[k] = g * u[k]
            pn2 += u[k] * u[k]
        pn = _fmax(sqrtf(pn2), min_norm)
        if pn > maxnorm:
            pn2 = 0.0
            for k in range(dd):
                u[k] = u[k] / pn * maxnorm
                pn2 += u[k] * u[k]
        fac[b, y, xx] = sqrtf(_fmax(<float>1.0 - c * pn2, min_norm))


def expmap(float[:, :, :, ::1] x, float c, float ball_eps, float min_norm,
           float[:, :, ::1] fac, int nthreads):
    """In place: ``x <- project(expmap0(x))``; ``fac <- sqrt(max(1 - c |x|^2, MIN_NORM))``."""
    cdef float sc = sqrtf(_fmax(c, <float>1e-12))
    cdef float maxnorm = (<float>1.0 - ball_eps) / sc
    cdef Py_ssize_t rows = x.shape[0] * x.shape[1], t
    if rows == 0:
        return
    if nthreads > 1:
        for t in prange(rows, nogil=True, schedule="guided", num_threads=nthreads):
            _expmap_row(x, c, sc, maxnorm, min_norm, fac, t)
    else:
        with nogil:
            for t in range(rows):
                _expmap_row(x, c, sc, maxnorm, min_norm, fac, t)


cdef inline float _dist(const float[:, :, :, ::1] x, const float[:, :, ::1] f, Py_ssize_t b,
                        Py_ssize_t y, Py_ssize_t xx, Py_ssize_t yy, Py_ssize_t xq,
                        bint hyperbolic, float sc) noexcept nogil:
    cdef Py_ssize_t k, dd = x.shape[3]
    cdef const float *p = &x[b, y, xx, 0]
    cdef const float *q = &x[b, yy, xq, 0]
    cdef float d2 = 0.0, t, r, s
    cdef float one = 1.0, two = 2.0
    for k in range(dd):
        t = q[k] - p[k]
        d2 += t * t
    r = sqrtf(_fmax(d2, <float>1e-12))
    if not hyperbolic:
        return r
    s = sc * r / (f[b, y, xx] * f[b, yy, xq])
    # asinh(s) = log1p(s + s^2 / (sqrt(s^2 + 1) + 1)), accurate for small s
    return two / sc * log1pf(s + s * s / (sqrtf(s * s + one) + one))


cdef inline void _distance_row(const float[:, :, :, ::1] x, const float[:, :, ::1] f,
                               const int64_t[:, ::1] offs, bint hyperbolic, float sc,
                               float[:, :, :, ::1] out, Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t hh = x.shape[1], ww = x.shape[2]
    cdef Py_ssize_t b = task // hh, y = task % hh, n, xx, yy, xq
    for n in range(offs.shape[0]):
        yy = _clamp(y + offs[n, 0], hh - 1)
        for xx in range(ww):
            xq = _clamp(xx + offs[n, 1], ww - 1)
            out[b, n, y, xx] = _dist(x, f, b, y, xx, yy, xq, hyperbolic, sc)


def distance(const float[:, :, :, ::1] x, const float[:, :, ::1] f,
             const int64_t[:, ::1] offs, bint hyperbolic, float sc, float[:, :, :, ::1] out,
             int nthreads):
    """``out[b, n, y, x]``: distance from pixel (y, x) to its (clamped) neighbour n."""
    cdef Py_ssize_t rows = x.shape[0] * x.shape[1], t
    if rows == 0:
        return
    if nthreads > 1:
        for t in prange(rows, nogil=True, schedule="guided", num_threads=nthreads):
            _distance_row(x, f, offs, hyperbolic, sc, out, t)
    else:
        with nogil:
            for t in range(rows):
                _distance_row(x, f, offs, hyperbolic, sc, out, t)


cdef void _weight_row(const float[:, :, :, ::1] x, const float[:, :, ::1] f,
                      const float[:, :, :, ::1] half, const float[:, :, ::1] strength,
                      const int64_t[:, ::1] offs, bint hyperbolic, float sc, float inv_tau,
                      const float[::1] prio, bint normalize, float[:, :, :, ::1] out,
                      float[:, :, ::1] centre, float *dist, float *ex,
                      Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t hh = x.shape[1], ww = x.shape[2], kk = offs.shape[0], nh = kk // 2
    cdef Py_ssize_t b = task // hh, y = task % hh, xx, n, m, yy, xq
    cdef int r, j, ni
    cdef float top, tot, scale, asum, dn, div, csum, v
    cdef float one = 1.0
    for xx in range(ww):
        for n in range(kk):
            if n < nh:
                dist[n] = half[b, n, y, xx]
                continue
            # offset n is the opposite of offset kk - 1 - n (row-major, centre removed)
            m = kk - 1 - n
            yy = _clamp(y + offs[n, 0], hh - 1)
            xq = _clamp(xx + offs[n, 1], ww - 1)
            if _clamp(yy + offs[m, 0], hh - 1) == y and _clamp(xq + offs[m, 1], ww - 1) == xx:
                dist[n] = half[b, m, yy, xq]
            else:
                dist[n] = _dist(x, f, b, y, xx, yy, xq, hyperbolic, sc)
        top = -dist[0] * inv_tau
        for n in range(1, kk):
            top = _fmax(top, -dist[n] * inv_tau)
        tot = 0.0
        for n in range(kk):
            ex[n] = expf(-dist[n] * inv_tau - top)
            tot += ex[n]
        scale = strength[b, y, xx] / tot
        asum = 0.0
        for n in range(kk):
            dn = dist[n]
            ni = <int>n
            r = 0
            for j in range(<int>kk):  # stable rank: smaller, or tied with a lower index
                r += (dist[j] < dn) | ((dist[j] == dn) & (j < ni))
            ex[n] = scale * ex[n] * prio[r]
            asum += ex[n]
        div = _fmax(one, asum + <float>1e-6) if normalize else one
        csum = 0.0
        for n in range(kk):
            v = ex[n] / div
            out[b, n, y, xx] = v
            csum += v
        centre[b, y, xx] = one - csum


def weights(const float[:, :, :, ::1] x, const float[:, :, ::1] f,
            const float[:, :, :, ::1] half, const float[:, :, ::1] strength,
            const int64_t[:, ::1] offs, bint hyperbolic, float sc, float inv_tau,
            const float[::1] prio, bint normalize, float[:, :, :, ::1] out,
            float[:, :, ::1] centre, int nthreads):
    """Softmax of ``-d * inv_tau`` times the rank priority and the strength, per pixel;
    ``centre = 1 - sum`` (see :func:`affseg.models.ham_fast.ham_affinity_fast`)."""
    cdef Py_ssize_t rows = x.shape[0] * x.shape[1], t, kk = offs.shape[0]
    cdef int tid
    if rows == 0 or kk == 0:
        return
    if nthreads < 1:
        nthreads = 1
    # per-thread scratch: the distances and the weights of one pixel's neighbours
    cdef float[:, ::1] scratch = np.empty((nthreads, 2 * kk), dtype=np.float32)
    if nthreads > 1:
        for t in prange(rows, nogil=True, schedule="guided", num_threads=nthreads):
            tid = threadid()
            _weight_row(x, f, half, strength, offs, hyperbolic, sc, inv_tau, prio,
                        normalize, out, centre, &scratch[tid, 0], &scratch[tid, kk], t)
    else:
        with nogil:
            for t in range(rows):
                _weight_row(x, f, half, strength, offs, hyperbolic, sc, inv_tau, prio,
                            normalize, out, centre, &scratch[0, 0], &scratch[0, kk], t)
