"""Process-wide settings, changed only for the duration of a call.

Library calls must not change global state: code that wants a different number of torch
threads uses :func:`torch_threads`, which restores the previous value on exit.

Example
-------
>>> import torch
>>> from affseg.runtime import torch_threads
>>> before = torch.get_num_threads()
>>> with torch_threads(1):
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from affseg.errors import InputError

#: Threads (or worker processes) per logical core above which a count is refused: more
#: only oversubscribes the cores (and a huge count exhausts memory mapping thread stacks).
THREADS_PER_CORE = 4


def max_threads() -> int:
    """The largest thread or worker count affseg accepts: ``$AFFSEG_MAX_THREADS``, else
    :data:`THREADS_PER_CORE` x the cores of this machine (at least 8).

    Examples
    --------
    >>> max_threads() >= 8
    True
    """
    raw = os.environ.get("AFFSEG_MAX_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise InputError(f"AFFSEG_MAX_THREADS must be a positive integer, got {raw!r}")
        return value
    return max(8, THREADS_PER_CORE * (os.cpu_count() or 1))


def check_threads(n: object, what: str = "threads") -> int | None:
    """``n`` as a thread count in ``1..max_threads()`` (``None`` passes through).

    Raises
    ------
    InputError
        Not a positive integer, or more than :func:`max_threads`.

    Examples
    --------
    >>> check_threads(2), check_threads(None)
    (2, None)
    >>> check_threads(10**6, "--threads")
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --threads must be at most ... (got 1000000); ...
    """
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise InputError(f"{what} must be a positive integer, got {n!r}")
    limit = max_threads()
    if int(n) > limit:
        raise InputError(
            f"{what} must be at most {limit} ({THREADS_PER_CORE} per core of this machine) "
            f"(got {n}); set AFFSEG_MAX_THREADS to allow more"
        )
    return int(n)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads, then restore the previous count.

    Parameters
    ----------
    n : int or None
        Threads for the body (>= 1); ``None`` leaves torch's setting untouched.

    Raises
    ------
    InputError
        ``n`` is not a positive integer, or above :func:`max_threads`.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n is None:
        yield
        return
    n = check_threads(n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
