"""Compiled loops of the leaf grouping against independent Python / SciPy versions.

The references below are the heapq merge, the cophenetic-matrix UCM and the SciPy products
that the compiled kernels replaced (``affseg.grouping.leaf_kernels``); the compiled ones
must give the same merges, heights, levels and UCM values.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest
import scipy.sparse as sp

from affseg.grouping import leaf_kernels as lk
from affseg.grouping.leaf_merge import merge_leaves
from affseg.grouping.leaf_statistics import leaf_node_weights, leaf_rows
from affseg.grouping.leaf_ucm import leaf_pair_ucm, merge_tree_ucm
from affseg.grouping.ucm import BSDS_THRESHOLDS


def _ref_merge(sums, mass, a, b, pair_k, ln, cn, w, linkage, small, mix):
    """The heapq / dict merge (independent reference for ``merge_leaves``)."""
    m = np.asarray(mass, dtype=np.float64).copy()
    s = m.size
    dense = linkage != "border"
    sums = None if sums is None else np.array(sums, dtype=np.float64)
    nbr: list[dict[int, list[float]]] = [{} for _ in range(s)]
    kl = np.asarray(pair_k) * ln
    for i, j, li, ci, ki in zip(
        a.tolist(), b.tolist(), ln.tolist(), cn.tolist(), kl.tolist(), strict=True
    ):
        if i == j:
            continue
        if j in nbr[i]:
            e = nbr[i][j]
            e[0] += li
            e[1] += ci
            e[2] += ki
        else:
            nbr[i][j] = nbr[j][i] = [li, ci, ki]

    def dist(i: int, j: int) -> float:
        li, ci, ki = nbr[i][j]
        if linkage == "border":
            d = 1.0 - ki / max(li, 1e-12)
        elif linkage == "mixed":
            avg = sums[i, j] / max(m[i] * m[j], 1e-12)
            d = 1.0 - (1.0 - mix) * ki / max(li, 1e-12) - mix * avg
        else:
            d = 1.0 - sums[i, j] / max(m[i] * m[j], 1e-12)
        if w > 0:
            d = (1.0 - w) * d + w * ci / max(li, 1e-12)
        if small > 0:
            d *= min(1.0, min(m[i], m[j]) / small) ** 0.5
        return min(max(d, 0.0), 1.0)

    heap = [(dist(i, j), i, j, 0) for i in range(s) for j in nbr[i] if i < j]
    heapq.heapify(heap)
    alive = np.ones(s, dtype=bool)
    version = np.zeros(s, dtype=np.int64)
    merges, heights = [], []
    while len(merges) < s - 1:
        if not heap:
            i, j = np.flatnonzero(alive)[:2].tolist()
            d = 1.0
            nbr[i][j] = nbr[j][i] = [1.0, 0.0, 0.0]
        else:
            d, i, j, stamp = heapq.heappop(heap)
            if not (alive[i] and alive[j]) or stamp != version[i] + version[j]:
                continue
        merges.append((i, j))
        heights.append(d)
        alive[j] = False
        if dense:
            sums[i] += sums[j]
            sums[:, i] += sums[:, j]
        m[i] += m[j]
        nbr[i].pop(j, None)
        nbr[j].pop(i, None)
        for c, ec in nbr[j].items():
            nbr[c].pop(j, None)
            if c in nbr[i]:
                ei = nbr[i][c]
                ei[0] += ec[0]
                ei[1] += ec[1]
                ei[2] += ec[2]
            else:
                nbr[i][c] = ec
            nbr[c][i] = nbr[i][c]
        nbr[j] = {}
        version[i] += 1
        for c in nbr[i]:
            lo, hi = min(i, c), max(i, c)
            heapq.heappush(heap, (dist(lo, hi), lo, hi, int(version[lo] + version[hi])))
    h = np.asarray(heights)
    return np.asarray(merges, dtype=np.int64).reshape(-1, 2), np.maximum.accumulate(h)


def _random_leaves(rng: np.random.Generator, shape=(24, 31), n=40) -> np.ndarray:
    """Voronoi cells of random seeds (4-connected), labels 1..S."""
    ys, xs = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = (yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2
    lab = d.argmin(-1)
    from affseg.grouping.region_merging import connected_cleanup

    return connected_cleanup(lab)


def _pairs(leaves: np.ndarray):
    from affseg.grouping.region_merging import neighbour_pairs

    pa, pb = neighbour_pairs(leaves)
    cut = pa != pb
    return pa[cut] - 1, pb[cut] - 1


@pytest.mark.parametrize("linkage", ["border", "average", "mixed"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_equals_the_heapq_reference(linkage: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = 60
    # a random planar-ish graph with repeated pairs (both orders) and two components
    a = rng.integers(0, s // 2, 200)
    b = rng.integers(0, s // 2, 200)
    a = np.concatenate([a, rng.integers(s // 2, s, 150)])
    b = np.concatenate([b, rng.integers(s // 2, s, 150)])
    g = rng.random((s, s))
    sums = (g + g.T) * 50  # symmetric
    mass = rng.integers(1, 30, s).astype(float)
    pair_k = rng.random(a.size)
    ln = rng.integers(1, 9, a.size).astype(float)
    cn = rng.random(a.size) * ln
    # quantised K values make exact ties in the distances (tie-break by indices)
    pair_k = np.round(pair_k * 4) / 4
    for w, small in ((0.0, 0.0), (0.2, 40.0)):
        got = merge_leaves(
            sums,
            mass,
            a,
            b,
            pair_k=pair_k,
            length=ln,
            contrast=cn,
            boundary_weight=w,
            linkage=linkage,
            small=small,
            mix=0.3,
        )
        ref = _ref_merge(sums, mass, a, b, pair_k, ln, cn, w, linkage, small, 0.3)
        assert np.array_equal(got[0], ref[0])
        assert np.array_equal(got[1], ref[1])


def test_merge_leaves_copies_the_sums_unless_told() -> None:
    rng = np.random.default_rng(3)
    sums = rng.random((5, 5))
    sums = sums + sums.T
    keep = sums.copy()
    a, b = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    merge_leaves(sums, np.ones(5), a, b, linkage="average")
    assert np.array_equal(sums, keep)
    merge_leaves(sums, np.ones(5), a, b, linkage="average", overwrite_sums=True)
    assert not np.array_equal(sums, keep)


def _ref_tree_ucm(leaves, merges, heights, keep_last=40, default_height=0.5):
    lab = np.asarray(leaves, dtype=np.int64)
    s = int(lab.max())
    hts = np.clip(heights, 0.0, 1.0) + 1e-9 * np.arange(1, heights.size + 1)
    coph = np.ones((s, s))
    members = [[k] for k in range(s)]
    for (i, j), h in zip(merges.tolist(), hts.tolist(), strict=True):
        coph[np.ix_(members[i], members[j])] = h
        coph[np.ix_(members[j], members[i])] = h
        members[i].extend(members[j])
        members[j] = []
    np.fill_diagonal(coph, 0.0)
    ucm = leaf_pair_ucm(lab, coph)
    n = hts.size
    steps = set(np.searchsorted(hts, BSDS_THRESHOLDS, side="right").tolist())
    steps |= set(range(max(n - keep_last, 0), n + 1)) | {0}
    owner = np.arange(s)
    levels, done = [], 0
    for k in sorted(steps):
        for i, j in merges[done:k].tolist():
            owner[owner == j] = i
        done = k
        _, inv = np.unique(owner, return_inverse=True)
        levels.append(np.concatenate([[0], inv + 1]).astype(np.int32)[lab])
    return ucm, levels


@pytest.mark.parametrize("seed", [0, 1])
def test_merge_tree_ucm_equals_the_cophenetic_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    leaves = _random_leaves(rng)
    s = int(leaves.max())
    a, b = _pairs(leaves)
    mass = np.bincount(leaves.ravel())[1:].astype(float)
    pair_k = np.round(rng.random(a.size) * 5) / 5
    merges, heights = merge_leaves(None, mass, a, b, pair_k=pair_k, linkage="border")
    assert merges.shape == (s - 1, 2)
    hier = merge_tree_ucm(leaves, merges, heights, keep_last=10)
    ucm, levels = _ref_tree_ucm(leaves, merges, heights, keep_last=10)
    assert np.array_equal(hier.ucm2, ucm)
    assert len(hier.levels) == len(levels)
    assert all(np.array_equal(x, y) for x, y in zip(hier.levels, levels, strict=True))


def test_products_equal_scipy() -> None:
    rng = np.random.default_rng(4)
    leaves = _random_leaves(rng, (40, 56), 30)
    grid = (5, 7)
    mt = leaf_rows(leaves, grid)
    m = leaf_node_weights(leaves, grid)
    # the bilinear weights, built independently as a dense matrix
    hh, ww = leaves.shape
    dense = np.zeros((grid[0] * grid[1], int(leaves.max())))
    for y in range(hh):
        fy = min(max((y + 0.5) * grid[0] / hh - 0.5, 0), grid[0] - 1)
        y0 = int(np.floor(fy))
        y1 = min(y0 + 1, grid[0] - 1)
        for x in range(ww):
            fx = min(max((x + 0.5) * grid[1] / ww - 0.5, 0), grid[1] - 1)
            x0 = int(np.floor(fx))
            x1 = min(x0 + 1, grid[1] - 1)
            lf = leaves[y, x] - 1
            for yi, wy in ((y0, 1 - (fy - y0)), (y1, fy - y0)):
                for xi, wx in ((x0, 1 - (fx - x0)), (x1, fx - x0)):
                    dense[yi * grid[1] + xi, lf] += wy * wx
    np.testing.assert_allclose(mt.toarray(), dense.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.toarray(), dense, rtol=0, atol=1e-12)
    assert isinstance(m, sp.csr_matrix)
    k = rng.random((35, 35)).astype(np.float32)
    k = (k + k.T) / 2
    km = lk.rows_times_dense(mt.indptr, mt.indices, mt.data, k)
    assert np.array_equal(km, np.asarray(mt @ k.astype(np.float64)))
    gram = lk.gram_rows(mt.indptr, mt.indices, mt.data, km)
    np.testing.assert_allclose(gram, dense.T @ k.astype(np.float64) @ dense, rtol=1e-12)
    assert np.array_equal(gram, gram.T)
    assert np.array_equal(lk.gram_of_kernel(mt.indptr, mt.indices, mt.data, k), gram)


def test_sobel_magnitude_equals_skimage() -> None:
    from skimage.filters import sobel

    rng = np.random.default_rng(6)
    for shape in ((17, 23, 3), (5, 4, 3), (2, 9, 3)):
        img = rng.random(shape) * 100
        ref = np.sqrt(sum(sobel(img[..., k]) ** 2 for k in range(3)))
        assert np.array_equal(lk.sobel_magnitude(img), ref)
