"""The per-user cache directory of affseg (compiled kernels, numba's cache).

``$AFFSEG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/affseg`` or ``~/.cache/affseg``.
Nothing is ever written into the installed package: ``import affseg`` points numba's
on-disk cache (``NUMBA_CACHE_DIR``, unless already set) at ``<cache dir>/numba``, so a
read-only install works.

Example
-------
>>> import os
>>> from affseg.cache import cache_dir
>>> cache_dir().name == "affseg" or "AFFSEG_CACHE_DIR" in os.environ
True
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The affseg user cache directory (not created here)."""
    env = os.environ.get("AFFSEG_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "affseg"


def numba_cache_dir() -> Path:
    """Where numba caches affseg's compiled functions."""
    return cache_dir() / "numba"
