"""Spread of a stochastic method's accuracy over random seeds (``affseg eval --stability K``).

For every image the method runs with every seed; the Hungarian pixel accuracy of each run's
labels (the default level of its hierarchy) is recorded with its number of segments, its
wall time and, for the per-image CNN fits (``mmt``, ``kim``, ``kanezaki``), the number of
SGD iterations. The summary gives the per-image standard deviation over seeds averaged over
images (the MMT paper's stability measure), the mean accuracy and the spread of the
per-seed dataset means. ``affseg eval --stability K`` and ``benchmarks/bench_per_image.py``
(``--parts stability sweep``) both report it.

Examples
--------
>>> import numpy as np
>>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
>>> gt = np.ones((24, 32), int); gt[:, 16:] = 2
>>> out = seed_stability("slic", [("toy", image, [gt])], seeds=[0, 1])
>>> out["mean_per_image_std"], len(out["accuracy"][0])   # slic ignores the seed
(0.0, 2)
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from affseg.errors import InputError

#: The per-image CNN fits (:mod:`affseg.methods.per_image`): run through
#: :func:`~affseg.methods.per_image.run_per_image`, which also reports their iterations.
PER_IMAGE_FITS = ("mmt", "kim", "kanezaki")


def _run(
    method: str, image: np.ndarray, seed: int, options: dict[str, Any]
) -> tuple[np.ndarray, int | None]:
    """Labels of one run of ``method`` and its SGD iterations (``None`` if it has none)."""
    if method in PER_IMAGE_FITS:
        from affseg.methods.per_image import run_per_image

        res = run_per_image(method, image, seed=seed, **options)
        return res.labels, res.iterations
    from affseg.methods import run_method

    return run_method(image, method, seed=seed, **options).labels(), None


def seed_stability(
    method: str,
    items: Sequence[tuple[str, np.ndarray, list[np.ndarray]]],
    seeds: Sequence[int],
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run registry method ``method`` with every seed on every image and score the spread.

    Parameters
    ----------
    method : str
        Registry name (:data:`affseg.methods.METHODS`). The per-image CNN fits
        (:data:`PER_IMAGE_FITS`) run through
        :func:`~affseg.methods.per_image.run_per_image` at the image's resolution, every
        other method through :func:`~affseg.methods.run_method`.
    items : sequence of (id, image (H, W, 3) uint8, ground truths list of (H, W))
    seeds : sequence of int
        At least one; non-negative.
    options : dict, optional
        Method options (checked by :func:`~affseg.methods.check_options`).

    Returns
    -------
    dict
        ``method``, ``seeds``, ``ids``; per image x seed nested lists ``accuracy`` (Hungarian
        pixel accuracy), ``n_segments``, ``seconds`` and ``iterations`` (``None`` for a method
        that is not a per-image fit); per image ``per_image_mean`` and ``per_image_std``
        (population std over seeds); ``mean_accuracy``, ``mean_per_image_std`` (the mean of
        ``per_image_std``), ``seed_means`` (S,), ``std_of_seed_means``, ``mean_segments``,
        ``seconds_per_run``.

    Raises
    ------
    InputError
        No seed, a negative or non-integer seed, no image, or options the method does not
        take.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> gt = np.ones((24, 32), int); gt[:, 16:] = 2
    >>> out = seed_stability("kim", [("toy", image, [gt])], seeds=[0, 1],
    ...                      options={"max_iter": 2, "channels": 4, "input": "rgb"})
    >>> np.shape(out["accuracy"]), len(out["iterations"][0]), 0.0 <= out["mean_accuracy"] <= 1
    ((1, 2), 2, True)
    >>> seed_stability("slic", [("toy", image, [gt])], seeds=[0, 1])["iterations"] is None
    True
    """
    from affseg.methods import check_options
    from affseg.metrics.pixel_accuracy import hungarian_accuracy

    if len(seeds) < 1:
        raise InputError("a stability study needs at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise InputError(f"seeds must be non-negative integers, got {s!r}")
    if not items:
        raise InputError("no images to run")
    checked = check_options(method, dict(options or {}))
    acc = np.zeros((len(items), len(seeds)))
    nseg = np.zeros(acc.shape, np.int64)
    seconds = np.zeros(acc.shape)
    iterations: list[list[int | None]] = []
    for i, (_, image, gts) in enumerate(items):
        row: list[int | None] = []
        for j, s in enumerate(seeds):
            t0 = time.perf_counter()
            lab, n_iter = _run(method, image, int(s), checked)
            seconds[i, j] = time.perf_counter() - t0
            acc[i, j] = hungarian_accuracy(lab, gts)
            nseg[i, j] = len(np.unique(lab))
            row.append(n_iter)
        iterations.append(row)
    per_image_std = [float(np.std(a)) for a in acc]
    seed_means = acc.mean(axis=0)
    return {
        "method": method,
        "seeds": [int(s) for s in seeds],
        "ids": [i for i, _, _ in items],
        "accuracy": acc.tolist(),
        "n_segments": nseg.tolist(),
        "seconds": seconds.tolist(),
        "iterations": iterations if method in PER_IMAGE_FITS else None,
        "per_image_mean": [float(np.mean(a)) for a in acc],
        "per_image_std": per_image_std,
        "mean_accuracy": float(acc.mean()),
        "mean_per_image_std": float(np.mean(per_image_std)),
        "seed_means": seed_means.tolist(),
        "std_of_seed_means": float(seed_means.std()),
        "mean_segments": float(nseg.mean()),
        "seconds_per_run": float(seconds.mean()),
    }
