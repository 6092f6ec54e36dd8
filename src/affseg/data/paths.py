"""Where datasets live: ``$AFFSEG_DATA``, else ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

from affseg.errors import DatasetNotFoundError

#: The repository root (``src/affseg/data/paths.py`` -> three parents up from ``src``).
_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``BSDS500/``, ``MSRC_v2/``, ``Middlebury_depth_sr/``.

    Parameters
    ----------
    root : path-like, optional
        Explicit root; else ``$AFFSEG_DATA``; else ``../shared/data`` next to the repository
        (also tried relative to the current directory).

    Returns
    -------
    Path
        The root (it may not exist: :func:`dataset_dir` raises then).
    """
    if root is not None:
        return Path(root)
    env = os.environ.get("AFFSEG_DATA")
    if env:
        return Path(env)
    for cand in (_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return _REPO_ROOT.parent / "shared" / "data"


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of one dataset under :func:`data_root`.

    Raises
    ------
    DatasetNotFoundError
        Naming the path that was looked for and how to point affseg elsewhere.
    """
    base = data_root(root)
    path = base / name
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset {name} not found at {path} (set $AFFSEG_DATA or pass --data to the "
            "folder that holds it)"
        )
    return path
