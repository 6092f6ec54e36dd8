"""Edge-following leaves merged by K_D (affseg.grouping.leaf_hierarchy): synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from affseg.errors import InputError
from affseg.grouping.diffusion_hierarchy import diffusion_hierarchy
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.kernel_grouping import diffusion_kernel
from affseg.grouping.leaf_hierarchy import leaf_hierarchy
from affseg.grouping.leaf_merge import merge_leaves
from affseg.grouping.leaf_statistics import leaf_node_weights
from affseg.grouping.leaf_superpixels import superpixel_leaves
from affseg.grouping.ucm import ucm_to_labels

H, W, GRID = 48, 64, (6, 8)
EDGE = 29  # not a multiple of the stride-8 grid


def _step_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 60.0)
    img[:, EDGE:] = 190.0
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _step_kernel() -> np.ndarray:
    """K_D of an embedding that separates the grid columns left / right of the edge."""
    xs = (np.arange(GRID[1]) + 0.5) * W / GRID[1]
    phi = np.tile((xs >= EDGE).astype(np.float32), GRID[0]).reshape(-1, 1)
    return diffusion_kernel(phi * 3.0, 1.0)


def _nested(levels: list[np.ndarray]) -> bool:
    for fine, coarse in zip(levels[:-1], levels[1:], strict=True):
        key = fine.astype(np.int64) * (coarse.max() + 1) + coarse
        if np.unique(key).size != np.unique(fine).size:
            return False
    return True


@pytest.mark.parametrize("method", ["felzenszwalb", "watershed", "slic"])
def test_leaves_follow_a_step_edge_to_the_pixel(method: str) -> None:
    leaves = superpixel_leaves(_step_image(), method=method, n_segments=40, compactness=None)
    assert leaves.min() == 1 and leaves.max() >= 2
    # no leaf straddles the edge (watershed of the Sobel magnitude: its 2-pixel ridge may
    # go either way, so within one pixel)
    tol = 1 if method == "watershed" else 0
    left = np.unique(leaves[:, : EDGE - tol])
    right = np.unique(leaves[:, EDGE + tol :])
    assert np.intersect1d(left, right).size == 0


@pytest.mark.parametrize("grouping", ["leaves", "snap"])
def test_hierarchy_is_nested_and_splits_at_the_edge(grouping: str) -> None:
    img = _step_image()
    k = _step_kernel()
    coarse = None
    if grouping == "snap":
        xs = (np.arange(GRID[1]) + 0.5) * W / GRID[1]
        phi = np.tile((xs >= EDGE).astype(np.float32), GRID[0]).reshape(-1, 1) * 3.0
        coarse = diffusion_hierarchy(phi, 1.0, GRID, (H, W))
    hier = leaf_hierarchy(img, k, GRID, leaves="slic", n_leaves=30, coarse=coarse)
    assert isinstance(hier, Hierarchy)
    assert hier.n_segments[0] > 4 and hier.n_segments[-1] == 1
    assert _nested(hier.levels)
    assert np.all(np.diff(hier.heights) >= 0)
    two = hier.labels(2)
    assert np.unique(two).size == 2
    # the two-region level is the step, to the pixel
    assert np.unique(two[:, :EDGE]).size == 1 and np.unique(two[:, EDGE:]).size == 1


def test_ucm_round_trip() -> None:
    hier = leaf_hierarchy(_step_image(), _step_kernel(), GRID, leaves="slic", n_leaves=30)
    ucm = hier.to_ucm()
    assert ucm.shape == (2 * H + 1, 2 * W + 1)
    back = Hierarchy.from_ucm(ucm)
    for lv, h in zip(back.levels, back.heights, strict=True):
        direct = ucm_to_labels(ucm, h)
        key = lv.astype(np.int64) * (direct.max() + 1) + direct
        assert np.unique(key).size == np.unique(lv).size == np.unique(direct).size
    # every stored level is recovered by thresholding the UCM just above its height
    for lv, h in zip(hier.levels, hier.heights, strict=True):
        assert ucm_to_labels(ucm, h + 1e-12).max() == np.unique(lv).size


def test_deterministic_for_a_fixed_seed() -> None:
    img = _step_image(3)
    a = leaf_hierarchy(img, _step_kernel(), GRID, leaves="felzenszwalb", compactness=50)
    b = leaf_hierarchy(img, _step_kernel(), GRID, leaves="felzenszwalb", compactness=50)
    assert np.array_equal(a.to_ucm(), b.to_ucm())


def test_node_weights_sum_to_leaf_sizes() -> None:
    leaves = superpixel_leaves(_step_image(), method="watershed", n_segments=20)
    m = leaf_node_weights(leaves, GRID)
    assert m.shape == (GRID[0] * GRID[1], leaves.max())
    np.testing.assert_allclose(np.asarray(m.sum(0)).ravel(), np.bincount(leaves.ravel())[1:])


def test_merge_leaves_average_linkage_on_a_chain() -> None:
    # 4 leaves in a row; K between leaf pairs: 0-1 high, 2-3 high, 1-2 low
    sums = np.array(
        [[1, 0.9, 0.1, 0.1], [0.9, 1, 0.2, 0.1], [0.1, 0.2, 1, 0.8], [0.1, 0.1, 0.8, 1.0]]
    )
    a, b = np.array([0, 1, 2]), np.array([1, 2, 3])
    merges, heights = merge_leaves(sums, np.ones(4), a, b, linkage="average")
    assert merges.tolist()[:2] == [[0, 1], [2, 3]]
    np.testing.assert_allclose(heights, [0.1, 0.2, 1 - 0.5 / 4])
    with pytest.raises(InputError):
        merge_leaves(None, np.ones(4), a, b, linkage="average")


def test_ndd_grouping_options_are_validated() -> None:
    from affseg.methods import check_options
    from affseg.methods.ndd import ndd_hierarchy

    opts = {"grouping": "leaves", "n_leaves": 300, "leaf_mix": 0.3, "boundary_weight": 0.2}
    assert check_options("ndd", opts) == opts
    with pytest.raises(InputError):
        ndd_hierarchy(_step_image(), grouping="bogus")
    with pytest.raises(InputError):
        superpixel_leaves(_step_image(), method="bogus")
