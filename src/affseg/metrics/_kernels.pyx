# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""Compiled core of the boundary benchmark's pixel correspondence (private; built with the
package). The documented interface is :mod:`affseg.metrics._boundary_match`; the loops are
line-by-line those described there (all costs are integers held in float64, so every
comparison is exact)."""

from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc as calloc_, free as free_

import numpy as np


cdef inline Py_ssize_t _heap_push(double *hd, int64_t *hj, Py_ssize_t n, double dv,
                                  int64_t j) noexcept nogil:
    """Push (dv, j) on the min-heap ``(hd, hj)`` of size n; returns the new size."""
    cdef Py_ssize_t k = n, p
    while k > 0:
        p = (k - 1) >> 1
        if hd[p] < dv or (hd[p] == dv and hj[p] < j):
            break
        hd[k] = hd[p]
        hj[k] = hj[p]
        k = p
    hd[k] = dv
    hj[k] = j
    return n + 1


cdef inline Py_ssize_t _heap_pop(double *hd, int64_t *hj, Py_ssize_t n) noexcept nogil:
    """Remove the top of the heap of size n (read it first); returns the new size."""
    cdef Py_ssize_t k = 0, c
    cdef double dv
    cdef int64_t j
    n -= 1
    if n == 0:
        return 0
    dv = hd[n]
    j = hj[n]
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        if c + 1 < n and (hd[c + 1] < hd[c] or (hd[c + 1] == hd[c] and hj[c + 1] < hj[c])):
            c += 1
        if dv < hd[c] or (dv == hd[c] and j < hj[c]):
            break
        hd[k] = hd[c]
        hj[k] = hj[c]
        k = c
    hd[k] = dv
    hj[k] = j
    return n


cdef inline void _update_assignments(int64_t *lab, int64_t *y, int64_t *x, int64_t j,
                                     int64_t i0) noexcept nogil:
    cdef int64_t i, k
    while True:
        i = lab[j]
        y[j] = i
        k = j
        j = x[i]
        x[i] = k
        if i == i0:
            return


cdef inline void _update_dual(Py_ssize_t nc, double *d, double *v, int64_t *todo,
                              Py_ssize_t last, double min_diff) noexcept nogil:
    cdef Py_ssize_t k
    cdef int64_t j0
    for k in range(last, nc):
        j0 = todo[k]
        v[j0] += d[j0] - min_diff


cdef int _lapjvsp_rect(const int64_t *first, const int64_t *kk, const double *cc,
                       Py_ssize_t nr, Py_ssize_t nc, Py_ssize_t nnz, int64_t *x) noexcept nogil:
    """scipy's ``_lapjvsp`` for ``nr < nc`` (every row free), with lazy resets, into ``x``
    (the column of each row). Returns 0, -1 when no full matching exists, -2 when out of
    memory."""
    cdef double *v = NULL
    cdef double *d = NULL
    cdef double *hd = NULL
    cdef int64_t *y = NULL
    cdef int64_t *lab = NULL
    cdef int64_t *todo = NULL
    cdef int64_t *touched = NULL
    cdef int64_t *hj = NULL
    cdef unsigned char *ok = NULL
    cdef Py_ssize_t cap = nnz + 1, nt, nh, td1, td2, last, hp, k, i0
    cdef int64_t t, j, i, j0, tp
    cdef double min_diff, dj, h, vj, dv
    cdef bint done
    cdef int code = 0
    v = <double *>calloc_(nc, sizeof(double))
    d = <double *>calloc_(nc, sizeof(double))
    hd = <double *>calloc_(cap, sizeof(double))
    y = <int64_t *>calloc_(nc, sizeof(int64_t))
    lab = <int64_t *>calloc_(nc, sizeof(int64_t))
    todo = <int64_t *>calloc_(nc, sizeof(int64_t))
    touched = <int64_t *>calloc_(nc, sizeof(int64_t))
    hj = <int64_t *>calloc_(cap, sizeof(int64_t))
    ok = <unsigned char *>calloc_(nc, 1)
    if not (v and d and hd and y and lab and todo and touched and hj and ok):
        code = -2
    else:
        for k in range(nr):
            x[k] = -1
        for k in range(nc):
            y[k] = -1
            d[k] = INFINITY
            todo[k] = -1
        for i0 in range(nr):
            nt = 0  # touched columns (finite d) of this search
            nh = 0  # heap size
            # ---- scipy: _lapjvsp_single_l(l = i0), after "d[:] = inf; ok[:] = 0"
            min_diff = INFINITY
            td1 = -1
            for t in range(first[i0], first[i0 + 1]):
                j = kk[t]
                dj = cc[t] - v[j]
                d[j] = dj
                touched[nt] = j
                nt += 1
                nh = _heap_push(hd, hj, nh, dj, j)
                lab[j] = i0
                if dj <= min_diff:
                    if dj < min_diff:
                        td1 = -1
                        min_diff = dj
                    td1 += 1
                    todo[td1] = j
            done = False
            for hp in range(td1 + 1):
                j = todo[hp]
                if y[j] == -1:
                    _update_assignments(lab, y, x, j, i0)
                    done = True
                    break
                ok[j] = 1
            td2 = nc - 1
            last = nc
            while not done:
                if td1 < 0:
                    code = -1
                    break
                j0 = todo[td1]
                td1 -= 1
                i = y[j0]
                todo[td2] = j0
                td2 -= 1
                tp = first[i]
                while kk[tp] != j0:
                    tp += 1
                h = cc[tp] - v[j0] - min_diff
                for t in range(first[i], first[i + 1]):
                    j = kk[t]
                    if ok[j] == 0:
                        vj = cc[t] - v[j] - h
                        if vj < d[j]:
                            if d[j] == INFINITY:
                                touched[nt] = j
                                nt += 1
                            d[j] = vj
                            lab[j] = i
                            nh = _heap_push(hd, hj, nh, vj, j)
                            if vj == min_diff:
                                if y[j] == -1:
                                    _update_dual(nc, d, v, todo, last, min_diff)
                                    _update_assignments(lab, y, x, j, i0)
                                    done = True
                                    break
                                td1 += 1
                                todo[td1] = j
                                ok[j] = 1
                if done:
                    break
                if td1 == -1:
                    # scipy scans every column for the smallest finite d among ok == 0 and
                    # collects the ties in ascending column order: the heap, keyed by
                    # (d, column) and cleared of stale entries, yields the same list
                    min_diff = INFINITY
                    last = td2 + 1
                    while nh > 0:
                        dv = hd[0]
                        j = hj[0]
                        if ok[j] != 0 or dv != d[j]:
                            nh = _heap_pop(hd, hj, nh)  # stale
                            continue
                        if dv > min_diff:
                            break
                        nh = _heap_pop(hd, hj, nh)
                        if dv < min_diff:
                            td1 = -1
                            min_diff = dv
                        td1 += 1
                        todo[td1] = j  # (one entry per column has dv == d[j])
                    for hp in range(td1 + 1):
                        j = todo[hp]
                        if y[j] == -1:
                            _update_dual(nc, d, v, todo, last, min_diff)
                            _update_assignments(lab, y, x, j, i0)
                            done = True
                            break
                        ok[j] = 1
            if code:
                break
            for k in range(nt):  # the lazy reset
                j = touched[k]
                d[j] = INFINITY
                ok[j] = 0
    free_(v)
    free_(d)
    free_(hd)
    free_(y)
    free_(lab)
    free_(todo)
    free_(touched)
    free_(hj)
    free_(ok)
    return code


def _check(int code):
    if code == -1:
        raise ValueError("no full matching exists")
    if code:
        raise MemoryError()


def lapjvsp_rect(const int64_t[::1] first, const int64_t[::1] kk, const double[::1] cc,
                 Py_ssize_t nr, Py_ssize_t nc):
    """scipy's ``_lapjvsp`` for ``nr < nc`` (every row free); returns the column of each
    row (int64)."""
    x_arr = np.full(nr, -1, dtype=np.int64)
    cdef int64_t[::1] x = x_arr
    cdef int code = 0
    if nr > 0:
        with nogil:
            code = _lapjvsp_rect(&first[0], &kk[0], &cc[0], nr, nc, kk.shape[0], &x[0])
    _check(code)
    return x_arr


cdef void _candidates(const int64_t[::1] my, const int64_t[::1] mx,
                      const int64_t[:, ::1] look, const int64_t[::1] outer_y,
                      const int64_t[::1] outer_x, int64_t r, const int64_t[:, ::1] offsets,
                      int sign, int64_t *ei, int64_t *ej, int64_t *ek,
                      Py_ssize_t *count) noexcept nogil:
    """Count (``ei`` NULL) or list the (machine pixel, annotator pixel, offset) pairs."""
    cdef Py_ssize_t q, k, e = 0, n_off = offsets.shape[0]
    cdef int64_t yy, xx, o
    for q in range(outer_y.shape[0]):
        yy = outer_y[q] + r
        xx = outer_x[q] + r
        for k in range(n_off):
            o = look[yy + sign * offsets[k, 0], xx + sign * offsets[k, 1]]
            if o >= 0:
                if ei != NULL:
                    if sign == 1:
                        ei[e] = q
                        ej[e] = o
                    else:
                        ei[e] = o
                        ej[e] = q
                    ek[e] = k
                e += 1
    count[0] = e


def match(const int64_t[::1] my, const int64_t[::1] mx, const int64_t[:, ::1] index,
          const int64_t[::1] gy, const int64_t[::1] gx, int64_t r,
          const int64_t[:, ::1] offsets, const double[::1] costs, double outlier):
    """Matched (machine pixel, annotator pixel) pairs (see ``_boundary_match``)."""
    cdef Py_ssize_t n1 = my.shape[0], n_gt = gy.shape[0], p, q, e, n_e = 0
    cdef int sign
    cdef const int64_t[:, ::1] look
    cdef int64_t[:, ::1] own
    # every (machine pixel, annotator pixel, offset number) pair within the tolerance:
    # walk the smaller of the two pixel sets, look the other up in an index image
    if n1 <= n_gt:
        look = index
        sign = 1
        with nogil:
            _candidates(my, mx, look, my, mx, r, offsets, sign, NULL, NULL, NULL, &n_e)
    else:
        own = np.full((index.shape[0], index.shape[1]), -1, dtype=np.int64)
        for p in range(n1):
            own[my[p] + r, mx[p] + r] = p
        look = own
        sign = -1
        with nogil:
            _candidates(my, mx, look, gy, gx, r, offsets, sign, NULL, NULL, NULL, &n_e)
    ei_a = np.empty(n_e, dtype=np.int64)
    ej_a = np.empty(n_e, dtype=np.int64)
    ek_a = np.empty(n_e, dtype=np.int64)
    cdef int64_t[::1] ei = ei_a, ej = ej_a, ek = ek_a
    if n_e:
        with nogil:
            if sign == 1:
                _candidates(my, mx, look, my, mx, r, offsets, sign, &ei[0], &ej[0], &ek[0], &n_e)
            else:
                _candidates(my, mx, look, gy, gx, r, offsets, sign, &ei[0], &ej[0], &ek[0], &n_e)
    cdef int64_t[::1] deg1 = np.zeros(n1, dtype=np.int64)
    cdef int64_t[::1] deg2 = np.zeros(n_gt, dtype=np.int64)
    cdef int64_t[::1] ci = np.full(n1, -1, dtype=np.int64)
    cdef int64_t[::1] cj = np.full(n_gt, -1, dtype=np.int64)
    cdef Py_ssize_t a = 0, b = 0, j
    for e in range(n_e):
        deg1[ei[e]] += 1
        deg2[ej[e]] += 1
    # compact indices of the pixels with a candidate (np.unique order: ascending)
    for p in range(n1):
        if deg1[p] > 0:
            ci[p] = a
            a += 1
    for j in range(n_gt):
        if deg2[j] > 0:
            cj[j] = b
            b += 1
    if a == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none
    cdef int64_t[::1] ui = np.empty(a, dtype=np.int64)
    cdef int64_t[::1] uj = np.empty(b, dtype=np.int64)
    for p in range(n1):
        if ci[p] >= 0:
            ui[ci[p]] = p
    for j in range(n_gt):
        if cj[j] >= 0:
            uj[cj[j]] = j
    cdef bint rows_small = a <= b
    cdef Py_ssize_t n_r = a if rows_small else b
    cdef Py_ssize_t n_c = b if rows_small else a
    cdef int64_t[::1] first = np.zeros(n_r + 1, dtype=np.int64)
    cdef int64_t[::1] kk = np.empty(n_e + n_r, dtype=np.int64)
    cdef double[::1] cc = np.empty(n_e + n_r)
    cdef int64_t[::1] fill = np.empty(n_r, dtype=np.int64)
    x_a = np.empty(n_r, dtype=np.int64)
    cdef int64_t[::1] x = x_a
    cdef Py_ssize_t rr, t, lo, s, n_m = 0, m = 0
    cdef int64_t kv, col
    cdef double cv
    cdef int code
    with nogil:
        if rows_small:
            for p in range(n1):
                if deg1[p] > 0:
                    first[ci[p] + 1] = deg1[p] + 1
        else:
            for j in range(n_gt):
                if deg2[j] > 0:
                    first[cj[j] + 1] = deg2[j] + 1
        for rr in range(n_r):
            first[rr + 1] += first[rr]
        for rr in range(n_r):
            fill[rr] = first[rr]
        for e in range(n_e):
            if rows_small:
                rr = ci[ei[e]]
                col = cj[ej[e]]
            else:
                rr = cj[ej[e]]
                col = ci[ei[e]]
            t = fill[rr]
            kk[t] = col
            cc[t] = costs[ek[e]] + 1.0
            fill[rr] = t + 1
        # scipy's canonical CSR: the columns of each row ascending (insertion sort: a row
        # has at most one entry per offset, and the pairs come out nearly sorted)
        for rr in range(n_r):
            lo = first[rr]
            for t in range(lo + 1, fill[rr]):
                kv = kk[t]
                cv = cc[t]
                s = t - 1
                while s >= lo and kk[s] > kv:
                    kk[s + 1] = kk[s]
                    cc[s + 1] = cc[s]
                    s -= 1
                kk[s + 1] = kv
                cc[s + 1] = cv
        for rr in range(n_r):  # the private "unmatched" column, last in its row
            kk[fill[rr]] = n_c + rr
            cc[fill[rr]] = outlier + 1.0
        code = _lapjvsp_rect(&first[0], &kk[0], &cc[0], n_r, n_c + n_r, kk.shape[0], &x[0])
    _check(code)
    for rr in range(n_r):
        if x[rr] < n_c:
            n_m += 1
    mi_a = np.empty(n_m, dtype=np.int64)
    mj_a = np.empty(n_m, dtype=np.int64)
    cdef int64_t[::1] mi = mi_a, mj = mj_a
    for rr in range(n_r):
        col = x[rr]
        if col < n_c:
            if rows_small:
                mi[m] = ui[rr]
                mj[m] = uj[col]
            else:
                mi[m] = ui[col]
                mj[m] = uj[rr]
            m += 1
    return mi_a, mj_a


def thin(unsigned char[:, ::1] img, const unsigned char[::1] lut1,
         const unsigned char[::1] lut2):
    """:func:`skimage.morphology.thin` in place on a uint8 {0, 1} image, visiting only
    the pixels that are still set (same LUTs, same simultaneous sub-iterations)."""
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1], n = 0, q, yy, xx, n_old, m
    cdef int sub, code
    for yy in range(h):
        for xx in range(w):
            if img[yy, xx]:
                n += 1
    cdef int64_t[::1] ys = np.empty(max(n, 1), dtype=np.int64)
    cdef int64_t[::1] xs = np.empty(max(n, 1), dtype=np.int64)
    cdef unsigned char[::1] rm = np.zeros(max(n, 1), dtype=np.uint8)
    cdef const unsigned char *lut
    q = 0
    with nogil:
        for yy in range(h):
            for xx in range(w):
                if img[yy, xx]:
                    ys[q] = yy
                    xs[q] = xx
                    q += 1
        while True:
            n_old = n
            for sub in range(2):
                lut = &lut1[0] if sub == 0 else &lut2[0]
                # the neighbourhood code of ndi.correlate(img, [[8, 4, 2], [16, 0, 1],
                # [32, 64, 128]], mode="constant"), from the image before this sub-iteration
                for q in range(n):
                    yy = ys[q]
                    xx = xs[q]
                    code = 0
                    if yy > 0:
                        if xx > 0 and img[yy - 1, xx - 1]:
                            code += 8
                        if img[yy - 1, xx]:
                            code += 4
                        if xx < w - 1 and img[yy - 1, xx + 1]:
                            code += 2
                    if xx > 0 and img[yy, xx - 1]:
                        code += 16
                    if xx < w - 1 and img[yy, xx + 1]:
                        code += 1
                    if yy < h - 1:
                        if xx > 0 and img[yy + 1, xx - 1]:
                            code += 32
                        if img[yy + 1, xx]:
                            code += 64
                        if xx < w - 1 and img[yy + 1, xx + 1]:
                            code += 128
                    rm[q] = lut[code]
                m = 0
                for q in range(n):
                    if rm[q]:
                        img[ys[q], xs[q]] = 0
                    else:
                        ys[m] = ys[q]
                        xs[m] = xs[q]
                        m += 1
                n = m
            if n == n_old:
                break
