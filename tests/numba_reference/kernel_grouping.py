"""The numba kernel of affseg.grouping.kernel_grouping before it was compiled with the
package (reference for tests/test_compiled_kernels.py)."""

import numba
import numpy as np


@numba.njit(cache=True)
def _exponent_in_place(g, sq, tau, floor):  # pragma: no cover - compiled
    """``g[i, j] <- -tau max(sq[i] + sq[j] - 2 g[i, j], 0)``, 0 on the diagonal, -inf
    where below ``floor``."""
    n = g.shape[0]
    for i in range(n):
        row = g[i]
        si = sq[i]
        for j in range(n):
            d = si + sq[j] - np.float32(2.0) * row[j]
            if d < 0:
                d = np.float32(0.0)
            a = -tau * d
            row[j] = a if a >= floor else -np.inf
        row[i] = np.float32(0.0)
