"""Spread of a stochastic method's accuracy over random seeds (``affseg eval --stability K``).

For every image the method runs with seeds ``seed, seed + 1, ..., seed + K - 1``; the
Hungarian pixel accuracy of each run's default level is recorded. The report gives the
per-image standard deviation over seeds averaged over images (the MMT paper's stability
measure), the mean accuracy, and the spread of the per-seed dataset means.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from affseg.errors import InputError


def seed_stability(
    method: str,
    items: list[tuple[str, np.ndarray, list[np.ndarray]]],
    seeds: list[int],
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run registry method ``method`` with every seed on every image and score the spread.

    Parameters
    ----------
    method : str
        Registry name (:data:`affseg.methods.METHODS`).
    items : list of (id, image (H, W, 3) uint8, ground truths list of (H, W))
    seeds : list of int
        At least two.
    options : dict, optional
        Method options.

    Returns
    -------
    dict
        ``accuracy`` (images x seeds nested lists), ``mean_accuracy``,
        ``mean_per_image_std`` (population std over seeds, averaged over images),
        ``seed_means`` (S,), ``std_of_seed_means``, ``mean_segments``, ``seconds_per_run``.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> gt = np.ones((24, 32), int); gt[:, 16:] = 2
    >>> out = seed_stability("slic", [("toy", image, [gt])], seeds=[0, 1])
    >>> out["mean_per_image_std"], len(out["accuracy"][0])   # slic ignores the seed
    (0.0, 2)
    """
    from affseg.methods import run_method
    from affseg.metrics.pixel_accuracy import hungarian_accuracy

    if len(seeds) < 2:
        raise InputError(f"a stability study needs at least 2 seeds, got {len(seeds)}")
    if not items:
        raise InputError("no images to run")
    acc = np.zeros((len(items), len(seeds)))
    nseg = np.zeros_like(acc)
    t0 = time.perf_counter()
    for i, (_, image, gts) in enumerate(items):
        for j, s in enumerate(seeds):
            lab = run_method(image, method, seed=int(s), **(options or {})).labels()
            acc[i, j] = hungarian_accuracy(lab, gts)
            nseg[i, j] = len(np.unique(lab))
    seed_means = acc.mean(axis=0)
    return {
        "method": method,
        "seeds": [int(s) for s in seeds],
        "ids": [i for i, _, _ in items],
        "accuracy": acc.tolist(),
        "mean_accuracy": float(acc.mean()),
        "mean_per_image_std": float(acc.std(axis=1).mean()),
        "seed_means": seed_means.tolist(),
        "std_of_seed_means": float(seed_means.std()),
        "mean_segments": float(nseg.mean()),
        "seconds_per_run": (time.perf_counter() - t0) / acc.size,
    }
