"""Evaluate a whole BSDS split as map + reduce, on any engine, with results independent of it.

Map (per image, on a worker): read the image and run the method, or read a saved
hierarchy; score it with :meth:`RegionBenchmark.score` (and :meth:`BoundaryBenchmark.score`).
Reduce (on the client): add the per-image states to the benchmarks in the order of the
image list, whatever order they finished in, so a distributed run gives exactly the
numbers of a serial one. A failing image is reported and left out of the scores.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affseg.batch.engine import Done, Engine, SerialEngine
from affseg.errors import InputError


@dataclass
class EvalTask:
    """One image to score (picklable)."""

    image_id: str
    data: str | None
    split: str
    method: str | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = "ucm"
    path: str | None = None  # a saved <id>.mat / <id>.labels.png instead of a method
    boundary: bool = False


def run_method_named(image: np.ndarray, method: str | None, seed: int, options: dict) -> Any:
    """Run a registry method (a module attribute, so tests can stand in for it)."""
    from affseg.methods import run_method

    return run_method(image, method, seed=seed, **options)


def eval_one(task: EvalTask) -> dict[str, Any]:
    """Score one image (runs on a worker)."""
    from affseg.data import bsds
    from affseg.metrics.boundary import BoundaryBenchmark
    from affseg.metrics.region import RegionBenchmark

    method_seconds = 0.0
    if task.path is not None:
        from affseg.data.io import read_label_png, read_ucm_mat

        p = task.path
        seg: Any = read_ucm_mat(Path(p)) if p.endswith(".mat") else read_label_png(p)
    else:
        image = bsds.load_image(task.data, task.split, task.image_id)
        t0 = time.perf_counter()
        hier = run_method_named(image, task.method, task.seed, task.options)
        method_seconds = time.perf_counter() - t0
        seg = list(hier.levels) if task.mode == "levels" else hier
    gts = bsds.load_ground_truth(bsds.gt_path(task.data, task.split, task.image_id))
    try:
        region = RegionBenchmark().score(seg, gts)
        boundary = BoundaryBenchmark().score(seg, gts) if task.boundary else None
    except InputError as exc:
        if task.path is not None:
            raise InputError(f"{os.path.basename(task.path)}: {exc}") from None
        raise
    return {"region": region, "boundary": boundary, "method_seconds": method_seconds}


@dataclass
class EvalResult:
    """The reduced benchmarks and what happened on the way."""

    region: Any
    boundary: Any
    n_segments: list[np.ndarray]
    scored: list[dict[str, Any]]
    method_seconds: float
    failed: dict[str, str]
    seconds: float
    engine: str


def evaluate(
    tasks: list[EvalTask], engine: Engine | None = None, progress: bool | None = None
) -> EvalResult:
    """Map :func:`eval_one` over ``tasks`` on ``engine``, reduce in task order.

    Raises
    ------
    InputError
        Every image failed (the first failure's message), or images disagree on the
        number of levels (``--mode levels``).
    """
    from tqdm import tqdm

    from affseg.metrics.boundary import BoundaryBenchmark
    from affseg.metrics.region import RegionBenchmark

    engine = engine or SerialEngine()
    results: dict[int, Any] = {}
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    desc = f"eval {tasks[0].method}" if tasks and tasks[0].method else "eval"
    with tqdm(total=len(tasks), desc=desc, unit="image", disable=None if progress else True) as bar:
        for i, outcome in engine.map(eval_one, tasks):
            if isinstance(outcome, Done):
                results[i] = outcome.value
            else:
                failed[tasks[i].image_id] = outcome.error
                tqdm.write(f"{tasks[i].image_id}: FAILED {outcome.error}")
            bar.update(1)
    seconds = time.perf_counter() - t0
    if not results:
        first = next(iter(failed.values()), "no images")
        raise InputError(first.split(": ", 1)[-1] if ": " in first else first)
    region = RegionBenchmark()
    boundary = BoundaryBenchmark() if tasks[0].boundary else None
    n_segments: list[np.ndarray] = []
    scored: list[dict[str, Any]] = []
    method_seconds = 0.0
    for i in sorted(results):  # the reduce, in task order: identical to a serial run
        r = results[i]
        image_id = tasks[i].image_id
        try:
            region.add(r["region"], image_id)
        except InputError:
            if tasks[i].mode == "levels" and tasks[i].method:
                n_first = region.axis.size if region.axis is not None else 0
                raise InputError(
                    f"--mode levels needs the same number of levels for every image, but "
                    f"{tasks[i].method} gave {len(r['region']['axis'])} on image {image_id} and "
                    f"{n_first} on the earlier ones; use --mode ucm (the hierarchy's UCM at the "
                    f"99 BSDS thresholds)"
                ) from None
            raise
        if boundary is not None:
            boundary.add(r["boundary"], image_id)
        n_segments.append(np.asarray(r["region"]["n_segments"]))
        scored.append(r["region"])
        method_seconds += r["method_seconds"]
    return EvalResult(
        region=region,
        boundary=boundary,
        n_segments=n_segments,
        scored=scored,
        method_seconds=method_seconds,
        failed=failed,
        seconds=seconds,
        engine=engine.description,
    )
