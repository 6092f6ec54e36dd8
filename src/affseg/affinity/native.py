"""A compiled C stencil kernel, built at first use with the host's C compiler.

The diffusion engine spends over 90 % of its time applying a k x k local operator to ~50
vectors (:func:`affseg.affinity.graph.LocalOperator.apply`). numba does not keep the
accumulators of a register-blocked loop in registers, so this module compiles
``_stencil.c`` (GCC vector extensions, blocks of 4-5 pixels x 16-24 channels) with
``cc -O3 -march=native -fopenmp`` into a per-user cache the first time it is needed, and
calls it through :mod:`ctypes` (which releases the GIL). Loaded after torch, the library
binds to the OpenMP runtime torch already loaded, so its threads are torch's own
(``torch.set_num_threads`` applies) rather than a second team competing for the cores.
:func:`stencil_power` runs n applications inside one parallel region. It is about twice
as fast as the numba kernel; when no compiler is available, or ``AFFSEG_NATIVE=0`` is set,
:func:`stencil_library` returns None and the numba kernel is used instead.

Environment
-----------
AFFSEG_NATIVE
    ``0`` disables the compiled kernel.
AFFSEG_CACHE_DIR
    Where the shared library is cached (default ``$XDG_CACHE_HOME/affseg`` or
    ``~/.cache/affseg``).
CC
    The C compiler (default ``cc``, then ``gcc``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from affseg.cache import cache_dir as user_cache_dir

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_stencil.c")
#: Compile flags; the link step (``-shared``) leaves out -ffast-math so that crtfastmath.o
#: (which would switch the whole process to flush-to-zero) is not linked in.
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-std=gnu99")
LINK_FLAGS = ("-shared", "-fPIC")
#: OpenMP first; a compiler without it builds the serial kernel.
THREAD_FLAGS = (("-fopenmp",), ())
#: The kernel's constraints: odd k >= 5, channel count a multiple of 8.
MIN_K = 5
CHANNEL_MULTIPLE = 8

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    """Directory of the compiled library (see the module's Environment section).

    Examples
    --------
    >>> cache_dir().is_absolute() or cache_dir().name == "affseg"
    True
    """
    return user_cache_dir()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_tag() -> str:
    """What -march=native depends on: the CPU model and its flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor()


def _build(cc: str) -> Path:
    """Compile ``_stencil.c`` into the cache (OpenMP if the compiler has it) and return the
    library's path; an existing build for the same source, flags and CPU is reused."""
    src = SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join(
            [
                src,
                " ".join(FLAGS + LINK_FLAGS).encode(),
                cc.encode(),
                _cpu_tag().encode(),
                platform.machine().encode(),
            ]
        )
    )
    target = cache_dir() / f"stencil-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for i, extra in enumerate(THREAD_FLAGS):
            try:
                obj = tmp + ".o"
                try:
                    subprocess.run(
                        [cc, *FLAGS, *extra, "-c", "-o", obj, str(SOURCE)],
                        check=True,
                        capture_output=True,
                        timeout=120,
                    )
                    subprocess.run(
                        [cc, *LINK_FLAGS, *extra, "-o", tmp, obj],
                        check=True,
                        capture_output=True,
                        timeout=120,
                    )
                finally:
                    if os.path.exists(obj):
                        os.unlink(obj)
                break
            except subprocess.CalledProcessError:
                if i == len(THREAD_FLAGS) - 1:
                    raise
        os.replace(tmp, target)  # atomic: concurrent builds are harmless
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def stencil_library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None if unavailable or disabled."""
    global _lib, _tried
    if os.environ.get("AFFSEG_NATIVE", "1") == "0":
        return None
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        cc = _compiler()
        if cc is None:
            log.info("no C compiler found: using the numba stencil kernel")
            return None
        try:
            lib = ctypes.CDLL(str(_build(cc)))
            fn = lib.affseg_stencil
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 7
            fn = lib.affseg_stencil_power
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 7
            _lib = lib
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", b"") or b""
            log.warning(
                "could not build the C stencil kernel (%s %s); using numba",
                err,
                detail.decode(errors="replace")[:500],
            )
            _lib = None
    return _lib


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
    code = lib.affseg_stencil(
        coef.ctypes.data,
        xpad.ctypes.data,
        out.ctypes.data,
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
    code = lib.affseg_stencil_power(
        np.ascontiguousarray(coef).ctypes.data,
        bufs[0].ctypes.data,
        bufs[1].ctypes.data,
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
