"""Hungarian pixel accuracy, pairwise scores, mIoU with void, depth metrics: exact values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from affseg.errors import InputError
from affseg.metrics import (
    MeanIoU,
    contingency_table,
    depth_metrics,
    hungarian_accuracy,
    hungarian_matched,
    pairwise_scores,
)


def _bf_matched(table: np.ndarray) -> float:
    k, m = table.shape
    n = max(k, m)
    sq = np.zeros((n, n))
    sq[:k, :m] = table
    return max(sq[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))


# ----------------------------------------------------------------- Hungarian accuracy


def test_hungarian_permuted_labels_is_perfect() -> None:
    gt = np.array([[1, 1, 2], [3, 3, 2]])
    seg = np.array([[9, 9, 4], [0, 0, 4]])  # a relabelling
    assert hungarian_accuracy(seg, [gt]) == 1.0


def test_hungarian_unequal_label_counts() -> None:
    gt = np.array([[0, 0, 0, 1, 1, 1]])
    seg = np.array([[0, 0, 1, 2, 2, 3]])  # 4 segments vs 2 regions: best 2 + 2 = 4 of 6
    assert hungarian_accuracy(seg, [gt]) == pytest.approx(4 / 6)
    assert hungarian_accuracy(gt, [seg]) == pytest.approx(4 / 6)  # symmetric
    one = np.zeros((1, 6), dtype=int)  # one segment: only the larger region matches
    assert hungarian_accuracy(one, [gt]) == pytest.approx(3 / 6)
    # mean over annotators
    assert hungarian_accuracy(seg, [gt, seg]) == pytest.approx((4 / 6 + 1) / 2)


@pytest.mark.parametrize("seed", range(12))
def test_hungarian_matched_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k, m = rng.integers(1, 7), rng.integers(1, 5)
    table = rng.integers(0, 6, size=(k, m)).astype(float)
    if seed % 3 == 0:  # all columns prefer row 0: exercises the pruned assignment
        table[0] += 10
    assert hungarian_matched(table) == _bf_matched(table)


def test_hungarian_pruning_on_tall_tables() -> None:
    """Many rows, conflicting column maxima: pruning to top rows keeps the optimum."""
    rng = np.random.default_rng(5)
    from scipy.optimize import linear_sum_assignment

    for _ in range(20):
        table = rng.integers(0, 50, size=(40, 4)).astype(float)
        table[rng.integers(40)] += 100
        r, c = linear_sum_assignment(table, maximize=True)
        assert hungarian_matched(table) == table[r, c].sum()


def test_contingency_table() -> None:
    seg = np.array([[5, 5], [7, 2]])
    gt = np.array([[1, 0], [1, 1]])
    np.testing.assert_array_equal(contingency_table(seg, gt), [[0, 1], [1, 1], [0, 1]])
    with pytest.raises(InputError, match="shape"):
        contingency_table(seg, gt[:1])


# ----------------------------------------------------------------- pairwise


def _bf_pairwise(seg: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    s, g = seg.ravel(), gt.ravel()
    tp = fp = fn = tn = 0
    for i, j in itertools.combinations(range(s.size), 2):
        ps, pg = s[i] == s[j], g[i] == g[j]
        tp += ps and pg
        fp += ps and not pg
        fn += pg and not ps
        tn += not ps and not pg
    return (tp + tn) / (tp + fp + fn + tn), tp / (tp + fp), tp / (tp + fn)


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_equals_pair_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, 3, size=(5, 6))
    gt = rng.integers(0, 4, size=(5, 6))
    got = pairwise_scores(seg, gt)
    acc, prec, rec = _bf_pairwise(seg, gt)
    assert got["accuracy"] == pytest.approx(acc)
    assert got["precision"] == pytest.approx(prec)
    assert got["recall"] == pytest.approx(rec)
    assert got["tp"] + got["fp"] + got["fn"] + got["tn"] == 30 * 29 / 2


def test_pairwise_ignore_mask_and_errors() -> None:
    seg = np.array([[0, 0, 1, 1]])
    gt = np.array([[0, 0, 1, 2]])
    ignore = np.array([[False, False, False, True]])
    res = pairwise_scores(seg, gt, ignore)
    assert res["precision"] == 1.0 and res["recall"] == 1.0 and res["accuracy"] == 1.0
    full = pairwise_scores(seg, gt)  # pairs: (0,1) TP, (2,3) FP, rest TN
    assert full["precision"] == 0.5 and full["recall"] == 1.0
    assert full["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(InputError, match="shape"):
        pairwise_scores(seg, gt.T)


# ----------------------------------------------------------------- mIoU


def test_miou_with_void() -> None:
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    m = MeanIoU(num_classes=3, ignore_index=255)
    m.update(pred, target)
    res = m.compute()
    # class 0: tp 1, fp 1 (pixel (1,1)), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3;
    # class 2: tp 1, fn 1 -> 1/2; void pixels count nowhere
    np.testing.assert_allclose(res["per_class"], [1 / 3, 2 / 3, 1 / 2])
    assert res["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert res["pixel_accuracy"] == pytest.approx(4 / 6)
    # streaming over a batch of torch tensors = one big update
    m2 = MeanIoU(3)
    m2.update(torch.tensor(pred[None]), torch.tensor(target[None]))
    np.testing.assert_array_equal(m2.confusion, m.confusion)


def test_miou_absent_class_and_errors() -> None:
    m = MeanIoU(num_classes=4)
    m.update(np.array([[0, 1]]), np.array([[0, 1]]))
    res = m.compute()
    assert np.isnan(res["per_class"][2:]).all() and res["miou"] == 1.0
    with pytest.raises(InputError, match="outside"):
        m.update(np.array([[4, 1]]), np.array([[0, 1]]))
    with pytest.raises(InputError, match="shape"):
        m.update(np.array([[0, 1]]), np.array([[0], [1]]))
    with pytest.raises(InputError, match="no"):
        MeanIoU(2).compute()


# ----------------------------------------------------------------- depth


def test_depth_metrics_exact() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # the 0 is invalid
    pred = np.array([[1.0, 3.0], [2.0, 9.0]])
    res = depth_metrics(pred, gt)
    err = np.array([0.0, 1.0, -2.0])
    ierr = 1 / np.array([1.0, 3.0, 2.0]) - 1 / np.array([1.0, 2.0, 4.0])
    assert res["n_valid"] == 3
    assert res["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert res["mae"] == pytest.approx(1.0)
    assert res["irmse"] == pytest.approx(np.sqrt((ierr**2).mean()))
    assert res["imae"] == pytest.approx(np.abs(ierr).mean())
    assert res["rel"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    # ratios 1, 1.5, 2: < 1.25 -> 1/3; < 1.5625 -> 2/3; < 1.953 -> 2/3
    assert res["delta1"] == pytest.approx(1 / 3)
    assert res["delta2"] == pytest.approx(2 / 3)
    assert res["delta3"] == pytest.approx(2 / 3)
    masked = depth_metrics(pred, gt, mask=np.array([[True, False], [False, True]]))
    assert masked["n_valid"] == 1 and masked["rmse"] == 0.0
    with pytest.raises(InputError, match="valid"):
        depth_metrics(pred, np.zeros((2, 2)))
    with pytest.raises(InputError, match="shape"):
        depth_metrics(pred, gt[:1])
