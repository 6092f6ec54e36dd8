"""The manifest of an output folder: what produced it, and the status of every image.

``<out>/affseg_manifest.json`` records the affseg version, the command, the method, its
seed and options, and per image ``{"status": "done" | "failed", "source", "seconds",
"error", ...}``. It is rewritten atomically (temp file + rename) while a run goes on, so it
is never half written; the outputs themselves, also written atomically, are what decides
whether an image is finished.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from affseg import __version__
from affseg.data.io import write_json
from affseg.errors import InputError

MANIFEST_NAME = "affseg_manifest.json"


class Manifest:
    """The JSON record of an output folder.

    Parameters
    ----------
    folder : Path
    config : dict
        What must match for a rerun to resume (command, method, seed, options, ...).
    overwrite : bool
        Start afresh even if the folder holds a manifest of another configuration.

    Raises
    ------
    InputError
        The folder holds results of another configuration and ``overwrite`` is False.
    """

    def __init__(self, folder: Path, config: dict[str, Any], overwrite: bool = False) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.config = json.loads(json.dumps(config, default=str))  # as it will be stored
        self.images: dict[str, dict[str, Any]] = {}
        self._last_write = 0.0
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and not overwrite:
                if old.get("config") != self.config:
                    why = _diff(old.get("config"), self.config)
                    raise InputError(
                        f"{folder} holds results of another run ({why}); use --overwrite to "
                        "replace them, or another --out"
                    )
                self.images = dict(old.get("images") or {})

    def record(self, key: str, entry: dict[str, Any]) -> None:
        """Set one image's entry (written at the next :meth:`save`)."""
        self.images[key] = entry

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
                "images": self.images,
            },
        )


def _diff(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "unreadable configuration"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])
