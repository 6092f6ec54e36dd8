"""A thread-safe least-recently-used cache bounded by the bytes of what it holds.

Example
-------
>>> c = ByteLRU(max_bytes=100)
>>> c.put("a", b"x" * 60, 60)
True
>>> c.put("b", b"y" * 60, 60)  # evicts "a"
True
>>> c.get("a") is None, c.get("b") is not None, c.bytes
(True, True, 60)
>>> c.put("huge", b"z" * 500, 500)  # larger than the whole cache: not kept
False
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np


def size_of(value: Any) -> int:
    """Approximate bytes held by ``value`` (arrays, bytes, tensors, containers, ``nbytes``)."""
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.element_size() * value.numel())
    if isinstance(value, dict):
        return sum(size_of(v) for v in value.values()) + 64 * len(value)
    if isinstance(value, list | tuple):
        return sum(size_of(v) for v in value) + 8 * len(value)
    return 64


class ByteLRU:
    """LRU mapping whose values' sizes add up to at most ``max_bytes``.

    Parameters
    ----------
    max_bytes : int
        Budget; putting a value evicts least-recently-used entries until it fits. A value
        larger than the whole budget is not stored.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def bytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return default
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> bool:
        """Store ``value`` (size ``nbytes``, default :func:`size_of`); False if too big."""
        n = size_of(value) if nbytes is None else int(nbytes)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if n > self.max_bytes:
                return False
            while self._data and self._bytes + n > self.max_bytes:
                _, (_, dropped) = self._data.popitem(last=False)
                self._bytes -= dropped
                self.evictions += 1
            self._data[key] = (value, n)
            self._bytes += n
            return True

    def pop(self, key: Hashable) -> Any:
        """Remove ``key``; returns its value or None."""
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def stats(self) -> dict[str, int]:
        """Entries, bytes, budget, hits, misses, evictions."""
        with self._lock:
            return {
                "entries": len(self._data),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }
