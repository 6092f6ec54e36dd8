"""The BSDS boundary benchmark: matcher, counts, ODS / OIS / AP, and the official BSR demo."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from affseg.data.paths import data_root
from affseg.errors import InputError
from affseg.metrics import boundary
from affseg.metrics._boundary_match import _lapjvsp_rect
from affseg.metrics.boundary import (
    MAX_DIST,
    BoundaryBenchmark,
    _assign,
    _Target,
    bsr_thresholds,
    correspond_pixels,
    max_f,
    seg_to_boundaries,
    thin,
)

_DEMO_IDS = ("2018", "3063", "5096", "6046", "8068")


@pytest.fixture(scope="module")
def demo_dir() -> Path:
    path = data_root() / "BSR_bench_demo"
    if not (path / "test_1" / "eval_bdry.txt").is_file():
        pytest.skip(f"BSR_bench_demo not available at {path}")
    return path


def test_thresholds_are_bsr_linspace():
    np.testing.assert_allclose(bsr_thresholds(5), [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    np.testing.assert_allclose(bsr_thresholds(99), np.linspace(0.01, 0.99, 99))


def test_seg_to_boundaries_two_regions():
    seg = np.ones((4, 6), dtype=int)
    seg[:, 3:] = 2
    b = seg_to_boundaries(seg)
    # the corner below-right of column 2 sees the vertical edge; the last row repeats it
    assert b[:, 2].all() and b.sum() == 4


def test_correspond_identical_and_shifted():
    a = np.zeros((40, 40), dtype=bool)
    a[20, 5:35] = True
    m1, m2 = correspond_pixels(a, a)
    assert m1.sum() == m2.sum() == 30
    far = np.roll(a, 1, axis=0)  # one pixel away, beyond 0.0075 * diagonal = 0.42 px
    m1, _ = correspond_pixels(a, far)
    assert m1.sum() == 0
    m1, _ = correspond_pixels(a, far, max_dist=0.05)  # 2.8 px: every pixel matches
    assert m1.sum() == 30


def _brute_force(edges: list[tuple[int, int, int]], outlier: float) -> float:
    best = 0.0
    for k in range(1, len(edges) + 1):
        for sub in itertools.combinations(edges, k):
            if len({e[0] for e in sub}) == k and len({e[1] for e in sub}) == k:
                best = min(best, sum(e[2] for e in sub) - outlier * k)
    return best


def test_assignment_is_exact_on_small_graphs():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n_e = int(rng.integers(1, 9))
        i = rng.integers(0, 4, n_e)
        j = rng.integers(0, 4, n_e)
        pairs = sorted(set(zip(i.tolist(), j.tolist(), strict=True)))
        c = rng.integers(0, 5, len(pairs)).astype(float) * 100
        outlier = float(rng.choice([150.0, 1000.0]))
        edges = [(a, b, w) for (a, b), w in zip(pairs, c.tolist(), strict=True)]
        ii = np.array([e[0] for e in edges])
        jj = np.array([e[1] for e in edges])
        mi, mj = _assign(ii, jj, c, 4, outlier)
        assert len(set(mi.tolist())) == mi.size and len(set(mj.tolist())) == mj.size
        cost = {(a, b): w for a, b, w in edges}
        got = sum(cost[(a, b)] for a, b in zip(mi.tolist(), mj.tolist(), strict=True))
        assert got - outlier * mi.size == pytest.approx(_brute_force(edges, outlier))


def test_max_f_interpolates_between_thresholds():
    t, r, p, f = max_f(np.array([0.1, 0.2]), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert f == pytest.approx(0.5, abs=1e-3) and 0.1 < t < 0.2


def test_streaming_merge_and_inputs():
    rng = np.random.default_rng(1)
    gt = np.ones((30, 40), dtype=int)
    gt[:, 20:] = 2
    gt[15:, :] += 2
    pb = np.zeros((30, 40))
    pb[:, 19] = 0.8
    pb[14, :] = 0.3
    pb += rng.uniform(0, 0.05, pb.shape)
    whole = BoundaryBenchmark(5)
    a, b = BoundaryBenchmark(5), BoundaryBenchmark(5)
    for k in range(4):
        whole.update(pb, [gt], f"im{k}")
        (a if k < 2 else b).update(pb, [gt], f"im{k}")
    merged = BoundaryBenchmark(5).merge(a).merge(b.state())
    assert merged.compute()["ods"] == whole.compute()["ods"]
    res = whole.compute()
    assert 0.9 < res["ois"] <= 1.0 and res["images"] == 4
    # a list of segmentations scores one "threshold" per segmentation, 1-based
    seg = BoundaryBenchmark(5).update([gt, gt, gt, gt, np.ones_like(gt)], [gt])
    assert seg["axis"].tolist() == [1, 2, 3, 4, 5]
    assert seg["recall"][0] == 1.0 and seg["precision"][0] == 1.0 and seg["recall"][4] == 0
    with pytest.raises(InputError):
        BoundaryBenchmark(5).update(np.zeros((3, 3)), [gt])
    with pytest.raises(InputError):
        BoundaryBenchmark(5).compute()


def _demo_gts(demo_dir: Path, image_id: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import scipy.io

    cell = scipy.io.loadmat(demo_dir / "groundTruth" / f"{image_id}.mat")["groundTruth"]
    segs = [cell.flat[k]["Segmentation"][0, 0] for k in range(cell.size)]
    bdry = [cell.flat[k]["Boundaries"][0, 0].astype(bool) for k in range(cell.size)]
    return segs, bdry


def test_gt_boundaries_are_thinned_seg2bdry(demo_dir):
    for image_id in _DEMO_IDS:
        segs, bdry = _demo_gts(demo_dir, image_id)
        for s, b in zip(segs, bdry, strict=True):
            np.testing.assert_array_equal(thin(seg_to_boundaries(s)), b)


@pytest.mark.parametrize("test,kind", [("test_1", "ucm2"), ("test_2", "png"), ("test_3", "segs")])
def test_bsr_demo(demo_dir, test, kind):
    """ODS / OIS / AP and the pooled PR curve match the official outputs to 1e-3."""
    import scipy.io
    from PIL import Image

    bench = BoundaryBenchmark(5)
    for image_id in _DEMO_IDS:
        if kind == "ucm2":
            inp = scipy.io.loadmat(demo_dir / "ucm2" / f"{image_id}.mat")["ucm2"]
        elif kind == "png":
            inp = np.asarray(Image.open(demo_dir / "png" / f"{image_id}.png"))
        else:
            cell = scipy.io.loadmat(demo_dir / "segs" / f"{image_id}.mat")["segs"]
            inp = [cell.flat[k] for k in range(cell.size)]
        segs, _ = _demo_gts(demo_dir, image_id)
        bench.update(inp, segs, image_id)
    res = bench.compute()
    ref = np.loadtxt(demo_dir / test / "eval_bdry.txt")
    got = [res[k] for k in ("ods_threshold", "ods_recall", "ods_precision", "ods")]
    got += [res[k] for k in ("ois_recall", "ois_precision", "ois", "ap")]
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)
    thr = np.loadtxt(demo_dir / test / "eval_bdry_thr.txt")
    curve = res["pr_curve"]
    np.testing.assert_allclose(
        np.c_[curve["threshold"], curve["recall"], curve["precision"], curve["f"]],
        thr,
        atol=1e-3,
        rtol=0,
    )


# ---------------------------------------------------------------- fast path vs reference
def _reference_counts(maps: list[np.ndarray], gts: list[np.ndarray]) -> np.ndarray:
    """The straightforward BSR counts: every map on its own, scikit-image's thinning,
    candidate pairs by :meth:`_Target.edges`, scipy's LAPJVsp (:func:`_assign`).

    Returns (T, 4): cntR, sumR, cntP, sumP.
    """
    from skimage.morphology import thin as sk_thin

    md = MAX_DIST * float(np.hypot(*gts[0].shape))
    outlier = float(np.ceil(100 * md * 100))
    targets = [_Target(g, md) for g in gts]
    rows = []
    for m in maps:
        b = sk_thin(m) if m.any() else m
        y, x = np.nonzero(b)
        acc = np.zeros(y.size, dtype=bool)
        cnt_r = 0
        for t in targets:
            i, j, c = t.edges(y, x)
            if i.size:
                mi, _ = _assign(i, j, c, y.size, outlier)
                cnt_r += mi.size
                acc[mi] = True
        rows.append((cnt_r, sum(t.n for t in targets), int(acc.sum()), y.size))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def _counts(stats: dict) -> np.ndarray:
    return np.stack([stats[k] for k in ("cntR", "sumR", "cntP", "sumP")], 1)


def _wobbly_map(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """n random polylines, jittered by a pixel: parallel strands, crossings, junctions."""
    b = np.zeros(shape, dtype=bool)
    for _ in range(n):
        p0, p1 = rng.uniform(0, 1, 2) * shape, rng.uniform(0, 1, 2) * shape
        t = np.linspace(0, 1, 4 * max(shape))
        pts = p0[None] * (1 - t[:, None]) + p1[None] * t[:, None]
        pts += rng.integers(-1, 2, pts.shape) * (rng.uniform() < 0.5)
        yy = np.clip(np.rint(pts[:, 0]), 0, shape[0] - 1).astype(int)
        xx = np.clip(np.rint(pts[:, 1]), 0, shape[1] - 1).astype(int)
        b[yy, xx] = True
    return b


def test_lapjvsp_port_equals_scipy_on_tied_graphs():
    """The compiled solver returns scipy's very assignment (ties included)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    rng = np.random.default_rng(3)
    for _ in range(400):
        nr, nreal = int(rng.integers(1, 25)), int(rng.integers(1, 30))
        m = rng.random((nr, nreal)) < rng.uniform(0.05, 0.5)
        w = rng.choice([1.0, 101.0, 142.0, 201.0, 225.0], size=m.shape)  # many ties
        r, c = np.nonzero(m)
        out = float(rng.choice([150.0, 400.0, 1000.0]))
        rows = np.r_[r, np.arange(nr)]
        cols = np.r_[c, nreal + np.arange(nr)]
        g = csr_matrix((np.r_[w[r, c], np.full(nr, out)], (rows, cols)), shape=(nr, nreal + nr))
        _, ref = min_weight_full_bipartite_matching(g)
        g.sort_indices()
        got = _lapjvsp_rect(
            g.indptr.astype(np.int64), g.indices.astype(np.int64), g.data, nr, nreal + nr
        )
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("n_machine,n_gt", [(3, 6), (8, 2), (5, 5)])
def test_fast_match_equals_reference_pairs(n_machine, n_gt):
    """Same matched pairs as candidate pairs + scipy, machine side smaller or larger."""
    rng = np.random.default_rng(n_machine * 10 + n_gt)
    shape = (90, 130)
    md = MAX_DIST * float(np.hypot(*shape)) * 2.5  # wider tolerance: bigger, tied graphs
    outlier = float(np.ceil(100 * md * 100))
    for _ in range(4):
        a = _wobbly_map(rng, shape, n_machine)
        target = _Target(_wobbly_map(rng, shape, n_gt), md)
        y, x = np.nonzero(a)
        i, j, c = target.edges(y, x)
        assert i.size > 100
        ref_i, ref_j = _assign(i, j, c, y.size, outlier)
        got_i, got_j = target.match(y, x, outlier)
        o1, o2 = np.argsort(ref_i), np.argsort(got_i)
        np.testing.assert_array_equal(got_i[o2], ref_i[o1])
        np.testing.assert_array_equal(got_j[o2], ref_j[o1])


def test_thin_equals_scikit_image():
    from skimage.morphology import thin as sk_thin

    rng = np.random.default_rng(4)
    for _ in range(100):
        h, w = rng.integers(1, 30, 2)
        b = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        np.testing.assert_array_equal(thin(b), sk_thin(b))
    thick = np.zeros((40, 60), dtype=bool)
    thick[5:20, 3:50] = True  # a thick bar: many iterations
    thick[18:38, 30:36] = True
    np.testing.assert_array_equal(thin(thick), sk_thin(thick))


def test_coinciding_thresholds_are_scored_once(monkeypatch):
    """A UCM with 3 distinct values: 99 thresholds, 4 distinct maps (the last one empty),
    each matched once, with the counts of every threshold computed on its own."""
    gt = np.ones((40, 60), dtype=int)
    gt[:, 25:] = 2
    gt[22:, :] += 2
    gt[5:12, 40:50] = 9
    h, w = gt.shape
    ucm2 = np.zeros((2 * h + 1, 2 * w + 1))
    pb = np.zeros((h, w))
    pb[:, 24] = 0.2  # weak vertical contour
    pb[21, :] = 0.5  # medium horizontal one (0.5 is also a threshold)
    pb[6:11, 39] = 0.9  # a strong stub
    pb[21, 24] = 0.9
    ucm2[2::2, 2::2] = pb
    calls = []
    real = boundary._count_matches

    def spy(b1, targets, md):
        calls.append(int(b1.sum()))
        return real(b1, targets, md)

    monkeypatch.setattr(boundary, "_count_matches", spy)
    stats = BoundaryBenchmark(99).score(ucm2, [gt])
    assert len(calls) == 4 and calls[-1] == 0
    thr = bsr_thresholds(99)
    gts = [thin(seg_to_boundaries(gt))]
    ref = _reference_counts([pb >= t for t in thr], gts)
    np.testing.assert_array_equal(_counts(stats), ref)
    assert len({tuple(r) for r in ref.tolist()}) == 4


def test_fast_path_equals_reference_on_demo(demo_dir):
    """The benchmark's counts equal the straightforward per-threshold computation exactly
    on real hierarchies (BSR demo ucm2, 5 thresholds)."""
    import scipy.io

    for image_id in _DEMO_IDS[:3]:
        ucm2 = scipy.io.loadmat(demo_dir / "ucm2" / f"{image_id}.mat")["ucm2"]
        segs, bdry = _demo_gts(demo_dir, image_id)
        stats = BoundaryBenchmark(5).score(ucm2, segs)
        pb = ucm2[2::2, 2::2]
        ref = _reference_counts([pb >= t for t in bsr_thresholds(5)], bdry)
        np.testing.assert_array_equal(_counts(stats), ref)
