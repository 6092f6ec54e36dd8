"""One memory rule for every command: estimate the peak before allocating, refuse in one line.

A command that could need more memory than the machine has estimates its peak from the
input's size (a model of the form ``base + bytes per pixel x pixels``, measured with the
peak resident set size of a child process, ``resource.getrusage(RUSAGE_CHILDREN)``) and,
before allocating, either works at a bounded resolution or calls :func:`check_memory`,
which refuses with one line when the estimate is above the limit. The limit is
``$AFFSEG_MAX_MEMORY_GB`` (gigabytes of 10**9 bytes), default
:data:`DEFAULT_MAX_MEMORY_GB`, sized for a laptop.

torch reports a failed allocation as a ``RuntimeError`` ("DefaultCPUAllocator: can't
allocate memory ..."), not as ``MemoryError``; :func:`is_out_of_memory` recognises both, so
the command line prints one line (:func:`out_of_memory_message`) instead of a traceback.

Example
-------
>>> import os
>>> from affseg.memory import check_memory, max_memory_bytes
>>> os.environ["AFFSEG_MAX_MEMORY_GB"] = "2"
>>> max_memory_bytes()
2000000000
>>> check_memory(1.5e9, "this", "use less")          # fits: nothing happens
>>> check_memory(3e9, "depth-sr run on 4000 x 3000 pixels", "use a smaller guide")
Traceback (most recent call last):
...
affseg.errors.InputError: depth-sr run on 4000 x 3000 pixels would need about 3.0 GB, ...
>>> del os.environ["AFFSEG_MAX_MEMORY_GB"]
"""

from __future__ import annotations

import math
import os
import re

from affseg.errors import InputError

#: Environment variable that sets the limit, in gigabytes (10**9 bytes).
ENV_VAR = "AFFSEG_MAX_MEMORY_GB"
#: The limit when ``$AFFSEG_MAX_MEMORY_GB`` is unset: a laptop with 8 GB shared with others.
DEFAULT_MAX_MEMORY_GB = 4.0
#: Bytes per gigabyte in every message (decimal, as the limit).
GB = 1e9

_TORCH_OOM = re.compile(
    r"DefaultCPUAllocator: (?:can't|not enough memory)|can't allocate memory", re.IGNORECASE
)
_TRIED = re.compile(r"tried to allocate (\d+) bytes")


def max_memory_bytes() -> int:
    """The memory limit in bytes: ``$AFFSEG_MAX_MEMORY_GB`` x 10**9, default 4 GB.

    Returns
    -------
    int
        Bytes (> 0).

    Raises
    ------
    InputError
        ``$AFFSEG_MAX_MEMORY_GB`` is not a positive finite number.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("AFFSEG_MAX_MEMORY_GB", None) and None
    >>> max_memory_bytes()
    4000000000
    >>> os.environ["AFFSEG_MAX_MEMORY_GB"] = "lots"
    >>> max_memory_bytes()
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: AFFSEG_MAX_MEMORY_GB must be a positive number of gigabytes, ...
    >>> del os.environ["AFFSEG_MAX_MEMORY_GB"]
    """
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return int(DEFAULT_MAX_MEMORY_GB * GB)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"{ENV_VAR} must be a positive number of gigabytes, e.g. 4 or 0.5; got {raw!r}"
        )
    return max(1, int(value * GB))


def format_gb(n_bytes: float) -> str:
    """``"3.6 GB"``: bytes as gigabytes, two significant digits below 10 GB.

    Examples
    --------
    >>> format_gb(3.6e9), format_gb(38.6e9), format_gb(2e7)
    ('3.6 GB', '39 GB', '0.02 GB')
    """
    gb = float(n_bytes) / GB
    if gb >= 10:
        return f"{gb:.0f} GB"
    if gb >= 0.1:
        return f"{gb:.1f} GB"
    return f"{gb:.2f} GB"


def check_memory(estimate_bytes: float, what: str, hint: str) -> None:
    """Refuse, before allocating, work whose estimated peak is above :func:`max_memory_bytes`.

    Parameters
    ----------
    estimate_bytes : float
        Estimated peak memory of the work (bytes); NaN or infinite counts as too much.
    what : str
        What would need it, e.g. ``"semantic segmentation of 4000 x 3000 pixels"``.
    hint : str
        What the user can do instead (named options, smaller input, raising the limit).

    Raises
    ------
    InputError
        ``"<what> would need about X GB, above the limit of Y GB (AFFSEG_MAX_MEMORY_GB);
        <hint>"``, one line.

    Examples
    --------
    >>> check_memory(1e6, "a small job", "n/a")
    >>> check_memory(1e12, "a huge job", "use a smaller image")
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: a huge job would need about 1000 GB, above the limit of ...
    """
    limit = max_memory_bytes()
    est = float(estimate_bytes)
    if math.isfinite(est) and est <= limit:
        return
    need = format_gb(est) if math.isfinite(est) else "more than any machine has"
    raise InputError(
        f"{what} would need about {need}, above the limit of {format_gb(limit)} ({ENV_VAR}); {hint}"
    )


def max_pixels_within(base_bytes: float, bytes_per_pixel: float) -> int:
    """The most pixels whose estimate ``base + bytes_per_pixel x pixels`` fits the limit.

    Parameters
    ----------
    base_bytes, bytes_per_pixel : float
        The linear memory model of a command.

    Returns
    -------
    int
        Pixels (0 when even the base does not fit).

    Examples
    --------
    >>> import os
    >>> os.environ["AFFSEG_MAX_MEMORY_GB"] = "1"
    >>> max_pixels_within(0.5e9, 100.0)
    5000000
    >>> del os.environ["AFFSEG_MAX_MEMORY_GB"]
    """
    room = max_memory_bytes() - float(base_bytes)
    return max(0, int(room // float(bytes_per_pixel)))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``MemoryError`` or torch's CPU allocator's.

    Examples
    --------
    >>> is_out_of_memory(MemoryError())
    True
    >>> is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
    ...     "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes."))
    True
    >>> is_out_of_memory(RuntimeError("shape mismatch"))
    False
    """
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and bool(_TORCH_OOM.search(str(exc)))


def out_of_memory_message(exc: BaseException, hint: str = "try a smaller image") -> str:
    """One line for an allocation failure: how much was asked for (when known) and a hint.

    Examples
    --------
    >>> out_of_memory_message(RuntimeError("DefaultCPUAllocator: can't allocate memory: "
    ...     "you tried to allocate 3600000000 bytes. Error code 12"))
    'out of memory (an allocation of 3.6 GB failed; try a smaller image)'
    >>> out_of_memory_message(MemoryError(), "try a smaller --working-side")
    'out of memory (try a smaller --working-side)'
    """
    m = _TRIED.search(str(exc))
    if m:
        return f"out of memory (an allocation of {format_gb(int(m.group(1)))} failed; {hint})"
    return f"out of memory ({hint})"
