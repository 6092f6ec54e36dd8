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

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from affseg.errors import InputError


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
        ``n`` is not a positive integer.

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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"threads must be a positive integer, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
