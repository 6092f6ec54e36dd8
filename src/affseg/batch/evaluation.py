"""Evaluate a whole BSDS split on any engine, with results independent of it.

The per-image scoring and the reduce are :mod:`affseg.evaluation.bsds`
(:func:`~affseg.evaluation.bsds.eval_one`, :func:`~affseg.evaluation.bsds.reduce_scores`);
this module maps :func:`~affseg.evaluation.bsds.eval_one` over an engine (this process or
Dask workers), reports a failing image and leaves it out of the scores, then reduces in the
order of the image list, so a distributed run gives exactly the numbers of a serial one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from affseg.batch.engine import Done, Engine, SerialEngine
from affseg.errors import InputError
from affseg.evaluation.bsds import BenchmarkScores, EvalTask, eval_one, reduce_scores


@dataclass
class EvalResult(BenchmarkScores):
    """The reduced benchmarks and what happened on the way."""

    failed: dict[str, str]
    seconds: float
    engine: str


def evaluate(
    tasks: list[EvalTask], engine: Engine | None = None, progress: bool | None = None
) -> EvalResult:
    """Map :func:`~affseg.evaluation.bsds.eval_one` over ``tasks`` on ``engine``, reduce in
    task order.

    Raises
    ------
    InputError
        Every image failed (the first failure's message), or images disagree on the
        number of levels (``--mode levels``).
    """
    from tqdm import tqdm

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
    scores = reduce_scores(tasks, results)
    return EvalResult(**vars(scores), failed=failed, seconds=seconds, engine=engine.description)
