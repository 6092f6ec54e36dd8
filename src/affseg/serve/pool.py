"""The viewer's worker pool: bounded queue, user work before warm-ups, memory accounted.

Every heavy computation of ``affseg serve`` (segmentations, similarity fields) runs here,
never in the web server's own thread pool. :class:`WorkPool` keeps

* at most ``workers`` tasks running and at most ``max_queue`` waiting, warm-ups included;
* two priorities: :data:`USER` (what a request waits for, first come first served) runs
  before :data:`BACKGROUND` (warm-ups nobody waits for, newest first: the image on screen).
  A user task that finds the queue full takes the place of a waiting warm-up (the oldest),
  which is dropped; a warm-up that finds the queue full, or user work waiting, is not queued at all,
  and at most ``max_warmups`` wait (the oldest is dropped). A queued warm-up can be
  promoted when a request needs it;
* a memory budget: each task states its estimated peak bytes; a task over the whole budget
  is refused when submitted, and a task starts only when its bytes fit beside the running
  ones.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

#: Priority of work a request waits for.
USER = 0
#: Priority of warm-ups (prerendered overlays, similarity fields nobody asked for yet).
BACKGROUND = 1


class PoolRefused(Exception):
    """A task the pool does not take, with the HTTP status that says why.

    Parameters
    ----------
    message : str
        One line for the client.
    status : int
        503 (busy, shutting down) or 413 (over the memory budget).

    Examples
    --------
    >>> err = PoolRefused("the server is busy", 503)
    >>> err.status, str(err)
    (503, 'the server is busy')
    """

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(order=True)
class _Task:
    priority: int
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    future: Future = field(compare=False)
    nbytes: int = field(compare=False, default=0)
    label: str = field(compare=False, default="")
    stale: bool = field(compare=False, default=False)


class WorkPool:
    """Bounded two-priority worker pool with a memory budget.

    Parameters
    ----------
    workers : int
        Threads (tasks running at once), >= 1.
    max_queue : int
        Tasks waiting (not yet running), user work and warm-ups together, >= 1.
    memory_bytes : int
        Budget for the estimated peak memory of the running tasks together.
    name : str
        Prefix of the threads' names.
    max_warmups : int
        Warm-ups waiting at most (the oldest is dropped for a new one).

    Examples
    --------
    >>> pool = WorkPool(workers=1, max_queue=4, memory_bytes=2**20)
    >>> pool.submit(sum, [1, 2, 3], nbytes=1000).result(timeout=10)
    6
    >>> try:
    ...     pool.submit(sum, [1], nbytes=2**30)
    ... except PoolRefused as err:
    ...     print(err.status)
    413
    >>> pool.close()
    """

    def __init__(
        self,
        workers: int,
        max_queue: int,
        memory_bytes: int,
        name: str = "affseg-work",
        max_warmups: int = 8,
    ) -> None:
        if workers < 1 or max_queue < 1 or memory_bytes < 1:
            raise ValueError("workers, max_queue and memory_bytes must be >= 1")
        self.workers = int(workers)
        self.max_queue = int(max_queue)
        self.memory_bytes = int(memory_bytes)
        self.max_warmups = max(1, int(max_warmups))
        self._heap: list[_Task] = []
        self._waiting: dict[Future, _Task] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_use = 0
        self._running: list[_Task] = []
        self._closed = False
        self.dropped = 0  # warm-ups dropped for user work or a full queue
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ submit
    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        priority: int = USER,
        nbytes: int = 0,
        label: str = "",
    ) -> Future:
        """Queue ``fn(*args)``; its :class:`~concurrent.futures.Future`.

        Parameters
        ----------
        fn : callable
        *args
            Its arguments.
        priority : int
            :data:`USER` or :data:`BACKGROUND`.
        nbytes : int
            Estimated peak memory of the task.
        label : str
            What the task is (for messages).

        Returns
        -------
        Future

        Raises
        ------
        PoolRefused
            503 when the queue is full of user work (or, for a warm-up, full or holding
            user work) or the pool is closed; 413 when ``nbytes`` exceeds the whole budget.
        """
        nbytes = max(0, int(nbytes))
        if nbytes > self.memory_bytes:
            raise PoolRefused(
                f"this computation{' (' + label + ')' if label else ''} needs about "
                f"{nbytes / 2**20:.1f} MB of memory, more than this server allows for its "
                f"work ({self.memory_bytes / 2**20:.1f} MB): try a smaller image",
                413,
            )
        dropped: list[Future] = []
        try:
            with self._cond:
                if self._closed:
                    raise PoolRefused("the server is shutting down", 503)
                full = len(self._waiting) >= self.max_queue
                if full or (priority != USER and self._user_waiting()):
                    if priority != USER or not self._drop_one_warmup(dropped):
                        raise PoolRefused(
                            f"the server is busy ({len(self._waiting)} computations waiting); "
                            "try again in a moment",
                            503,
                        )
                if priority != USER:
                    while sum(1 for t in self._waiting.values() if t.priority != USER) >= min(
                        self.max_warmups, self.max_queue
                    ):
                        self._drop_one_warmup(dropped)
                seq = next(self._seq)
                # user work in arrival order, warm-ups newest first
                task = _Task(priority, seq if priority == USER else -seq, fn, args, Future(),
                             nbytes, label)  # fmt: skip
                heapq.heappush(self._heap, task)
                self._waiting[task.future] = task
                self._cond.notify_all()
        finally:
            # outside the lock: a cancelled future runs its callbacks here, and they may
            # take the caller's locks
            for fut in dropped:
                fut.cancel()
        return task.future

    def promote(self, future: Future) -> bool:
        """Run a waiting warm-up as user work; False if it is not waiting."""
        with self._cond:
            task = self._waiting.get(future)
            if task is None or task.priority == USER:
                return task is not None
            task.stale = True
            new = _Task(USER, next(self._seq), task.fn, task.args, future, task.nbytes,
                        task.label)  # fmt: skip
            task.args = ()  # the stale entry keeps no reference until it is popped
            heapq.heappush(self._heap, new)
            self._waiting[future] = new
            self._cond.notify_all()
            return True

    def _user_waiting(self) -> bool:
        return any(t.priority == USER for t in self._waiting.values())

    def user_waiting(self) -> bool:
        """Whether user work is waiting (a long warm-up checks this between its steps)."""
        with self._cond:
            return self._user_waiting()

    def _drop_one_warmup(self, dropped: list[Future]) -> bool:
        """Take the oldest waiting warm-up, the one that would run last, off the queue
        (lock held; its future goes to ``dropped``, to be cancelled once the lock is
        released); False if none waits."""
        warm = [t for t in self._waiting.values() if t.priority != USER]
        if not warm:
            return False
        victim = max(warm, key=lambda t: t.seq)  # warm-ups are ordered by -seq
        victim.stale = True
        victim.args = ()
        del self._waiting[victim.future]
        dropped.append(victim.future)
        self.dropped += 1
        return True

    # ------------------------------------------------------------------ run
    def _next(self) -> _Task | None:
        """The next task to run, its memory reserved (lock held); None when closed."""
        while True:
            while self._heap and self._heap[0].stale:
                heapq.heappop(self._heap)
            if self._closed:
                return None
            if self._heap and self._in_use + self._heap[0].nbytes <= self.memory_bytes:
                task = heapq.heappop(self._heap)
                del self._waiting[task.future]
                self._in_use += task.nbytes
                self._running.append(task)
                return task
            self._cond.wait()

    def _loop(self) -> None:
        while True:
            with self._cond:
                task = self._next()
            if task is None:
                return
            try:
                if task.future.set_running_or_notify_cancel():
                    try:
                        result = task.fn(*task.args)
                    except BaseException as exc:  # noqa: BLE001 - handed to the future
                        task.future.set_exception(exc)
                    else:
                        task.future.set_result(result)
            finally:
                with self._cond:
                    self._in_use -= task.nbytes
                    self._running.remove(task)
                    self._cond.notify_all()

    # ------------------------------------------------------------------ state
    def stats(self) -> dict[str, int]:
        """Waiting (user / background), running (user / background), reserved bytes."""
        with self._cond:
            waiting = list(self._waiting.values())
            running = list(self._running)
            return {
                "queued": sum(1 for t in waiting if t.priority == USER),
                "queued_background": sum(1 for t in waiting if t.priority != USER),
                "running": sum(1 for t in running if t.priority == USER),
                "running_background": sum(1 for t in running if t.priority != USER),
                "reserved_bytes": self._in_use,
                "memory_bytes": self.memory_bytes,
                "dropped_background": self.dropped,
            }

    def background(self) -> int:
        """Warm-ups waiting or running."""
        with self._cond:
            return sum(1 for t in self._waiting.values() if t.priority != USER) + sum(
                1 for t in self._running if t.priority != USER
            )

    def close(self, wait: bool = False) -> None:
        """Stop: waiting tasks are cancelled, running ones finish."""
        with self._cond:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._heap.clear()
            self._cond.notify_all()
        for fut in waiting:
            fut.cancel()
        if wait:
            for t in self._threads:
                t.join()
