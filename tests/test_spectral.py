"""Deep spectral clustering (seed 004): spectral loss, oracle Laplacian, KwikCluster, head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affseg.affinity.spectral import (
    oracle_embedding,
    oracle_laplacian,
    sampled_spectral_loss,
    spectral_loss,
    spectral_loss_dense,
)
from affseg.errors import CorruptFileError, InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.kwikcluster import (
    kwikcluster,
    kwikcluster_hierarchy,
    kwikcluster_image,
    merge_small_regions,
    refine_upsampled_labels,
)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True iff the label arrays define the same partition (a bijection between labels)."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


# ---------------------------------------------------------------- exact spectral loss


@pytest.mark.parametrize("n,d,k", [(1, 3, 1), (50, 4, 3), (300, 21, 9), (257, 7, 40)])
def test_exact_loss_equals_dense(n: int, d: int, k: int) -> None:
    g = torch.Generator().manual_seed(n + d + k)
    f = _unit(torch.randn(n, d, dtype=torch.float64, generator=g))
    lab = torch.randint(0, k, (n,), generator=g)
    exact, dense = spectral_loss(f, lab), spectral_loss_dense(f, lab)
    assert abs(float(exact) - float(dense)) <= 1e-5 * abs(float(dense)) + 1e-9
    # the dense reference itself against an explicit double loop on a tiny case
    if n <= 50:
        a = (lab[:, None] == lab[None, :]).double()
        loop = sum(float((f[i] @ f[j] - a[i, j]) ** 2) for i in range(n) for j in range(n))
        assert float(dense) == pytest.approx(loop, rel=1e-12)


def test_exact_loss_batched_normalised_and_ignored_pixels(one_thread) -> None:
    g = torch.Generator().manual_seed(1)
    f = _unit(torch.randn(3, 120, 5, dtype=torch.float64, generator=g))
    lab = torch.randint(0, 6, (3, 120), generator=g)
    lab[0, :17] = -1  # ignored pixels
    lab[2] *= 1000  # sparse label values
    for norm in (False, True):
        exact = spectral_loss(f, lab, normalize=norm)
        dense = spectral_loss_dense(f, lab, normalize=norm)
        assert exact.shape == (3,)
        torch.testing.assert_close(exact, dense, rtol=1e-5, atol=0)
    # normalised loss = loss / N^2 with N the labelled pixels
    raw = spectral_loss(f[0], lab[0])
    assert float(spectral_loss(f[0], lab[0], normalize=True)) == pytest.approx(
        float(raw) / 103**2, rel=1e-12
    )


def test_exact_loss_gradient_matches_dense() -> None:
    g = torch.Generator().manual_seed(2)
    base = torch.randn(2, 80, 6, dtype=torch.float64, generator=g)
    lab = torch.randint(0, 5, (2, 80), generator=g)
    grads = []
    for fn in (spectral_loss, spectral_loss_dense):
        x = base.clone().requires_grad_(True)
        fn(_unit(x), lab).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-7, atol=1e-9)


def test_exact_loss_gradcheck_batched_with_ignored_pixels(one_thread) -> None:
    # the closed-form backward against finite differences, ignored pixels and sparse ids
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 30, 4, dtype=torch.float64, generator=g).requires_grad_(True)
    lab = torch.randint(0, 4, (2, 30), generator=g)
    lab[0, :7] = -1
    lab[1] *= 50
    assert torch.autograd.gradcheck(lambda t: spectral_loss(t, lab, normalize=True), (x,))


def test_loss_is_zero_for_oracle_embedding_and_float32_is_accurate() -> None:
    lab = torch.randint(0, 21, (20000,), generator=torch.Generator().manual_seed(3))
    f = torch.nn.functional.one_hot(lab, 21).float()
    assert float(spectral_loss(f, lab)) == 0.0
    # a rotation of the oracle embedding is just as good (the loss is rotation invariant)
    q, _ = torch.linalg.qr(torch.randn(21, 21, generator=torch.Generator().manual_seed(4)))
    rot = (f.double() @ q.double()).float()
    assert float(spectral_loss(rot, lab, normalize=True)) < 1e-6


def test_loss_rejects_bad_input() -> None:
    f = torch.zeros(4, 3)
    with pytest.raises(InputError, match="integer"):
        spectral_loss(f, torch.zeros(4))
    with pytest.raises(InputError, match="do not match|must be"):
        spectral_loss(f, torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="floating"):
        spectral_loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long))


@pytest.fixture
def one_thread():
    """Small torch ops are far faster on one thread on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sampled_estimator_is_unbiased(one_thread) -> None:
    g = torch.Generator().manual_seed(5)
    f = _unit(torch.randn(2, 400, 8, dtype=torch.float64, generator=g))
    lab = torch.randint(0, 5, (2, 400), generator=g)
    lab[1, :50] = -1
    exact = spectral_loss(f, lab)
    draws = torch.stack([sampled_spectral_loss(f, lab, 40, generator=g) for _ in range(3000)])
    mean = draws.mean(0)
    torch.testing.assert_close(mean, exact, rtol=0.01, atol=0)
    # normalised variant estimates loss / N^2
    est = torch.stack(
        [sampled_spectral_loss(f[0], lab[0], 40, normalize=True, generator=g) for _ in range(3000)]
    ).mean()
    assert float(est) == pytest.approx(float(spectral_loss(f[0], lab[0], normalize=True)), rel=0.01)
    with pytest.raises(InputError, match="n_samples"):
        sampled_spectral_loss(f, lab, 1)


# ---------------------------------------------------------------- Theorem 2.1


@pytest.mark.parametrize("sizes", [[3], [1, 4, 2], [5, 5, 1, 7]])
def test_oracle_laplacian_theorem_2_1(sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes))
    lab = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    lap = oracle_laplacian(lab)
    # 1. symmetric positive semi-definite
    np.testing.assert_array_equal(lap, lap.T)
    w = np.linalg.eigvalsh(lap)
    assert w.min() > -1e-9
    # 2. k non-zero eigenvalues = the squared cluster sizes, the others 0
    v, lam = oracle_embedding(lab)
    np.testing.assert_allclose(np.sort(lam), np.sort(np.square(sizes)), rtol=1e-10)
    assert np.sum(np.abs(w) > 1e-8) == len(sizes)
    # 3. partial spectral decomposition L = V_o Lambda V_o^T
    vo = v / lam[None, :] ** 0.25
    np.testing.assert_allclose(vo.T @ vo, np.eye(len(sizes)), atol=1e-10)
    np.testing.assert_allclose(vo @ np.diag(lam) @ vo.T, lap, atol=1e-9)
    # 4. rows of V = V_o Lambda^(1/4): inner product 1 within a cluster, 0 across
    same = (lab[:, None] == lab[None, :]).astype(float)
    np.testing.assert_allclose(v @ v.T, same, atol=1e-10)
    # and V is a zero of the spectral loss
    loss = spectral_loss(torch.from_numpy(v), torch.from_numpy(lab))
    assert abs(float(loss)) < 1e-9


# ---------------------------------------------------------------- KwikCluster


def test_kwikcluster_recovers_known_partition() -> None:
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 12, 3000)
    # noisy unit embeddings around orthonormal centres: every within-cluster inner product
    # is > 1/2 and every across-cluster one < 1/2
    centres = np.linalg.qr(rng.normal(size=(21, 21)))[0][:12]
    emb = centres[lab] + 0.05 * rng.normal(size=(3000, 21))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    for seed in (0, 1, 2):
        assert _same_partition(kwikcluster(emb, 0.5, seed=seed), lab)
    # the oracle embedding of Theorem 2.1
    v, _ = oracle_embedding(lab[:300])
    out = kwikcluster(v, seed=7)
    assert _same_partition(out, lab[:300])
    assert out.dtype == np.int32 and out.min() == 0


def test_kwikcluster_pivot_semantics_and_seed() -> None:
    # points on a circle: clusters are arcs around the pivots; a seed fixes the result
    ang = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    emb = np.stack([np.cos(ang), np.sin(ang)], 1)
    a, b = kwikcluster(emb, 0.5, seed=3), kwikcluster(emb, 0.5, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, kwikcluster(emb, 0.5, seed=4))
    # every point has inner product > 1/2 with its cluster's pivot (the first in the order)
    order = np.random.default_rng(3).permutation(200)
    first = {}
    for p in order:
        first.setdefault(int(a[p]), int(p))
    pivots = np.array([first[c] for c in a])
    assert np.all(np.einsum("ij,ij->i", emb, emb[pivots]) > 0.5)
    # threshold -1: one cluster; threshold 1: singletons
    assert kwikcluster(emb, -1.5).max() == 0
    assert kwikcluster(emb, 1.0).max() == 199


def test_kwikcluster_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="embeddings"):
        kwikcluster(np.zeros(5))
    with pytest.raises(InputError, match="finite"):
        kwikcluster(np.full((3, 2), np.nan))
    with pytest.raises(InputError, match="embeddings"):
        kwikcluster_image(np.zeros((4, 4)))


def _block_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """A 40 x 60 map of 6 blocks with one-hot embeddings, and its labels."""
    lab = np.zeros((40, 60), dtype=np.int64)
    lab[:, 20:40] = 1
    lab[:, 40:] = 2
    lab[20:] += 3
    return np.eye(8)[lab].astype(np.float32), lab


def test_kwikcluster_image_regions_and_small_merge() -> None:
    emb, lab = _block_embeddings()
    assert _same_partition(kwikcluster_image(emb, seed=1), lab)
    # a cluster in two disconnected places is split into connected regions
    emb2 = emb.copy()
    emb2[:, 40:] = emb[:, :20][:, :20]
    out = kwikcluster_image(emb2)
    assert out.max() == 6
    # a 2x2 speck of a foreign embedding is merged into its surroundings with min_size
    emb3 = emb.copy()
    emb3[5:7, 5:7] = np.eye(8)[7]
    assert kwikcluster_image(emb3).max() == 7
    assert _same_partition(kwikcluster_image(emb3, min_size=5), lab)


def test_merge_small_regions_prefers_similar_neighbour_and_respects_parent() -> None:
    lab = np.zeros((10, 10), dtype=int)
    lab[:, 5:] = 1
    lab[4:6, 4:6] = 2  # 4-pixel speck on the border of regions 0 and 1
    emb = np.zeros((10, 10, 2))
    emb[lab == 0] = [1, 0]
    emb[lab == 1] = [0, 1]
    emb[lab == 2] = [0.2, 0.98]  # more like region 1
    out = merge_small_regions(lab, 5, emb)
    assert out.max() == 2 and out[4, 4] == out[0, 9]
    parent = (lab == 0) | (lab == 2)  # the speck must stay with region 0
    out = merge_small_regions(lab, 5, emb, parent=parent.astype(int))
    assert out[4, 4] == out[0, 0]
    # no embeddings: longest shared border
    lab2 = np.zeros((6, 6), dtype=int)
    lab2[:, 3:] = 1
    lab2[0:2, 2] = 2  # borders 0 on 2 pixels (left), 1 on 2 (right) and 0 below: picks 0
    assert merge_small_regions(lab2, 3)[0, 2] == merge_small_regions(lab2, 3)[0, 0]


def test_refine_upsampled_labels() -> None:
    grid = np.array([[0, 1], [0, 1]])
    gemb = np.eye(2)[grid]
    # a 4 x 8 image: left half like 0, right half like 1; the middle columns are mixed
    pix = np.zeros((4, 8, 2))
    pix[:, :4] = [1, 0]
    pix[:, 4:] = [0, 1]
    out = refine_upsampled_labels(grid, gemb, pix)
    np.testing.assert_array_equal(out, np.repeat([[0] * 4 + [1] * 4], 4, axis=0))


def test_kwikcluster_hierarchy_is_nested_and_round_trips_through_ucm() -> None:
    rng = np.random.default_rng(0)
    _, lab = _block_embeddings()
    # block pairs (0, 1), (3, 4), (2, 5) have inner product 0.7, others 0
    c = np.zeros((6, 6))
    for a, b, i in ((0, 1, 0), (3, 4, 2), (2, 5, 4)):
        c[a, i] = 1.0
        c[b, i], c[b, i + 1] = 0.7, np.sqrt(1 - 0.49)
    emb = c[lab] + 0.01 * rng.normal(size=lab.shape + (6,))
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    h = kwikcluster_hierarchy(emb, (0.9, 0.5), seed=0)
    assert isinstance(h, Hierarchy) and h.n_segments == [6, 3]
    assert h.n_segments == sorted(h.n_segments, reverse=True)
    assert h.heights[h.default_level] == pytest.approx(0.5)
    for fine, coarse in zip(h.levels[:-1], h.levels[1:], strict=True):
        # every fine region lies inside one coarse region
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(fine))
    back = Hierarchy.from_ucm(h.to_ucm())
    assert back.n_segments == h.n_segments
    for a, b in zip(back.levels, h.levels, strict=True):
        assert _same_partition(a, b)
    # on a grid with full-resolution embeddings the levels come back at full resolution
    up = np.repeat(np.repeat(emb, 2, 0), 2, 1)
    h2 = kwikcluster_hierarchy(emb, (0.9, 0.5), seed=0, pixel_embeddings=up)
    assert h2.shape == (80, 120) and h2.n_segments == h.n_segments
    assert _same_partition(h2.levels[0][::2, ::2], h.levels[0])


# ---------------------------------------------------------------- embedding head


def test_head_outputs_unit_embeddings_and_round_trips(tmp_path) -> None:
    from affseg.models.spectral_net import (
        SpectralHead,
        load_head,
        save_head,
        upsample_embeddings,
    )

    torch.manual_seed(0)
    head = SpectralHead(dim=5, width=8)
    feats = [
        torch.randn(2, c, 64 // s, 96 // s)
        for c, s in zip((16, 24, 40, 112), (2, 4, 8, 16), strict=True)
    ]
    emb = head(feats)
    assert emb.shape == (2, 5, 16, 24)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2, 16, 24))
    up = upsample_embeddings(emb, (64, 96))
    torch.testing.assert_close(up.norm(dim=1), torch.ones(2, 64, 96))
    path = save_head(head, tmp_path / "h.pt", steps=1)
    again = load_head(path)
    torch.testing.assert_close(again(feats), emb.detach())
    with pytest.raises(InputError, match="not found"):
        load_head(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match="cannot load"):
        load_head(tmp_path / "bad.pt")


def test_spectral_method_on_a_synthetic_image(one_thread) -> None:
    from affseg.methods import run_method
    from affseg.models.spectral_net import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("shipped spectral head weights absent")
    img = np.zeros((70, 90, 3), dtype=np.uint8)
    img[:, 45:] = (230, 40, 30)  # two flat halves: their boundary must be kept
    img[:, :45] = (20, 90, 200)
    h = run_method(img, "spectral", seed=0, min_size=50)
    assert isinstance(h, Hierarchy) and h.shape == (70, 90)
    assert h.heights[h.default_level] == pytest.approx(0.5)
    for fine, coarse in zip(h.levels[:-1], h.levels[1:], strict=True):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(fine))
    # the finest level (threshold 0.95) keeps the two halves apart (the trained embeddings
    # give the flat halves an inner product of ~0.8, so coarser levels may join them)
    fine = h.levels[0]
    assert not np.intersect1d(fine[:, :40], fine[:, 50:]).size
    again = run_method(img, "spectral", seed=0, min_size=50)
    for a, b in zip(again.levels, h.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError):
        run_method(img[..., 0], "spectral")
