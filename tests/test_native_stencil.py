"""The compiled C stencil kernel (affseg.affinity.native) against independent references."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from affseg.affinity import graph, native
from affseg.affinity.diffusion import diffusion_map
from affseg.affinity.graph import gaussian_affinity, normalized_operator

needs_native = pytest.mark.skipif(
    native.stencil_library() is None, reason="disabled by AFFSEG_NATIVE=0"
)


def dense_stencil(coef: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Independent float64 reference: out[b, y, x] = sum_o coef[b, y, x, o] x[b, y+dy, x+dx]."""
    nb, h, w, m = x.shape
    r = k // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (r, r), (r, r), (0, 0)))
    out = np.zeros((nb, h, w, m))
    for dy in range(k):
        for dx in range(k):
            out += coef[..., dy * k + dx, None] * xp[:, dy : dy + h, dx : dx + w]
    return out


@needs_native
@pytest.mark.parametrize(
    ("shape", "k", "m"),
    [
        ((2, 9, 11), 5, 3),  # width not a multiple of 4, fewer channels than a vector
        ((1, 13, 8), 7, 16),  # exactly two vectors
        ((1, 20, 23), 17, 50),  # the diffusion engine's case: 48 + 2 channels
        ((2, 6, 5), 17, 9),  # window wider than the grid
    ],
)
def test_native_stencil_matches_dense(shape, k, m):
    nb, h, w = shape
    rng = np.random.default_rng(0)
    coef = rng.standard_normal((nb, h, w, k * k)).astype(np.float32)
    x = rng.standard_normal((nb, h, w, m)).astype(np.float32)
    ref = dense_stencil(coef, x, k)
    ref3 = dense_stencil(coef, dense_stencil(coef, ref, k), k)
    try:
        for isa in native.ISAS:  # every variant the CPU runs (the others fall back)
            native.select_isa(isa)
            for threads in (1, 2, 3):
                out = native.stencil_power(coef, x, k, 1, threads)
                assert out.shape == x.shape and out.dtype == np.float32
                np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
            # three applications in one call = three single applications
            three = native.stencil_power(coef, x, k, 3, 2)
            np.testing.assert_allclose(three, ref3, rtol=1e-3, atol=1e-4 * np.abs(ref3).max())
    finally:
        native.select_isa()


@needs_native
def test_native_matches_generic_kernel():
    """The C kernel and the generic compiled kernel agree on a real normalised operator."""
    f = torch.randn(2, 8, 21, 19, generator=torch.Generator().manual_seed(1))
    op = normalized_operator(gaussian_affinity(f, 0.05, 17))
    cl = op.coef.permute(0, 2, 3, 1).contiguous().numpy()
    x = torch.randn(2, 21, 19, 50, generator=torch.Generator().manual_seed(2)).numpy()
    out_nb = np.empty_like(x)
    xpad = np.pad(x, ((0, 0), (8, 8), (8, 8), (0, 0)))
    graph._stencil_generic(cl, xpad, out_nb, 17)
    np.testing.assert_allclose(native.stencil_power(cl, x, 17, 1, 2), out_nb, atol=1e-5)


def test_apply_power_equals_repeated_apply(monkeypatch):
    f = torch.randn(1, 6, 15, 18, generator=torch.Generator().manual_seed(4))
    op = normalized_operator(gaussian_affinity(f, 0.1, 5))
    x = torch.randn(1, 15 * 18, 7, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fast = op.apply_power(x, 6)
        slow = x
        for _ in range(6):
            slow = op.apply(slow)
        monkeypatch.setenv("AFFSEG_NATIVE", "0")
        generic = op.apply_power(x, 6)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast, generic, rtol=1e-4, atol=1e-6)
    assert op.apply_power(x, 0) is x


def test_diffusion_map_same_with_and_without_native(monkeypatch):
    f = torch.randn(1, 8, 24, 24, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a = diffusion_map(f, 0.05, 10.0, k=17, n_eig=20)
        monkeypatch.setenv("AFFSEG_NATIVE", "0")
        b = diffusion_map(f, 0.05, 10.0, k=17, n_eig=20)
    # the leading (converged) eigenvalues agree; the last few of an unconverged block are
    # sensitive to rounding, but weigh |lambda|^(2t) ~ nothing in D_t
    torch.testing.assert_close(a.eigenvalues[:, :10], b.eigenvalues[:, :10], rtol=1e-4, atol=1e-6)
    da, db = a.distances([0, 100, 300]), b.distances([0, 100, 300])
    torch.testing.assert_close(da, db, rtol=1e-3, atol=1e-4 * float(db.max()))


def test_first_use_compiles_and_writes_nothing(tmp_path):
    """The kernel is built with the package: first use writes no file (no build, no cache)."""
    code = (
        "import numpy as np; from affseg.affinity import native; "
        "from affseg.grouping.leaf_kernels import sobel_magnitude; "
        "c = np.full((1, 6, 7, 25), 0.04, np.float32); x = np.ones((1, 6, 7, 8), np.float32); "
        "print(native.stencil_library().isa(), native.stencil_power(c, x, 5)[0, 3, 3, 0], "
        "sobel_magnitude(np.zeros((3, 3, 1))).sum())"
    )
    env = {
        **os.environ,
        "AFFSEG_CACHE_DIR": str(tmp_path / "cache"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    env.pop("AFFSEG_NATIVE", None)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    isa, one, zero = res.stdout.split()
    assert isa in ("0", "1", "2") and np.isclose(float(one), 1.0) and float(zero) == 0.0
    assert list(tmp_path.rglob("*")) == []


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown stencil variant"):
        native.select_isa("sse9")


def test_fallback_without_the_c_kernel(monkeypatch):
    """AFFSEG_NATIVE=0: the generic kernel gives the same products."""
    monkeypatch.setenv("AFFSEG_NATIVE", "0")
    f = torch.randn(1, 4, 10, 10, generator=torch.Generator().manual_seed(7))
    op = gaussian_affinity(f, 0.1, 5)
    x = torch.randn(1, 100, 3)
    torch.testing.assert_close(op.apply(x)[0], op.dense()[0] @ x[0], rtol=1e-4, atol=1e-5)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("AFFSEG_NATIVE", "0")
    assert native.stencil_library() is None
    assert not native.supports(17, np.dtype("float32"))


@needs_native
def test_bad_arguments_are_rejected():
    coef = np.zeros((1, 4, 4, 25), np.float32)
    with pytest.raises(ValueError, match="unsupported"):
        native.stencil(
            coef, np.zeros((1, 8, 8, 7), np.float32), np.zeros((1, 4, 4, 7), np.float32), 5
        )  # 7 channels: not a multiple of 8
    with pytest.raises(ValueError, match="unsupported"):
        native.stencil_power(coef.astype(np.float64), np.zeros((1, 4, 4, 3), np.float32), 5)
