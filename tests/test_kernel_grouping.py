"""Hierarchical segmentation from a diffusion kernel: centres, kernel k-means, clean-up,
merging, and the UCM of the result (seed 001, Sect. 6)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from affseg.errors import InputError
from affseg.grouping.diffusion_hierarchy import (
    diffusion_hierarchy,
    labels_to_hierarchy,
    resize_maps,
)
from affseg.grouping.kernel_grouping import coverage_centres, diffusion_kernel, kernel_kmeans
from affseg.grouping.region_merging import (
    adjacent_pairs,
    connected_cleanup,
    greedy_merge,
    grid_counts,
)
from affseg.grouping.ucm import BSDS_THRESHOLDS, ucm_to_labels

FOUR = ndimage.generate_binary_structure(2, 1)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps differ only by a renaming of labels."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def _blobs(rng: np.random.Generator, sizes=(30, 50, 40, 20), spread=0.01):
    centres = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)[: len(sizes)]
    parts = [c + spread * rng.standard_normal((n, 2)) for c, n in zip(centres, sizes, strict=True)]
    x = np.concatenate(parts)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x, truth


def test_diffusion_kernel_matches_direct_formula() -> None:
    rng = np.random.default_rng(0)
    phi = rng.standard_normal((17, 5))
    k = diffusion_kernel(phi, tau=0.3)
    direct = np.exp(-0.3 * ((phi[:, None, :] - phi[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(k, direct, rtol=1e-5, atol=1e-6)
    assert k.dtype == np.float32 and np.all(np.diag(k) == 1)
    with pytest.raises(InputError, match="phi must have shape"):
        diffusion_kernel(np.zeros(5), tau=1.0)
    with pytest.raises(InputError, match="tau must be positive"):
        diffusion_kernel(phi, tau=0.0)


def test_coverage_centres_pick_one_centre_per_cluster() -> None:
    rng = np.random.default_rng(1)
    x, truth = _blobs(rng)
    k = diffusion_kernel(x, tau=20.0)  # ~1 inside a blob, ~e^-20 across blobs
    centres = coverage_centres(k, eps=0.02, max_centres=9, first=0)
    assert centres[0] == 0
    assert sorted(truth[centres].tolist()) == [0, 1, 2, 3]  # one per cluster, then stop


def test_coverage_centres_follow_eq9_and_respect_max() -> None:
    rng = np.random.default_rng(2)
    x, _ = _blobs(rng, spread=0.3)
    k = diffusion_kernel(x, tau=2.0)
    got = coverage_centres(k, eps=0.0, max_centres=5, first=3)
    # independent re-statement of Eq. 9
    cover = k[3].astype(np.float64)
    want = [3]
    for _ in range(4):
        gain = k.astype(np.float64) @ (1 - cover)
        gain[want] = -np.inf
        i = int(np.argmax(gain))
        want.append(i)
        cover = np.minimum(cover + k[i], 1)
    assert got.tolist() == want
    with pytest.raises(InputError, match="max_centres"):
        coverage_centres(k, max_centres=0)


def test_kernel_kmeans_equals_soft_kmeans_with_linear_kernel() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    centres = np.array([0, 7, 19])
    z = kernel_kmeans(x @ x.T, centres, beta=2.0, n_iter=1)

    # the same two steps written in feature space
    def soft(d):
        e = np.exp(-2.0 * (d - d.min(1, keepdims=True)))
        return e / e.sum(1, keepdims=True)

    z0 = soft(((x[:, None, :] - x[centres][None]) ** 2).sum(-1))
    means = (z0.T @ x) / z0.sum(0)[:, None]
    z1 = soft(((x[:, None, :] - means[None]) ** 2).sum(-1))
    np.testing.assert_allclose(z, z1, atol=1e-4)
    np.testing.assert_allclose(z.sum(1), 1, atol=1e-5)


def test_kernel_kmeans_recovers_planted_partition() -> None:
    rng = np.random.default_rng(4)
    x, truth = _blobs(rng, spread=0.15)
    k = diffusion_kernel(x, tau=3.0)
    centres = coverage_centres(k, eps=0.02, max_centres=4, first=0)
    hard = kernel_kmeans(k, centres).argmax(1)
    assert _same_partition(hard, truth)


def test_connected_cleanup_leaves_each_label_one_connected_region() -> None:
    rng = np.random.default_rng(5)
    noisy = ndimage.zoom(rng.integers(0, 5, size=(8, 10)), 4, order=0)
    noisy[rng.random(noisy.shape) < 0.1] = 7  # scattered specks of one more label
    out = connected_cleanup(noisy)
    assert out.dtype == np.int32 and out.min() == 1
    for lab in np.unique(out):
        _, n = ndimage.label(out == lab, structure=FOUR)
        assert n == 1
    # a coarsening: every 4-connected piece of the input lies inside one output region
    pieces, n_pieces = ndimage.label(np.ones_like(noisy), structure=FOUR)
    comp = np.zeros_like(noisy)
    offset = 0
    for lab in np.unique(noisy):
        c, n = ndimage.label(noisy == lab, structure=FOUR)
        comp[c > 0] = c[c > 0] + offset
        offset += n
    pairs = np.unique(np.stack([comp.ravel(), out.ravel()]), axis=1)
    assert pairs.shape[1] == offset
    # the largest piece of each input label survives as a region of its own
    assert len(np.unique(out)) == len(np.unique(noisy))


def test_connected_cleanup_min_size_absorbs_small_regions() -> None:
    lab = np.ones((20, 20), int)
    lab[5:8, 5:8] = 2  # 9 pixels
    lab[10:, :] = 3
    assert len(np.unique(connected_cleanup(lab))) == 3
    out = connected_cleanup(lab, min_size=10)
    assert len(np.unique(out)) == 2 and out[6, 6] == out[0, 0]


def test_connected_cleanup_with_soft_assignments_spares_dissimilar_regions() -> None:
    # a block of class 0 in a background split at random between two equivalent classes
    rng = np.random.default_rng(10)
    block = np.zeros((30, 40), bool)
    block[10:20, 12:28] = True
    labels = np.where(block, 0, rng.integers(1, 3, size=block.shape))
    soft = np.stack([block * 0.98 + 0.01, ~block * 0.5, ~block * 0.5]).astype(float)
    out = connected_cleanup(labels, soft=soft)
    np.testing.assert_array_equal(out == out[15, 20], block)  # the block keeps its shape
    assert len(np.unique(out)) == 3  # and the background its two (connected) parts
    plain = connected_cleanup(labels)  # by border length only: pieces touching the block
    assert (plain == plain[15, 20]).sum() > block.sum()  # ... are swallowed by it


def test_adjacent_pairs_counts_border_length() -> None:
    lab = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    a, b, c = adjacent_pairs(lab)
    got = {(int(x), int(y)): int(n) for x, y, n in zip(a, b, c, strict=True)}
    assert got == {(1, 2): 2, (2, 1): 2, (1, 3): 2, (3, 1): 2, (2, 3): 1, (3, 2): 1}


def test_greedy_merge_is_average_linkage_over_pixel_pairs() -> None:
    rng = np.random.default_rng(6)
    fine = connected_cleanup(ndimage.zoom(rng.integers(0, 6, size=(4, 5)), 3, order=0))
    grid = (6, 5)
    k = diffusion_kernel(rng.standard_normal((30, 2)), tau=0.5)
    counts = grid_counts(fine, grid)
    s = int(fine.max())
    a, b, _ = adjacent_pairs(fine)
    adj = np.zeros((s, s), bool)
    adj[a - 1, b - 1] = True
    merges, sims = greedy_merge(
        adj, pair_sums=counts.T.astype(float) @ (k @ counts), mass=counts.sum(0)
    )
    # brute force: the average of K over all pixel pairs of the two regions
    hh, ww = fine.shape
    node = ((np.arange(hh) * grid[0]) // hh)[:, None] * grid[1] + ((np.arange(ww) * grid[1]) // ww)[
        None, :
    ]
    owner = np.arange(s)
    for (i, j), sim in zip(merges, sims, strict=True):
        cur = owner[fine - 1]
        best = -1.0
        ca, cb, _ = adjacent_pairs(cur + 1)
        for p, q in zip(ca - 1, cb - 1, strict=True):
            v = k[np.ix_(node[cur == p], node[cur == q])].mean()
            best = max(best, v)
        want = k[np.ix_(node[cur == owner[i]], node[cur == owner[j]])].mean()
        assert sim == pytest.approx(want, rel=1e-5) and sim == pytest.approx(best, rel=1e-5)
        owner[owner == owner[j]] = owner[i]
    assert len(np.unique(owner)) == 1


def _random_hierarchy(seed: int = 7, linkage: str = "kernel"):
    rng = np.random.default_rng(seed)
    grid = (8, 10)
    phi = rng.standard_normal((80, 3)).astype(np.float32)
    k = diffusion_kernel(phi, tau=0.4)
    labels = ndimage.zoom(rng.integers(0, 9, size=(8, 10)), (4, 5), order=0)
    return labels_to_hierarchy(labels, k, grid, linkage=linkage, phi=phi, tau=0.4)


@pytest.mark.parametrize("linkage", ["kernel", "centroid"])
def test_hierarchy_levels_are_nested_and_heights_increase(linkage: str) -> None:
    hier = _random_hierarchy(linkage=linkage)
    assert hier.shape == (32, 50)
    counts = hier.n_segments
    assert counts[-1] == 1 and counts == sorted(counts, reverse=True)
    assert np.all(np.diff(counts) == -1)  # one merge per level
    for fine, coarse in zip(hier.levels[:-1], hier.levels[1:], strict=True):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(fine))  # each fine region in one coarse
    assert hier.heights[0] == 0 and np.all(np.diff(hier.heights) > 0)
    assert hier.heights[-1] <= 1


def test_ucm_reproduces_every_level_at_its_height() -> None:
    hier = _random_hierarchy(seed=8)
    ucm = hier.to_ucm()
    for lv, h in zip(hier.levels, hier.heights, strict=True):
        assert _same_partition(ucm_to_labels(ucm, float(h)), lv)
    # and every benchmark threshold yields one of the levels
    for t in BSDS_THRESHOLDS[::7]:
        lab = ucm_to_labels(ucm, float(t))
        assert any(_same_partition(lab, lv) for lv in hier.levels)


def _two_region_image() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:60, 0:90]
    truth = ((xx - 45) ** 2 + (yy - 30) ** 2 < 18**2).astype(int)
    rng = np.random.default_rng(9)
    img = np.where(truth[..., None] == 1, [200, 40, 40], [30, 90, 200]).astype(float)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_end_to_end_two_regions_from_colour_embedding(mode: str) -> None:
    img, truth = _two_region_image()
    grid = (15, 22)
    small = resize_maps(np.moveaxis(img / 255.0, -1, 0), grid, "bilinear")  # (3, h, w)
    phi = small.reshape(3, -1).T
    hier = diffusion_hierarchy(phi, 20.0, grid, img.shape[:2], resize_mode=mode)
    two = hier.labels(2)
    assert len(np.unique(two)) == 2
    agree = max(np.mean((two == 1) == (truth == 1)), np.mean((two == 1) == (truth == 0)))
    assert agree > 0.97
    assert hier.labels().shape == truth.shape


def test_diffusion_hierarchy_checks_shapes() -> None:
    with pytest.raises(InputError, match="expected \\(12, Ne\\)"):
        diffusion_hierarchy(np.zeros((10, 2)), 1.0, (3, 4), (6, 8))
    with pytest.raises(InputError, match="upsample returned shape"):
        diffusion_hierarchy(np.zeros((12, 2)), 1.0, (3, 4), (6, 8), upsample=lambda m: m)


class _ColourNet:
    """Stand-in for SpecDiffNet: the embedding is the image colour on a stride-4 grid."""

    def __init__(self) -> None:
        import torch

        self.upsampled = 0
        self.diffusion = torch.nn.Module()
        self.diffusion.n_outer = 2
        self.diffusion.log_t = torch.nn.Parameter(torch.tensor(np.log(10.0)))
        self.seen: list[tuple[int, float]] = []

    def encode(self, images):
        import torch
        import torch.nn.functional as F

        from affseg.models.spec_diff_net import NDDOutput

        d = self.diffusion
        self.seen.append((d.n_outer, float(d.log_t.exp())))

        hh, ww = images.shape[-2:]
        small = F.interpolate(images, size=(hh // 4, ww // 4), mode="area")
        emb = small.flatten(2).transpose(1, 2)  # (B, N, 3)
        return NDDOutput(emb, torch.tensor(20.0), (hh // 4, ww // 4), small, [], (hh, ww))

    def upsample(self, maps, out):
        import torch.nn.functional as F

        self.upsampled += 1
        return F.interpolate(maps, size=out.image_size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(
    ("upsample", "grouping"),
    [("hr", "paper"), ("lr", "paper"), ("hr", "snap"), ("hr", "leaves")],
)
def test_ndd_hierarchy_end_to_end_with_a_model_object(upsample: str, grouping: str) -> None:
    from affseg.methods.ndd import ndd_hierarchy

    img, truth = _two_region_image()
    net = _ColourNet()
    hier = ndd_hierarchy(
        img, model=net, upsample=upsample, max_centres="12", eps="0.01", grouping=grouping
    )
    assert net.upsampled == (1 if upsample == "hr" and grouping != "leaves" else 0)
    assert hier.shape == truth.shape and hier.n_segments[-1] == 1
    two = hier.labels(2)
    agree = max(np.mean((two == 1) == (truth == 1)), np.mean((two == 1) == (truth == 0)))
    assert agree > 0.97


def test_ndd_hierarchy_rejects_bad_options() -> None:
    from affseg.methods import get_method
    from affseg.methods.ndd import ndd_hierarchy

    assert get_method("ndd") is ndd_hierarchy
    img, _ = _two_region_image()
    with pytest.raises(InputError, match="upsample must be"):
        ndd_hierarchy(img, model=_ColourNet(), upsample="bicubic")
    with pytest.raises(TypeError, match="centres"):
        ndd_hierarchy(img, model=_ColourNet(), centres=4)
    with pytest.raises(InputError, match="bad ndd option value"):
        ndd_hierarchy(img, model=_ColourNet(), max_centres="many")
    with pytest.raises(InputError, match="grayscale"):
        ndd_hierarchy(img[..., 0], model=_ColourNet())


def test_ndd_hierarchy_overrides_T_and_t_for_one_call_only() -> None:
    from affseg.methods.ndd import ndd_hierarchy

    img, _ = _two_region_image()
    net = _ColourNet()
    ndd_hierarchy(img, model=net, upsample="lr", T=3, t="5")
    ndd_hierarchy(img, model=net, upsample="lr")
    assert net.seen[0][0] == 3 and net.seen[0][1] == pytest.approx(5.0)
    assert net.seen[1][0] == 2 and net.seen[1][1] == pytest.approx(10.0)
    with pytest.raises(InputError, match="T must be >= 1"):
        ndd_hierarchy(img, model=net, T=0)
