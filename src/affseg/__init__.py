"""affseg: image segmentation with learned pixel affinities.

Public entry points
-------------------
segment(image, ...)   -> label map (H, W) of the default (or a named) method
hierarchy(image, ...) -> :class:`affseg.grouping.hierarchy.Hierarchy`, coarse-to-fine
semantic(image, ...)  -> class map (H, W), indices 0..K-1 of the model's classes
                         (shipped: MSRC-21, weakly supervised by default)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that finish early sleep instead of spinning. On a busy machine spinning
# threads steal the cores the remaining work needs: `affseg segment` ran 3-4x slower next
# to two other CPU-bound jobs; on an idle machine the two settings time the same (see
# BENCHMARKS.md, spec-diff-net speed). Takes effect only if torch is not loaded yet; an
# explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from affseg.errors import AffsegError, CorruptFileError, DatasetNotFoundError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from affseg.grouping.hierarchy import Hierarchy

__version__ = "0.1.0"
__all__ = [
    "AffsegError",
    "CorruptFileError",
    "DatasetNotFoundError",
    "InputError",
    "hierarchy",
    "segment",
    "semantic",
]


def hierarchy(image: np.ndarray, method: str | None = None, **options: Any) -> Hierarchy:
    """Hierarchical segmentation of one RGB image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The photo.
    method : str, optional
        A name from :data:`affseg.methods.METHODS`; default :data:`affseg.methods.DEFAULT_METHOD`.
    **options
        Keyword options of that method (``seed`` among them).

    Returns
    -------
    Hierarchy
        Nested label maps (and the equivalent UCM).

    Examples
    --------
    >>> import affseg
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> hier = affseg.hierarchy(image, method="felzenszwalb")
    >>> hier.n_segments                               # fine -> coarse
    [47, 39, 32, 21, 11, 7, 5, 3, 3]
    >>> hier.to_ucm().shape
    (129, 129)
    """
    from affseg.methods import run_method

    return run_method(image, method, **options)


def segment(
    image: np.ndarray, method: str | None = None, segments: int | None = None, **options: Any
) -> np.ndarray:
    """Flat segmentation of one RGB image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    method : str, optional
        See :func:`hierarchy`.
    segments : int, optional
        Pick the hierarchy level whose number of segments is closest to this; default: the
        method's own default level.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels 1..K.

    Examples
    --------
    >>> import affseg
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> labels = affseg.segment(image, method="slic", segments=8)
    >>> labels.shape, int(labels.min()), int(labels.max())
    ((64, 64), 1, 6)
    >>> affseg.segment(image, method="slic", bogus=1)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: method 'slic' takes no option 'bogus'; its options: ...
    """
    return hierarchy(image, method, **options).labels(segments)


def semantic(image: np.ndarray, method: str = "wsss", **options: Any) -> np.ndarray:
    """Semantic segmentation of one RGB image into a model's classes (shipped: MSRC-21).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    method : {"wsss", "cam", "supervised"}
        ``wsss`` (default): trained from image-level labels only, guided by the neural
        diffusion distance (seed 001 Sect. 7); ``cam``: the CAM baseline; ``supervised``:
        the same segmenter trained on pixel labels (reference).
    **options
        ``weights`` (a file of ``affseg train wsss``; it carries its own classes and
        inference rule), ``upsample`` ("fai" or "bilinear"),
        ``class_filter`` and ``fuse`` (the inference rule of ``wsss`` / ``cam``, default 0.2
        and 0.75; 0 turns either off: see :func:`affseg.methods.wsss.semantic`).

    Returns
    -------
    ndarray, shape (H, W), uint8 (uint16 above 255 classes)
        Class indices 0..K-1 in the model's class order (shipped: the names of
        :data:`affseg.data.msrc.MSRC21_CLASS_NAMES` without void, building = 0).

    Examples
    --------
    >>> import numpy as np, affseg
    >>> affseg.semantic(np.zeros((213, 320, 3), np.uint8)).dtype   # doctest: +SKIP
    dtype('uint8')
    """
    from affseg.methods.wsss import semantic as _semantic

    return _semantic(image, method, **options)
