"""Where the per-image tasks run: in this process, or on a Dask cluster.

An engine maps a top-level task function over a list of picklable task descriptions and
yields ``(index, outcome)`` pairs as tasks finish, ``outcome`` being a :class:`Done` or a
:class:`Failed`. A task that raises is reported as :class:`Failed` (its exception type and
message), never the end of the batch; so is a task whose worker process died.

* :class:`SerialEngine` runs the tasks one after the other in this process (today's
  behaviour, no dependency).

Outputs do not depend on the engine, the number of workers or the order tasks finish in,
with one caveat: torch's CPU kernels round differently with different intra-op thread
counts, so the torch methods (ndd, spectral, ...) give bit-identical results for the same
``threads`` per task (``--threads``). The classical methods are exact whatever the threads.
* :class:`DaskEngine` submits them to ``dask.distributed``: ``workers=N`` starts a local
  cluster of N single-threaded worker processes (torch / BLAS threads per worker =
  cores // N, so N workers never oversubscribe the cores); ``scheduler="tcp://host:8786"``
  connects to an existing cluster (one or many machines). Worker processes live for the
  whole run, so a method's model (cached per process) loads once per worker.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from affseg.errors import InputError

#: Environment variables that size the thread pools of BLAS / OpenMP / numba in a worker.
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


@dataclass
class Done:
    """A task that finished: its return value and its wall time on the worker."""

    value: Any
    seconds: float


@dataclass
class Failed:
    """A task that raised (or whose worker died): why, in one line."""

    error: str
    seconds: float = 0.0


def call_task(fn: Callable[[Any], Any], task: Any, threads: int | None) -> Done | Failed:
    """Run ``fn(task)`` with ``threads`` torch threads; exceptions become :class:`Failed`.

    This is what runs on a worker (or in this process for :class:`SerialEngine`).
    """
    t0 = time.perf_counter()
    try:
        if threads is None:
            value = fn(task)
        else:
            from affseg.runtime import torch_threads

            with torch_threads(threads):
                value = fn(task)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad image never ends the batch
        from affseg.memory import is_out_of_memory, out_of_memory_message

        if is_out_of_memory(exc):
            hint = "try a smaller --working-side"
            return Failed(
                f"MemoryError: {out_of_memory_message(exc, hint)}", time.perf_counter() - t0
            )
        msg = " ".join(str(exc).split()) or type(exc).__name__
        return Failed(f"{type(exc).__name__}: {msg}", time.perf_counter() - t0)
    return Done(value, time.perf_counter() - t0)


class Engine:
    """Base class: run tasks, yield ``(index, Done | Failed)`` as they finish."""

    #: Parallel task slots.
    slots: int = 1
    #: Words for the summary line, e.g. "in-process" or "Dask, 2 local workers".
    description: str = ""

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the cluster (if this engine started one)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialEngine(Engine):
    """Every task in this process, in order (no parallelism, no dependency)."""

    description = "in-process"

    def __init__(self, threads: int | None = None) -> None:
        from affseg.runtime import check_threads

        self.threads = check_threads(threads, "--threads")
        if threads is not None:
            self.description = f"in-process, {threads} torch thread(s)"

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, task in enumerate(tasks):
            yield i, call_task(fn, task, self.threads)


class DaskEngine(Engine):
    """Tasks on ``dask.distributed``: a local cluster of ``workers`` processes, or the
    existing cluster at ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes, one task thread each.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), or a scheduler file path.
    threads : int, optional
        Torch / BLAS threads per task (default: cores // workers locally, 1 on a cluster
        where the workers' own ``--nthreads`` and environment decide).
    """

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise InputError(
                "--workers / --scheduler need Dask: pip install 'affseg[dask]'"
            ) from exc
        if (workers is None) == (scheduler is None):
            raise InputError("give exactly one of workers= or scheduler=")
        check_engine_args(workers, scheduler, threads)
        self._cluster = None
        if workers is not None:
            cores = os.cpu_count() or 1
            self.threads = threads or max(1, cores // workers)
            # worker processes inherit the environment: size their thread pools before
            # they start (numpy/numba read these at import)
            saved = {v: os.environ.get(v) for v in _THREAD_VARS}
            for v in _THREAD_VARS:
                os.environ[v] = str(self.threads)
            try:
                self._cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            finally:
                for v, old in saved.items():
                    if old is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = old
            self.client = Client(self._cluster)
            self.description = (
                f"Dask, {workers} local worker process(es) x {self.threads} torch thread(s)"
            )
        else:
            self.threads = threads or 1
            target = scheduler_target(str(scheduler))
            try:
                if "scheduler_file" in target:
                    self.client = Client(scheduler_file=target["scheduler_file"], timeout="20s")
                else:
                    self.client = Client(target["address"], timeout="20s")
            except (OSError, ValueError, TypeError, TimeoutError) as exc:
                why = " ".join(str(exc).split()) or type(exc).__name__
                raise InputError(f"cannot reach the Dask scheduler {scheduler}: {why}") from None
            self.description = f"Dask cluster at {scheduler}"
        info = self.client.scheduler_info()
        self.slots = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        if not tasks:
            return
        futures = self.client.map(
            call_task, [fn] * len(tasks), list(tasks), [self.threads] * len(tasks), pure=False
        )
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the image failed
                outcome = Failed(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            fut.release()
            yield i, outcome

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def check_engine_args(
    workers: int | None = None, scheduler: str | None = None, threads: int | None = None
) -> None:
    """Validate ``--workers`` / ``--scheduler`` / ``--threads`` before any work.

    Raises
    ------
    InputError
        Both of workers and scheduler; a count that is not in ``1..max_threads()``; a
        scheduler that is neither an address (``tcp://host:port``, ``host:port``) nor a
        Dask scheduler file (JSON with an ``address``).

    Examples
    --------
    >>> check_engine_args(workers=2, threads=1)
    >>> check_engine_args(scheduler="not a url")
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --scheduler 'not a url' is neither an address ...
    """
    from affseg.runtime import check_threads

    if workers is not None and scheduler is not None:
        raise InputError("give --workers or --scheduler, not both")
    check_threads(workers, "--workers")
    check_threads(threads, "--threads")
    if scheduler is not None:
        scheduler_target(scheduler)


#: ``[scheme://]host:port``; host a name, an IPv4 address or a bracketed IPv6 address.
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}$")


def scheduler_target(scheduler: str) -> dict[str, str]:
    """``{"scheduler_file": path}`` or ``{"address": address}`` for a Dask ``Client``.

    Raises
    ------
    InputError
        Neither a readable scheduler file nor a well-formed address.

    Examples
    --------
    >>> scheduler_target("tcp://127.0.0.1:8786")
    {'address': 'tcp://127.0.0.1:8786'}
    """
    text = str(scheduler)
    if os.path.exists(text):
        try:
            with open(text, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError, UnicodeDecodeError):
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("address"), str):
            raise InputError(
                f"--scheduler {text} is a file but not a Dask scheduler file (JSON with an "
                "'address', written by `dask scheduler --scheduler-file`)"
            )
        return {"scheduler_file": text}
    if not _ADDRESS.match(text):
        raise InputError(
            f"--scheduler {text!r} is neither an address like tcp://host:8786 nor an "
            "existing scheduler file"
        )
    return {"address": text}


def make_engine(
    workers: int | None = None, scheduler: str | None = None, threads: int | None = None
) -> Engine:
    """:class:`SerialEngine` when neither ``workers`` nor ``scheduler`` is given, else a
    :class:`DaskEngine`."""
    if workers is not None and scheduler is not None:
        raise InputError("give --workers or --scheduler, not both")
    if workers is None and scheduler is None:
        return SerialEngine(threads)
    return DaskEngine(workers=workers, scheduler=scheduler, threads=threads)
