"""Compiled (numba) inner loops of the leaf grouping (:mod:`affseg.grouping.leaf_hierarchy`).

One job: the per-pixel and per-merge loops that NumPy cannot vectorise, written so that
they compute the same floating-point operations in the same order as the NumPy / SciPy /
heapq code they replace (the tests compare them against independent Python versions).
The leaf grouping's modules call the public ones (plain arrays in and out; the callers
check the arguments):

- :func:`sobel_magnitude`: the Sobel magnitude of Lab that the watershed floods
  (skimage's ``sobel`` per channel, same taps and order);
- :func:`node_weights_csr`: the bilinear pixel -> grid-node weights of every leaf, as the
  rows of a CSR matrix ``M^T`` (S, N) with sorted column indices;
- :func:`rows_times_dense`: ``M^T K`` (S, N) for a float32 K, accumulated in float64
  (what ``scipy.sparse`` computes after upcasting K, without the upcast copy);
- :func:`_gram_rows`: the symmetric ``M^T K M`` (S, S) from ``M^T K``, one triangle
  computed and mirrored; :func:`gram_of_kernel`: the same from K, one row of ``M^T K``
  at a time;
- :func:`merge_dense`: the greedy heap merge of touching regions (additive border
  statistics per adjacency edge, per-region neighbour lists, a binary heap with lazy
  deletion ordered like Python's tuples; a dense S x S ``M^T K M`` only for the average
  linkages);
- :func:`tree_ucm` and :func:`level_luts`: the UCM of the merge tree (every border
  gets the height at which its two leaves join) and the label look-up table of every
  kept level.

Unlike the other greedy merges (:func:`affseg.grouping.region_merging.greedy_merge` and
:func:`affseg.grouping.label_merging.merge_adjacent`, dense rescans of all pairs every
step), :func:`merge_dense` is a heap over the adjacency graph whose distances come from
statistics that add up on a merge (border length, summed contrast, length-weighted K_D,
``M^T K M``), clamped to [0, 1], for ~1000 leaves, always down to one region.

No global state: numba caches the compiled code in affseg's cache directory.

Example
-------
>>> import numpy as np
>>> level_luts(np.array([[0, 1]]), np.array([0, 1]), 2).tolist()
[[1, 2], [1, 1]]
"""

from __future__ import annotations

import numba
import numpy as np

# ----------------------------------------------------------------------------- gradient


@numba.njit(cache=True)
def sobel_magnitude(img):  # pragma: no cover - compiled
    """``sqrt(sum_c skimage.filters.sobel(img[..., c]) ** 2)`` of an (H, W, C) float64 map.

    skimage's expression term by term: per axis ``ndimage.convolve`` with the 3 x 3 Sobel
    kernel (the flipped kernel's non-zero taps in raster order, 'reflect' borders), the
    squared axis responses added to 0, ``sqrt(.) / sqrt(2)``, then the channels' squares.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((3, 4, 1)); img[:, 2:] = 1.0   # a vertical step
    >>> sobel_magnitude(img).round(3).tolist()[0]
    [0.0, 0.707, 0.707, 0.0]
    """
    hh, ww, nc = img.shape
    out = np.empty((hh, ww))
    r2 = np.sqrt(2.0)
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
                sk = np.sqrt(o) / r2
                tot = tot + sk * sk
            out[y, x] = np.sqrt(tot)
    return out


# ----------------------------------------------------------------------------- products


@numba.njit(cache=True)
def node_weights_csr(leaf, s, n_nodes, y0, y1, fy, x0, x1, fx, w):  # pragma: no cover
    """CSR arrays (indptr, indices, data) of M^T (S, N): leaf rows, sorted node columns.

    ``leaf`` holds 0-based leaf indices; (y0, y1, fy) and (x0, x1, fx) are the bilinear
    nodes and fractions of every pixel row and column; ``w`` the grid width.

    Examples
    --------
    One 2 x 2 leaf on a 1 x 1 grid: all 4 pixels weigh on node 0.

    >>> import numpy as np
    >>> leaf, z, f = np.zeros((2, 2), np.int64), np.zeros(2, np.int64), np.zeros(2)
    >>> indptr, indices, data = node_weights_csr(leaf, 1, 1, z, z, f, z, z, f, 1)
    >>> indptr.tolist(), indices.tolist(), data.tolist()
    ([0, 1], [0], [4.0])
    """
    hh, ww = leaf.shape
    # pixels grouped by leaf (counting sort, raster order inside a leaf)
    count = np.zeros(s + 1, dtype=np.int64)
    for y in range(hh):
        for x in range(ww):
            count[leaf[y, x] + 1] += 1
    start = np.cumsum(count)
    order = np.empty(hh * ww, dtype=np.int64)
    fill = start[:-1].copy()
    for y in range(hh):
        for x in range(ww):
            lf = leaf[y, x]
            order[fill[lf]] = y * ww + x
            fill[lf] += 1
    acc = np.zeros(n_nodes)
    seen = np.zeros(n_nodes, dtype=np.bool_)
    touched = np.empty(n_nodes, dtype=np.int64)
    indptr = np.zeros(s + 1, dtype=np.int64)
    cap = 4 * hh * ww
    indices = np.empty(cap, dtype=np.int64)
    data = np.empty(cap)
    nnz = 0
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
                        seen[node] = True
                        touched[nt] = node
                        nt += 1
                    acc[node] += wy * wx
        cols = np.sort(touched[:nt])
        for c in cols:
            indices[nnz] = c
            data[nnz] = acc[c]
            nnz += 1
            acc[c] = 0.0
            seen[c] = False
        indptr[lf + 1] = nnz
    return indptr, indices[:nnz].copy(), data[:nnz].copy()


@numba.njit(cache=True)
def rows_times_dense(indptr, indices, data, k):  # pragma: no cover - compiled
    """``out[s] = sum_jj data[jj] * k[indices[jj]]`` in float64 (jj ascending).

    Four entries per pass over the output row, added one after the other (the rounding
    of the plain loop, a quarter of its row traffic).

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices, data = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 2.0])
    >>> k = np.array([[1.0, 0.5], [0.5, 1.0]], np.float32)
    >>> rows_times_dense(indptr, indices, data, k).tolist()   # diag(1, 2) @ k
    [[1.0, 0.5], [1.0, 2.0]]
    """
    s = indptr.size - 1
    n = k.shape[1]
    out = np.zeros((s, n))
    for r in range(s):
        row = out[r]
        jj = indptr[r]
        end = indptr[r + 1]
        while jj + 4 <= end:
            a0 = data[jj]
            a1 = data[jj + 1]
            a2 = data[jj + 2]
            a3 = data[jj + 3]
            s0 = k[indices[jj]]
            s1 = k[indices[jj + 1]]
            s2 = k[indices[jj + 2]]
            s3 = k[indices[jj + 3]]
            for c in range(n):
                v = row[c] + a0 * np.float64(s0[c])
                v = v + a1 * np.float64(s1[c])
                v = v + a2 * np.float64(s2[c])
                row[c] = v + a3 * np.float64(s3[c])
            jj += 4
        while jj < end:
            a = data[jj]
            src = k[indices[jj]]
            for c in range(n):
                row[c] += a * np.float64(src[c])
            jj += 1
    return out


@numba.njit(cache=True)
def _gram_rows(indptr, indices, data, km):  # pragma: no cover - compiled
    """Symmetric ``M^T K M`` (S, S) from ``km = M^T K`` (S, N) and the CSR rows of M^T.

    Entry (r, t), t >= r, is ``sum_jj data[jj] * km[r, indices[jj]]`` over row t's jj
    (ascending; the gathers stay inside km's row r), mirrored to (t, r).
    """
    s = indptr.size - 1
    out = np.empty((s, s))
    for r in range(s):
        kr = km[r]
        for t in range(r, s):
            acc = 0.0
            for jj in range(indptr[t], indptr[t + 1]):
                acc += data[jj] * kr[indices[jj]]
            out[r, t] = acc
    for r in range(s):
        for t in range(r + 1, s):
            out[t, r] = out[r, t]
    return out


@numba.njit(cache=True)
def gram_of_kernel(indptr, indices, data, k):  # pragma: no cover - compiled
    """``_gram_rows(.., rows_times_dense(.., k))`` without the (S, N) ``M^T K``.

    Row r of ``M^T K`` is built in a scratch row (the same sums as
    :func:`rows_times_dense`), used at once for the entries (r, t >= r) of the
    symmetric ``M^T K M`` (the same sums as :func:`_gram_rows`), then overwritten.

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices, data = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 2.0])
    >>> k = np.array([[1.0, 0.5], [0.5, 1.0]], np.float32)
    >>> gram_of_kernel(indptr, indices, data, k).tolist()     # M^T K M, M = diag(1, 2)
    [[1.0, 1.0], [1.0, 4.0]]
    """
    s = indptr.size - 1
    n = k.shape[1]
    out = np.empty((s, s))
    row = np.empty(n)
    for r in range(s):
        row[:] = 0.0
        jj = indptr[r]
        end = indptr[r + 1]
        while jj + 4 <= end:
            a0 = data[jj]
            a1 = data[jj + 1]
            a2 = data[jj + 2]
            a3 = data[jj + 3]
            s0 = k[indices[jj]]
            s1 = k[indices[jj + 1]]
            s2 = k[indices[jj + 2]]
            s3 = k[indices[jj + 3]]
            for c in range(n):
                v = row[c] + a0 * np.float64(s0[c])
                v = v + a1 * np.float64(s1[c])
                v = v + a2 * np.float64(s2[c])
                row[c] = v + a3 * np.float64(s3[c])
            jj += 4
        while jj < end:
            a = data[jj]
            src = k[indices[jj]]
            for c in range(n):
                row[c] += a * np.float64(src[c])
            jj += 1
        for t in range(r, s):
            acc = 0.0
            for q in range(indptr[t], indptr[t + 1]):
                acc += data[q] * row[indices[q]]
            out[r, t] = acc
    for r in range(s):
        for t in range(r + 1, s):
            out[t, r] = out[r, t]
    return out


# ----------------------------------------------------------------------------- heap


@numba.njit(cache=True, inline="always")
def _less(hd, hi, hj, hs, p, q):  # pragma: no cover - compiled
    """Entry p < entry q as Python compares the tuples (d, i, j, stamp)."""
    if hd[p] != hd[q]:
        return hd[p] < hd[q]
    if hi[p] != hi[q]:
        return hi[p] < hi[q]
    if hj[p] != hj[q]:
        return hj[p] < hj[q]
    return hs[p] < hs[q]


@numba.njit(cache=True, inline="always")
def _swap(hd, hi, hj, hs, p, q):  # pragma: no cover - compiled
    hd[p], hd[q] = hd[q], hd[p]
    hi[p], hi[q] = hi[q], hi[p]
    hj[p], hj[q] = hj[q], hj[p]
    hs[p], hs[q] = hs[q], hs[p]


@numba.njit(cache=True)
def _sift_up(hd, hi, hj, hs, p):  # pragma: no cover - compiled
    while p > 0:
        parent = (p - 1) >> 1
        if _less(hd, hi, hj, hs, p, parent):
            _swap(hd, hi, hj, hs, p, parent)
            p = parent
        else:
            break


@numba.njit(cache=True)
def _sift_down(hd, hi, hj, hs, p, n):  # pragma: no cover - compiled
    while True:
        c = 2 * p + 1
        if c >= n:
            break
        if c + 1 < n and _less(hd, hi, hj, hs, c + 1, c):
            c += 1
        if _less(hd, hi, hj, hs, c, p):
            _swap(hd, hi, hj, hs, p, c)
            p = c
        else:
            break


# ----------------------------------------------------------------------------- merging


@numba.njit(cache=True)
def _dist(i, j, e, blen, bcon, bkl, m, sums, mode, w, small, mix):  # pragma: no cover
    """Merge distance of regions i < j sharing edge e (``merge_leaves``' expression)."""
    li = blen[e]
    ci = bcon[e]
    ki = bkl[e]
    if mode == 0:
        d = 1.0 - ki / max(li, 1e-12)
    elif mode == 2:
        avg = sums[i, j] / max(m[i] * m[j], 1e-12)
        d = 1.0 - (1.0 - mix) * ki / max(li, 1e-12) - mix * avg
    else:
        d = 1.0 - sums[i, j] / max(m[i] * m[j], 1e-12)
    if w > 0:
        d = (1.0 - w) * d + w * ci / max(li, 1e-12)
    if small > 0:
        d *= min(1.0, min(m[i], m[j]) / small) ** 0.5
    if d < 0.0:
        d = 0.0
    if d > 1.0:
        d = 1.0
    return d


@numba.njit(cache=True)
def _heap_push(hd, hi, hj, hs, n, d, i, j, stamp):  # pragma: no cover - compiled
    """Push (d, i, j, stamp); returns the (possibly grown) arrays."""
    if n == hd.size:
        cap = 2 * hd.size
        hd2 = np.empty(cap)
        hi2 = np.empty(cap, dtype=np.int64)
        hj2 = np.empty(cap, dtype=np.int64)
        hs2 = np.empty(cap, dtype=np.int64)
        hd2[:n] = hd[:n]
        hi2[:n] = hi[:n]
        hj2[:n] = hj[:n]
        hs2[:n] = hs[:n]
        hd, hi, hj, hs = hd2, hi2, hj2, hs2
    hd[n] = d
    hi[n] = i
    hj[n] = j
    hs[n] = stamp
    _sift_up(hd, hi, hj, hs, n)
    return hd, hi, hj, hs


@numba.njit(cache=True)
def merge_dense(s, mass, eu, ev, blen, bcon, bkl, sums, mode, w, small, mix):  # pragma: no cover
    """Greedy merging of touching regions; see :func:`affseg.grouping.leaf_merge.merge_leaves`.

    ``eu < ev`` (E,) are the distinct touching pairs with their border length, summed
    contrast and length-weighted K_D (``blen``, ``bcon``, ``bkl``, updated in place).
    ``mode``: 0 border, 1 average, 2 mixed (``sums`` (S, S) is updated in place; unused
    and may be (1, 1) for the border linkage). Neighbours are kept in per-region lists
    (a pool of (region, edge) entries), so nothing is O(S^2) except the ``sums`` rows.
    Returns (merges (S-1, 2), heights (S-1,)).

    Examples
    --------
    A chain 0 - 1 - 2 of unit masses, border linkage (K_D 0.9 and 0.2 along the borders):

    >>> import numpy as np
    >>> eu, ev = np.array([0, 1]), np.array([1, 2])
    >>> merges, heights = merge_dense(3, np.ones(3), eu, ev, np.ones(2), np.zeros(2),
    ...                               np.array([0.9, 0.2]), np.zeros((1, 1)), 0, 0.0, 0.0, 0.5)
    >>> merges.tolist(), heights.round(6).tolist()
    ([[0, 1], [0, 2]], [0.1, 0.8])
    """
    m = mass.copy()
    n_e = eu.size
    deg = np.zeros(s, dtype=np.int64)
    for e in range(n_e):
        deg[eu[e]] += 1
        deg[ev[e]] += 1
    pool_cap = max(64, 8 * n_e + 4 * s)
    nb_id = np.empty(pool_cap, dtype=np.int64)
    nb_e = np.empty(pool_cap, dtype=np.int64)
    start = np.zeros(s, dtype=np.int64)
    cnt = np.zeros(s, dtype=np.int64)
    top = 0
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
    hd = np.empty(max(16, 4 * n_e + 16))
    hi = np.empty(hd.size, dtype=np.int64)
    hj = np.empty(hd.size, dtype=np.int64)
    hs = np.empty(hd.size, dtype=np.int64)
    n = 0
    for e in range(n_e):
        d = _dist(eu[e], ev[e], e, blen, bcon, bkl, m, sums, mode, w, small, mix)
        hd, hi, hj, hs = _heap_push(hd, hi, hj, hs, n, d, eu[e], ev[e], 0)
        n += 1
    alive = np.ones(s, dtype=np.bool_)
    live = np.arange(s)
    live_pos = np.arange(s)
    n_live = s
    mark = np.full(s, -1, dtype=np.int64)
    version = np.zeros(s, dtype=np.int64)
    n_m = max(s - 1, 0)
    merges = np.zeros((n_m, 2), dtype=np.int64)
    heights = np.zeros(n_m)
    step = 0
    while step < s - 1:
        if n == 0:  # disconnected adjacency: the two first live parts join at height 1
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
            d = hd[0]
            i = hi[0]
            j = hj[0]
            stamp = hs[0]
            n -= 1
            if n > 0:
                hd[0] = hd[n]
                hi[0] = hi[n]
                hj[0] = hj[n]
                hs[0] = hs[n]
                _sift_down(hd, hi, hj, hs, 0, n)
            if not (alive[i] and alive[j]) or stamp != version[i] + version[j]:
                continue
        merges[step, 0] = i
        merges[step, 1] = j
        heights[step] = d
        step += 1
        alive[j] = False
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
            nb_id2 = np.empty(pool_cap, dtype=np.int64)
            nb_e2 = np.empty(pool_cap, dtype=np.int64)
            nb_id2[:top] = nb_id[:top]
            nb_e2[:top] = nb_e[:top]
            nb_id, nb_e = nb_id2, nb_e2
        new_start = top
        k = 0
        for q in range(start[i], start[i] + cnt[i]):
            c = nb_id[q]
            if c == j:
                continue
            nb_id[new_start + k] = c
            nb_e[new_start + k] = nb_e[q]
            mark[c] = nb_e[q]
            k += 1
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
                nb_id[new_start + k] = c
                nb_e[new_start + k] = ejc
                mark[c] = ejc
                k += 1
                for r in range(s_c, s_c + cnt[c]):
                    if nb_id[r] == j:
                        nb_id[r] = i
                        break
        # i is no longer a neighbour of j's side: drop j from nothing else (j is dead)
        start[i] = new_start
        cnt[i] = k
        top = new_start + k
        cnt[j] = 0
        version[i] += 1
        for q in range(new_start, new_start + k):
            c = nb_id[q]
            mark[c] = -1
            lo = min(i, c)
            hi_ = max(i, c)
            d2 = _dist(lo, hi_, nb_e[q], blen, bcon, bkl, m, sums, mode, w, small, mix)
            hd, hi, hj, hs = _heap_push(hd, hi, hj, hs, n, d2, lo, hi_, version[lo] + version[hi_])
            n += 1
    return merges, heights


# ----------------------------------------------------------------------------- merge tree


@numba.njit(cache=True)
def _tree_parents(merges, s):  # pragma: no cover - compiled
    """Parent of every merge-tree node (leaves 0..S-1, merge k = node S + k; -1: root)."""
    n_m = merges.shape[0]
    parent = np.full(s + n_m, -1, dtype=np.int64)
    node = np.arange(s)
    for k in range(n_m):
        i = merges[k, 0]
        j = merges[k, 1]
        parent[node[i]] = s + k
        parent[node[j]] = s + k
        node[i] = s + k
    return parent


@numba.njit(cache=True)
def _pair_height(la, lb, parent, hts, s, keys, vals):  # pragma: no cover - compiled
    """Height at which leaves la != lb join (1 if never), memoised in a hash table."""
    lo = min(la, lb)
    hi = max(la, lb)
    key = lo * s + hi
    mask = keys.size - 1
    slot = (key * 0x9E3779B1) & mask
    while keys[slot] >= 0:
        if keys[slot] == key:
            return vals[slot]
        slot = (slot + 1) & mask
    u = la
    v = lb
    while u != v and u >= 0 and v >= 0:  # parents have larger ids than their children
        if u < v:
            u = parent[u]
        else:
            v = parent[v]
    h = hts[u - s] if (u == v and u >= s) else 1.0
    keys[slot] = key
    vals[slot] = h
    return h


@numba.njit(cache=True)
def tree_ucm(leaf, merges, hts, s):  # pragma: no cover - compiled
    """BSDS UCM (2H+1, 2W+1) of a merge tree over leaves (0-based ``leaf``).

    The values of :func:`affseg.grouping.leaf_ucm.leaf_pair_ucm` with the cophenetic heights:
    every border between two leaves gets the height at which they join, corners the
    maximum of their incident borders, and borders reaching the image border continue
    into the frame.

    Examples
    --------
    >>> import numpy as np
    >>> leaf, merges = np.array([[0, 1]]), np.array([[0, 1]])
    >>> tree_ucm(leaf, merges, np.array([0.5]), 2)[1].tolist()
    [0.0, 0.0, 0.5, 0.0, 0.0]
    """
    parent = _tree_parents(merges, s)
    hh, ww = leaf.shape
    size = 1
    while size < 4 * (4 * s + 16):
        size *= 2
    keys = np.full(size, -1, dtype=np.int64)
    vals = np.zeros(size)
    ucm = np.zeros((2 * hh + 1, 2 * ww + 1))
    for y in range(hh):
        for x in range(ww - 1):
            la = leaf[y, x]
            lb = leaf[y, x + 1]
            if la != lb:
                ucm[2 * y + 1, 2 * x + 2] = _pair_height(la, lb, parent, hts, s, keys, vals)
    for y in range(hh - 1):
        for x in range(ww):
            la = leaf[y, x]
            lb = leaf[y + 1, x]
            if la != lb:
                ucm[2 * y + 2, 2 * x + 1] = _pair_height(la, lb, parent, hts, s, keys, vals)
    for y in range(hh - 1):
        for x in range(ww - 1):
            cy = 2 * y + 2
            cx = 2 * x + 2
            ucm[cy, cx] = max(
                max(ucm[cy - 1, cx], ucm[cy + 1, cx]), max(ucm[cy, cx - 1], ucm[cy, cx + 1])
            )
    for x in range(ww - 1):
        ucm[0, 2 * x + 2] = ucm[1, 2 * x + 2]
        ucm[2 * hh, 2 * x + 2] = ucm[2 * hh - 1, 2 * x + 2]
    for y in range(hh - 1):
        ucm[2 * y + 2, 0] = ucm[2 * y + 2, 1]
        ucm[2 * y + 2, 2 * ww] = ucm[2 * y + 2, 2 * ww - 1]
    return ucm


@numba.njit(cache=True)
def level_luts(merges, steps, s):  # pragma: no cover - compiled
    """(len(steps), S) labels 1..K of every leaf after each step count (as np.unique).

    Examples
    --------
    >>> import numpy as np
    >>> merges = np.array([[0, 1], [0, 2]])
    >>> level_luts(merges, np.array([0, 1, 2]), 3).tolist()
    [[1, 2, 3], [1, 1, 2], [1, 1, 1]]
    """
    owner = np.arange(s)
    luts = np.empty((steps.size, s), dtype=np.int32)
    present = np.zeros(s, dtype=np.int64)
    done = 0
    for q in range(steps.size):
        k = steps[q]
        for r in range(done, k):
            i = merges[r, 0]
            j = merges[r, 1]
            for c in range(s):
                if owner[c] == j:
                    owner[c] = i
        done = k
        present[:] = 0
        for c in range(s):
            present[owner[c]] = 1
        rank = np.cumsum(present)
        for c in range(s):
            luts[q, c] = rank[owner[c]]
    return luts
