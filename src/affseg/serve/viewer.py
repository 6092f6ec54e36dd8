"""State of one ``affseg serve``: images, segmentation jobs, similarity fields and renders.

:class:`Viewer` holds the byte-bounded cache (:class:`~affseg.serve.cache.ByteLRU`) and
the worker pool (:class:`~affseg.serve.pool.WorkPool`) and answers in plain Python (dicts,
bytes, :class:`~affseg.serve.errors.HTTPError`), so it is usable without HTTP; the app
(:func:`affseg.serve.app.create_app`) only parses requests and sends what it returns.
Segmentations run as :class:`~affseg.serve.jobs.Job` s; pictures come from
:mod:`affseg.serve.render`, rendered once and cached.

Example
-------
>>> import numpy as np
>>> from affseg.serve.limits import Settings
>>> v = Viewer(Settings(max_side=64, warm=False))
>>> rgb = np.zeros((48, 96, 3), np.uint8)
>>> desc = v.add_image(rgb, "black")
>>> desc["width"], desc["height"], desc["scale"]
(64, 32, 0.6666666666666666)
>>> v.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from affseg.errors import AffsegError, InputError
from affseg.serve.cache import ByteLRU
from affseg.serve.errors import HTTPError
from affseg.serve.jobs import Job, RateBook, Result, job_counts, prune_jobs, run_segmentation
from affseg.serve.limits import Settings, rss_bytes, segmentation_bytes
from affseg.serve.pool import BACKGROUND, USER, PoolRefused, WorkPool
from affseg.serve.render import encode_png, labels_png, overlay_png, similarity_png, ucm_mat
from affseg.serve.similarity import SimilarityField, field_bytes

log = logging.getLogger("affseg.serve")

_ID = re.compile(r"^[0-9a-f]{16}$")


class Viewer:
    """State of one server: the cache, the pool and the jobs (usable without HTTP).

    Parameters
    ----------
    settings : Settings, optional
        Limits and sizes (default :class:`~affseg.serve.limits.Settings`).

    Examples
    --------
    >>> import numpy as np
    >>> from affseg.serve.limits import Settings
    >>> v = Viewer(Settings(warm=False))
    >>> image_id = v.add_image(np.zeros((40, 60, 3), np.uint8))["id"]
    >>> v.submit(image_id, "slic").future.result(timeout=60)
    >>> v.status(image_id, "slic")["status"]
    'done'
    >>> v.png("labels", image_id, "slic", 0)[:4]
    b'\\x89PNG'
    >>> v.close()
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.cache = ByteLRU(self.settings.cache_bytes)
        self.pool = WorkPool(
            workers=max(1, self.settings.workers),
            max_queue=max(1, self.settings.max_queue),
            memory_bytes=max(1, self.settings.work_bytes),
            name="affseg-work",
        )
        self.jobs: dict[tuple[str, str], Job] = {}
        # reentrant: a future cancelled while it is held (a dropped warm-up) runs its
        # callback, which takes it again
        self._lock = threading.RLock()
        self._fields: dict[str, Future] = {}  # similarity fields being built
        self.rates = RateBook()

    @property
    def background(self) -> int:
        """Warm-ups (similarity fields, overlays) waiting or running."""
        return self.pool.background()

    # ------------------------------------------------------------------ images
    def add_image(self, rgb: np.ndarray, name: str = "image") -> dict[str, Any]:
        """Store an RGB image (downscaled to ``max_side``); returns its description."""
        from affseg.data.io import as_rgb

        rgb = as_rgb(rgb)
        h0, w0 = rgb.shape[:2]
        scale = 1.0
        if max(h0, w0) > self.settings.max_side:
            from PIL import Image

            scale = self.settings.max_side / max(h0, w0)
            size = (max(2, round(w0 * scale)), max(2, round(h0 * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
        image_id = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()[:16]
        info = {"rgb": rgb, "name": name, "original": (h0, w0), "scale": scale}
        if self.cache.get(("image", image_id)) is None:
            self.cache.put(("image", image_id), info, rgb.nbytes + 128)
        return self.describe_image(image_id, info)

    @staticmethod
    def describe_image(image_id: str, info: dict[str, Any]) -> dict[str, Any]:
        """JSON-able description of a stored image (its id, name and sizes)."""
        h, w = info["rgb"].shape[:2]
        return {
            "id": image_id,
            "name": info["name"],
            "width": int(w),
            "height": int(h),
            "original_width": int(info["original"][1]),
            "original_height": int(info["original"][0]),
            "scale": float(info["scale"]),
        }

    def image(self, image_id: str) -> dict[str, Any]:
        """The stored image ``image_id`` (HTTPError 400 malformed, 404 unknown or evicted)."""
        if not isinstance(image_id, str) or not _ID.match(image_id):
            raise HTTPError(400, "malformed image id")
        info = self.cache.get(("image", image_id))
        if info is None:
            raise HTTPError(404, "unknown or expired image id: upload the image again")
        return info

    # ------------------------------------------------------------------ jobs
    def check_method(self, method: str | None) -> str:
        """The registry method named ``method`` (default: the default method), else 400."""
        from affseg.methods import DEFAULT_METHOD, METHODS

        name = method or DEFAULT_METHOD
        if name not in METHODS:
            raise HTTPError(400, f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
        return name

    def submit(self, image_id: str, method: str) -> Job:
        """Start (or join) the segmentation of an image with a method.

        Raises
        ------
        HTTPError
            The image is unknown.
        PoolRefused
            503 when the queue is full, 413 when the estimated memory exceeds the budget.
        """
        h, w = self.image(image_id)["rgb"].shape[:2]
        key = (image_id, method)
        with self._lock:
            job = self.jobs.get(key)
            if job is not None:
                if job.finished is None:
                    return job  # in flight: join it
                if job.error is None and ("hier", *key) in self.cache:
                    return job
            job = Job(image_id, method)
            job.future = self.pool.submit(
                self._run_job,
                job,
                priority=USER,
                nbytes=segmentation_bytes(h, w),
                label=f"{method} segmentation",
            )
            self.jobs[key] = job
            prune_jobs(self.jobs)
        return job

    def _run_job(self, job: Job) -> None:
        job.started = time.monotonic()
        encoding = None
        try:
            rgb = self.image(job.image_id)["rgb"]
            res, encoding = run_segmentation(rgb, job.method)
            self.cache.put(("hier", job.image_id, job.method), res, res.nbytes)
            self.rates.record(job.method, res.seconds, rgb.shape[0], rgb.shape[1])
        except HTTPError as exc:
            job.error = exc.message
        except AffsegError as exc:
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the page, server keeps serving
            log.exception("segmentation of %s with %s failed", job.image_id, job.method)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.monotonic()
        if job.error is None and self.settings.warm:
            self._warm_up(job.image_id, job.method, encoding)

    def _warm_up(self, image_id: str, method: str, encoding: Any) -> None:
        """Warm-ups, after any user work: the similarity field (fast first click), then
        every level's overlay (slider moves answered from the cache); dropped when the
        queue is busy."""
        if ("field", image_id) not in self.cache:
            with contextlib.suppress(PoolRefused, HTTPError, InputError):
                self.field_future(image_id, BACKGROUND, encoding)
        del encoding
        with contextlib.suppress(PoolRefused):
            self.pool.submit(
                self._warm_overlays, image_id, method, priority=BACKGROUND, label="overlays"
            )

    def _warm_overlays(self, image_id: str, method: str) -> None:
        try:
            res = self.result(image_id, method)
            d = res.default_level
            for lv in sorted(range(len(res.levels)), key=lambda i: abs(i - d)):
                if self.pool.user_waiting():
                    return  # a request's own work goes first; the rest renders on demand
                if ("png", "overlay", image_id, method, lv) not in self.cache:
                    self.png("overlay", image_id, method, lv)
        except HTTPError:
            pass  # evicted meanwhile
        except Exception:  # noqa: BLE001 - on-demand rendering reports errors itself
            log.exception("overlays of %s / %s failed", image_id, method)

    def status(self, image_id: str, method: str) -> dict[str, Any]:
        """JSON-able state of a job (the result's levels when done)."""
        info = self.image(image_id)
        out = self.describe_image(image_id, info)
        out["method"] = method
        res: Result | None = self.cache.get(("hier", image_id, method))
        if res is not None:
            out.update(res.describe())
            return out
        job = self.jobs.get((image_id, method))
        if job is None:
            raise HTTPError(404, f"no segmentation of this image with {method}: POST one")
        if job.error is None and job.finished is not None:
            # finished but evicted: start again
            self.submit(image_id, method)
            out.update(status="queued", elapsed=0.0)
            return out
        h, w = info["rgb"].shape[:2]
        ahead = 0
        if job.error is None and job.started is None:
            ahead = sum(
                1
                for j in list(self.jobs.values())
                if j.started is None and j.finished is None and j.submitted < job.submitted
            )
        out.update(job.state(time.monotonic(), ahead, self.rates.eta(method, h, w)))
        return out

    def result(self, image_id: str, method: str) -> Result:
        """The cached hierarchy of an image and method (HTTPError 404 when not finished)."""
        self.image(image_id)
        res = self.cache.get(("hier", image_id, method))
        if res is None:
            raise HTTPError(404, f"no finished segmentation of this image with {method}")
        return res

    # ------------------------------------------------------------------ renders
    def _level(self, res: Result, level: int) -> np.ndarray:
        if not 0 <= level < len(res.levels):
            raise HTTPError(404, f"level {level} outside 0..{len(res.levels) - 1}")
        return res.levels[level]

    def png(self, kind: str, image_id: str, method: str, level: int) -> bytes:
        """Overlay or label PNG of one level (rendered once, then cached)."""
        key = ("png", kind, image_id, method, level)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        rgb = self.image(image_id)["rgb"]
        lab = self._level(self.result(image_id, method), level).astype(np.int32)
        data = overlay_png(rgb, lab) if kind == "overlay" else labels_png(lab)
        self.cache.put(key, data, len(data))
        return data

    def image_png(self, image_id: str) -> bytes:
        """PNG of the image as segmented (cached)."""
        key = ("png", "image", image_id)
        hit = self.cache.get(key)
        if hit is None:
            hit = encode_png(self.image(image_id)["rgb"])
            self.cache.put(key, hit, len(hit))
        return hit

    def ucm_mat(self, image_id: str, method: str) -> bytes:
        """The finished hierarchy as a BSDS ``ucm2`` ``.mat`` file."""
        res = self.result(image_id, method)
        return ucm_mat(res.levels, res.heights)

    # ------------------------------------------------------------------ similarity
    def field_future(self, image_id: str, priority: int = USER, encoding: Any = None) -> Future:
        """The image's :class:`~affseg.serve.similarity.SimilarityField`, built in the pool.

        Parameters
        ----------
        image_id : str
        priority : int
            :data:`~affseg.serve.pool.USER` (a request waits for it: a queued warm-up of
            the same field is promoted) or :data:`~affseg.serve.pool.BACKGROUND`.
        encoding : tuple, optional
            (model, NDDOutput) of this image when the ``ndd`` method already ran the
            network on it.

        Returns
        -------
        concurrent.futures.Future
            Done at once when the field is cached; one build per image at a time.

        Raises
        ------
        HTTPError
            404 for an unknown image, 422 when the image is too elongated or too large for
            a field (checked from its size, before any work).
        PoolRefused
            503 when the queue is full, 413 when the estimated memory exceeds the budget.
        """
        hit = self.cache.get(("field", image_id))
        if hit is not None:
            done: Future = Future()
            done.set_result(hit)
            return done
        h, w = self.image(image_id)["rgb"].shape[:2]
        try:
            nbytes = field_bytes(h, w, self.settings.field_max_pixels)
        except InputError as exc:
            raise HTTPError(422, str(exc)) from None
        with self._lock:
            fut = self._fields.get(image_id)
            if fut is not None and not fut.done():
                if priority == USER:
                    self.pool.promote(fut)
                if not fut.cancelled():
                    return fut
            fut = self.pool.submit(
                self._build_field, image_id, encoding,
                priority=priority, nbytes=nbytes, label="similarity map",
            )  # fmt: skip
            self._fields[image_id] = fut
        # forgotten once done (a finished future holds the field: the cache alone keeps it)
        fut.add_done_callback(lambda f: self._forget_field(image_id, f))
        return fut

    def _forget_field(self, image_id: str, fut: Future) -> None:
        with self._lock:
            if self._fields.get(image_id) is fut:
                del self._fields[image_id]

    def _build_field(self, image_id: str, encoding: Any = None) -> Any:
        key = ("field", image_id)
        hit = self.cache.get(key)
        if hit is None:
            rgb = self.image(image_id)["rgb"]
            cap = self.settings.field_max_pixels
            try:
                if encoding is not None:
                    hit = SimilarityField(rgb, encoding[0], output=encoding[1], max_pixels=cap)
                else:
                    hit = SimilarityField(rgb, max_pixels=cap)
            except (AffsegError, HTTPError):
                raise
            except Exception:  # a warm-up's failure has no one to answer: log it
                log.exception("similarity field of %s failed", image_id)
                raise
            self.cache.put(key, hit, hit.nbytes)
        return hit

    def field(self, image_id: str, encoding: Any = None) -> Any:
        """The image's cached :class:`~affseg.serve.similarity.SimilarityField` (blocks
        until built in the pool; never call it from a pool task)."""
        try:
            return self.field_future(image_id, USER, encoding).result()
        except InputError as exc:
            raise HTTPError(422, str(exc)) from None

    def check_pixel(self, image_id: str, y: int, x: int) -> None:
        """HTTPError 400 unless (y, x) is a pixel of the image."""
        h, w = self.image(image_id)["rgb"].shape[:2]
        if not (0 <= y < h and 0 <= x < w):
            raise HTTPError(400, f"pixel ({y}, {x}) is outside the {h} x {w} image")

    def similarity_png(self, image_id: str, y: int, x: int, fld: Any = None) -> bytes:
        """Heat map PNG of pixel (y, x)'s similarity (``fld``: the image's field, else
        :meth:`field`)."""
        self.check_pixel(image_id, y, x)
        sim = (self.field(image_id) if fld is None else fld).row(y, x)
        return similarity_png(sim, y, x)

    # ------------------------------------------------------------------ server
    def health(self) -> dict[str, Any]:
        """JSON-able health: cache, jobs and pool statistics and the resident memory."""
        with self._lock:
            jobs = list(self.jobs.values())
        return {
            "ok": True,
            "cache": self.cache.stats(),
            "jobs": {**job_counts(jobs), "background": self.background},
            "pool": self.pool.stats(),
            "rss_bytes": rss_bytes(),
        }

    def close(self) -> None:
        """Stop the worker pool."""
        self.pool.close()
