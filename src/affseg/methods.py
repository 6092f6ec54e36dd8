"""Registry of segmentation methods, addressed by name from the API and the CLI.

A method is a callable ``fn(image, **options) -> Hierarchy`` taking a validated RGB image
(H, W, 3) uint8; a flat method returns a one-level :class:`~affseg.segment.hierarchy.Hierarchy`.
Methods are named here as ``"module:function"`` strings and imported on first use, so
``import affseg`` stays light and a method's heavy dependencies load only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from affseg.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from affseg.segment.hierarchy import Hierarchy

#: name -> "module:function"
METHODS: dict[str, str] = {
    "felzenszwalb": "affseg.segment.baselines:felzenszwalb_hierarchy",
    "slic": "affseg.segment.baselines:slic_hierarchy",
    "quickshift": "affseg.segment.baselines:quickshift_hierarchy",
    "ncut": "affseg.segment.baselines:ncut_hierarchy",
    "kmeans": "affseg.segment.baselines:kmeans_hierarchy",
    "ndd": "affseg.models.ndd_segmenter:ndd_hierarchy",
    "mmt": "affseg.models.per_image_methods:mmt_hierarchy",
    "kim": "affseg.models.per_image_methods:kim_hierarchy",
    "kanezaki": "affseg.models.per_image_methods:kanezaki_hierarchy",
    "spectral": "affseg.models.spectral_net:spectral_hierarchy",
}

#: The method ``affseg segment`` and :func:`affseg.segment` use when none is named.
DEFAULT_METHOD = "ndd"


def get_method(name: str | None) -> Callable[..., Hierarchy]:
    """Resolve a method name to its callable.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones).
    """
    key = DEFAULT_METHOD if name is None else name
    if key not in METHODS:
        raise InputError(f"unknown method {key!r}; choose one of: {', '.join(sorted(METHODS))}")
    module, func = METHODS[key].split(":")
    return getattr(importlib.import_module(module), func)


def run_method(image: np.ndarray, name: str | None = None, **options: Any) -> Hierarchy:
    """Validate ``image`` and run method ``name`` on it."""
    from affseg.data.io import as_rgb

    return get_method(name)(as_rgb(image), **options)
