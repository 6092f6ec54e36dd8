"""Compiled core of the boundary benchmark's pixel correspondence (private).

:func:`match_pixels` finds the same matching as the straightforward path of
:mod:`affseg.metrics.boundary` (candidate pairs within maxDist, then
:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` on the rectangular graph
"each node of the smaller side joined to its candidates at cost ``c + 1`` and to a private
unmatched node at cost ``outlier + 1``"), but in time close to linear in the number of
candidate pairs instead of ``rows x columns``.

scipy's LAPJVsp skips its initialisation on a rectangular graph, so every row is free and
is augmented in turn by a Dijkstra search; before each search it resets its labels over
*all* columns, and whenever a distance level is exhausted it rescans all columns for the
next one. On a BSDS image (~4 000 rows, ~8 000 columns, ~40 000 edges) these O(columns)
loops are ~90 % of the run time. :func:`_lapjvsp_rect` is a line-by-line port of that
code path (same row order, same tie-breaking) in which only the columns touched by a
search are reset, and the rescan pops a binary heap keyed by (distance, column): it visits
the columns of minimum distance in ascending index order, exactly as the full scan does.
All costs are integers held in float64, so every comparison is exact and the port returns
the very matching scipy returns (``tests/test_metrics_boundary.py`` checks it on random
and real graphs).

The candidate graph is built in scipy's canonical CSR order (rows in ascending pixel
order, the columns of each row ascending, the private outlier column last), which is what
makes the two paths take identical decisions.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.inf


@numba.njit(cache=True, nogil=True)
def _heap_push(hd: np.ndarray, hj: np.ndarray, n: int, dv: float, j: int) -> int:
    """Push (dv, j) on the min-heap ``(hd, hj)`` of size n; returns the new size."""
    k = n
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


@numba.njit(cache=True, nogil=True)
def _heap_pop(hd: np.ndarray, hj: np.ndarray, n: int) -> int:
    """Remove the top of the heap of size n (read it first); returns the new size."""
    n -= 1
    if n == 0:
        return 0
    dv = hd[n]
    j = hj[n]
    k = 0
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


@numba.njit(cache=True, nogil=True)
def _update_assignments(lab: np.ndarray, y: np.ndarray, x: np.ndarray, j: int, i0: int) -> None:
    while True:
        i = lab[j]
        y[j] = i
        k = j
        j = x[i]
        x[i] = k
        if i == i0:
            return


@numba.njit(cache=True, nogil=True)
def _update_dual(
    nc: int, d: np.ndarray, v: np.ndarray, todo: np.ndarray, last: int, min_diff: float
) -> None:
    for k in range(last, nc):
        j0 = todo[k]
        v[j0] += d[j0] - min_diff


@numba.njit(cache=True, nogil=True)
def _lapjvsp_rect(
    first: np.ndarray, kk: np.ndarray, cc: np.ndarray, nr: int, nc: int
) -> np.ndarray:
    """scipy's ``_lapjvsp`` for ``nr < nc`` (every row free), with lazy resets.

    Returns ``x``: the column of each row. The graph must admit a full matching of the
    rows (here: every row has a private column).
    """
    v = np.zeros(nc)
    x = np.full(nr, -1, dtype=np.int64)
    y = np.full(nc, -1, dtype=np.int64)
    d = np.full(nc, _INF)
    ok = np.zeros(nc, dtype=np.uint8)
    lab = np.zeros(nc, dtype=np.int64)
    todo = np.full(nc, -1, dtype=np.int64)
    touched = np.empty(nc, dtype=np.int64)
    cap = kk.size + 1
    hd = np.empty(cap)
    hj = np.empty(cap, dtype=np.int64)
    for i0 in range(nr):
        nt = 0  # touched columns (finite d) of this search
        nh = 0  # heap size
        # ---- scipy: _lapjvsp_single_l(l = i0), after "d[:] = inf; ok[:] = 0"
        min_diff = _INF
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
                raise ValueError("no full matching exists")
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
                        if d[j] == _INF:
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
                min_diff = _INF
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
        for k in range(nt):  # the lazy reset
            j = touched[k]
            d[j] = _INF
            ok[j] = 0
    return x


@numba.njit(cache=True, nogil=True)
def _candidates(
    my: np.ndarray,
    mx: np.ndarray,
    index: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    r: int,
    offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (machine pixel, annotator pixel, offset number) pair within the tolerance.

    Walks the smaller of the two pixel sets and looks the other one up in an index image
    (padded by r); the pairs come out grouped by the walked side's pixel.
    """
    n1 = my.size
    n2 = gy.size
    n_off = offsets.shape[0]
    if n1 <= n2:
        look = index
        outer_y, outer_x = my, mx
        sign = 1
    else:
        look = np.full(index.shape, -1, dtype=np.int64)
        for p in range(n1):
            look[my[p] + r, mx[p] + r] = p
        outer_y, outer_x = gy, gx
        sign = -1
    n_out = outer_y.size
    cnt = 0
    for q in range(n_out):
        yy = outer_y[q] + r
        xx = outer_x[q] + r
        for k in range(n_off):
            if look[yy + sign * offsets[k, 0], xx + sign * offsets[k, 1]] >= 0:
                cnt += 1
    ei = np.empty(cnt, dtype=np.int64)
    ej = np.empty(cnt, dtype=np.int64)
    ek = np.empty(cnt, dtype=np.int64)
    e = 0
    for q in range(n_out):
        yy = outer_y[q] + r
        xx = outer_x[q] + r
        for k in range(n_off):
            o = look[yy + sign * offsets[k, 0], xx + sign * offsets[k, 1]]
            if o >= 0:
                if sign == 1:
                    ei[e] = q
                    ej[e] = o
                else:
                    ei[e] = o
                    ej[e] = q
                ek[e] = k
                e += 1
    return ei, ej, ek


@numba.njit(cache=True, nogil=True)
def _match(
    my: np.ndarray,
    mx: np.ndarray,
    index: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    r: int,
    offsets: np.ndarray,
    costs: np.ndarray,
    outlier: float,
) -> tuple[np.ndarray, np.ndarray]:
    n1 = my.size
    n_gt = gy.size
    ei, ej, ek = _candidates(my, mx, index, gy, gx, r, offsets)
    n_e = ei.size
    deg1 = np.zeros(n1, dtype=np.int64)
    deg2 = np.zeros(n_gt, dtype=np.int64)
    for e in range(n_e):
        deg1[ei[e]] += 1
        deg2[ej[e]] += 1
    # compact indices of the pixels with a candidate (np.unique order: ascending)
    ci = np.full(n1, -1, dtype=np.int64)
    a = 0
    for p in range(n1):
        if deg1[p] > 0:
            ci[p] = a
            a += 1
    cj = np.full(n_gt, -1, dtype=np.int64)
    b = 0
    for j in range(n_gt):
        if deg2[j] > 0:
            cj[j] = b
            b += 1
    if a == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none
    ui = np.empty(a, dtype=np.int64)
    for p in range(n1):
        if ci[p] >= 0:
            ui[ci[p]] = p
    uj = np.empty(b, dtype=np.int64)
    for j in range(n_gt):
        if cj[j] >= 0:
            uj[cj[j]] = j
    rows_small = a <= b
    n_r = a if rows_small else b
    n_c = b if rows_small else a
    nnz = n_e
    first = np.zeros(n_r + 1, dtype=np.int64)
    if rows_small:
        for p in range(n1):
            if deg1[p] > 0:
                first[ci[p] + 1] = deg1[p] + 1
    else:
        for j in range(n_gt):
            if deg2[j] > 0:
                first[cj[j] + 1] = deg2[j] + 1
    for r in range(n_r):
        first[r + 1] += first[r]
    kk = np.empty(nnz + n_r, dtype=np.int64)
    cc = np.empty(nnz + n_r)
    fill = first[:-1].copy()
    for e in range(n_e):
        if rows_small:
            r = ci[ei[e]]
            col = cj[ej[e]]
        else:
            r = cj[ej[e]]
            col = ci[ei[e]]
        t = fill[r]
        kk[t] = col
        cc[t] = costs[ek[e]] + 1.0
        fill[r] = t + 1
    # scipy's canonical CSR: the columns of each row ascending (insertion sort: a row has
    # at most one entry per offset, and the pairs come out nearly sorted)
    for r in range(n_r):
        lo = first[r]
        for t in range(lo + 1, fill[r]):
            kv = kk[t]
            cv = cc[t]
            s = t - 1
            while s >= lo and kk[s] > kv:
                kk[s + 1] = kk[s]
                cc[s + 1] = cc[s]
                s -= 1
            kk[s + 1] = kv
            cc[s + 1] = cv
    for r in range(n_r):  # the private "unmatched" column, last in its row
        kk[fill[r]] = n_c + r
        cc[fill[r]] = outlier + 1.0
    x = _lapjvsp_rect(first, kk, cc, n_r, n_c + n_r)
    n_m = 0
    for r in range(n_r):
        if x[r] < n_c:
            n_m += 1
    mi = np.empty(n_m, dtype=np.int64)
    mj = np.empty(n_m, dtype=np.int64)
    m = 0
    for r in range(n_r):
        col = x[r]
        if col < n_c:
            if rows_small:
                mi[m] = ui[r]
                mj[m] = uj[col]
            else:
                mi[m] = ui[col]
                mj[m] = uj[r]
            m += 1
    return mi, mj


def match_pixels(
    y: np.ndarray,
    x: np.ndarray,
    index: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    r: int,
    offsets: np.ndarray,
    costs: np.ndarray,
    outlier: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal correspondence of machine pixels ``(y, x)`` to one annotator's pixels.

    Parameters
    ----------
    y, x : ndarray of int
        Machine boundary pixels, in raster order.
    index : ndarray of int64, shape (H + 2r, W + 2r)
        The annotator's pixel number at each position shifted by ``(r, r)`` (``-1``: none).
    gy, gx : ndarray of int
        The annotator's pixels, in raster order (pixel number k is ``(gy[k], gx[k])``).
    r : int
        Padding of ``index``: the largest offset coordinate.
    offsets : ndarray of int64, shape (K, 2)
        Candidate displacements ``(dy, dx)``, each coordinate in ``[-r, r]``.
    costs : ndarray of float64, shape (K,)
        Integer cost of each displacement.
    outlier : float
        Cost of an unmatched pixel.

    Returns
    -------
    mi, mj : ndarray of int64
        Matched pairs: machine pixel number, annotator pixel number.
    """
    return _match(
        np.ascontiguousarray(y, dtype=np.int64),
        np.ascontiguousarray(x, dtype=np.int64),
        np.ascontiguousarray(index, dtype=np.int64),
        np.ascontiguousarray(gy, dtype=np.int64),
        np.ascontiguousarray(gx, dtype=np.int64),
        int(r),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(costs, dtype=np.float64),
        float(outlier),
    )


@numba.njit(cache=True, nogil=True)
def _thin(img: np.ndarray, lut1: np.ndarray, lut2: np.ndarray) -> None:
    """:func:`skimage.morphology.thin` in place on a uint8 {0, 1} image, visiting only
    the pixels that are still set (same LUTs, same simultaneous sub-iterations)."""
    h, w = img.shape
    n = 0
    for yy in range(h):
        for xx in range(w):
            if img[yy, xx]:
                n += 1
    ys = np.empty(n, dtype=np.int64)
    xs = np.empty(n, dtype=np.int64)
    q = 0
    for yy in range(h):
        for xx in range(w):
            if img[yy, xx]:
                ys[q] = yy
                xs[q] = xx
                q += 1
    rm = np.zeros(n, dtype=np.bool_)
    while True:
        n_old = n
        for sub in range(2):
            lut = lut1 if sub == 0 else lut2
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
            return


def thin_map(bmap: np.ndarray) -> np.ndarray | None:
    """``skimage.morphology.thin(bmap)`` (``bwmorph thin inf``), exactly, or None when
    this scikit-image does not expose the lookup tables it thins with."""
    try:
        from skimage.morphology._skeletonize import G123_LUT, G123P_LUT
    except ImportError:  # pragma: no cover - other scikit-image versions
        return None
    img = np.array(bmap, dtype=np.uint8, order="C")
    _thin(img, np.asarray(G123_LUT, dtype=np.bool_), np.asarray(G123P_LUT, dtype=np.bool_))
    return img.astype(bool)
