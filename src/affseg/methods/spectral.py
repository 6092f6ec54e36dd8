"""Deep spectral clustering (Law, Urtasun & Zemel 2017), assembled as the method ``spectral``.

A head on the frozen EfficientNet-Lite0 pyramid (:class:`affseg.models.spectral_net.SpectralNet`,
trained by :mod:`affseg.train.spectral` with the exact spectral loss of
:func:`affseg.affinity.spectral.spectral_loss`) predicts unit embeddings; KwikCluster
(:mod:`affseg.grouping.kwikcluster`) rounds them at several inner-product thresholds into
nested levels.

References
----------
.. [1] M. T. Law, R. Urtasun, R. S. Zemel, "Deep Spectral Clustering Learning", ICML 2017.
.. [2] N. Ailon, M. Charikar, A. Newman, "Aggregating inconsistent information: ranking
   and clustering", JACM 2008 (KwikCluster).

Example
-------
>>> from skimage import data
>>> from affseg.methods.spectral import spectral_hierarchy
>>> h = spectral_hierarchy(data.coffee()[::2, ::2])
>>> h.n_segments[0] >= h.n_segments[-1]
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from affseg.grouping.hierarchy import Hierarchy
from affseg.models.spectral_net import SpectralNet, load_head
from affseg.runtime import torch_threads


@lru_cache(maxsize=2)
def _cached_net(weights: str | None) -> SpectralNet:
    return SpectralNet(head=load_head(weights))


def spectral_hierarchy(
    image: np.ndarray,
    *,
    seed: int = 0,
    thresholds: Sequence[float] | None = None,
    min_size: int = 1024,
    weights: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> Hierarchy:
    """Deep spectral clustering of one image: embeddings -> KwikCluster at several thresholds.

    The method ``spectral`` of :mod:`affseg.methods`.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Seed of KwikCluster's random pivots.
    thresholds : sequence of float, optional
        Inner-product thresholds of the levels (default
        :data:`affseg.grouping.kwikcluster.DEFAULT_THRESHOLDS`); the level at 0.5 (the paper's
        rounding) is the default level.
    min_size : int
        Regions smaller than this many pixels are merged into their most similar neighbour
        (1024 ~ 0.7 % of a BSDS image; chosen on 20 BSDS500 train images among 64, 256,
        1024, never on val).
    weights : path-like, optional
        Head weights (default: the shipped ``weights/spectral_head.pt``).
    threads : int, optional
        torch CPU threads for the network during this call (default: torch's setting;
        restored afterwards).

    Returns
    -------
    Hierarchy
        Nested levels fine -> coarse, see
        :func:`affseg.grouping.kwikcluster.kwikcluster_hierarchy`.

    References
    ----------
    M. Barnes and A. Dubrawski, "Deep Spectral Clustering for Object Instance Segmentation",
    ICLR workshop track, 2018.
    N. Ailon, M. Charikar and A. Newman, "Aggregating inconsistent information: ranking and
    clustering", Journal of the ACM 55(5), 2008 (KwikCluster).

    Examples
    --------
    >>> from skimage import data
    >>> image = data.astronaut()[::8, ::8]            # (64, 64, 3) uint8
    >>> hier = spectral_hierarchy(image)              # doctest: +SKIP
    >>> len(hier.levels)                              # doctest: +SKIP
    10

    (Not run as a doctest: loading the network takes seconds; ``tests/test_spectral.py`` runs it.)
    """
    from affseg.data.io import as_rgb
    from affseg.grouping.kwikcluster import DEFAULT_THRESHOLDS, kwikcluster_hierarchy

    img = as_rgb(image)
    net = _cached_net(None if weights is None else str(weights))
    with torch_threads(None if threads is None else int(threads)):
        grid, pixels = net.embed_image(img, stride=(4, 1))
    ts = DEFAULT_THRESHOLDS if thresholds is None else tuple(float(t) for t in thresholds)
    return kwikcluster_hierarchy(
        grid, ts, seed=seed, min_size=int(min_size), pixel_embeddings=pixels
    )
