"""Segmentation jobs of the viewer: what one is, how it runs, how its state is reported.

A :class:`Job` is one (image, method) segmentation submitted to the worker pool;
:func:`run_segmentation` is its work (the registry method, sharing the ``ndd`` network pass
with the similarity field); its :class:`Result` is the hierarchy stored compactly in the
cache; :class:`RateBook` turns earlier runs into the ETA and progress of a running job.

Example
-------
>>> job = Job("0123456789abcdef", "slic")
>>> job.state(now=job.submitted + 1.5, ahead=2)
{'status': 'queued', 'queue_position': 2, 'elapsed': 1.5}
>>> counts = job_counts([job])
>>> counts["queued"], counts["running"]
(1, 0)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affseg.serve.similarity import MIN_SIDE, CapturingModel

#: Finished jobs kept for their status (the oldest are forgotten beyond this).
MAX_JOBS = 512


@dataclass
class Job:
    """One (image, method) segmentation in the pool.

    Attributes
    ----------
    image_id, method : str
    submitted, started, finished : float
        ``time.monotonic()`` stamps (None until reached).
    error : str or None
        One line when the segmentation failed.
    future : concurrent.futures.Future or None
        The pool's task.

    Examples
    --------
    >>> job = Job("0123456789abcdef", "slic")
    >>> job.error = "boom"
    >>> job.state(now=job.submitted)
    {'status': 'error', 'error': 'boom'}
    """

    image_id: str
    method: str
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    future: Future | None = None

    def state(self, now: float, ahead: int = 0, eta: float | None = None) -> dict[str, Any]:
        """JSON-able state of a job without a cached result: error, queued or running.

        Parameters
        ----------
        now : float
            ``time.monotonic()``.
        ahead : int
            Queued jobs submitted before this one.
        eta : float, optional
            Expected seconds of the whole run (:meth:`RateBook.eta`).

        Returns
        -------
        dict
            ``status`` with ``error``, or ``queue_position`` and ``elapsed``, or
            ``elapsed`` (and ``eta``, ``progress`` when ``eta`` is given).

        Examples
        --------
        >>> job = Job("0123456789abcdef", "slic")
        >>> job.started = job.submitted
        >>> job.state(now=job.started + 1.0, eta=4.0)
        {'status': 'running', 'elapsed': 1.0, 'eta': 4.0, 'progress': 0.25}
        """
        if self.error is not None:
            return {"status": "error", "error": self.error}
        if self.started is None:
            return {
                "status": "queued",
                "queue_position": ahead,
                "elapsed": round(now - self.submitted, 2),
            }
        elapsed = now - self.started
        out: dict[str, Any] = {"status": "running", "elapsed": round(elapsed, 2)}
        if eta is not None:
            out.update(eta=round(eta, 2), progress=round(min(0.95, elapsed / max(eta, 1e-3)), 3))
        return out


def job_counts(jobs: Iterable[Job]) -> dict[str, int]:
    """How many of ``jobs`` are queued, running and finished.

    Parameters
    ----------
    jobs : iterable of Job

    Returns
    -------
    dict of str to int

    Examples
    --------
    >>> done = Job("0123456789abcdef", "slic", started=1.0, finished=2.0)
    >>> job_counts([done, Job("0123456789abcdef", "ndd")])
    {'queued': 1, 'running': 0, 'finished': 1}
    """
    jobs = list(jobs)
    return {
        "queued": sum(1 for j in jobs if j.started is None and j.finished is None),
        "running": sum(1 for j in jobs if j.started is not None and j.finished is None),
        "finished": sum(1 for j in jobs if j.finished is not None),
    }


def prune_jobs(jobs: dict[Any, Job], keep: int = MAX_JOBS) -> None:
    """Forget the oldest finished jobs of ``jobs`` (in place) beyond ``keep`` jobs in all.

    Parameters
    ----------
    jobs : dict
        Jobs in submission order.
    keep : int

    Examples
    --------
    >>> jobs = {k: Job("0123456789abcdef", str(k), finished=1.0) for k in range(3)}
    >>> prune_jobs(jobs, keep=1)
    >>> list(jobs)
    [2]
    """
    done = [k for k, j in jobs.items() if j.finished is not None]
    for k in done[: max(0, len(jobs) - keep)]:
        del jobs[k]


@dataclass
class Result:
    """A computed hierarchy, stored compactly (uint16 levels).

    Attributes
    ----------
    levels : list of ndarray
        Label maps, fine -> coarse.
    segments : list of int
        Segments of every level.
    heights : list of float
        Height of every level.
    default_level : int
    seconds : float
        Time the segmentation took.

    Examples
    --------
    >>> import numpy as np
    >>> res = Result([np.ones((2, 3), np.uint16)], [1], [0.0], 0, 0.5)
    >>> res.nbytes, res.describe()["levels"]
    (268, [{'level': 0, 'segments': 1}])
    """

    levels: list[np.ndarray]
    segments: list[int]
    heights: list[float]
    default_level: int
    seconds: float

    @property
    def nbytes(self) -> int:
        """Bytes held (the cache's account)."""
        return int(sum(lv.nbytes for lv in self.levels)) + 256

    @classmethod
    def from_hierarchy(cls, hier: Any, seconds: float) -> Result:
        """The compact form of a :class:`~affseg.grouping.hierarchy.Hierarchy`.

        Parameters
        ----------
        hier : Hierarchy
        seconds : float

        Returns
        -------
        Result
            Levels as uint16 where their labels fit.

        Examples
        --------
        >>> import numpy as np
        >>> from affseg.grouping.hierarchy import Hierarchy
        >>> hier = Hierarchy([np.array([[1, 2]]), np.array([[1, 1]])], np.array([0.0, 0.5]))
        >>> res = Result.from_hierarchy(hier, 0.1)
        >>> res.levels[0].dtype, res.segments, res.heights
        (dtype('uint16'), [2, 1], [0.0, 0.5])
        """
        levels = [lv.astype(np.uint16) if lv.max() < 65536 else lv for lv in hier.levels]
        return cls(
            levels=levels,
            segments=[int(k) for k in hier.n_segments],
            heights=[float(h) for h in (hier.heights if hier.heights is not None else ())],
            default_level=int(hier.default_level),
            seconds=seconds,
        )

    def describe(self) -> dict[str, Any]:
        """The ``done`` state answered for this result.

        Returns
        -------
        dict

        Examples
        --------
        >>> import numpy as np
        >>> Result([np.ones((1, 1), np.uint16)], [1], [0.0], 0, 0.12345).describe()
        {'status': 'done', 'levels': [{'level': 0, 'segments': 1}], 'default_level': 0,
         'seconds': 0.123}
        """
        return {
            "status": "done",
            "levels": [{"level": i, "segments": k} for i, k in enumerate(self.segments)],
            "default_level": self.default_level,
            "seconds": round(self.seconds, 3),
        }


def run_segmentation(rgb: np.ndarray, method: str) -> tuple[Result, Any]:
    """Segment an image with a registry method (seed 0).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    method : str
        A name of :data:`affseg.methods.METHODS`.

    Returns
    -------
    result : Result
    encoding : tuple or None
        (model, NDDOutput) when the ``ndd`` method ran the network (images whose shorter
        side reaches the similarity field's minimum), for the similarity field.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.zeros((32, 48, 3), np.uint8); rgb[:, 24:] = 200
    >>> res, encoding = run_segmentation(rgb, "slic")
    >>> res.levels[0].shape, encoding is None
    ((32, 48), True)
    """
    from affseg.methods import run_method

    t0 = time.perf_counter()
    capture = None
    options: dict[str, Any] = {}
    if method == "ndd" and min(rgb.shape[:2]) >= MIN_SIDE:
        from affseg.methods.ndd import shipped_model

        capture = CapturingModel(shipped_model())
        options["model"] = capture
    hier = run_method(rgb, method, seed=0, **options)
    seconds = time.perf_counter() - t0
    encoding = None
    if capture is not None and capture.output is not None:
        encoding = (capture.net, capture.output)
    return Result.from_hierarchy(hier, seconds), encoding


class RateBook:
    """Seconds per megapixel of every method, from earlier runs (for ETAs).

    Each run moves the method's rate half-way to the run's own.

    Examples
    --------
    >>> book = RateBook()
    >>> book.eta("slic", 1000, 1000) is None
    True
    >>> book.record("slic", 2.0, 1000, 1000)
    >>> book.record("slic", 4.0, 1000, 1000)
    >>> book.eta("slic", 500, 1000)
    1.5
    """

    def __init__(self) -> None:
        self._rate: dict[str, float] = {}

    def record(self, method: str, seconds: float, height: int, width: int) -> None:
        """Account a run of ``method`` on a ``height`` x ``width`` image."""
        rate = seconds / (height * width / 1e6)
        old = self._rate.get(method)
        self._rate[method] = rate if old is None else 0.5 * (old + rate)

    def eta(self, method: str, height: int, width: int) -> float | None:
        """Expected seconds of ``method`` on a ``height`` x ``width`` image (None: no runs)."""
        rate = self._rate.get(method)
        return None if rate is None else rate * height * width / 1e6
