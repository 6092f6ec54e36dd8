# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False
"""Compiled inner loops of the grouping (built with the package; private).

The public wrappers (argument dtypes, docstrings, examples) are in
:mod:`affseg.grouping.leaf_kernels`, :mod:`affseg.grouping.compact_watershed` and
:mod:`affseg.grouping.kernel_grouping`. Every loop computes the same floating-point
operations in the same order as the Python / NumPy expression it documents (built
without FMA contraction or fast-math), so the results are bit-identical to it.
"""

from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, qsort, realloc

import numpy as np

ctypedef fused real_t:
    float
    double

ctypedef fused label_t:
    int
    long long


# ----------------------------------------------------------------------------- gradient


def sobel_magnitude(const double[:, :, ::1] img):
    """``sqrt(sum_c skimage.filters.sobel(img[..., c]) ** 2)`` of an (H, W, C) map."""
    cdef Py_ssize_t hh = img.shape[0], ww = img.shape[1], nc = img.shape[2]
    out_arr = np.empty((hh, ww))
    cdef double[:, ::1] out = out_arr
    cdef double r2 = sqrt(2.0)
    cdef Py_ssize_t y, x, c, ym, yp, xm, xp
    cdef double tot, e0, e1, o, sk
    with nogil:
        for y in range(hh):
            ym = y - 1 if y > 0 else 0
            yp = y + 1 if y < hh - 1 else hh - 1
            for x in range(ww):
                xm = x - 1 if x > 0 else 0
                xp = x + 1 if x < ww - 1 else ww - 1
                tot = 0.0
                for c in range(nc):
                    e0 = 0.0
                    e0 += -0.25 * img[ym, xm, c]
                    e0 += -0.5 * img[ym, x, c]
                    e0 += -0.25 * img[ym, xp, c]
                    e0 += 0.25 * img[yp, xm, c]
                    e0 += 0.5 * img[yp, x, c]
                    e0 += 0.25 * img[yp, xp, c]
                    e1 = 0.0
                    e1 += -0.25 * img[ym, xm, c]
                    e1 += 0.25 * img[ym, xp, c]
                    e1 += -0.5 * img[y, xm, c]
                    e1 += 0.5 * img[y, xp, c]
                    e1 += -0.25 * img[yp, xm, c]
                    e1 += 0.25 * img[yp, xp, c]
                    o = 0.0 + e0 * e0
                    o = o + e1 * e1
                    sk = sqrt(o) / r2
                    tot = tot + sk * sk
                out[y, x] = sqrt(tot)
    return out_arr


# ----------------------------------------------------------------------------- products


cdef int _cmp_int64(const void *a, const void *b) noexcept nogil:
    cdef int64_t u = (<const int64_t *>a)[0], v = (<const int64_t *>b)[0]
    return (u > v) - (u < v)


def node_weights_csr(const int64_t[:, ::1] leaf, Py_ssize_t s, Py_ssize_t n_nodes,
                     const int64_t[::1] y0, const int64_t[::1] y1, const double[::1] fy,
                     const int64_t[::1] x0, const int64_t[::1] x1, const double[::1] fx,
                     Py_ssize_t w):
    """CSR arrays (indptr, indices, data) of M^T (S, N): leaf rows, sorted node columns."""
    cdef Py_ssize_t hh = leaf.shape[0], ww = leaf.shape[1]
    cdef int64_t[::1] count = np.zeros(s + 1, dtype=np.int64)
    cdef int64_t[::1] start = np.empty(s + 1, dtype=np.int64)
    cdef int64_t[::1] order = np.empty(hh * ww, dtype=np.int64)
    cdef int64_t[::1] fill = np.empty(s, dtype=np.int64)
    cdef double[::1] acc = np.zeros(n_nodes)
    cdef unsigned char[::1] seen = np.zeros(n_nodes, dtype=np.uint8)
    cdef int64_t[::1] touched = np.empty(max(n_nodes, 1), dtype=np.int64)
    indptr_arr = np.zeros(s + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = indptr_arr
    cdef Py_ssize_t cap = 4 * hh * ww
    indices_arr = np.empty(cap, dtype=np.int64)
    data_arr = np.empty(cap)
    cdef int64_t[::1] indices = indices_arr
    cdef double[::1] data = data_arr
    cdef Py_ssize_t y, x, lf, q, p, nt, nnz = 0, t
    cdef int cy, cx
    cdef int64_t yi, xi, node, c, total = 0
    cdef double wy, wx
    with nogil:
        # pixels grouped by leaf (counting sort, raster order inside a leaf)
        for y in range(hh):
            for x in range(ww):
                count[leaf[y, x] + 1] += 1
        for q in range(s + 1):
            total += count[q]
            start[q] = total
        for q in range(s):
            fill[q] = start[q]
        for y in range(hh):
            for x in range(ww):
                lf = leaf[y, x]
                order[fill[lf]] = y * ww + x
                fill[lf] += 1
        for lf in range(s):
            nt = 0
            for q in range(start[lf], start[lf + 1]):
                p = order[q]
                y = p // ww
                x = p - y * ww
                for cy in range(2):
                    yi = y0[y] if cy == 0 else y1[y]
                    wy = 1.0 - fy[y] if cy == 0 else fy[y]
                    for cx in range(2):
                        xi = x0[x] if cx == 0 else x1[x]
                        wx = 1.0 - fx[x] if cx == 0 else fx[x]
                        node = yi * w + xi
                        if not seen[node]:
                            seen[node] = 1
                            touched[nt] = node
                            nt += 1
                        acc[node] += wy * wx
            if nt > 1:
                qsort(&touched[0], nt, sizeof(int64_t), _cmp_int64)
            for t in range(nt):
                c = touched[t]
                indices[nnz] = c
                data[nnz] = acc[c]
                nnz += 1
                acc[c] = 0.0
                seen[c] = 0
            indptr[lf + 1] = nnz
    return indptr_arr, indices_arr[:nnz].copy(), data_arr[:nnz].copy()


cdef inline void _row_of(const int64_t[::1] indptr, const int64_t[::1] indices,
                         const double[::1] data, const real_t[:, ::1] k, Py_ssize_t r,
                         double *row) noexcept nogil:
    """row += sum_jj data[jj] * k[indices[jj]] over CSR row r, four entries per pass."""
    cdef Py_ssize_t n = k.shape[1], c
    cdef int64_t jj = indptr[r], end = indptr[r + 1]
    cdef double a0, a1, a2, a3, a, v
    cdef const real_t *s0
    cdef const real_t *s1
    cdef const real_t *s2
    cdef const real_t *s3
    while jj + 4 <= end:
        a0 = data[jj]
        a1 = data[jj + 1]
        a2 = data[jj + 2]
        a3 = data[jj + 3]
        s0 = &k[indices[jj], 0]
        s1 = &k[indices[jj + 1], 0]
        s2 = &k[indices[jj + 2], 0]
        s3 = &k[indices[jj + 3], 0]
        for c in range(n):
            v = row[c] + a0 * <double>s0[c]
            v = v + a1 * <double>s1[c]
            v = v + a2 * <double>s2[c]
            row[c] = v + a3 * <double>s3[c]
        jj += 4
    while jj < end:
        a = data[jj]
        s0 = &k[indices[jj], 0]
        for c in range(n):
            row[c] += a * <double>s0[c]
        jj += 1


def rows_times_dense(const int64_t[::1] indptr, const int64_t[::1] indices,
                     const double[::1] data, const real_t[:, ::1] k):
    """``out[s] = sum_jj data[jj] * k[indices[jj]]`` in float64 (jj ascending)."""
    cdef Py_ssize_t s = indptr.shape[0] - 1, n = k.shape[1], r
    out_arr = np.zeros((s, n))
    cdef double[:, ::1] out = out_arr
    if n == 0:
        return out_arr
    with nogil:
        for r in range(s):
            _row_of(indptr, indices, data, k, r, &out[r, 0])
    return out_arr


def gram_rows(const int64_t[::1] indptr, const int64_t[::1] indices, const double[::1] data,
              const double[:, ::1] km):
    """Symmetric ``M^T K M`` (S, S) from ``km = M^T K`` (S, N) and the CSR rows of M^T."""
    cdef Py_ssize_t s = indptr.shape[0] - 1, r, t
    cdef int64_t jj
    cdef double acc
    out_arr = np.empty((s, s))
    cdef double[:, ::1] out = out_arr
    with nogil:
        for r in range(s):
            for t in range(r, s):
                acc = 0.0
                for jj in range(indptr[t], indptr[t + 1]):
                    acc += data[jj] * km[r, indices[jj]]
                out[r, t] = acc
        for r in range(s):
            for t in range(r + 1, s):
                out[t, r] = out[r, t]
    return out_arr


def gram_of_kernel(const int64_t[::1] indptr, const int64_t[::1] indices,
                   const double[::1] data, const real_t[:, ::1] k):
    """``gram_rows(.., rows_times_dense(.., k))`` without the (S, N) ``M^T K``."""
    cdef Py_ssize_t s = indptr.shape[0] - 1, n = k.shape[1], r, t, c
    cdef int64_t q
    cdef double acc
    out_arr = np.empty((s, s))
    cdef double[:, ::1] out = out_arr
    cdef double[::1] row = np.empty(max(n, 1))
    with nogil:
        for r in range(s):
            for c in range(n):
                row[c] = 0.0
            if n > 0:
                _row_of(indptr, indices, data, k, r, &row[0])
            for t in range(r, s):
                acc = 0.0
                for q in range(indptr[t], indptr[t + 1]):
                    acc += data[q] * row[indices[q]]
                out[r, t] = acc
        for r in range(s):
            for t in range(r + 1, s):
                out[t, r] = out[r, t]
    return out_arr


# ----------------------------------------------------------------------------- heap

cdef struct Heap:
    double *d
    int64_t *i
    int64_t *j
    int64_t *s
    Py_ssize_t n
    Py_ssize_t cap


cdef inline bint _less(Heap *h, Py_ssize_t p, Py_ssize_t q) noexcept nogil:
    """Entry p < entry q as Python compares the tuples (d, i, j, stamp)."""
    if h.d[p] != h.d[q]:
        return h.d[p] < h.d[q]
    if h.i[p] != h.i[q]:
        return h.i[p] < h.i[q]
    if h.j[p] != h.j[q]:
        return h.j[p] < h.j[q]
    return h.s[p] < h.s[q]


cdef inline void _swap(Heap *h, Py_ssize_t p, Py_ssize_t q) noexcept nogil:
    h.d[p], h.d[q] = h.d[q], h.d[p]
    h.i[p], h.i[q] = h.i[q], h.i[p]
    h.j[p], h.j[q] = h.j[q], h.j[p]
    h.s[p], h.s[q] = h.s[q], h.s[p]


cdef inline void _sift_up(Heap *h, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t parent
    while p > 0:
        parent = (p - 1) >> 1
        if _less(h, p, parent):
            _swap(h, p, parent)
            p = parent
        else:
            break


cdef inline void _sift_down(Heap *h, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t c
    while True:
        c = 2 * p + 1
        if c >= h.n:
            break
        if c + 1 < h.n and _less(h, c + 1, c):
            c += 1
        if _less(h, c, p):
            _swap(h, p, c)
            p = c
        else:
            break


cdef int _heap_alloc(Heap *h, Py_ssize_t cap) noexcept nogil:
    h.n = 0
    h.cap = cap
    h.d = <double *>malloc(cap * sizeof(double))
    h.i = <int64_t *>malloc(cap * sizeof(int64_t))
    h.j = <int64_t *>malloc(cap * sizeof(int64_t))
    h.s = <int64_t *>malloc(cap * sizeof(int64_t))
    return 0 if (h.d and h.i and h.j and h.s) else -1


cdef void _heap_free(Heap *h) noexcept nogil:
    free(h.d)
    free(h.i)
    free(h.j)
    free(h.s)


cdef int _grow(void **p, Py_ssize_t nbytes) noexcept nogil:
    cdef void *q = realloc(p[0], nbytes)
    if q == NULL:
        return -1
    p[0] = q
    return 0


cdef int _heap_push(Heap *h, double d, int64_t i, int64_t j, int64_t stamp) noexcept nogil:
    """Push (d, i, j, stamp), growing the arrays when full; -1 when out of memory."""
    cdef Py_ssize_t cap
    if h.n == h.cap:
        cap = 2 * h.cap
        if (_grow(<void **>&h.d, cap * sizeof(double)) or _grow(<void **>&h.i, cap * 8)
                or _grow(<void **>&h.j, cap * 8) or _grow(<void **>&h.s, cap * 8)):
            return -1
        h.cap = cap
    h.d[h.n] = d
    h.i[h.n] = i
    h.j[h.n] = j
    h.s[h.n] = stamp
    _sift_up(h, h.n)
    h.n += 1
    return 0


# ----------------------------------------------------------------------------- merging


cdef inline double _pmax(double a, double b) noexcept nogil:
    """Python's max(a, b)."""
    return b if b > a else a


cdef inline double _pmin(double a, double b) noexcept nogil:
    """Python's min(a, b)."""
    return b if b < a else a


cdef inline double _dist(int64_t i, int64_t j, int64_t e, double[::1] blen, double[::1] bcon,
                         double[::1] bkl, double *m, double[:, ::1] sums, int mode, double w,
                         double small, double mix) noexcept nogil:
    """Merge distance of regions i < j sharing edge e (``merge_leaves``' expression)."""
    cdef double li = blen[e], ci = bcon[e], ki = bkl[e], d, avg
    if mode == 0:
        d = 1.0 - ki / _pmax(li, 1e-12)
    elif mode == 2:
        avg = sums[i, j] / _pmax(m[i] * m[j], 1e-12)
        d = 1.0 - (1.0 - mix) * ki / _pmax(li, 1e-12) - mix * avg
    else:
        d = 1.0 - sums[i, j] / _pmax(m[i] * m[j], 1e-12)
    if w > 0:
        d = (1.0 - w) * d + w * ci / _pmax(li, 1e-12)
    if small > 0:
        d *= sqrt(_pmin(1.0, _pmin(m[i], m[j]) / small))
    if d < 0.0:
        d = 0.0
    if d > 1.0:
        d = 1.0
    return d


def merge_dense(Py_ssize_t s, const double[::1] mass, const int64_t[::1] eu,
                const int64_t[::1] ev, double[::1] blen, double[::1] bcon, double[::1] bkl,
                double[:, ::1] sums, int mode, double w, double small, double mix):
    """Greedy merging of touching regions (see ``leaf_kernels.merge_dense``)."""
    cdef Py_ssize_t n_e = eu.shape[0], n_m = max(s - 1, 0)
    merges_arr = np.zeros((n_m, 2), dtype=np.int64)
    heights_arr = np.zeros(n_m)
    cdef int64_t[:, ::1] merges = merges_arr
    cdef double[::1] heights = heights_arr
    cdef Py_ssize_t pool_cap = max(64, 8 * n_e + 4 * s)
    cdef Py_ssize_t ns = max(s, 1)
    cdef double *m = <double *>malloc(ns * sizeof(double))
    cdef int64_t *deg = <int64_t *>malloc(ns * 8)
    cdef int64_t *start = <int64_t *>malloc(ns * 8)
    cdef int64_t *cnt = <int64_t *>malloc(ns * 8)
    cdef int64_t *live = <int64_t *>malloc(ns * 8)
    cdef int64_t *live_pos = <int64_t *>malloc(ns * 8)
    cdef int64_t *mark = <int64_t *>malloc(ns * 8)
    cdef int64_t *version = <int64_t *>malloc(ns * 8)
    cdef unsigned char *alive = <unsigned char *>malloc(ns)
    cdef int64_t *nb_id = <int64_t *>malloc(pool_cap * 8)
    cdef int64_t *nb_e = <int64_t *>malloc(pool_cap * 8)
    cdef Heap heap
    cdef int failed = _heap_alloc(&heap, max(16, 4 * n_e + 16))
    cdef Py_ssize_t r, e, q, step = 0, n_live = s, c, new_start, kk, s_c, last, top = 0
    cdef int64_t u, v, i, j, stamp, ejc, eic, lo, hi_, need
    cdef double d, d2
    try:
        if not (m and deg and start and cnt and live and live_pos and mark and version
                and alive and nb_id and nb_e) or failed:
            raise MemoryError()
        with nogil:
            for r in range(s):
                m[r] = mass[r]
                deg[r] = 0
                cnt[r] = 0
                alive[r] = 1
                live[r] = r
                live_pos[r] = r
                mark[r] = -1
                version[r] = 0
            for e in range(n_e):
                deg[eu[e]] += 1
                deg[ev[e]] += 1
            for r in range(s):
                start[r] = top
                top += deg[r]
            for e in range(n_e):
                u = eu[e]
                v = ev[e]
                nb_id[start[u] + cnt[u]] = v
                nb_e[start[u] + cnt[u]] = e
                cnt[u] += 1
                nb_id[start[v] + cnt[v]] = u
                nb_e[start[v] + cnt[v]] = e
                cnt[v] += 1
            for e in range(n_e):
                d = _dist(eu[e], ev[e], e, blen, bcon, bkl, m, sums, mode, w, small, mix)
                if _heap_push(&heap, d, eu[e], ev[e], 0):
                    failed = 1
                    break
            while step < s - 1 and not failed:
                if heap.n == 0:  # disconnected adjacency: the first two live parts join at 1
                    i = -1
                    j = -1
                    for c in range(s):
                        if alive[c]:
                            if i < 0:
                                i = c
                            else:
                                j = c
                                break
                    d = 1.0
                else:
                    d = heap.d[0]
                    i = heap.i[0]
                    j = heap.j[0]
                    stamp = heap.s[0]
                    heap.n -= 1
                    if heap.n > 0:
                        heap.d[0] = heap.d[heap.n]
                        heap.i[0] = heap.i[heap.n]
                        heap.j[0] = heap.j[heap.n]
                        heap.s[0] = heap.s[heap.n]
                        _sift_down(&heap, 0)
                    if not (alive[i] and alive[j]) or stamp != version[i] + version[j]:
                        continue
                merges[step, 0] = i
                merges[step, 1] = j
                heights[step] = d
                step += 1
                alive[j] = 0
                q = live_pos[j]  # drop j from the live list
                n_live -= 1
                live[q] = live[n_live]
                live_pos[live[q]] = q
                if mode != 0:
                    for q in range(n_live):
                        c = live[q]
                        if c != i:
                            sums[i, c] += sums[j, c]
                            sums[c, i] += sums[c, j]
                m[i] += m[j]
                # the new neighbour list of i: N(i) - {j}, then N(j) - {i} folded in
                need = cnt[i] + cnt[j]
                if top + need > pool_cap:
                    pool_cap = 2 * (top + need)
                    if _grow(<void **>&nb_id, pool_cap * 8) or _grow(<void **>&nb_e, pool_cap * 8):
                        failed = 1
                        break
                new_start = top
                kk = 0
                for q in range(start[i], start[i] + cnt[i]):
                    c = nb_id[q]
                    if c == j:
                        continue
                    nb_id[new_start + kk] = c
                    nb_e[new_start + kk] = nb_e[q]
                    mark[c] = nb_e[q]
                    kk += 1
                for q in range(start[j], start[j] + cnt[j]):
                    c = nb_id[q]
                    if c == i:
                        continue
                    ejc = nb_e[q]
                    s_c = start[c]
                    if mark[c] >= 0:  # c touches both: add j's border to i's, drop j from N(c)
                        eic = mark[c]
                        blen[eic] += blen[ejc]
                        bcon[eic] += bcon[ejc]
                        bkl[eic] += bkl[ejc]
                        for r in range(s_c, s_c + cnt[c]):
                            if nb_id[r] == j:
                                last = s_c + cnt[c] - 1
                                nb_id[r] = nb_id[last]
                                nb_e[r] = nb_e[last]
                                cnt[c] -= 1
                                break
                    else:  # j's border with c becomes i's
                        nb_id[new_start + kk] = c
                        nb_e[new_start + kk] = ejc
                        mark[c] = ejc
                        kk += 1
                        for r in range(s_c, s_c + cnt[c]):
                            if nb_id[r] == j:
                                nb_id[r] = i
                                break
                start[i] = new_start
                cnt[i] = kk
                top = new_start + kk
                cnt[j] = 0
                version[i] += 1
                for q in range(new_start, new_start + kk):
                    c = nb_id[q]
                    mark[c] = -1
                    lo = min(i, c)
                    hi_ = max(i, c)
                    d2 = _dist(lo, hi_, nb_e[q], blen, bcon, bkl, m, sums, mode, w, small, mix)
                    if _heap_push(&heap, d2, lo, hi_, version[lo] + version[hi_]):
                        failed = 1
                        break
        if failed:
            raise MemoryError()
    finally:
        free(m)
        free(deg)
        free(start)
        free(cnt)
        free(live)
        free(live_pos)
        free(mark)
        free(version)
        free(alive)
        free(nb_id)
        free(nb_e)
        _heap_free(&heap)
    return merges_arr, heights_arr


# ----------------------------------------------------------------------------- merge tree


cdef inline double _pair_height(int64_t la, int64_t lb, const int64_t *parent,
                                const double[::1] hts, int64_t s, int64_t *keys,
                                double *vals, int64_t mask) noexcept nogil:
    """Height at which leaves la != lb join (1 if never), memoised in a hash table."""
    cdef int64_t lo = min(la, lb), hi = max(la, lb)
    cdef int64_t key = lo * s + hi
    cdef int64_t slot = <int64_t>((<uint64_t>key * <uint64_t>0x9E3779B1) & <uint64_t>mask)
    cdef int64_t u = la, v = lb
    cdef double h
    while keys[slot] >= 0:
        if keys[slot] == key:
            return vals[slot]
        slot = (slot + 1) & mask
    while u != v and u >= 0 and v >= 0:  # parents have larger ids than their children
        if u < v:
            u = parent[u]
        else:
            v = parent[v]
    h = hts[u - s] if (u == v and u >= s) else 1.0
    keys[slot] = key
    vals[slot] = h
    return h


def tree_ucm(const int64_t[:, ::1] leaf, const int64_t[:, ::1] merges, const double[::1] hts,
             int64_t s):
    """BSDS UCM (2H+1, 2W+1) of a merge tree over leaves (0-based ``leaf``)."""
    cdef Py_ssize_t n_m = merges.shape[0], hh = leaf.shape[0], ww = leaf.shape[1]
    cdef int64_t[::1] parent = np.full(s + n_m, -1, dtype=np.int64)
    cdef int64_t[::1] node = np.arange(max(s, 1), dtype=np.int64)
    cdef Py_ssize_t size = 1, kq, y, x, cy, cx
    cdef int64_t i, j, la, lb
    while size < 4 * (4 * s + 16):
        size *= 2
    cdef int64_t[::1] keys = np.full(size, -1, dtype=np.int64)
    cdef double[::1] vals = np.zeros(size)
    ucm_arr = np.zeros((2 * hh + 1, 2 * ww + 1))
    cdef double[:, ::1] ucm = ucm_arr
    cdef int64_t mask = size - 1
    with nogil:
        for kq in range(n_m):
            i = merges[kq, 0]
            j = merges[kq, 1]
            parent[node[i]] = s + kq
            parent[node[j]] = s + kq
            node[i] = s + kq
        for y in range(hh):
            for x in range(ww - 1):
                la = leaf[y, x]
                lb = leaf[y, x + 1]
                if la != lb:
                    ucm[2 * y + 1, 2 * x + 2] = _pair_height(
                        la, lb, &parent[0], hts, s, &keys[0], &vals[0], mask
                    )
        for y in range(hh - 1):
            for x in range(ww):
                la = leaf[y, x]
                lb = leaf[y + 1, x]
                if la != lb:
                    ucm[2 * y + 2, 2 * x + 1] = _pair_height(
                        la, lb, &parent[0], hts, s, &keys[0], &vals[0], mask
                    )
        for y in range(hh - 1):
            for x in range(ww - 1):
                cy = 2 * y + 2
                cx = 2 * x + 2
                ucm[cy, cx] = _pmax(
                    _pmax(ucm[cy - 1, cx], ucm[cy + 1, cx]),
                    _pmax(ucm[cy, cx - 1], ucm[cy, cx + 1]),
                )
        for x in range(ww - 1):
            ucm[0, 2 * x + 2] = ucm[1, 2 * x + 2]
            ucm[2 * hh, 2 * x + 2] = ucm[2 * hh - 1, 2 * x + 2]
        for y in range(hh - 1):
            ucm[2 * y + 2, 0] = ucm[2 * y + 2, 1]
            ucm[2 * y + 2, 2 * ww] = ucm[2 * y + 2, 2 * ww - 1]
    return ucm_arr


def level_luts(const int64_t[:, ::1] merges, const int64_t[::1] steps, Py_ssize_t s):
    """(len(steps), S) labels 1..K of every leaf after each step count (as np.unique)."""
    cdef Py_ssize_t n_q = steps.shape[0], q, r, c, done = 0, kq
    cdef int64_t[::1] owner = np.arange(max(s, 1), dtype=np.int64)
    luts_arr = np.empty((n_q, s), dtype=np.int32)
    cdef int[:, ::1] luts = luts_arr
    cdef int64_t[::1] present = np.zeros(max(s, 1), dtype=np.int64)
    cdef int64_t[::1] rank = np.zeros(max(s, 1), dtype=np.int64)
    cdef int64_t i, j, tot
    with nogil:
        for q in range(n_q):
            kq = steps[q]
            for r in range(done, kq):
                i = merges[r, 0]
                j = merges[r, 1]
                for c in range(s):
                    if owner[c] == j:
                        owner[c] = i
            done = kq
            for c in range(s):
                present[c] = 0
            for c in range(s):
                present[owner[c]] = 1
            tot = 0
            for c in range(s):
                tot += present[c]
                rank[c] = tot
            for c in range(s):
                luts[q, c] = <int>rank[owner[c]]
    return luts_arr


# ----------------------------------------------------------------------------- watershed


cdef inline bint _wless(double *hv, int64_t *hk, Py_ssize_t p, Py_ssize_t q) noexcept nogil:
    """skimage's heap order: value, then age (the top bits of the packed entry)."""
    if hv[p] == hv[q]:
        return (hk[p] >> 42) < (hk[q] >> 42)
    return hv[p] < hv[q]


cdef inline void _wsift_up(double *hv, int64_t *hk, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t par
    while c > 0:
        par = (c - 1) >> 1
        if _wless(hv, hk, c, par):
            hv[c], hv[par] = hv[par], hv[c]
            hk[c], hk[par] = hk[par], hk[c]
            c = par
        else:
            break


def flood(const double[::1] image, const int64_t[::1] markers_at, const int64_t[::1] offsets,
          const unsigned char[::1] mask, int64_t width, double compactness,
          label_t[::1] output, const unsigned char[::1] tied):
    """The compact branch of skimage's ``watershed_raveled`` on raveled padded arrays
    (see ``compact_watershed._flood``); ``mask`` and ``tied`` as uint8."""
    cdef Py_ssize_t n_pix = image.shape[0], n_mk = markers_at.shape[0]
    cdef Py_ssize_t cap = 4 * n_pix + n_mk + 16
    hv_arr = np.empty(cap)
    hk_arr = np.empty(cap, dtype=np.int64)
    best_arr = np.full(n_pix, np.inf)
    is_tied_arr = np.zeros(n_pix, dtype=np.uint8)
    cdef double[::1] hv_m = hv_arr
    cdef int64_t[::1] hk_m = hk_arr
    cdef double[::1] best = best_arr
    cdef unsigned char[::1] is_tied = is_tied_arr
    cdef double *hv = &hv_m[0]
    cdef int64_t *hk = &hk_m[0]
    cdef Py_ssize_t n = 0, q, c, ch, o, n_off = offsets.shape[0]
    cdef int64_t idx, age = 1, n_tied = 0, index, source, key, nb, sy, sx
    cdef double value, dy, dx, dist, v
    cdef bint prune, overflow = False
    with nogil:
        for q in range(n_mk):
            idx = markers_at[q]
            hv[n] = image[idx]
            hk[n] = (idx << 21) | idx
            n += 1
            _wsift_up(hv, hk, n - 1)
        for q in range(n_mk):
            if tied[q]:
                n_tied += 1
        for q in range(n_mk):
            if tied[q]:
                is_tied[markers_at[q]] = 1
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
                    if ch + 1 < n and _wless(hv, hk, ch + 1, ch):
                        ch += 1
                    if _wless(hv, hk, ch, c):
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
                dy = <double>(nb // width - sy)
                dx = <double>(nb % width - sx)
                dist = 0.0
                dist += dy * dy
                dist += dx * dx
                v = image[nb] + compactness * sqrt(dist)
                if v < value:
                    v = value
                if v >= best[nb]:
                    if prune:
                        continue
                else:
                    best[nb] = v
                if n == cap:  # cannot happen (each pixel enters at most 4 times)
                    overflow = True
                    break
                hv[n] = v
                hk[n] = (age << 42) | (nb << 21) | source
                n += 1
                _wsift_up(hv, hk, n - 1)
            if overflow:
                break
    if overflow:
        raise ValueError("watershed queue overflow")


# ----------------------------------------------------------------------------- kernel


def exponent_in_place(float[:, ::1] g, const float[::1] sq, float tau, float floor):
    """``g[i, j] <- -tau max(sq[i] + sq[j] - 2 g[i, j], 0)`` in float32, 0 on the diagonal,
    -inf where below ``floor``."""
    cdef Py_ssize_t n = g.shape[0], i, j
    cdef float si, d, a
    cdef float two = 2.0, zero = 0.0, ninf = -INFINITY
    with nogil:
        for i in range(n):
            si = sq[i]
            for j in range(n):
                d = si + sq[j] - two * g[i, j]
                if d < 0:
                    d = zero
                a = -tau * d
                g[i, j] = a if a >= floor else ninf
            g[i, i] = zero


# ----------------------------------------------------------------------------- ucm levels


cdef inline int64_t _find(int64_t *parent, int64_t x) noexcept nogil:
    cdef int64_t root = x, nxt
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


def merge_levels(const double[:, ::1] u, const label_t[:, ::1] lab0, int64_t n0,
                 const int64_t[::1] keep, const double[::1] thresholds):
    """Union-find over the cells of ``u`` activated threshold by threshold (see
    ``affseg.grouping.ucm._merge_levels``); returns (parents (T, len(keep)), counts (T,))."""
    cdef Py_ssize_t rows = u.shape[0], cols = u.shape[1], n_thr = thresholds.shape[0]
    cdef Py_ssize_t n_keep = keep.shape[0], i, j, c, q, lo, hi, mid, f, total
    cdef int64_t k, a, b, nb, n_seg, r
    cdef int di, dj
    cdef Py_ssize_t ii, jj
    cdef double last = thresholds[n_thr - 1], v, t
    cdef int64_t[::1] batch = np.full(rows * cols, -1, dtype=np.int64)
    cdef int64_t[::1] sizes = np.zeros(n_thr + 1, dtype=np.int64)
    cdef int64_t[::1] starts = np.zeros(n_thr + 1, dtype=np.int64)
    cdef int64_t[::1] fill = np.zeros(n_thr, dtype=np.int64)
    cdef int64_t[::1] parent = np.arange(n0 + 1 + rows * cols, dtype=np.int64)
    parents_arr = np.empty((n_thr, n_keep), dtype=np.int64)
    counts_arr = np.empty(n_thr, dtype=np.int64)
    cdef int64_t[:, ::1] parents = parents_arr
    cdef int64_t[::1] counts = counts_arr
    cdef int64_t[::1] slot = np.full(n0 + 1, -1, dtype=np.int64)
    cdef int64_t[::1] order
    with nogil:
        # counting sort of the later cells by the threshold that activates them
        for i in range(rows):
            for j in range(cols):
                v = u[i, j]
                if lab0[i, j] == 0 and v <= last:
                    lo = 0  # np.searchsorted(thresholds, v): first threshold >= v
                    hi = n_thr
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if thresholds[mid] < v:
                            lo = mid + 1
                        else:
                            hi = mid
                    batch[i * cols + j] = lo
                    sizes[lo + 1] += 1
        total = 0
        for q in range(n_thr + 1):
            total += sizes[q]
            starts[q] = total
        for q in range(n_thr):
            fill[q] = starts[q]
    order = np.empty(max(starts[n_thr], 1), dtype=np.int64)
    with nogil:
        for c in range(rows * cols):
            k = batch[c]
            if k >= 0:
                order[fill[k]] = c
                fill[k] += 1
        for k in range(n_thr):
            t = thresholds[k]
            for q in range(starts[k], starts[k + 1]):
                c = order[q]
                i = c // cols
                j = c - i * cols
                a = _find(&parent[0], n0 + 1 + c)
                for di in range(-1, 2):
                    ii = i + di
                    if ii < 0 or ii >= rows:
                        continue
                    for dj in range(-1, 2):
                        jj = j + dj
                        if jj < 0 or jj >= cols or (di == 0 and dj == 0):
                            continue
                        if u[ii, jj] <= t:
                            nb = lab0[ii, jj]
                            if nb == 0:
                                nb = n0 + 1 + ii * cols + jj
                            b = _find(&parent[0], nb)
                            if a != b:  # keep the smallest id as the root (a fine id)
                                if a < b:
                                    parent[b] = a
                                else:
                                    parent[a] = b
                                    a = b
            n_seg = 0
            for f in range(n_keep):
                r = _find(&parent[0], keep[f])
                if slot[r] < 0:
                    slot[r] = n_seg
                    n_seg += 1
                parents[k, f] = slot[r]
            counts[k] = n_seg
            for f in range(n_keep):
                slot[_find(&parent[0], keep[f])] = -1
    return parents_arr, counts_arr


# ----------------------------------------------------------------------------- kwikcluster


def kwik_core(const float[:, ::1] emb, const int64_t[::1] order, double threshold):
    """KwikCluster labels (int32) of the rows of ``emb`` for the pivot ``order``: a point
    joins the pivot's cluster when the float32 products summed in float64 exceed
    ``threshold``."""
    cdef Py_ssize_t n = emb.shape[0], d = emb.shape[1], q, idx, c, write, n_rem = n
    cdef int64_t p, i
    cdef int cur = 0
    cdef double dot
    cdef const float *ep
    cdef const float *ei
    labels_arr = np.full(n, -1, dtype=np.int32)
    cdef int[::1] labels_m = labels_arr
    cdef int64_t[::1] remaining_m = np.arange(max(n, 1), dtype=np.int64)
    cdef int *labels = &labels_m[0] if n > 0 else NULL
    cdef int64_t *remaining = &remaining_m[0]
    if n == 0:
        return labels_arr
    with nogil:
        for q in range(order.shape[0]):
            p = order[q]
            if labels[p] >= 0:
                continue
            labels[p] = cur
            ep = &emb[p, 0]
            write = 0
            for idx in range(n_rem):
                i = remaining[idx]
                if labels[i] >= 0:
                    continue
                ei = &emb[i, 0]
                dot = 0.0
                c = 0
                while c + 4 <= d:  # the same sequential sum, four terms per pass
                    dot += <double>(ei[c] * ep[c])
                    dot += <double>(ei[c + 1] * ep[c + 1])
                    dot += <double>(ei[c + 2] * ep[c + 2])
                    dot += <double>(ei[c + 3] * ep[c + 3])
                    c += 4
                while c < d:
                    dot += <double>(ei[c] * ep[c])
                    c += 1
                if dot > threshold:
                    labels[i] = cur
                else:
                    remaining[write] = i
                    write += 1
            n_rem = write
            cur += 1
    return labels_arr
