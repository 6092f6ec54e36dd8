"""What one viewer may use: its :class:`Settings`, the memory estimate of a segmentation and
the process's resident memory (reported by ``GET /api/health``).

The worker pool (:class:`~affseg.serve.pool.WorkPool`) refuses or holds back computations
by their estimated peak bytes: a segmentation's is :func:`segmentation_bytes`, a
similarity field's :func:`affseg.serve.similarity.field_bytes`.

Example
-------
>>> s = Settings(max_side=400, workers=2)
>>> s.max_side, s.workers, s.warm
(400, 2, True)
>>> segmentation_bytes(400, 600) > JOB_BYTES_FIXED
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from affseg.serve.similarity import MAX_WORK_PIXELS

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

    Examples
    --------
    >>> s = Settings(cache_bytes=64 << 20, warm=False)
    >>> s.cache_bytes, s.warm, s.max_upload_bytes
    (67108864, False, 20971520)
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


def segmentation_bytes(height: int, width: int) -> int:
    """Estimated peak memory of segmenting an image of ``height`` x ``width`` pixels.

    Parameters
    ----------
    height, width : int
        The image as segmented (after the ``max_side`` downscale).

    Returns
    -------
    int
        ``JOB_BYTES_FIXED + JOB_BYTES_PER_PIXEL * height * width``.

    Examples
    --------
    >>> segmentation_bytes(400, 600) == (128 << 20) + 2048 * 400 * 600
    True
    """
    return JOB_BYTES_FIXED + JOB_BYTES_PER_PIXEL * height * width


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux ``/proc``), else None.

    Returns
    -------
    int or None
        Bytes of the resident set.

    Examples
    --------
    >>> n = rss_bytes()
    >>> n is None or n > 0
    True
    """
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
