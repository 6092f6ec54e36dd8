"""The Starlette app of ``affseg serve``: the viewer page and its HTTP API.

HTTP API (every error is JSON ``{"error": message, "status": code}`` with a 4xx/5xx code)
==========================================================================================

``GET /api/info``
    Methods (registry names, default first), built-in examples and the server's limits.
``POST /api/segment``
    Multipart form: ``image`` (a file) or ``example`` (a built-in name) or ``id`` (an image
    uploaded before); optional ``method`` (default ``ndd``) and ``wait`` (``1`` default:
    answer when the hierarchy is ready; ``0``: answer at once with ``202`` and the job's
    status, then poll the GET below). Answer::

        {"id": "3f2a...", "method": "slic", "status": "done", "width": 600, "height": 400,
         "levels": [{"level": 0, "segments": 867}, ...], "default_level": 4,
         "seconds": 1.9, "scale": 1.0}

``GET /api/segment/{id}/{method}``
    The same JSON: ``status`` is ``queued`` / ``running`` (with ``elapsed``, ``eta``,
    ``progress`` in [0, 1] estimated from earlier runs) / ``done`` / ``error`` (with
    ``error``). Unknown id: 404.
``GET /api/image/{id}.png``
    The image as segmented (downscaled to ``max_side`` when larger).
``GET /api/overlay/{id}/{method}/{level}.png``
    Segments of one level painted with their mean colour, boundaries in yellow.
``GET /api/labels/{id}/{method}/{level}.png``
    The level's label map 1..K as a 16-bit PNG.
``GET /api/ucm/{id}/{method}.mat``
    The whole hierarchy as a BSDS ``ucm2`` (double resolution) ``.mat``.
``GET /api/similarity/{id}.png?y=ROW&x=COL``
    Neural-diffusion similarity of pixel (ROW, COL) to every pixel as a heat map (the
    shipped spec-diff-net; seed 001 Fig. 2), the pixel marked in cyan.
``GET /api/health``
    ``{"ok": true, "cache": {...}, "jobs": {...}, "rss_bytes": ...}``.
``GET /api/openapi.json``
    This API as an OpenAPI 3.0 description (:mod:`affseg.serve.openapi`).

Work and memory: segmentations and similarity fields run in one bounded worker pool
(:class:`~affseg.serve.pool.WorkPool`; the event loop only parses requests and sends
bytes): at most ``max_queue`` computations wait, warm-ups included, more are answered
``503``; a request's own work runs before warm-ups (prerendered overlays, similarity fields
nobody asked for yet), which are dropped when the queue is busy. Each computation's peak
memory is estimated from its working size before it starts: one over ``work_bytes`` is
refused (``413``), and running ones together stay within it. A similarity field works on
an image enlarged to a shorter side of 96 pixels, bounded in both sides
(:func:`~affseg.serve.similarity.field_working_size`; a thin strip answers ``422``).
Decoding uploads, rendering PNGs and evaluating clicks run a few at a time
(``light_tasks``; ``503`` after ``light_wait`` seconds). An upload's body must arrive
within ``upload_timeout`` seconds, else ``408`` and the connection is closed.
Images, hierarchies, similarity fields (diffusion embedding + interpolation weights) and
rendered PNGs live in one LRU cache bounded in bytes (:class:`~affseg.serve.cache.ByteLRU`);
an evicted image's id answers 404 ("upload it again"). Ids are content hashes: nothing in a
request names a file on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affseg.errors import AffsegError, InputError
from affseg.serve.cache import ByteLRU
from affseg.serve.pool import BACKGROUND, USER, PoolRefused, WorkPool
from affseg.serve.similarity import (
    MAX_WORK_PIXELS,
    MIN_SIDE,
    CapturingModel,
    SimilarityField,
    field_bytes,
)
from affseg.serve.uploads import UploadRefused, decode_upload

log = logging.getLogger("affseg.serve")

STATIC = Path(__file__).resolve().parent / "static"
_ID = re.compile(r"^[0-9a-f]{16}$")


#: Estimated peak memory of a segmentation: fixed part and bytes per pixel (measured peaks
#: of the registry's methods on 200 x 300 and 400 x 600 images: 0.5-1.7 kB per pixel over
#: at most 250 MB).
JOB_BYTES_FIXED = 128 << 20
JOB_BYTES_PER_PIXEL = 2048


@dataclass
class Settings:
    """Limits and sizes of one server.

    Attributes
    ----------
    max_upload_bytes : int
        Largest upload body.
    max_pixels : int
        Largest image (width x height from its header) decoded.
    max_side : int
        Larger images are downscaled to this longer side.
    cache_bytes : int
        Budget of the LRU cache (images, hierarchies, fields, renders).
    workers : int
        Computations running at once.
    max_queue : int
        Computations waiting, warm-ups included; more are answered 503.
    work_bytes : int
        Budget for the estimated peak memory of the running computations.
    field_max_pixels : int
        Bound on a similarity field's working size.
    light_tasks : int
        Decodes, renders and clicks running at once (uploads are decoded one at a time).
    light_wait : float
        Seconds a request waits for such a slot before a 503.
    upload_timeout : float
        Seconds an upload's body may take to arrive; then 408.
    warm : bool
        Prerender overlays and similarity fields after a segmentation.
    allowed_hosts : tuple of str
        Accepted ``Host`` headers (empty: any).
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 800
    cache_bytes: int = 512 * 1024 * 1024
    workers: int = 1
    max_queue: int = 64
    work_bytes: int = 2048 * 1024 * 1024
    field_max_pixels: int = MAX_WORK_PIXELS
    light_tasks: int = 4
    light_wait: float = 30.0
    upload_timeout: float = 60.0
    warm: bool = True
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]", "testserver")


@dataclass
class Job:
    """One (image, method) segmentation in the pool."""

    image_id: str
    method: str
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    future: Future | None = None
    encoding: Any = None  # (model, NDDOutput) kept by the ndd method for the similarity field


@dataclass
class Result:
    """A computed hierarchy, stored compactly (uint16 levels)."""

    levels: list[np.ndarray]
    segments: list[int]
    heights: list[float]
    default_level: int
    seconds: float

    @property
    def nbytes(self) -> int:
        return int(sum(lv.nbytes for lv in self.levels)) + 256


class HTTPError(Exception):
    """An error answered as JSON with ``status`` (and extra response ``headers``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Viewer:
    """State of one server: the cache, the pool and the jobs (usable without HTTP)."""

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
        self._rate: dict[str, float] = {}  # method -> seconds per megapixel (EMA)

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
        if not isinstance(image_id, str) or not _ID.match(image_id):
            raise HTTPError(400, "malformed image id")
        info = self.cache.get(("image", image_id))
        if info is None:
            raise HTTPError(404, "unknown or expired image id: upload the image again")
        return info

    # ------------------------------------------------------------------ jobs
    def check_method(self, method: str | None) -> str:
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
                nbytes=JOB_BYTES_FIXED + JOB_BYTES_PER_PIXEL * h * w,
                label=f"{method} segmentation",
            )
            self.jobs[key] = job
            self._prune_jobs()
        return job

    def _prune_jobs(self) -> None:
        done = [k for k, j in self.jobs.items() if j.finished is not None]
        for k in done[: max(0, len(self.jobs) - 512)]:
            del self.jobs[k]

    def _run_job(self, job: Job) -> None:
        from affseg.methods import run_method

        job.started = time.monotonic()
        try:
            info = self.image(job.image_id)
            rgb = info["rgb"]
            t0 = time.perf_counter()
            capture = None
            options: dict[str, Any] = {}
            if job.method == "ndd" and min(rgb.shape[:2]) >= MIN_SIDE:
                from affseg.methods.ndd import shipped_model

                capture = CapturingModel(shipped_model())
                options["model"] = capture
            hier = run_method(rgb, job.method, seed=0, **options)
            seconds = time.perf_counter() - t0
            if capture is not None and capture.output is not None:
                job.encoding = (capture.net, capture.output)
            levels = [lv.astype(np.uint16) if lv.max() < 65536 else lv for lv in hier.levels]
            res = Result(
                levels=levels,
                segments=[int(k) for k in hier.n_segments],
                heights=[float(h) for h in (hier.heights if hier.heights is not None else ())],
                default_level=int(hier.default_level),
                seconds=seconds,
            )
            self.cache.put(("hier", job.image_id, job.method), res, res.nbytes)
            mpx = rgb.shape[0] * rgb.shape[1] / 1e6
            old = self._rate.get(job.method)
            rate = seconds / mpx
            self._rate[job.method] = rate if old is None else 0.5 * (old + rate)
        except HTTPError as exc:
            job.error = exc.message
        except AffsegError as exc:
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the page, server keeps serving
            log.exception("segmentation of %s with %s failed", job.image_id, job.method)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.monotonic()
        encoding, job.encoding = job.encoding, None
        if job.error is None and self.settings.warm:
            # warm-ups, after any user work: the similarity field (fast first click), then
            # every level's overlay (slider moves answered from the cache); dropped when
            # the queue is busy
            if ("field", job.image_id) not in self.cache:
                with contextlib.suppress(PoolRefused, HTTPError, InputError):
                    self.field_future(job.image_id, BACKGROUND, encoding)
            del encoding
            with contextlib.suppress(PoolRefused):
                self.pool.submit(
                    self._warm_overlays, job.image_id, job.method,
                    priority=BACKGROUND, label="overlays",
                )  # fmt: skip

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
            out.update(
                status="done",
                levels=[{"level": i, "segments": k} for i, k in enumerate(res.segments)],
                default_level=res.default_level,
                seconds=round(res.seconds, 3),
            )
            return out
        job = self.jobs.get((image_id, method))
        if job is None:
            raise HTTPError(404, f"no segmentation of this image with {method}: POST one")
        now = time.monotonic()
        if job.error is not None:
            out.update(status="error", error=job.error)
        elif job.finished is not None:
            # finished but evicted: start again
            job = self.submit(image_id, method)
            out.update(status="queued", elapsed=0.0)
        elif job.started is None:
            ahead = sum(
                1
                for j in list(self.jobs.values())
                if j.started is None and j.finished is None and j.submitted < job.submitted
            )
            out.update(status="queued", queue_position=ahead, elapsed=round(now - job.submitted, 2))
        else:
            elapsed = now - job.started
            out.update(status="running", elapsed=round(elapsed, 2))
            rate = self._rate.get(method)
            if rate is not None:
                eta = rate * info["rgb"].shape[0] * info["rgb"].shape[1] / 1e6
                out.update(
                    eta=round(eta, 2), progress=round(min(0.95, elapsed / max(eta, 1e-3)), 3)
                )
        return out

    def result(self, image_id: str, method: str) -> Result:
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
        if kind == "overlay":
            data = encode_png(fast_overlay(rgb, lab), level=0)
        else:
            from skimage.segmentation import relabel_sequential

            data = encode_png(relabel_sequential(lab)[0].astype(np.uint16))
        self.cache.put(key, data, len(data))
        return data

    def image_png(self, image_id: str) -> bytes:
        key = ("png", "image", image_id)
        hit = self.cache.get(key)
        if hit is None:
            hit = encode_png(self.image(image_id)["rgb"])
            self.cache.put(key, hit, len(hit))
        return hit

    def ucm_mat(self, image_id: str, method: str) -> bytes:
        import scipy.io

        from affseg.grouping.hierarchy import Hierarchy

        res = self.result(image_id, method)
        hier = Hierarchy([lv.astype(np.int32) for lv in res.levels], np.asarray(res.heights))
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"ucm2": hier.to_ucm()}, do_compression=True, format="5")
        return buf.getvalue()

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
        from affseg.methods.similarity import heat

        info = self.image(image_id)
        h, w = info["rgb"].shape[:2]
        self.check_pixel(image_id, y, x)
        sim = (self.field(image_id) if fld is None else fld).row(y, x)
        img = heat(sim)
        r = max(2, min(h, w) // 100)
        img[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = (0, 255, 255)
        return encode_png(img, level=0)

    def health(self) -> dict[str, Any]:
        with self._lock:
            jobs = list(self.jobs.values())
        return {
            "ok": True,
            "cache": self.cache.stats(),
            "jobs": {
                "queued": sum(1 for j in jobs if j.started is None and j.finished is None),
                "running": sum(1 for j in jobs if j.started is not None and j.finished is None),
                "finished": sum(1 for j in jobs if j.finished is not None),
                "background": self.background,
            },
            "pool": self.pool.stats(),
            "rss_bytes": rss_bytes(),
        }

    def close(self) -> None:
        self.pool.close()


def fast_overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Segments painted with their mean colour, one-pixel boundaries in yellow.

    The picture of :func:`affseg.grouping.visualize.overlay` drawn for interactive use, in
    8.8 fixed point: labels index the colour table directly and a pixel is a boundary when
    its right or lower neighbour has another label.
    """
    lab = np.asarray(labels).astype(np.intp, copy=False)
    flat = lab.ravel()
    n = int(flat.max()) + 1
    counts = np.maximum(np.bincount(flat, minlength=n), 1)
    px = rgb.reshape(-1, 3)
    paint = np.empty((n, 3), np.uint16)
    for c in range(3):
        paint[:, c] = np.bincount(flat, px[:, c], n) * (alpha * 256) / counts + 0.5
    base = px * np.uint16(round((1.0 - alpha) * 256))
    out = ((paint[flat] + base) >> 8).astype(np.uint8).reshape(rgb.shape)
    edge = np.zeros(lab.shape, bool)
    np.not_equal(lab[:, :-1], lab[:, 1:], out=edge[:, :-1])
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    out[edge] = (255, 255, 0)
    return out


def encode_png(arr: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a uint8 (H, W[, 3]) or uint16 (H, W) array.

    ``level`` is zlib's compression level. Level 0 (pictures shown live over loopback)
    writes 8-bit images directly (no row filters, stored deflate blocks: about 1 ms for
    600 x 400 RGB); other levels go through Pillow.
    """
    a = np.ascontiguousarray(arr)
    if level == 0 and a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] in (3, 4)):
        import struct
        import zlib

        h, w = a.shape[:2]
        ch = 1 if a.ndim == 2 else a.shape[2]
        raw = np.zeros((h, 1 + w * ch), np.uint8)  # filter byte 0 ("none") per row
        raw[:, 1:] = a.reshape(h, -1)

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        colour_type = {1: 0, 3: 2, 4: 6}[ch]
        ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 0))
            + chunk(b"IEND", b"")
        )
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=max(0, int(level)))
    return buf.getvalue()


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux ``/proc``), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------- HTTP layer
def create_app(settings: Settings | None = None) -> Any:
    """The Starlette application (one :class:`Viewer` in ``app.state.viewer``)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    viewer = Viewer(settings)
    cfg = viewer.settings

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        message = " ".join(str(message).split()) or "error"  # one line
        return JSONResponse({"error": message, "status": status}, status_code=status,
                            headers=headers)  # fmt: skip

    light = asyncio.Semaphore(max(1, cfg.light_tasks))  # renders, clicks
    decoding = asyncio.Semaphore(1)  # decodes: up to max_pixels each

    async def run_blocking(fn: Any, *args: Any, gate: asyncio.Semaphore | None = None) -> Any:
        """``fn(*args)`` in the web server's thread pool, holding a slot of ``gate``
        (default: the light-work semaphore); 503 when none frees within ``light_wait``."""
        from starlette.concurrency import run_in_threadpool

        sem = light if gate is None else gate
        try:
            await asyncio.wait_for(sem.acquire(), timeout=cfg.light_wait)
        except TimeoutError:
            raise HTTPError(
                503, "the server is busy (too many requests at once); try again in a moment"
            ) from None
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            sem.release()

    async def wait_future(fut: Future) -> Any:
        """The result of a pool task (a cancelled one: 503)."""
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            if fut.cancelled():
                raise HTTPError(503, "the server dropped this computation; try again") from None
            raise

    def png_response(data: bytes, immutable: bool = True) -> Response:
        headers = {"Cache-Control": "public, max-age=3600, immutable" if immutable else "no-store"}
        return Response(data, media_type="image/png", headers=headers)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def info(request: Request) -> Response:
        from affseg.data.examples import EXAMPLES
        from affseg.methods import DEFAULT_METHOD, METHODS

        methods = [DEFAULT_METHOD] + sorted(m for m in METHODS if m != DEFAULT_METHOD)
        return JSONResponse(
            {
                "methods": methods,
                "default_method": DEFAULT_METHOD,
                "examples": list(EXAMPLES),
                "limits": {
                    "max_upload_bytes": cfg.max_upload_bytes,
                    "max_pixels": cfg.max_pixels,
                    "max_side": cfg.max_side,
                },
            }
        )

    async def drain(request: Request, cap: int) -> None:
        """Read and discard up to ``cap`` more bytes of a refused upload, so that the client,
        still sending, reads the 413 answer instead of a reset connection (a lingering
        close); nothing is kept, and a larger upload is cut off at ``cap``."""
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > cap:
                break

    async def read_body(request: Request) -> bytes:
        """The request's body, whole within ``upload_timeout`` seconds (else 408 and the
        connection closed: a stalled client does not keep its slot)."""
        try:
            async with asyncio.timeout(cfg.upload_timeout):
                return await read_body_unbounded(request)
        except TimeoutError:
            raise HTTPError(
                408,
                f"the upload did not arrive within {cfg.upload_timeout:g} s",
                headers={"Connection": "close"},
            ) from None

    async def read_body_unbounded(request: Request) -> bytes:
        limit = cfg.max_upload_bytes + 64 * 1024  # room for the multipart framing
        cap = 4 * limit  # a refused upload up to this size is drained before the answer
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise HTTPError(400, "bad Content-Length") from None
            if size > limit:
                if size <= cap:
                    await drain(request, cap)
                raise HTTPError(
                    413,
                    f"the upload is {size / 1e6:.1f} MB; this server accepts at "
                    f"most {cfg.max_upload_bytes / 1e6:.1f} MB",
                )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                body.clear()
                await drain(request, cap)
                raise HTTPError(413, f"the upload exceeds {cfg.max_upload_bytes / 1e6:.1f} MB")
        return bytes(body)

    async def segment(request: Request) -> Response:
        from starlette.datastructures import UploadFile

        body = await read_body(request)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        fields: dict[str, Any] = dict(request.query_params)
        ctype = request.headers.get("content-type", "")
        if body and ("multipart/form-data" in ctype or "urlencoded" in ctype):
            try:
                form = await Request(request.scope, receive).form(
                    max_files=1, max_fields=16, max_part_size=64 * 1024
                )
            except Exception as exc:  # noqa: BLE001 - any malformed multipart body
                raise HTTPError(400, f"malformed form data: {exc}") from None
            for k, v in form.multi_items():
                fields[k] = v
        elif body:
            raise HTTPError(415, "send multipart/form-data with a field 'image' (a file)")
        method = viewer.check_method(_text(fields.get("method")))
        wait = _text(fields.get("wait")) not in ("0", "false", "no")
        upload = fields.get("image")
        example = _text(fields.get("example"))
        given_id = _text(fields.get("id"))
        if isinstance(upload, UploadFile):
            data = await upload.read()
            name = Path(upload.filename or "upload").name[:80]

            def ingest() -> dict[str, Any]:
                rgb = decode_upload(data, max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_pixels)
                return viewer.add_image(rgb, name)

            desc = await run_blocking(ingest, gate=decoding)
        elif isinstance(upload, str) and upload:
            raise HTTPError(400, "field 'image' must be a file upload")
        elif example:
            from affseg.data.examples import EXAMPLES, load_example

            if example not in EXAMPLES:
                raise HTTPError(400, f"unknown example {example!r}; choose one of: "
                                     f"{', '.join(EXAMPLES)}")  # fmt: skip
            desc = await run_blocking(
                lambda: viewer.add_image(load_example(example), example), gate=decoding
            )
        elif given_id:
            desc = viewer.describe_image(given_id, viewer.image(given_id))
        else:
            raise HTTPError(400, "give a file in field 'image', an 'example' name or an 'id'")
        job = viewer.submit(desc["id"], method)
        if wait and job.future is not None:
            await wait_future(job.future)
        state = viewer.status(desc["id"], method)
        if state["status"] == "error":
            msg = " ".join(str(state.get("error", "")).split()) or "the segmentation failed"
            return JSONResponse({**state, "error": msg, "status": 422}, status_code=422)
        return JSONResponse(state, status_code=200 if state["status"] == "done" else 202)

    async def segment_status(request: Request) -> Response:
        p = request.path_params
        method = viewer.check_method(p["method"])
        return JSONResponse(viewer.status(p["id"], method))

    async def image_png(request: Request) -> Response:
        return png_response(await run_blocking(viewer.image_png, request.path_params["id"]))

    def level_handler(kind: str) -> Any:
        async def handler(request: Request) -> Response:
            p = request.path_params
            method = viewer.check_method(p["method"])
            data = await run_blocking(viewer.png, kind, p["id"], method, int(p["level"]))
            return png_response(data)

        return handler

    async def ucm(request: Request) -> Response:
        p = request.path_params
        method = viewer.check_method(p["method"])
        data = await run_blocking(viewer.ucm_mat, p["id"], method)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{p["id"]}_{method}.mat"'},
        )

    async def similarity(request: Request) -> Response:
        try:
            y = int(request.query_params["y"])
            x = int(request.query_params["x"])
        except (KeyError, ValueError):
            raise HTTPError(400, "give integer query parameters y (row) and x (column)") from None
        image_id = request.path_params["id"]
        viewer.check_pixel(image_id, y, x)
        # the field is built in the worker pool (bounded, memory accounted); the click
        # itself (one kernel row) is light work
        try:
            fld = await wait_future(viewer.field_future(image_id))
        except InputError as exc:
            raise HTTPError(422, str(exc)) from None
        data = await run_blocking(viewer.similarity_png, image_id, y, x, fld)
        return png_response(data)

    async def openapi(request: Request) -> Response:
        from affseg.serve.openapi import openapi_schema

        return JSONResponse(openapi_schema(cfg))

    async def health(request: Request) -> Response:
        return JSONResponse(viewer.health())

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return error(exc.status, exc.message, exc.headers)

    async def on_pool_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PoolRefused)
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return error(exc.status, exc.message, headers)

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        return error(400, "the client disconnected")

    async def on_refused(request: Request, exc: Exception) -> Response:
        return error(getattr(exc, "status", 400), str(exc))

    async def on_starlette_http(request: Request, exc: Exception) -> Response:
        status = int(getattr(exc, "status_code", 500))
        return error(status, str(getattr(exc, "detail", "error")))

    async def on_any(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            viewer.close()

    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    level = r"{level:int}"
    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/api/info", info),
        Route("/api/health", health),
        Route("/api/openapi.json", openapi),
        Route("/api/segment", segment, methods=["POST"]),
        Route("/api/segment/{id}/{method}", segment_status),
        Route("/api/image/{id}.png", image_png),
        Route(f"/api/overlay/{{id}}/{{method}}/{level}.png", level_handler("overlay")),
        Route(f"/api/labels/{{id}}/{{method}}/{level}.png", level_handler("labels")),
        Route("/api/ucm/{id}/{method}.mat", ucm),
        Route("/api/similarity/{id}.png", similarity),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if cfg.allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=cfg.allowed_hosts))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPError: on_http_error,
            PoolRefused: on_pool_refused,
            ClientDisconnect: on_disconnect,
            UploadRefused: on_refused,
            InputError: on_refused,
            HTTPException: on_starlette_http,
            Exception: on_any,
        },
        lifespan=lifespan,
    )
    app.state.viewer = viewer
    return app


def _text(value: Any) -> str | None:
    if value is None or not isinstance(value, str):
        return None
    return value.strip() or None


class SecurityHeaders:
    """ASGI middleware: a strict Content-Security-Policy and ``nosniff`` on every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (
                        b"content-security-policy",
                        b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                        b"frame-ancestors 'none'",
                    ),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
