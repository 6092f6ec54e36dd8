"""``affseg serve``: a local web viewer of hierarchies and diffusion similarity.

::

    affseg serve                       # http://127.0.0.1:8000 (loopback only)
    affseg serve --port 8080 --cache-mb 256
    affseg serve --host 0.0.0.0        # other machines too: only on a network you trust

Open or drop an image (or pick an example), choose a method, move the slider through the
hierarchy, click a pixel for its neural-diffusion similarity map, compare two methods and
download label maps, overlays and UCMs. The page's HTTP API is documented in
:mod:`affseg.serve.app`. Needs ``pip install affseg[serve]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys

from affseg.cli import SUBCOMMANDS
from affseg.errors import InputError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

#: Upper bounds of the numeric options (beyond them a typo, not a plan).
MAX_UPLOAD_MB = 1024.0
MAX_PIXELS = 1e9
MAX_SIDE = 16384
MAX_CACHE_MB = 1024.0 * 1024
MAX_WORK_MB = 1024.0 * 1024
MAX_QUEUE = 10_000
MAX_TIMEOUT_S = 3600.0


def max_threads() -> int:
    """Largest ``--threads`` / ``--workers``: four per CPU core.

    Examples
    --------
    >>> max_threads() >= 4
    True
    """
    return 4 * max(1, os.cpu_count() or 1)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg serve``."""
    p = sub.add_parser(
        "serve",
        help=SUBCOMMANDS["serve"][1],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")  # fmt: skip
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest upload in MB (default 20)")  # fmt: skip
    p.add_argument("--max-pixels", type=float, default=40e6,
                   help="largest image in pixels, read from the header (default 40e6)")  # fmt: skip
    p.add_argument("--max-side", type=int, default=800,
                   help="larger images are downscaled to this long side (default 800)")  # fmt: skip
    p.add_argument("--cache-mb", type=float, default=512.0,
                   help="MB for cached images, hierarchies, renders (default 512)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="segmentations / similarity maps run at once (default 1)")  # fmt: skip
    p.add_argument("--max-queue", type=int, default=64,
                   help="computations waiting, warm-ups included; more answer 503 "
                        "(default 64)")  # fmt: skip
    p.add_argument("--work-mb", type=float, default=2048.0,
                   help="MB of estimated peak memory for the computations running at once; "
                        "a larger one is refused (default 2048)")  # fmt: skip
    p.add_argument("--upload-timeout", type=float, default=60.0,
                   help="seconds an upload may take to arrive, then 408 (default 60)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: min(2, CPU count); <= 4 per core)")  # fmt: skip
    p.set_defaults(func=run)
    return p


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bounded(args: argparse.Namespace, name: str, low: float, high: float,
             low_open: bool = False) -> float:  # fmt: skip
    """The option's value, refused (InputError) unless finite and within its bounds."""
    flag = "--" + name.replace("_", "-")
    value = getattr(args, name, None)
    if value is None:
        raise InputError(f"{flag} is missing")
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        raise InputError(f"{flag} must be a finite number {lo} and <= {high:g}, got {value!r}")
    return float(value)


def settings_from_args(args: argparse.Namespace):
    """:class:`~affseg.serve.limits.Settings` of the parsed options.

    Raises
    ------
    InputError
        An option that is not finite or outside its bounds (one line, exit status 2).
    """
    from affseg.serve.limits import Settings

    upload_mb = _bounded(args, "max_upload_mb", 0, MAX_UPLOAD_MB, low_open=True)
    pixels = _bounded(args, "max_pixels", 4, MAX_PIXELS)
    side = _bounded(args, "max_side", 16, MAX_SIDE)
    cache_mb = _bounded(args, "cache_mb", 0, MAX_CACHE_MB, low_open=True)
    workers = _bounded(args, "workers", 1, max_threads())
    queue = _bounded(args, "max_queue", 1, MAX_QUEUE)
    work_mb = _bounded(args, "work_mb", 0, MAX_WORK_MB, low_open=True)
    timeout = _bounded(args, "upload_timeout", 0, MAX_TIMEOUT_S, low_open=True)
    loop = is_loopback(args.host)
    hosts = ("127.0.0.1", "localhost", "[::1]", "::1") if loop else ()
    return Settings(
        max_upload_bytes=max(1, int(upload_mb * 1024 * 1024)),
        max_pixels=int(pixels),
        max_side=int(side),
        cache_bytes=max(1, int(cache_mb * 1024 * 1024)),
        workers=int(workers),
        max_queue=int(queue),
        work_bytes=max(1, int(work_mb * 1024 * 1024)),
        upload_timeout=timeout,
        allowed_hosts=hosts,
    )


def threads_from_args(args: argparse.Namespace) -> int:
    """Torch threads of ``--threads`` (default ``min(2, CPU count)``).

    Raises
    ------
    InputError
        Outside 1 .. :func:`max_threads`.

    Examples
    --------
    >>> threads_from_args(argparse.Namespace(threads=1))
    1
    >>> threads_from_args(argparse.Namespace(threads=-1))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --threads must be a finite number >= 1 and <= ..., got -1
    """
    if args.threads is None:
        return max(1, min(2, os.cpu_count() or 1))
    return int(_bounded(args, "threads", 1, max_threads()))


def run(args: argparse.Namespace) -> int:
    """Start the server (blocks until interrupted)."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise InputError(
            "affseg serve needs its extra dependencies: pip install 'affseg[serve]'"
        ) from None
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    settings = settings_from_args(args)  # every option checked before any work
    threads = threads_from_args(args)
    import torch

    from affseg.serve.app import create_app

    torch.set_num_threads(threads)  # the server process's own setting (CLI only)
    app = create_app(settings)
    if not is_loopback(args.host):
        print(
            f"affseg serve: listening on {args.host}, reachable from other machines",
            file=sys.stderr,
        )
    print(f"affseg serve: http://{args.host}:{args.port}/  (Ctrl+C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
