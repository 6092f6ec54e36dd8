"""Depth tables: guided depth super-resolution and depth completion on Middlebury scenes.

* :func:`evaluate_depth_sr` -- RMSE / MAE (and seconds) of the HAM models and the classical
  baselines (bicubic, bilateral solver, guided filter; Barron-Poole's published outputs
  where a scene has them) at x2 ... x16 on one ``Middlebury_depth_sr`` scene
  (``affseg depth-sr eval``, ``benchmarks/depth_sr_table.py``).
* :func:`evaluate_depth_completion` -- depth-completion metrics of the HAM models and the
  FGS interpolation on the validation scenes over sampling seeds
  (``benchmarks/depth_completion_table.py``).

Examples
--------
>>> from affseg.evaluation.depth import evaluate_depth_completion
>>> evaluate_depth_completion(weights={"ham": ["missing.pt"]})
Traceback (most recent call last):
...
affseg.errors.InputError: weights file not found: missing.pt
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from affseg.methods.depth_baselines import (
    bicubic_upsample,
    bilateral_upsample,
    fgs_complete,
    guided_upsample,
)
from affseg.methods.depth_completion import (
    DEFAULT_WEIGHTS as COMPLETION_WEIGHTS,
)
from affseg.methods.depth_completion import (
    N_SAMPLES,
    VAL_SCENES,
    complete,
    load_val_scene,
    sample_sparse,
)
from affseg.methods.depth_sr import (
    DEFAULT_WEIGHTS,
    FACTORS,
    error_metrics,
    load_model,
    load_scene,
    super_resolve,
)
from affseg.metrics.depth import depth_metrics
from affseg.runtime import torch_threads


def evaluate_depth_sr(
    weights: list[str] | None = None,
    scene: str = "art_big",
    data: str | None = None,
    threads: int = 2,
    tta: int = 1,
    factors: tuple[int, ...] | None = None,
    baselines: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """Table for one scene: method -> ``x{f}`` -> metrics (and ``seconds``).

    Parameters
    ----------
    weights : list of str, optional
        Model weights, tabled under their file stem; default the shipped models
        (:data:`~affseg.methods.depth_sr.DEFAULT_WEIGHTS`, keys ``ham`` and ``naive``).
    scene : str
        A ``Middlebury_depth_sr`` scene; ``barron_poole`` is tabled where its published
        outputs exist.
    tta : int
        Test-time dihedral ensemble size of the models
        (:func:`~affseg.methods.depth_sr.super_resolve`).
    factors : tuple of int, optional
        A subset of 2, 4, 8, 16 (default all).
    baselines : bool
        Also table ``bicubic``, ``bilateral_solver`` and ``guided_filter`` (computed,
        :mod:`affseg.methods.depth_baselines`).

    Examples
    --------
    >>> table = evaluate_depth_sr(scene="art_big", factors=(8,))   # doctest: +SKIP
    >>> table["ham"]["x8"]["rmse"]                                  # doctest: +SKIP
    5.12...
    """
    named = dict(DEFAULT_WEIGHTS) if not weights else {Path(w).stem: w for w in weights}
    with torch_threads(max(1, int(threads))):
        models = {name: load_model(w) for name, w in named.items()}  # bad weights fail first
        sc = load_scene(scene, data)
        table: dict[str, dict[str, dict[str, float]]] = {}
        methods: dict[str, object] = {}
        if baselines:
            methods = {
                "bicubic": lambda rgb, lr, f: bicubic_upsample(lr, f),
                "bilateral_solver": bilateral_upsample,
                "guided_filter": guided_upsample,
            }
        for name, model in models.items():
            methods[name] = lambda rgb, lr, f, model=model: super_resolve(model, rgb, lr, f, tta)
        for f in factors or FACTORS.values():
            for name, fn in methods.items():
                t0 = time.perf_counter()
                pred = fn(sc["rgb"], sc[f"lr{f}"], f)  # type: ignore[operator]
                m = error_metrics(pred, sc["gt"])
                m["seconds"] = round(time.perf_counter() - t0, 3)
                table.setdefault(name, {})[f"x{f}"] = m
            if f"bp{f}" in sc:
                table.setdefault("barron_poole", {})[f"x{f}"] = error_metrics(
                    sc[f"bp{f}"], sc["gt"]
                )
        return table


def evaluate_depth_completion(
    scenes: tuple[str, ...] = VAL_SCENES,
    seeds: tuple[int, ...] = (0, 1, 2),
    weights: dict[str, list[str]] | None = None,
    data: str | None = None,
    threads: int = 1,
    n: int = N_SAMPLES,
) -> dict[str, object]:
    """Metrics of every method on every scene and sampling seed.

    Parameters
    ----------
    scenes : tuple of str
        ``Middlebury_depth_sr`` scenes (evaluated at 1 /
        :data:`~affseg.methods.depth_completion.EVAL_STRIDE` resolution).
    seeds : tuple of int
        Sampling seeds (:func:`~affseg.methods.depth_completion.sample_sparse`).
    weights : dict, optional
        Method name -> list of weights files (one entry per training seed); default the
        shipped ``ham`` and ``naive`` weights.
    n : int
        Samples per image.

    Returns
    -------
    dict
        ``runs``: method -> scene -> list of per-(weights, seed) metrics (with ``seconds``,
        the sampling ``seed`` and the index of the ``weights`` file);
        ``summary``: method -> scene -> metric -> {"mean", "std"} over those runs.

    Examples
    --------
    >>> evaluate_depth_completion(weights={"ham": ["missing.pt"]})
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: weights file not found: missing.pt
    """
    weights = weights or {k: [v] for k, v in COMPLETION_WEIGHTS.items()}
    with torch_threads(max(1, int(threads))):
        models = {k: [load_model(w, "depth_completion") for w in ws] for k, ws in weights.items()}
        runs: dict[str, dict[str, list[dict[str, float]]]] = {}
        for scene in scenes:
            rgb, gt = load_val_scene(scene, data)
            for seed in seeds:
                sparse = sample_sparse(gt, n, seed)
                preds: list[tuple[str, int, object]] = [("fgs", 0, None)]
                preds += [(k, i, m) for k, ms in models.items() for i, m in enumerate(ms)]
                for name, index, model in preds:
                    t0 = time.time()
                    if model is None:
                        pred = fgs_complete(rgb, sparse)
                    else:
                        pred = complete(model, rgb, sparse)  # type: ignore[arg-type]
                    m = {k: float(v) for k, v in depth_metrics(pred, gt).items()}
                    m["seconds"] = round(time.time() - t0, 3)
                    m["seed"] = seed
                    m["weights"] = index
                    runs.setdefault(name, {}).setdefault(scene, []).append(m)
    summary = {
        name: {
            scene: {
                key: {
                    "mean": float(np.mean([r[key] for r in rs])),
                    "std": float(np.std([r[key] for r in rs])),
                }
                for key in ("rmse", "mae", "rel", "delta1", "seconds")
            }
            for scene, rs in by_scene.items()
        }
        for name, by_scene in runs.items()
    }
    return {"runs": runs, "summary": summary}
