"""The manifest of an output folder: what produced it, what it owns, every image's status.

``<out>/affseg_manifest.json`` records the affseg version, the command, the method, its
seed and options, the files affseg wrote there (``outputs``), and per image
``{"status": "done" | "failed", "source", "source_sha256", "outputs", "seconds",
"error", ...}``. It is rewritten atomically (temp file + rename) while a run goes on, so it
is never half written, and a run holds an exclusive lock on the folder
(:func:`folder_lock`), so two runs never interleave their records.

Ownership is what keeps a user's files safe: affseg only ever replaces a file of the
folder that the manifest lists among its ``outputs`` (see :meth:`Manifest.owns`); any
other existing file in the way of an output is refused, never overwritten.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from affseg import __version__
from affseg.data.io import write_json
from affseg.errors import InputError

MANIFEST_NAME = "affseg_manifest.json"

#: Bytes read at a time when hashing a source file.
_CHUNK = 1 << 20


def source_digest(source: str | os.PathLike[str], is_example: bool = False) -> str:
    """What identifies an input's content: the sha256 of its bytes (``"example:NAME"`` for
    a built-in example).

    Examples
    --------
    >>> source_digest("coffee", is_example=True)
    'example:coffee'
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> source_digest(p)[:12]
    'ba7816bf8f01'
    """
    if is_example:
        return f"example:{source}"
    h = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for the body; refuse if another run holds it.

    The lock is an advisory ``flock`` on the folder itself (no lock file is left behind);
    it is released when the body ends or the process dies.

    Raises
    ------
    InputError
        Another affseg run is writing into ``folder``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with folder_lock(d):
    ...     with folder_lock(d):
    ...         pass
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: another affseg run is writing into ...
    """
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(
                    f"another affseg run is writing into {folder}; wait for it to finish or "
                    "choose another --out"
                ) from None
            raise
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _as_list_of_names(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return [v for v in value if Path(v).name == v]  # plain names inside the folder only
    return None


class Manifest:
    """The JSON record of an output folder.

    Parameters
    ----------
    folder : Path
    config : dict
        What must match for a rerun to resume (command, method, seed, options, ...).
    overwrite : bool
        Start afresh even if the folder holds a manifest of another configuration (or an
        unreadable one); the files an earlier run recorded as its outputs stay affseg's.
    default_outputs : tuple of str
        Output suffixes of an image, for manifests written before ``outputs`` was recorded.

    Raises
    ------
    InputError
        The folder holds results of another configuration, or a manifest affseg cannot
        read, and ``overwrite`` is False.
    """

    def __init__(
        self,
        folder: Path,
        config: dict[str, Any],
        overwrite: bool = False,
        default_outputs: tuple[str, ...] = (),
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.config = json.loads(json.dumps(config, default=str))  # as it will be stored
        self.images: dict[str, dict[str, Any]] = {}
        self.outputs: set[str] = set()
        self._last_write = 0.0
        if not self.path.exists():
            return
        old = self._read()
        if old is None:
            if not overwrite:
                raise InputError(
                    f"{self.path} is not a readable affseg manifest; use --overwrite to start "
                    "afresh (no existing file will be replaced), or another --out"
                )
            return
        images, outputs = old
        self.outputs = outputs
        for stem, e in images.items():  # manifests from before `outputs` was recorded
            if e.get("status") == "done" and "outputs" not in e:
                self.outputs.update(f"{stem}{suf}" for suf in default_outputs)
        if overwrite:
            return
        raw = json.loads(self.path.read_text())
        if raw.get("config") != self.config:
            why = _diff(raw.get("config"), self.config)
            raise InputError(
                f"{self.folder} holds results of another run ({why}); use --overwrite to "
                "replace them, or another --out"
            )
        self.images = images

    def _read(self) -> tuple[dict[str, dict[str, Any]], set[str]] | None:
        """(images, outputs) of the manifest on disk, or None if it is not one of ours."""
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            return None
        images = raw.get("images", {})
        if not isinstance(images, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in images.items()
        ):
            return None
        outputs: set[str] = set()
        for e in images.values():
            names = _as_list_of_names(e.get("outputs", []))
            if names is None:
                return None
            outputs.update(names)
        top = _as_list_of_names(raw.get("outputs", []))
        if top is None:
            return None
        return images, outputs | set(top)

    def owns(self, name: str) -> bool:
        """Whether file ``name`` of the folder was written by affseg (and may be replaced)."""
        return name in self.outputs

    def record(self, key: str, entry: dict[str, Any]) -> None:
        """Set one image's entry (written at the next :meth:`save`); the names in its
        ``outputs`` become affseg's."""
        self.images[key] = entry
        self.outputs.update(entry.get("outputs", ()))

    def disown(self, names: list[str]) -> None:
        """Forget files affseg removed."""
        self.outputs.difference_update(names)

    def save(self, summary: dict[str, Any] | None = None, every: float = 0.0) -> None:
        """Rewrite the manifest atomically (at most once per ``every`` seconds)."""
        now = time.monotonic()
        if every and now - self._last_write < every and summary is None:
            return
        self._last_write = now
        counts: dict[str, int] = {}
        for e in self.images.values():
            counts[e.get("status", "?")] = counts.get(e.get("status", "?"), 0) + 1
        write_json(
            self.path,
            {
                "affseg_version": __version__,
                "config": self.config,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "counts": counts,
                "summary": summary,
                "outputs": sorted(n for n in self.outputs if (self.folder / n).exists()),
                "images": self.images,
            },
        )


def _diff(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "unreadable configuration"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])
