"""The numba stencil kernels of affseg.affinity.graph before they were compiled with the
package (reference for tests/test_compiled_vs_numba.py)."""

import types
from typing import Any

import numba
import numpy as np


def _stencil_py(coef, xpad, out, k):  # pragma: no cover - compiled
    """out[b, y, x, :] = sum_o coef[b, y, x, o] * xpad[b, y + dy, x + dx, :].

    Four horizontally adjacent pixels are done together: neighbour column x + d serves
    pixel x + p through its tap (dy, d - p), so each neighbour vector is loaded once for up
    to four pixels. The sums run in per-row scratch vectors with plain element indexing and
    no branch in the inner loop over the M columns, which LLVM vectorises (together ~3x
    faster than one pixel at a time accumulating into views of ``out``).
    """
    nb, h, w, _ = coef.shape
    m = out.shape[3]
    for task in numba.prange(nb * h):
        b = task // h
        y = task - b * h
        a0 = np.empty(m, dtype=out.dtype)
        a1 = np.empty(m, dtype=out.dtype)
        a2 = np.empty(m, dtype=out.dtype)
        a3 = np.empty(m, dtype=out.dtype)
        x = 0
        while k >= 3 and x + 3 < w:  # (the column split below needs k >= 3)
            for j in range(m):
                a0[j] = 0.0
                a1[j] = 0.0
                a2[j] = 0.0
                a3[j] = 0.0
            for dy in range(k):
                base = dy * k
                for d in range(3):  # first three neighbour columns: pixels 0..d
                    for p in range(d + 1):
                        c = coef[b, y, x + p, base + d - p]
                        acc = a0 if p == 0 else (a1 if p == 1 else (a2 if p == 2 else a3))
                        for j in range(m):
                            acc[j] += c * xpad[b, y + dy, x + d, j]
                for d in range(3, k):  # all four pixels use this neighbour column
                    c0 = coef[b, y, x, base + d]
                    c1 = coef[b, y, x + 1, base + d - 1]
                    c2 = coef[b, y, x + 2, base + d - 2]
                    c3 = coef[b, y, x + 3, base + d - 3]
                    for j in range(m):
                        v = xpad[b, y + dy, x + d, j]
                        a0[j] += c0 * v
                        a1[j] += c1 * v
                        a2[j] += c2 * v
                        a3[j] += c3 * v
                for d in range(k, k + 3):  # last three: pixels d-k+1..3
                    for p in range(d - k + 1, 4):
                        c = coef[b, y, x + p, base + d - p]
                        acc = a0 if p == 0 else (a1 if p == 1 else (a2 if p == 2 else a3))
                        for j in range(m):
                            acc[j] += c * xpad[b, y + dy, x + d, j]
            for j in range(m):
                out[b, y, x, j] = a0[j]
                out[b, y, x + 1, j] = a1[j]
                out[b, y, x + 2, j] = a2[j]
                out[b, y, x + 3, j] = a3[j]
            x += 4
        while x < w:  # the last w % 4 columns one by one
            for j in range(m):
                a0[j] = 0.0
            for dy in range(k):
                for dx in range(k):
                    c = coef[b, y, x, dy * k + dx]
                    for j in range(m):
                        a0[j] += c * xpad[b, y + dy, x + dx, j]
            for j in range(m):
                out[b, y, x, j] = a0[j]
            x += 1


def _correlate_py(grad, xpad, out, k):  # pragma: no cover - compiled
    """out[b, y, x, o] = sum_j grad[b, y, x, j] * xpad[b, y + dy, x + dx, j]."""
    nb, h, w, m = grad.shape
    for by in numba.prange(nb * h):
        b = by // h
        y = by - b * h
        for x in range(w):
            gv = grad[b, y, x]
            for dy in range(k):
                row = xpad[b, y + dy]
                for dx in range(k):
                    src = row[x + dx]
                    s = 0.0
                    for j in range(m):
                        s += gv[j] * src[j]
                    out[b, y, x, dy * k + dx] = s


def _serial_copy(fn: Any) -> types.FunctionType:
    """The same Python function under another name.

    numba's on-disk cache indexes compiled code by function name and line, not by the
    ``parallel`` flag: compiling one function both ways made the parallel dispatcher load
    the serial machine code from the cache (one core busy). A distinct name keeps the two
    apart.
    """
    name = fn.__name__ + "_serial"
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    out = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    return out


# the numba kernels, each compiled with prange (rows in parallel) and without: the same
# arithmetic, so the same numbers at any thread count
_stencil_par = numba.njit(parallel=True, fastmath=True, cache=True)(_stencil_py)
_stencil_ser = numba.njit(fastmath=True, cache=True)(_serial_copy(_stencil_py))
_correlate_par = numba.njit(parallel=True, fastmath=True, cache=True)(_correlate_py)
_correlate_ser = numba.njit(fastmath=True, cache=True)(_serial_copy(_correlate_py))
