"""The per-user cache directory of affseg.

``$AFFSEG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/affseg`` or ``~/.cache/affseg``.
Nothing is ever written into the installed package, and running the package's kernels
writes nothing here either: they are compiled when the package is built.

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
