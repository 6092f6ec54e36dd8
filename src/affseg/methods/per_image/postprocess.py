"""Post-processing of the per-image methods: from a network response to the output labels.

:func:`finish`, the one post-processing of all three methods: the response is upsampled
bilinearly to the image size before the argmax (:func:`final_labels`; with
``target_segments``, over the most used label channels only), optionally snapped to SLIC
superpixels (:func:`superpixel_vote`, ``snap``), split into connected segments with tiny
ones merged (``min_area``), and optionally merged by colour (``merge``,
:func:`~affseg.grouping.label_merging.merge_adjacent`); the result is a
:class:`PerImageResult`.

Examples
--------
>>> import torch
>>> from affseg.methods.per_image.postprocess import final_labels
>>> response = torch.zeros(1, 2, 2, 2); response[0, 1, :, 1] = 1.0   # right column: 1
>>> final_labels(response, (2, 2)).tolist()
[[1, 2], [1, 2]]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from skimage.segmentation import slic
from torch import nn

from affseg.grouping.relabel import absorb_small, sequential
from affseg.methods.per_image.options import PerImageOptions
from affseg.models.per_image_net import argmax_labels


@dataclass
class PerImageResult:
    """Output of a per-image fit.

    Attributes
    ----------
    labels : ndarray, shape (H, W), int32
        Labels 1..K at the image resolution.
    n_segments : int
        K, the final number of segments (label classes).
    iterations : int
        SGD iterations run.
    seconds : float
        Wall time of the fit.

    Examples
    --------
    >>> import numpy as np
    >>> from affseg.methods.per_image import kim
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> res = kim(image, max_iter=2, channels=4, input="rgb")
    >>> res.labels.shape, res.iterations <= 2
    ((24, 32), True)
    """

    labels: np.ndarray
    n_segments: int
    iterations: int
    seconds: float


def superpixel_vote(labels: np.ndarray, superpixels: np.ndarray, n_labels: int) -> np.ndarray:
    """Replace every label by the most frequent label of its superpixel (Kanezaki 2018).

    Parameters
    ----------
    labels : ndarray, shape (h, w), int, values 0..n_labels-1
    superpixels : ndarray, shape (h, w), int, values 0..S-1
    n_labels : int

    Returns
    -------
    ndarray, shape (h, w), int64

    References
    ----------
    A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

    Examples
    --------
    >>> import numpy as np
    >>> superpixel_vote(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]), 2).tolist()
    [[0, 0, 1, 1]]
    """
    sp = superpixels.ravel().astype(np.int64)
    n_sp = int(sp.max()) + 1
    votes = np.bincount(sp * n_labels + labels.ravel(), minlength=n_sp * n_labels)
    return votes.reshape(n_sp, n_labels).argmax(axis=1)[sp].reshape(labels.shape)


def finish(
    response: torch.Tensor,
    image: np.ndarray,
    opt: PerImageOptions,
    iterations: int,
    t0: float,
) -> PerImageResult:
    """The one post-processing of all three methods.

    Final labels (:func:`final_labels`, optionally snapped to ``opt.snap`` superpixels of
    the full-resolution image), then the optional merge stage (``opt.merge``).

    Parameters
    ----------
    response : Tensor, shape (1, q, h, w)
        The network response at the working resolution.
    image : ndarray, shape (H, W, 3), uint8
    opt : PerImageOptions
    iterations : int
        SGD iterations run (reported).
    t0 : float
        ``time.perf_counter()`` at the start of the fit.

    Returns
    -------
    PerImageResult

    Examples
    --------
    >>> import time
    >>> import numpy as np, torch
    >>> response = torch.zeros(1, 2, 2, 2); response[0, 1, :, 1] = 1.0
    >>> res = finish(response, np.zeros((2, 2, 3), np.uint8), PerImageOptions(), 0,
    ...              time.perf_counter())
    >>> res.n_segments, res.labels.tolist()
    (2, [[1, 2], [1, 2]])
    """
    labels = final_labels(
        response,
        image.shape[:2],
        opt.target_segments,
        opt.min_area,
        _snap_superpixels(image, opt.snap),
    )
    labels = _merge(labels, image, opt.merge, opt.merge_edge)
    return PerImageResult(labels, int(labels.max()), iterations, time.perf_counter() - t0)


def final_labels(
    response: torch.Tensor,
    shape: tuple[int, int],
    target: int | None = None,
    min_area: float | None = None,
    superpixels: np.ndarray | None = None,
) -> np.ndarray:
    """Argmax of a response upsampled bilinearly to ``shape``, as labels 1..K (H, W).

    With ``target``, the argmax runs over the ``target`` channels that label most pixels
    at the working resolution, so at most ``target`` label classes remain. With
    ``min_area`` (a fraction of the image), the label classes are split into 4-connected
    components and components under ``min_area`` x H x W pixels join the nearest other
    component (:func:`~affseg.grouping.relabel.absorb_small`). With ``superpixels``
    (H, W), labels are first replaced by their superpixel's majority label
    (:func:`superpixel_vote`), which snaps segment borders to image edges.

    Parameters
    ----------
    response : Tensor, shape (1, q, h, w)
    shape : (int, int)
        (H, W), the output size.
    target : int, optional
    min_area : float, optional
    superpixels : ndarray, shape (H, W), int, optional

    Returns
    -------
    ndarray, shape (H, W)
        Labels 1..K.

    Examples
    --------
    >>> import torch
    >>> response = torch.zeros(1, 3, 2, 2); response[0, 1, :, 1] = 1.0; response[0, 2, 0] = 2.0
    >>> final_labels(response, (2, 2)).tolist()   # channels 2 / 0, 1: labels 3 / 1, 2
    [[3, 3], [1, 2]]
    >>> final_labels(response, (2, 2), target=1).tolist()
    [[1, 1], [1, 1]]
    """
    with torch.no_grad():
        r = response
        if target is not None:
            counts = torch.bincount(argmax_labels(r).ravel(), minlength=r.shape[1])
            keep = torch.argsort(counts, descending=True, stable=True)[: max(1, int(target))]
            r = r[:, keep]
        if r.shape[2:] != shape:
            r = nn.functional.interpolate(r, size=shape, mode="bilinear", align_corners=False)
        lab = argmax_labels(r).numpy()
    if superpixels is not None:
        lab = superpixel_vote(lab, superpixels, int(lab.max()) + 1)
    if min_area is not None:
        return absorb_small(lab, max(1, round(min_area * shape[0] * shape[1])))
    return sequential(lab)


def _snap_superpixels(image: np.ndarray, n: int | None) -> np.ndarray | None:
    """SLIC superpixels (H, W) of the full-resolution image (about ``n``), or None."""
    if n is None:
        return None

    return slic(image, n_segments=int(n), compactness=10.0, start_label=0)


def _merge(
    labels: np.ndarray, image: np.ndarray, merge: float | None, merge_edge: float
) -> np.ndarray:
    """Labels (H, W) merged by :func:`~affseg.grouping.label_merging.merge_adjacent` on CIELAB
    colour (+ ``merge_edge`` x colour gradient) down to threshold ``merge`` (None: as is)."""
    if merge is None:
        return labels
    from affseg.grouping.label_merging import colour_cues, merge_adjacent

    feats, edges = colour_cues(image)
    return merge_adjacent(labels, feats, float(merge), edges=edges, edge_weight=merge_edge)
