"""The compiled kernels (built with the package) against the numba kernels they replaced.

The numba versions are kept verbatim in ``tests/numba_reference/``. Integer outputs must be
identical and float outputs bit-identical, except the stencil (float32, built with FMA
contraction in its AVX2 / AVX-512 variants like the fast-math numba kernel): relative
error <= 1e-6 of the output's magnitude. Inputs: random ones, and the arguments the
kernels receive while ``affseg.segment`` runs on a photo.

Slow (numba compiles the references, ~30 s): ``python -m pytest -m slow
tests/test_compiled_vs_numba.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

pytestmark = pytest.mark.slow

REF = Path(__file__).with_name("numba_reference")


def _ref(name: str) -> ModuleType:
    """tests/numba_reference/<name>.py, imported under a real name (numba's cache needs it)."""
    if str(REF.parent) not in sys.path:
        sys.path.insert(0, str(REF.parent))
    return importlib.import_module(f"numba_reference.{name}")


@pytest.fixture(scope="module")
def ref_leaf() -> ModuleType:
    return _ref("leaf_kernels")


def _same(a: Any, b: Any) -> None:
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), np.abs(a - b).max()


def _copy(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


# ----------------------------------------------------------------------------- real inputs


@pytest.fixture(scope="module")
def recorded(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, list[tuple[Any, Any]]]:
    """(arguments, result) of every grouping-kernel call while segmenting a photo."""
    from skimage import data
    from skimage.transform import resize

    import affseg
    from affseg.grouping import _kernels

    calls: dict[str, list[tuple[Any, Any]]] = {}
    names = [
        "sobel_magnitude",
        "node_weights_csr",
        "rows_times_dense",
        "gram_of_kernel",
        "merge_dense",
        "tree_ucm",
        "level_luts",
        "flood",
        "exponent_in_place",
    ]
    for name in names:
        fn = getattr(_kernels, name)

        def wrapper(*args: Any, _fn: Any = fn, _name: str = name) -> Any:
            before = _copy(args)
            out = _fn(*args)
            # copies: callers update some results in place (merge_dense adds up the sums)
            if isinstance(out, tuple):
                after: Any = _copy(out)
            elif isinstance(out, np.ndarray):
                after = out.copy()
            else:
                after = _copy(args)
            calls.setdefault(_name, []).append((before, after))
            return out

        monkeypatch_module.setattr(_kernels, name, wrapper)
    image = (resize(data.coffee(), (200, 300), anti_aliasing=True) * 255).astype(np.uint8)
    affseg.segment(image)
    for mode in ("average", "mixed"):
        affseg.segment(image, method="ndd", leaf_linkage=mode, leaf_small=30.0)
    return calls


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_recorded_calls_equal_numba(recorded: dict[str, list[Any]], ref_leaf: ModuleType) -> None:
    ws = _ref("compact_watershed")
    kg = _ref("kernel_grouping")
    assert {"sobel_magnitude", "merge_dense", "flood", "tree_ucm", "level_luts"} <= set(recorded)
    for name, calls in recorded.items():
        for args, result in calls:
            args = _copy(args)
            if name == "flood":
                image, seeds, neigh, mask, width, c, output, tied = args
                ws._flood(
                    image, seeds, neigh, mask.astype(bool), width, c, output, tied.astype(bool)
                )
                _same(output, result[6])
            elif name == "exponent_in_place":
                g, sq, tau, floor = args
                kg._exponent_in_place(g, sq, np.float32(tau), np.float32(floor))
                _same(g, result[0])
            elif name == "merge_dense":
                out = ref_leaf.merge_dense(*args)
                _same(out, result[:2] if isinstance(result, tuple) else result)
            else:
                _same(getattr(ref_leaf, name)(*args), result)


# ----------------------------------------------------------------------------- random inputs


@pytest.mark.parametrize("seed", range(4))
def test_leaf_kernels_random(seed: int, ref_leaf: ModuleType) -> None:
    from affseg.grouping import leaf_kernels as lk

    rng = np.random.default_rng(seed)
    img = rng.normal(size=(17, 23, 3))
    _same(lk.sobel_magnitude(img), ref_leaf.sobel_magnitude(img))

    s, h, w = 12, 30, 40
    leaf = rng.integers(0, s, (h, w)).astype(np.int64)
    leaf[0, :s] = np.arange(s)
    gh, gw = 5, 7
    y0 = rng.integers(0, gh - 1, h)
    x0 = rng.integers(0, gw - 1, w)
    fy, fx = rng.random(h), rng.random(w)
    args = (leaf, s, gh * gw, y0, y0 + 1, fy, x0, x0 + 1, fx, gw)
    csr = lk.node_weights_csr(*args)
    _same(csr, ref_leaf.node_weights_csr(*args))
    for dtype in (np.float32, np.float64):
        k = rng.random((gh * gw, gh * gw)).astype(dtype)
        _same(lk.rows_times_dense(*csr, k), ref_leaf.rows_times_dense(*csr, k))
        _same(lk.gram_of_kernel(*csr, k), ref_leaf.gram_of_kernel(*csr, k))
        km = lk.rows_times_dense(*csr, k)
        _same(lk.gram_rows(*csr, km), ref_leaf._gram_rows(*csr, km))

    # merge: a random planar-ish adjacency, every linkage, with and without the priors
    n = 40
    pairs = {(i, i + 1) for i in range(n - 1)} | {
        tuple(sorted(p)) for p in rng.integers(0, n, (80, 2)).tolist() if p[0] != p[1]
    }
    eu, ev = (np.array(c, np.int64) for c in zip(*sorted(pairs), strict=True))
    sums = rng.random((n, n))
    sums = sums + sums.T
    for mode in (0, 1, 2):
        for w_, small in ((0.0, 0.0), (0.3, 5.0)):
            a = (n, rng.random(n) * 10 + 1, eu, ev, rng.random(eu.size) * 5, rng.random(eu.size))
            a = (*a, rng.random(eu.size) * a[4], sums.copy(), mode, w_, small, 0.4)
            got = lk.merge_dense(*_copy(a))
            want = ref_leaf.merge_dense(*_copy(a))
            _same(got, want)
            hts = np.sort(got[1]) + 1e-9 * np.arange(1, n)
            lab = rng.integers(0, n, (9, 11)).astype(np.int64)
            _same(lk.tree_ucm(lab, got[0], hts, n), ref_leaf.tree_ucm(lab, got[0], hts, n))
            steps = np.array([0, 3, 10, n - 1], np.int64)
            _same(lk.level_luts(got[0], steps, n), ref_leaf.level_luts(got[0], steps, n))


@pytest.mark.parametrize("seed", range(3))
def test_watershed_and_exponent_random(seed: int) -> None:
    from affseg.grouping.compact_watershed import compact_watershed
    from affseg.grouping.kernel_grouping import TINY, diffusion_kernel

    ws = _ref("compact_watershed")
    kg = _ref("kernel_grouping")
    rng = np.random.default_rng(seed)
    img = np.round(rng.random((40, 50)), 1)  # ties between seeds: the unpruned start
    got = compact_watershed(img, 30, 1e-2)
    # the reference flood on the same prepared arguments
    ref_mod = _ref_compact(ws)
    _same(got, ref_mod(img, 30, 1e-2))

    f = rng.normal(size=(60, 5)).astype(np.float32)
    g = f @ f.T
    sq = (f * f).sum(1)
    a, b = g.copy(), g.copy()
    from affseg.grouping import _kernels

    _kernels.exponent_in_place(a, sq, 0.7, float(np.float32(np.log(TINY))))
    kg._exponent_in_place(b, sq, np.float32(0.7), np.float32(np.log(TINY)))
    _same(a, b)
    assert diffusion_kernel(f, 0.7).dtype == np.float32


def _ref_compact(ws: ModuleType) -> Any:
    """compact_watershed with the numba flood."""
    from affseg.grouping import compact_watershed as cw

    def run(img: np.ndarray, markers: int, c: float) -> np.ndarray:
        orig = cw._kernels

        class Shim:
            @staticmethod
            def flood(image, seeds, neigh, mask, width, comp, flat, tied):  # type: ignore[no-untyped-def]
                ws._flood(
                    image, seeds, neigh, mask.astype(bool), width, comp, flat, tied.astype(bool)
                )

        cw._kernels = Shim  # type: ignore[assignment]
        try:
            return cw.compact_watershed(img, markers, c)
        finally:
            cw._kernels = orig

    return run


# ----------------------------------------------------------------------------- stencil


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
@pytest.mark.parametrize(("h", "w", "k", "m"), [(23, 37, 5, 8), (50, 75, 17, 50), (13, 9, 7, 20)])
def test_stencil_variants_equal_numba(isa: str, h: int, w: int, k: int, m: int) -> None:
    from affseg.affinity import native

    graph_ref = _ref("graph")
    rng = np.random.default_rng(h * w + k)
    coef = rng.random((1, h, w, k * k), dtype=np.float32) / (k * k)
    x = rng.standard_normal((1, h, w, m), dtype=np.float32)
    r = k // 2
    xpad = np.ascontiguousarray(np.pad(x, ((0, 0), (r, r), (r, r), (0, 0))))
    want = np.empty_like(x)
    graph_ref._stencil_par(coef, xpad, want, k)
    try:
        native.select_isa(isa)
        got = native.stencil_power(coef, x, k, 1, 2)
    finally:
        native.select_isa()
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


# ----------------------------------------------------------------------------- boundaries


def test_boundary_match_equals_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every match / thin call of a boundary evaluation of two real segmentations, and
    random lapjvsp graphs with many ties."""
    from skimage import data
    from skimage.segmentation import felzenszwalb, slic

    from affseg.metrics import _kernels
    from affseg.metrics.boundary import boundary_counts, seg_to_boundaries

    ref = _ref("boundary_match")
    calls: dict[str, list[tuple[Any, Any]]] = {}
    for name in ("match", "thin"):
        fn = getattr(_kernels, name)

        def wrapper(*args: Any, _fn: Any = fn, _name: str = name) -> Any:
            before = _copy(args)
            out = _fn(*args)
            after = _copy(out) if isinstance(out, tuple) else _copy(args)
            calls.setdefault(_name, []).append((before, after))
            return out

        monkeypatch.setattr(_kernels, name, wrapper)
    image = data.coffee()[::2, ::2]
    gts = [seg_to_boundaries(slic(image, n_segments=n, start_label=1)) for n in (40, 120)]
    maps = [seg_to_boundaries(felzenszwalb(image, scale=s)) for s in (50, 300)]
    boundary_counts(maps, gts, 0.0075, True)
    assert calls["match"] and calls["thin"]
    for args, result in calls["match"]:
        _same(ref._match(*args), result)
    for args, result in calls["thin"]:
        img, lut1, lut2 = _copy(args)
        ref._thin(img, lut1 > 0, lut2 > 0)
        _same(img, result[0])

    from affseg.metrics._boundary_match import _lapjvsp_rect

    rng = np.random.default_rng(3)
    for _ in range(200):
        nr, nreal = int(rng.integers(1, 25)), int(rng.integers(1, 30))
        m = rng.random((nr, nreal)) < rng.uniform(0.05, 0.5)
        w = rng.choice([1.0, 101.0, 142.0, 201.0, 225.0], size=m.shape)
        first, kk, cc = [0], [], []
        for i in range(nr):
            cols = np.flatnonzero(m[i])
            kk += [*cols.tolist(), nreal + i]
            cc += [*w[i, cols].tolist(), 400.0]
            first.append(len(kk))
        a = (np.array(first), np.array(kk), np.array(cc), nr, nreal + nr)
        _same(_lapjvsp_rect(*a), ref._lapjvsp_rect(*a))


# ----------------------------------------------------------------------------- ucm, kwik


@pytest.mark.parametrize("seed", range(3))
def test_ucm_levels_and_kwikcluster_equal_numba(seed: int) -> None:
    from scipy import ndimage

    from affseg.grouping import _kernels
    from affseg.grouping.kwikcluster import kwikcluster
    from affseg.grouping.ucm import BSDS_THRESHOLDS, levels_to_ucm

    ucm_ref = _ref("ucm")
    kwik_ref = _ref("kwikcluster")
    rng = np.random.default_rng(seed)
    fine = rng.integers(1, 30, (12, 17))
    levels = [fine, (fine + 1) // 4 + 1, (fine + 1) // 12 + 1]
    u = levels_to_ucm(levels, np.array([0.1, 0.4, 0.8]))
    u = np.ascontiguousarray(u + np.round(rng.random(u.shape), 2) * (u > 0))
    thr = np.ascontiguousarray(np.asarray(BSDS_THRESHOLDS, dtype=np.float64)[::7])
    lab0, n0 = ndimage.label(u <= thr[0], structure=np.ones((3, 3)))
    keep = np.flatnonzero(np.bincount(lab0[1::2, 1::2].ravel(), minlength=n0 + 1))
    got = _kernels.merge_levels(u, lab0.astype(np.int64), n0, keep, thr)
    _same(got, ucm_ref._merge_levels(u, lab0, n0, keep, thr))

    emb = rng.normal(size=(300, 6)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    order = rng.permutation(300)
    for t in (0.2, 0.5, 0.9):
        _same(kwikcluster(emb, t, seed=seed), kwik_ref.kwikcluster(emb, t, seed=seed))
        _same(_kernels.kwik_core(emb, order, t), kwik_ref._kwik_core(emb, order, t))


# ----------------------------------------------------------------------------- affinity


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 5])
def test_generic_stencil_and_correlate_equal_numba(dtype: type, k: int) -> None:
    """fastmath numba (FMA, vectorised sums) vs the compiled loops: float tolerance."""
    from affseg.affinity import _kernels

    graph_ref = _ref("graph")
    rng = np.random.default_rng(k)
    h, w, m, r = 11, 14, 6, k // 2
    coef = rng.random((2, h, w, k * k)).astype(dtype)
    x = rng.normal(size=(2, h, w, m)).astype(dtype)
    xpad = np.ascontiguousarray(np.pad(x, ((0, 0), (r, r), (r, r), (0, 0))))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for threads in (1, 2):
        got, want = np.empty_like(x), np.empty_like(x)
        _kernels.stencil(coef, xpad, got, k, threads)
        graph_ref._stencil_par(coef, xpad, want, k)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        g_got, g_want = np.empty_like(coef), np.empty_like(coef)
        _kernels.correlate(x, xpad, g_got, k, threads)
        graph_ref._correlate_par(x, xpad, g_want, k)
        np.testing.assert_allclose(g_got, g_want, rtol=tol, atol=tol * np.abs(g_want).max())


def test_propagation_and_segment_sums_equal_numba() -> None:
    import torch

    from affseg.affinity import _kernels

    prop_ref = _ref("propagation")
    spec_ref = _ref("spectral")
    rng = np.random.default_rng(0)
    b, c, h, w, kk = 2, 3, 9, 13, 8
    hn = rng.normal(size=(b, c, h, w)).astype(np.float32)
    an = (rng.random((b, kk, h, w)) / kk).astype(np.float32)
    cn = (1 - an.sum(1)).astype(np.float32)
    offs = np.array([(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx], np.int64)
    keep = rng.random((b, c, h, w)).astype(np.float32)
    fixed = rng.normal(size=(b, c, h, w)).astype(np.float32)
    for use_mask in (False, True):
        want = prop_ref._propagate_kernel(hn, an, cn, offs, 5, keep, fixed, use_mask)
        for threads in (1, 2):
            got = _kernels.propagate(hn, an, cn, offs, 5, keep, fixed, use_mask, threads)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    for dtype in (np.float32, np.float64):
        f = rng.normal(size=(500, 7)).astype(dtype)
        gid = rng.integers(0, 9, 500)
        _same(_kernels.segment_sums(f, gid, 9), spec_ref._segment_sums_nb(f, gid, 9))
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("geometry", ["hyperbolic", "euclidean"])
def test_ham_kernels_equal_numba(geometry: str) -> None:
    import torch

    from affseg.models.ham import HAMAffinity
    from affseg.models.ham_fast import ham_affinity_fast

    ham_ref = _ref("ham_fast")
    torch.manual_seed(0)
    ham = HAMAffinity(geometry, stable_rank=True)
    emb, s = torch.randn(2, 6, 17, 23), torch.rand(2, 1, 17, 23)
    with torch.no_grad():
        for dilation in (1, 2):
            for normalize in (False, True):
                got = ham_affinity_fast(ham, emb, s, dilation, normalize=normalize)
                want = ham_ref.ham_affinity_fast(ham, emb, s, dilation, normalize=normalize)
                got_t = got if isinstance(got, tuple) else (got,)
                want_t = want if isinstance(want, tuple) else (want,)
                for a, b in zip(got_t, want_t, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
