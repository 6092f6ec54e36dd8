"""Classical baselines as hierarchies, the nesting helpers and the pictures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.graph import rag_mean_color
from skimage.segmentation import find_boundaries

from affseg.errors import InputError
from affseg.grouping import relabel as rl
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.ucm import ucm_to_labels
from affseg.grouping.visualize import boundaries_image, overlay
from affseg.methods import METHODS, get_method
from affseg.methods import baselines as bl

FAST = {
    "felzenszwalb": {"scales": (20, 200, 5000)},
    "slic": {"n_segments": (60, 15, 4)},
    "quickshift": {"max_dists": (4.0, 8.0, 30.0)},
    "ncut": {"n_superpixels": 40},
    "kmeans": {"ks": (6, 4, 2)},
}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps (H, W) differ only by the names of their labels."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def agreement(seg: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(purity, coverage): pixel fractions of each segment's / each true region's best match."""
    _, s_inv = np.unique(seg, return_inverse=True)
    _, t_inv = np.unique(truth, return_inverse=True)
    table = np.zeros((s_inv.max() + 1, t_inv.max() + 1))
    np.add.at(table, (s_inv.ravel(), t_inv.ravel()), 1)
    return table.max(axis=1).sum() / seg.size, table.max(axis=0).sum() / seg.size


def is_refinement(fine: np.ndarray, coarse: np.ndarray) -> bool:
    """Every segment of ``fine`` lies inside one segment of ``coarse``."""
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(fine))


@pytest.fixture(scope="module")
def blocks() -> np.ndarray:
    """(48, 64, 3) uint8: four flat colour quadrants plus mild noise."""
    rng = np.random.default_rng(3)
    img = np.zeros((48, 64, 3), np.float64)
    img[:24, :32] = (200, 30, 30)
    img[:24, 32:] = (30, 200, 30)
    img[24:, :32] = (30, 30, 200)
    img[24:, 32:] = (220, 220, 40)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


QUADRANTS = np.add.outer(np.repeat([0, 2], 24), np.repeat([1, 2], 32))


def test_registry_names() -> None:
    for name in ("felzenszwalb", "slic", "quickshift", "ncut", "kmeans"):
        assert METHODS[name].startswith("affseg.methods.baselines:")
        assert callable(get_method(name))


@pytest.mark.parametrize("name", sorted(FAST))
def test_baseline_hierarchy_properties(name: str, blocks: np.ndarray) -> None:
    fn = get_method(name)
    h = fn(blocks, seed=1, **FAST[name])
    assert isinstance(h, Hierarchy) and h.shape == blocks.shape[:2]
    counts = h.n_segments
    assert counts == sorted(counts, reverse=True)
    for lv in h.levels:
        assert lv.dtype == np.int32 and lv.min() == 1 and lv.max() == len(np.unique(lv))
    for fine, coarse in zip(h.levels[:-1], h.levels[1:], strict=True):
        assert is_refinement(fine, coarse)
    again = fn(blocks, seed=1, **FAST[name])
    for a, b in zip(h.levels, again.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    # the four flat quadrants are found (up to a few border pixels) at some level
    scores = [agreement(lv, QUADRANTS) for lv in h.levels]
    assert any(p > 0.97 and c > 0.9 for p, c in scores), (counts, scores)


@pytest.mark.parametrize("name", ["felzenszwalb", "slic", "quickshift", "ncut"])
def test_ucm_reproduces_levels(name: str, blocks: np.ndarray) -> None:
    """Connected nested levels: thresholding the UCM gives every level back."""
    h = get_method(name)(blocks, **FAST[name])
    ucm = h.to_ucm()
    heights = np.append(h.heights, 1.0)
    for i, lv in enumerate(h.levels):
        t = (
            0.5 * (heights[i] + heights[i + 1])
            if i
            else 0.5 * heights[1]
            if len(h.levels) > 1
            else 0.5
        )
        assert same_partition(ucm_to_labels(ucm, t), lv), (name, i)


def test_kmeans_two_colours_exact() -> None:
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 10:] = 255
    img[5:8, 20:23] = 0  # a black island inside white: same cluster as the left part
    h = bl.kmeans_hierarchy(img, ks=(3, 2))
    truth = (img[..., 0] > 0).astype(int)
    assert same_partition(h.levels[-1], truth)  # clusters are not split into components
    hc = bl.kmeans_hierarchy(img, ks=(3, 2), connected=True)
    assert hc.n_segments[-1] == 3


def test_connected_relabel_matches_ndimage() -> None:
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, (30, 40))
    ours = rl.connected_relabel(lab)
    # independent: 4-connected components of each value with scipy.ndimage.label
    ref = np.zeros_like(lab)
    offset = 0
    for v in np.unique(lab):
        comp, n = ndimage.label(lab == v)
        ref[comp > 0] = comp[comp > 0] + offset
        offset += n
    assert same_partition(ours, ref) and ours.max() == offset


def test_absorb_small_fragments() -> None:
    lab = np.ones((10, 10), int)
    lab[:, 5:] = 2
    lab[0, 0] = 3  # a one-pixel fragment
    out = rl.absorb_small(lab, min_size=2)
    assert same_partition(out, (np.arange(10)[None, :] >= 5).repeat(10, 0))


def test_nest_levels_refines() -> None:
    rng = np.random.default_rng(1)
    raw = [rng.integers(0, k, (16, 16)) for k in (12, 6, 2)]
    nested = rl.nest_levels(raw)
    for fine, coarse in zip(nested[:-1], nested[1:], strict=True):
        assert is_refinement(fine, coarse)
    assert same_partition(nested[0], rl.connected_relabel(raw[0]))


def test_superpixel_graph_matches_skimage_rag(blocks: np.ndarray) -> None:
    sp = np.add.outer(np.arange(48) // 12, 4 * (np.arange(64) // 16))
    w = bl._superpixel_graph(blocks.astype(np.float64), sp, sigma=255.0)
    rag = rag_mean_color(blocks, sp, connectivity=2, mode="similarity", sigma=255.0)
    ref = np.eye(sp.max() + 1)
    for a, b, d in rag.edges(data=True):
        ref[a, b] = ref[b, a] = d["weight"]
    np.testing.assert_allclose(w, ref, rtol=1e-10, atol=1e-300)


def test_ncut_two_regions() -> None:
    img = np.zeros((30, 40, 3), np.uint8)
    img[:, 20:] = (0, 0, 255)
    img[:, :20] = (255, 0, 0)
    h = bl.ncut_hierarchy(img, n_superpixels=24, thresholds=(0.5, 1e-3))
    assert same_partition(h.levels[-1], (np.arange(40) >= 20)[None, :].repeat(30, 0))


def test_grayscale_rejected() -> None:
    with pytest.raises(InputError, match="grayscale"):
        bl.felzenszwalb_hierarchy(np.zeros((10, 10), np.uint8))


def test_visualize(blocks: np.ndarray) -> None:
    lab = QUADRANTS + 1
    b = boundaries_image(lab)
    assert b.dtype == np.uint8
    np.testing.assert_array_equal(b > 0, find_boundaries(lab, mode="thick"))
    o = overlay(blocks, lab, alpha=1.0, boundary_colour=(1, 2, 3))
    inner = find_boundaries(lab, mode="inner")
    assert (o[inner] == (1, 2, 3)).all()
    for v in np.unique(lab):
        m = (lab == v) & ~inner
        mean = np.round(blocks[lab == v].mean(axis=0))
        np.testing.assert_allclose(o[m], np.broadcast_to(mean, o[m].shape), atol=0.5)
    r = overlay(blocks, lab, mode="random", seed=4)
    np.testing.assert_array_equal(r, overlay(blocks, lab, mode="random", seed=4))
    with pytest.raises(InputError, match="shape"):
        overlay(blocks, lab[:-1])
