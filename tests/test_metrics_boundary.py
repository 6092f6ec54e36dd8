"""The BSDS boundary benchmark: matcher, counts, ODS / OIS / AP, and the official BSR demo."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from affseg.data.paths import data_root
from affseg.errors import InputError
from affseg.metrics.boundary import (
    BoundaryBenchmark,
    _assign,
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
