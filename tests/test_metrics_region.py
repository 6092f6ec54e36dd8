"""Region benchmark: exact values against brute-force definitions, BSR conventions, gPb val."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.io

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.ucm import BSDS_THRESHOLDS, levels_to_ucm, ucm_nested_labels, ucm_to_labels
from affseg.metrics import RegionBenchmark

# ----------------------------------------------------------------- brute-force references


def _bf_covering_terms(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per GT region (sorted labels): best IoU with any segment, by explicit masks."""
    out = []
    for b in np.unique(gt):
        rb = gt == b
        out.append(max((rb & (seg == a)).sum() / (rb | (seg == a)).sum() for a in np.unique(seg)))
    return np.asarray(out)


def _bf_rand(seg: np.ndarray, gt: np.ndarray) -> float:
    s, g = seg.ravel(), gt.ravel()
    agree = [(s[i] == s[j]) == (g[i] == g[j]) for i, j in itertools.combinations(range(s.size), 2)]
    return float(np.mean(agree))


def _entropy(labels: np.ndarray) -> float:
    _, c = np.unique(labels, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def _bf_vi(seg: np.ndarray, gt: np.ndarray) -> float:
    joint = seg.ravel().astype(np.int64) * 1000 + gt.ravel()
    # VI = 2 H(S, G) - H(S) - H(G)
    return 2 * _entropy(joint) - _entropy(seg) - _entropy(gt)


def _bf_hungarian(seg: np.ndarray, gt: np.ndarray) -> float:
    a, b = np.unique(seg), np.unique(gt)
    n = max(a.size, b.size)
    best = 0
    for perm in itertools.permutations(range(n)):
        hit = sum(
            ((seg == a[i]) & (gt == b[perm[i]])).sum() for i in range(a.size) if perm[i] < b.size
        )
        best = max(best, hit)
    return best / seg.size


def _bf_image(levels: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, np.ndarray]:
    n = gts[0].size
    cnt = np.array(
        [
            sum((_bf_covering_terms(s, g) * np.unique(g, return_counts=True)[1]).sum() for g in gts)
            for s in levels
        ]
    )
    best = sum(
        (
            np.max([_bf_covering_terms(s, g) for s in levels], axis=0)
            * np.unique(g, return_counts=True)[1]
        ).sum()
        for g in gts
    )
    return {
        "cntR": cnt,
        "sumR": len(gts) * n,
        "best_cntR": best,
        "pri": np.array([np.mean([_bf_rand(s, g) for g in gts]) for s in levels]),
        "vi": np.array([np.mean([_bf_vi(s, g) for g in gts]) for s in levels]),
        "pixel_accuracy": np.array([np.mean([_bf_hungarian(s, g) for g in gts]) for s in levels]),
    }


def _random_nested(rng: np.random.Generator, shape: tuple[int, int], n_levels: int) -> list:
    """Nested label maps fine -> coarse by merging random labels."""
    lab = rng.integers(0, 6, size=shape)
    levels = [lab]
    for _ in range(n_levels - 1):
        lut = rng.integers(0, max(1, lab.max()), size=lab.max() + 1)
        lab = lut[lab]
        levels.append(lab)
    return levels


# ----------------------------------------------------------------- per-image exactness


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_map_list_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (5, 6)
    levels = [rng.integers(0, k, size=shape) for k in (5, 3, 4, 1)]  # not nested
    gts = [rng.integers(1, 4, size=shape), rng.integers(3, 6, size=shape) * 7]
    stats = RegionBenchmark().update(levels, gts)
    ref = _bf_image(levels, gts)
    np.testing.assert_allclose(stats["cntR"], ref["cntR"], rtol=1e-12)
    assert stats["sumR"] == ref["sumR"]
    np.testing.assert_allclose(stats["best_cntR"], ref["best_cntR"], rtol=1e-12)
    np.testing.assert_allclose(stats["pri"], ref["pri"], rtol=1e-12)
    np.testing.assert_allclose(stats["vi"], ref["vi"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["pixel_accuracy"], ref["pixel_accuracy"], rtol=1e-12)
    assert stats["covering_ois"] == pytest.approx(ref["cntR"].max() / ref["sumR"])
    assert stats["pri_ois"] == pytest.approx(ref["pri"].max())
    assert stats["vi_ois"] == pytest.approx(ref["vi"].min())


def test_pri_formula_of_reference_notes() -> None:
    """PRI = 1 - (sum n_u^2/2 + sum n_v^2/2 - sum n_uv^2) / C(N, 2) (REFERENCE_NOTES 5)."""
    seg = np.array([[0, 0, 1], [1, 2, 2]])
    gt = np.array([[5, 5, 5], [6, 6, 6]])
    table = np.array([[2, 0], [1, 1], [0, 2]])
    n = 6
    want = 1 - (
        (table.sum(1) ** 2).sum() / 2 + (table.sum(0) ** 2).sum() / 2 - (table**2).sum()
    ) / (n * (n - 1) / 2)
    got = RegionBenchmark().update(seg, [gt])["pri"][0]
    assert got == pytest.approx(want) and got == pytest.approx(_bf_rand(seg, gt))


def test_identical_segmentation_is_perfect() -> None:
    gt = np.repeat(np.arange(4), 5).reshape(4, 5)
    s = RegionBenchmark().update(gt + 10, [gt])
    assert s["covering"][0] == 1.0 and s["pri"][0] == 1.0
    assert s["vi"][0] == pytest.approx(0.0, abs=1e-12) and s["pixel_accuracy"][0] == 1.0


@pytest.mark.parametrize("seed", [3, 4])
def test_ucm_scores_equal_per_threshold_labelling(seed: int) -> None:
    """UCM path (nested, union-find) = labelling every threshold and scoring the list."""
    rng = np.random.default_rng(seed)
    levels = _random_nested(rng, (6, 7), 4)
    ucm = levels_to_ucm(levels, np.array([0.0, 0.2, 0.5, 0.8]))
    gts = [rng.integers(0, 3, size=(6, 7)), rng.integers(0, 5, size=(6, 7))]
    thr = np.array([0.1, 0.3, 0.3, 0.6, 0.9, 1.0])
    fast = RegionBenchmark(thr).update(ucm, gts)
    per_t = [ucm_to_labels(ucm, t) for t in thr]
    slow = RegionBenchmark().update(per_t, gts)
    for key in ("cntR", "pri", "vi", "pixel_accuracy", "n_segments"):
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-12)
    assert fast["best_cntR"] == pytest.approx(slow["best_cntR"])
    # a Hierarchy is scored as its UCM
    hier = RegionBenchmark(thr).update(Hierarchy(levels, np.array([0.0, 0.2, 0.5, 0.8])), gts)
    np.testing.assert_allclose(hier["cntR"], fast["cntR"])


@pytest.mark.parametrize("seed", range(4))
def test_nested_labels_match_ucm_to_labels_on_arbitrary_maps(seed: int) -> None:
    """Union-find labelling = scipy 8-connected labelling at every threshold, for any map."""
    rng = np.random.default_rng(seed)
    u = rng.random((2 * 7 + 1, 2 * 9 + 1)) ** 3
    u[1::2, 1::2] = 0.0
    if seed == 3:  # pixels above some thresholds: the slow path
        u[3, 5] = 0.4
    thr = np.linspace(0.05, 0.95, 19)
    fine, parents, counts = ucm_nested_labels(u, thr)
    for k, t in enumerate(thr):
        want = ucm_to_labels(u, t)
        got = parents[k][fine]
        pairs = np.unique(np.stack([want.ravel(), got.ravel()]), axis=1)
        assert pairs.shape[1] == np.unique(want).size == np.unique(got).size == counts[k]


def test_chunked_and_sparse_paths_agree(monkeypatch) -> None:
    """Splitting levels into chunks and sparse counting change nothing."""
    import affseg.metrics.region as region

    rng = np.random.default_rng(11)
    levels = [rng.integers(0, k, size=(8, 9)) for k in (7, 5, 9, 2, 3)]
    gts = [rng.integers(0, 4, size=(8, 9)), rng.integers(0, 6, size=(8, 9))]
    whole = RegionBenchmark().update(levels, gts)
    monkeypatch.setattr(region, "_DENSE_LIMIT", 8)
    split = RegionBenchmark().update(levels, gts)
    for key in ("cntR", "pri", "vi", "pixel_accuracy"):
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-12)
    assert split["best_cntR"] == pytest.approx(whole["best_cntR"])


# ----------------------------------------------------------------- dataset conventions


def test_ods_ois_best_conventions() -> None:
    """ODS pools counts at one threshold, OIS each image at its best (last argmax)."""
    rng = np.random.default_rng(7)
    bench = RegionBenchmark()
    imgs = []
    for i in range(3):
        shape = (4 + i, 5)
        levels = [rng.integers(0, 4, size=shape) for _ in range(3)]
        gts = [rng.integers(0, 3, size=shape) for _ in range(2 + i)]
        imgs.append(_bf_image(levels, gts))
        bench.update(levels, gts, image_id=f"im{i}")
    res = bench.compute()
    cnt = sum(s["cntR"] for s in imgs)
    sum_r = sum(s["sumR"] for s in imgs)
    assert res["covering"]["ods"] == pytest.approx((cnt / sum_r).max())
    assert res["covering"]["ods_threshold"] == len(cnt) - 1 - np.argmax((cnt / sum_r)[::-1])
    assert res["covering"]["ois"] == pytest.approx(sum(s["cntR"].max() for s in imgs) / sum_r)
    assert res["covering"]["best"] == pytest.approx(sum(s["best_cntR"] for s in imgs) / sum_r)
    pri = np.mean([s["pri"] for s in imgs], axis=0)
    vi = np.mean([s["vi"] for s in imgs], axis=0)
    pa = np.mean([s["pixel_accuracy"] for s in imgs], axis=0)
    assert res["pri"]["ods"] == pytest.approx(pri.max())
    assert res["pri"]["ois"] == pytest.approx(np.mean([s["pri"].max() for s in imgs]))
    assert res["vi"]["ods"] == pytest.approx(vi.min())
    assert res["vi"]["ois"] == pytest.approx(np.mean([s["vi"].min() for s in imgs]))
    assert res["pixel_accuracy"]["ods"] == pytest.approx(pa.max())
    assert res["images"] == 3 and set(res["per_image"]) == {"im0", "im1", "im2"}
    bench.reset()
    with pytest.raises(InputError, match="no image"):
        bench.compute()


# ----------------------------------------------------------------- bad input


def test_bad_inputs_raise_input_error() -> None:
    gt = np.zeros((4, 5), dtype=int)
    bench = RegionBenchmark()
    with pytest.raises(InputError, match="ground-truth list is empty"):
        bench.update(gt, [])
    with pytest.raises(InputError, match=r"shape \(4, 6\).*UCM \(9, 11\)"):
        bench.update(np.zeros((4, 6), dtype=int), [gt])
    with pytest.raises(InputError, match="shape"):
        bench.update(np.zeros((9, 13)), [gt])  # UCM of the wrong size
    with pytest.raises(InputError, match="shape"):
        bench.update([gt, np.zeros((5, 4), dtype=int)], [gt])
    with pytest.raises(InputError, match="differ in shape"):
        bench.update(gt, [gt, np.zeros((5, 4), dtype=int)])
    with pytest.raises(InputError, match="integers"):
        bench.update(np.full((4, 5), 0.5), [gt])
    bench.update(np.zeros((9, 11)), [gt])  # a UCM: 99 thresholds
    with pytest.raises(InputError, match="same number"):
        bench.update([gt, gt], [gt])


# ----------------------------------------------------------------- gPb reference (data)


@pytest.fixture(scope="module")
def gpb_first10(gpb_dir, bsds_dir):
    from affseg.data.bsds import load_ground_truth

    ref = json.loads((gpb_dir / "gpb_val_reference.json").read_text())
    bench = RegionBenchmark()
    for image_id in ref["first_10"]["ids"]:
        ucm2 = scipy.io.loadmat(gpb_dir / "val" / f"{image_id}.mat")["ucm2"]
        gts = load_ground_truth(bsds_dir / "groundTruth" / "val" / f"{image_id}.mat")
        bench.update(ucm2, gts, image_id)
    return ref, bench.compute()


@pytest.mark.data
def test_gpb_first10_block_to_4_decimals(gpb_first10) -> None:
    ref, res = gpb_first10
    for metric, fields in ref["first_10"].items():
        if not isinstance(fields, dict):
            continue
        for key, want in fields.items():
            assert res[metric][key] == pytest.approx(want, abs=5e-5), (metric, key)
    assert res["images"] == 10


@pytest.mark.data
def test_gpb_per_image_entries_to_4_decimals(gpb_first10) -> None:
    ref, res = gpb_first10
    for image_id in ref["first_10"]["ids"]:
        for key, want in ref["per_image"][image_id].items():
            assert res["per_image"][image_id][key] == pytest.approx(want, abs=5e-5), (
                image_id,
                key,
            )


def test_default_thresholds_are_bsds() -> None:
    np.testing.assert_allclose(RegionBenchmark().thresholds, BSDS_THRESHOLDS)
    assert BSDS_THRESHOLDS.size == 99
