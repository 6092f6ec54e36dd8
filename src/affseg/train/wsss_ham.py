"""Deprecated spelling ``python -m affseg.train.wsss_ham``: use ``affseg train refine``.

Kept for one release; runs :func:`affseg.train.refine.main` with a deprecation note.

Examples
--------
>>> from affseg.train import wsss_ham
>>> wsss_ham.main is not None
True
"""

from __future__ import annotations

import sys

from affseg.train.refine import main

__all__ = ["main"]

if __name__ == "__main__":
    print(
        "note: `python -m affseg.train.wsss_ham` is deprecated; use `affseg train refine`",
        file=sys.stderr,
    )
    raise SystemExit(main())
