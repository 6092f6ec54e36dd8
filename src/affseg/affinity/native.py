"""The compiled C stencil kernel, built with the package.

The diffusion engine spends over 90 % of its time applying a k x k local operator to ~50
vectors (:func:`affseg.affinity.graph.LocalOperator.apply`). ``_stencil.c`` keeps the
accumulators of a register-blocked loop in registers (GCC vector extensions, blocks of
4-5 pixels x 16-24 channels); it is compiled when the package is built, into the extension
``affseg.affinity._native``, for a portable baseline and, on x86-64, also for AVX2 + FMA
and AVX-512VL: the variant is picked once from the CPU at run time (nothing is compiled
or cached on first use). The extension releases the GIL and runs on OpenMP: imported
after torch (it is imported on first use), it binds to the OpenMP runtime torch already
loaded, so its threads are torch's own (``torch.set_num_threads`` applies) rather than a
second team competing for the cores. :func:`stencil_power` runs n applications inside one
parallel region.

Environment
-----------
AFFSEG_NATIVE
    ``0`` disables the C kernel (:mod:`affseg.affinity.graph` then uses its generic
    compiled kernel).
AFFSEG_STENCIL_ISA
    Force a variant: ``baseline``, ``avx2`` or ``avx512`` (default: the best the CPU runs).
"""

from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType

import numpy as np

#: The kernel's constraints: odd k >= 5, channel count a multiple of 8.
MIN_K = 5
CHANNEL_MULTIPLE = 8
#: The variants of the kernel, by the value of ``AFFSEG_STENCIL_ISA``.
ISAS = {"baseline": 0, "avx2": 1, "avx512": 2}

_lock = threading.Lock()
_lib: ModuleType | None = None


def stencil_library() -> ModuleType | None:
    """The compiled kernel's extension module; None when disabled (``AFFSEG_NATIVE=0``).

    Imported on first use (after torch, whose OpenMP runtime it then shares); the
    variant named by ``AFFSEG_STENCIL_ISA`` is selected then.

    Examples
    --------
    >>> lib = stencil_library()
    >>> lib is None or lib.isa() in (0, 1, 2)
    True
    """
    global _lib
    if os.environ.get("AFFSEG_NATIVE", "1") == "0":
        return None
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            lib = importlib.import_module("affseg.affinity._native")
            lib.select_isa(ISAS.get(os.environ.get("AFFSEG_STENCIL_ISA", ""), -1))
            _lib = lib
    return _lib


def select_isa(name: str | None = None) -> str:
    """Use the kernel variant ``name`` (``baseline``, ``avx2``, ``avx512``; None: the best
    the CPU runs) and return the one in use (a variant the CPU lacks falls back to the
    next lower one).

    Examples
    --------
    >>> select_isa("baseline")
    'baseline'
    >>> select_isa() in ISAS
    True
    """
    lib = importlib.import_module("affseg.affinity._native")
    if name is not None and name not in ISAS:
        raise ValueError(f"unknown stencil variant {name!r}; choose from {sorted(ISAS)}")
    chosen = lib.select_isa(-1 if name is None else ISAS[name])
    return {v: k for k, v in ISAS.items()}[chosen]


def supports(k: int, dtype: np.dtype) -> bool:
    """Whether the compiled kernel can run a k x k stencil on this dtype (and is built).

    Examples
    --------
    >>> import numpy as np
    >>> supports(3, np.dtype("float32"))                  # the kernel needs k >= 5
    False
    """
    return dtype == np.float32 and k >= MIN_K and k % 2 == 1 and stencil_library() is not None


def stencil(
    coef: np.ndarray,
    xpad: np.ndarray,
    out: np.ndarray,
    k: int,
    threads: int = 1,
    padded_out: bool = False,
) -> None:
    """``out = A x`` with the compiled kernel (see :mod:`affseg.affinity.graph`).

    Parameters
    ----------
    coef : ndarray, shape (B, h, w, k*k), float32, C-contiguous
    xpad : ndarray, shape (B, h + k - 1, w + k - 1, Mp), float32, C-contiguous
        Vectors padded by k // 2 zero pixels on each side, Mp a multiple of 8.
    out : ndarray, shape (B, h, w, Mp) or, with ``padded_out``, like ``xpad``
        Written in place (only the interior when padded).
    k : int
        Odd window size >= 5.
    threads : int
        Threads (the calling one included); rows are split evenly between them.
    padded_out : bool
        Whether ``out`` is padded like ``xpad``.
    """
    lib = stencil_library()
    nb, hp, wp, mp = xpad.shape
    r = k // 2
    h, w = hp - 2 * r, wp - 2 * r
    ok = (
        lib is not None
        and coef.shape == (nb, h, w, k * k)
        and out.shape == ((nb, hp, wp, mp) if padded_out else (nb, h, w, mp))
        and mp % CHANNEL_MULTIPLE == 0
        and all(a.dtype == np.float32 and a.flags.c_contiguous for a in (coef, xpad, out))
    )
    if not ok:
        raise ValueError(
            f"native stencil: unsupported arguments {coef.shape}, {xpad.shape}, {out.shape}, k={k}"
        )
    assert lib is not None
    code = lib.stencil(
        coef,
        xpad,
        out,
        nb,
        h,
        w,
        k,
        mp,
        r if padded_out else 0,
        max(1, threads),
    )
    if code:
        raise ValueError(f"native stencil rejected its arguments (k={k}, Mp={mp})")


def stencil_power(
    coef: np.ndarray, x: np.ndarray, k: int, n: int = 1, threads: int = 1
) -> np.ndarray:
    """``A^n x``: n applications of the stencil, ping-ponging between two padded buffers.

    Parameters
    ----------
    coef : ndarray, shape (B, h, w, k*k), float32, C-contiguous
    x : ndarray, shape (B, h, w, M), float32
    k : int
        Odd window size >= 5.
    n : int
        Number of applications (>= 1).
    threads : int
        Threads per application.

    Returns
    -------
    ndarray, shape (B, h, w, M), float32, C-contiguous

    Examples
    --------
    >>> import numpy as np
    >>> coef = np.full((1, 6, 7, 25), 0.04, np.float32)    # a 5 x 5 box filter
    >>> x = np.ones((1, 6, 7, 8), np.float32)
    >>> out = stencil_power(coef, x, 5) if supports(5, np.dtype("float32")) else None
    >>> out is None or bool(np.isclose(out[0, 3, 3, 0], 1.0))   # interior: mean of ones
    True
    """
    nb, h, w, m = x.shape
    r = k // 2
    mp = -(-m // CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE
    bufs = [np.zeros((nb, h + 2 * r, w + 2 * r, mp), np.float32) for _ in range(min(n, 2))]
    if n == 1:
        out = np.empty((nb, h, w, mp), np.float32)
        bufs[0][:, r : r + h, r : r + w, :m] = x
        stencil(coef, bufs[0], out, k, threads)
        return np.ascontiguousarray(out[..., :m])
    bufs[0][:, r : r + h, r : r + w, :m] = x
    lib = stencil_library()
    if lib is None or coef.shape != (nb, h, w, k * k) or coef.dtype != np.float32:
        raise ValueError(f"native stencil: unsupported arguments {coef.shape}, k={k}")
    code = lib.stencil_power(
        np.ascontiguousarray(coef),
        bufs[0],
        bufs[1],
        nb,
        h,
        w,
        k,
        mp,
        n,
        max(1, threads),
    )
    if code:
        raise ValueError(f"native stencil rejected its arguments (k={k}, Mp={mp})")
    return np.ascontiguousarray(bufs[n % 2][:, r : r + h, r : r + w, :m])
