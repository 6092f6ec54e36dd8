"""Learned boundary head and the learned border terms of the leaf merging (NDD v2)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from affseg.errors import CorruptFileError, InputError
from affseg.grouping.leaf_hierarchy import leaf_hierarchy
from affseg.grouping.leaf_statistics import border_map_sums
from affseg.grouping.leaf_superpixels import superpixel_leaves
from affseg.models.boundary_head import (
    PYRAMID_CHANNELS,
    BoundaryHead,
    boundary_loss,
    boundary_probability,
    boundary_targets,
    load_boundary_head,
    save_boundary_head,
)
from test_leaf_hierarchy import EDGE, GRID, H, W, _nested, _step_image, _step_kernel


def _pyramid(h: int, w: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(1, c, h // s, w // s, generator=g)
        for c, s in zip(PYRAMID_CHANNELS, (2, 4, 8, 16), strict=True)
    ]


def test_boundary_targets_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (3, 7, 9))
    got = boundary_targets(torch.from_numpy(labels)).numpy()
    k, h, w = labels.shape
    want = np.zeros((h, w))
    for a in range(k):
        for y in range(h):
            for x in range(w):
                nb = [(y + dy, x + dx) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
                on = any(
                    0 <= v < h and 0 <= u < w and labels[a, v, u] != labels[a, y, x] for v, u in nb
                )
                want[y, x] += on / k
    np.testing.assert_allclose(got, want, atol=1e-7)
    with pytest.raises(InputError, match=r"\(K, H, W\)"):
        boundary_targets(torch.zeros(4, 4, dtype=torch.long))


def test_border_map_sums_match_a_loop() -> None:
    rng = np.random.default_rng(1)
    lab = superpixel_leaves(_step_image(), method="slic", n_segments=25)
    vals = rng.random(lab.shape)
    got = border_map_sums(lab, vals)
    sums: dict[tuple[int, int], float] = {}
    for y in range(lab.shape[0]):
        for x in range(lab.shape[1]):
            for v, u in ((y, x + 1), (y + 1, x)):
                if v < lab.shape[0] and u < lab.shape[1] and lab[v, u] != lab[y, x]:
                    key = (min(lab[y, x], lab[v, u]), max(lab[y, x], lab[v, u]))
                    sums[key] = sums.get(key, 0.0) + max(vals[y, x], vals[v, u])
    np.testing.assert_allclose(got, [sums[k] for k in sorted(sums)])
    with pytest.raises(InputError, match="shape"):
        border_map_sums(lab, vals[:-1])


def test_loss_is_the_weighted_cross_entropy() -> None:
    logits = torch.tensor([[[[0.3, -1.2], [2.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.25]]]])
    p = torch.sigmoid(logits)
    want = -(4.0 * target * p.log() + (1 - target) * (1 - p).log()).mean()
    assert torch.allclose(boundary_loss(logits, target, 4.0), want)


def test_head_shapes_probability_and_round_trip(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    head = BoundaryHead(width=6).eval()
    pyr = _pyramid(64, 96)
    assert tuple(head(pyr).shape) == (1, 1, 32, 48)
    prob = boundary_probability(head, pyr, (61, 93))
    assert prob.shape == (61, 93) and prob.dtype == np.float32
    assert float(prob.min()) > 0 and float(prob.max()) < 1
    path = tmp_path / "head.pt"
    save_boundary_head(head, path, {"steps": 3})
    blob = torch.load(path, weights_only=True)  # plain tensors and dicts only
    assert blob["config"] == {"width": 6} and blob["meta"] == {"steps": 3}
    again = load_boundary_head(path)
    np.testing.assert_array_equal(boundary_probability(again, pyr, (61, 93)), prob)
    with pytest.raises(InputError):
        BoundaryHead(width=0)


def test_corrupt_or_missing_weights_give_one_clear_error(tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match="cannot load"):
        load_boundary_head(bad)
    with pytest.raises(CorruptFileError, match="not found"):
        load_boundary_head(tmp_path / "missing.pt")


def _step_map() -> np.ndarray:
    """A boundary probability peaked on the step edge (columns EDGE - 1, EDGE)."""
    bmap = np.full((H, W), 0.02)
    bmap[:, EDGE - 1 : EDGE + 1] = 0.95
    return bmap


def test_learned_term_alone_splits_at_the_edge() -> None:
    # a kernel that cannot tell the sides apart: only the learned map can put the split
    flat = np.ones((GRID[0] * GRID[1],) * 2)
    hier = leaf_hierarchy(
        _step_image(),
        flat,
        GRID,
        leaves="slic",
        n_leaves=30,
        boundary_weight=0.0,
        boundary_map=_step_map(),
        learned_weight=1.0,
    )
    assert _nested(hier.levels) and hier.n_segments[-1] == 1
    two = hier.labels(2)
    assert np.unique(two[:, :EDGE]).size == 1 and np.unique(two[:, EDGE:]).size == 1
    # and the edge is the highest boundary of the UCM
    assert np.isclose(hier.heights[-1], hier.heights.max())


def test_leaf_elevation_floods_the_learned_map() -> None:
    img = np.full((H, W, 3), 128, np.uint8)  # no image edge at all
    flat = np.ones((GRID[0] * GRID[1],) * 2)
    hier = leaf_hierarchy(
        img,
        flat,
        GRID,
        leaves="watershed",
        n_leaves=40,
        boundary_map=_step_map(),
        leaf_elevation=100.0,
    )
    leaves = hier.levels[0]
    left, right = np.unique(leaves[:, : EDGE - 1]), np.unique(leaves[:, EDGE + 1 :])
    assert np.intersect1d(left, right).size == 0


def test_learned_options_are_validated() -> None:
    img, k = _step_image(), _step_kernel()
    with pytest.raises(InputError, match="need a boundary_map"):
        leaf_hierarchy(img, k, GRID, learned_weight=0.3)
    with pytest.raises(InputError, match="boundary_map has shape"):
        leaf_hierarchy(img, k, GRID, learned_weight=0.3, boundary_map=np.zeros((4, 4)))
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        leaf_hierarchy(
            img, k, GRID, boundary_weight=0.2, learned_weight=0.9, boundary_map=_step_map()
        )
    with pytest.raises(InputError, match=">= 0"):
        leaf_hierarchy(img, k, GRID, leaf_elevation=-1.0, boundary_map=_step_map())


def test_train_boundary_rejects_bad_options() -> None:
    from affseg.train.boundary import add_arguments, check_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for bad, msg in (
        (["--crop", "100"], "multiple of 16"),
        (["--lr", "-1"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--scales", "9"], "--scales"),
    ):
        with pytest.raises(InputError, match=msg):
            check_args(parser.parse_args(["--out", "o", *bad]))
