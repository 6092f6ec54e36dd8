"""The BSDS500 region (and boundary) benchmark of a split: one image, then the reduce.

Map (per image, anywhere): :func:`eval_one` reads the image and runs the method, or reads a
saved hierarchy, and scores it with :meth:`RegionBenchmark.score` (and
:meth:`BoundaryBenchmark.score`). Reduce: :func:`reduce_scores` adds the per-image states
to the benchmarks in the order of the image list, whatever order they finished in, so a
distributed run gives exactly the numbers of a serial one. Where the images run (this
process or Dask, failures reported and skipped) is :func:`affseg.batch.evaluation.evaluate`'s
job; ``affseg eval`` calls that.

Examples
--------
>>> import numpy as np
>>> from affseg.metrics.region import RegionBenchmark
>>> gt = np.ones((8, 8), int); gt[:, 4:] = 2
>>> tasks = [EvalTask("a", None, "val"), EvalTask("b", None, "val")]
>>> states = {k: {"region": RegionBenchmark().score([gt], [gt]), "boundary": None,
...               "method_seconds": 0.0} for k in (1, 0)}   # finished in any order
>>> reduce_scores(tasks, states).region.compute()["covering"]["ods"]
1.0
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affseg.data import bsds
from affseg.data.io import read_label_png, read_ucm_mat
from affseg.data.segmentations import SegmentationItem
from affseg.errors import InputError


@dataclass
class EvalTask:
    """One image to score (picklable).

    Attributes
    ----------
    image_id : str
        The BSDS500 image id.
    data : str or None
        The data root holding ``BSDS500/`` (None: the default root).
    split : str
    method : str, optional
        Registry method to run (with ``seed`` and ``options``), unless ``path`` is given.
    seed : int
    options : dict
    mode : str
        ``"ucm"`` (score the hierarchy at the 99 BSDS thresholds) or ``"levels"`` (each
        level a threshold).
    path : str, optional
        A saved ``<id>.mat`` (BSDS ``ucm2``) or ``<id>.labels.png`` to score instead of a
        method.
    boundary : bool
        Also run the boundary benchmark.
    item : SegmentationItem, optional
        An image of another segmentation dataset (:mod:`affseg.data.segmentations`) to
        read instead of BSDS500's ``image_id``.

    Examples
    --------
    >>> task = EvalTask("100007", None, "val", method="slic", options={"n_segments": (50,)})
    >>> task.mode, task.boundary, task.path is None
    ('ucm', False, True)
    """

    image_id: str
    data: str | None
    split: str
    method: str | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = "ucm"
    path: str | None = None  # a saved <id>.mat / <id>.labels.png instead of a method
    boundary: bool = False
    item: SegmentationItem | None = None


def run_method_named(image: np.ndarray, method: str | None, seed: int, options: dict) -> Any:
    """Run a registry method (a module attribute, so tests can stand in for it).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> run_method_named(image, "slic", 0, {"n_segments": (20, 4)}).n_segments[0] >= 2
    True
    """
    from affseg.methods import run_method

    return run_method(image, method, seed=seed, **options)


def eval_one(task: EvalTask) -> dict[str, Any]:
    """Score one image (the map step; runs on a worker).

    Returns
    -------
    dict
        ``region`` (the :meth:`RegionBenchmark.score` state), ``boundary`` (the
        :meth:`BoundaryBenchmark.score` state, or None) and ``method_seconds``.

    Raises
    ------
    InputError
        The saved hierarchy does not fit the ground truth (the message names the file).

    Examples
    --------
    A one-image BSDS500 split written on the fly:

    >>> import tempfile, numpy as np, scipy.io
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for sub in ("images/val", "groundTruth/val"):
    ...     (root / "BSDS500" / sub).mkdir(parents=True)
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> Image.fromarray(image).save(root / "BSDS500/images/val/toy.png")
    >>> gt = np.ones((24, 32), np.uint16); gt[:, 16:] = 2
    >>> cell = np.empty((1, 1), object); cell[0, 0] = {"Segmentation": gt}
    >>> scipy.io.savemat(root / "BSDS500/groundTruth/val/toy.mat", {"groundTruth": cell})
    >>> task = EvalTask("toy", str(root), "val", method="slic", options={"n_segments": (2,)})
    >>> out = eval_one(task)
    >>> sorted(out), out["boundary"] is None
    (['boundary', 'method_seconds', 'region'], True)
    """
    from affseg.metrics.boundary import BoundaryBenchmark
    from affseg.metrics.region import RegionBenchmark

    method_seconds = 0.0
    if task.path is not None:
        p = task.path
        seg: Any = read_ucm_mat(Path(p)) if p.endswith(".mat") else read_label_png(p)
    else:
        if task.item is not None:
            image = task.item.read_image()
        else:
            image = bsds.load_image(task.data, task.split, task.image_id)
        t0 = time.perf_counter()
        hier = run_method_named(image, task.method, task.seed, task.options)
        method_seconds = time.perf_counter() - t0
        seg = list(hier.levels) if task.mode == "levels" else hier
    if task.item is not None:
        gts = task.item.read_annotations()
    else:
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
class BenchmarkScores:
    """The reduced benchmarks of a list of images (:func:`reduce_scores`).

    Attributes
    ----------
    region : RegionBenchmark
    boundary : BoundaryBenchmark or None
        None unless the tasks asked for it.
    n_segments : list of ndarray
        Per image (in task order), the number of segments at each threshold.
    scored : list of dict
        Per image, the region state.
    method_seconds : float
        Time spent in the method, summed over images.

    Examples
    --------
    >>> from affseg.metrics.region import RegionBenchmark
    >>> s = BenchmarkScores(RegionBenchmark(), None, [], [], 0.0)
    >>> s.boundary is None, s.method_seconds
    (True, 0.0)
    """

    region: Any
    boundary: Any
    n_segments: list[np.ndarray]
    scored: list[dict[str, Any]]
    method_seconds: float


def reduce_scores(tasks: list[EvalTask], results: dict[int, dict[str, Any]]) -> BenchmarkScores:
    """Add the per-image states of :func:`eval_one` to the benchmarks, in task order.

    Parameters
    ----------
    tasks : list of EvalTask
    results : dict
        Task index -> :func:`eval_one` output; indices missing (failed images) are skipped.

    Raises
    ------
    InputError
        Images disagree on the number of levels (``mode="levels"``).

    Examples
    --------
    >>> import numpy as np
    >>> from affseg.metrics.region import RegionBenchmark
    >>> gt = np.ones((8, 8), int); gt[:, 4:] = 2
    >>> tasks = [EvalTask("a", None, "val"), EvalTask("b", None, "val")]
    >>> one = {"region": RegionBenchmark().score([gt], [gt]), "boundary": None,
    ...        "method_seconds": 0.5}
    >>> s = reduce_scores(tasks, {1: one})     # image "a" failed
    >>> s.region.compute()["images"], s.method_seconds
    (1, 0.5)
    """
    from affseg.metrics.boundary import BoundaryBenchmark
    from affseg.metrics.region import RegionBenchmark

    region = RegionBenchmark()
    boundary = BoundaryBenchmark() if tasks and tasks[0].boundary else None
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
    return BenchmarkScores(region, boundary, n_segments, scored, method_seconds)
