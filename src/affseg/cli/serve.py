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
import os
import sys

from affseg.errors import InputError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg serve``."""
    p = sub.add_parser(
        "serve",
        help="local web viewer of hierarchies and diffusion similarity",
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
                   help="segmentations run at once (default 1)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: min(2, CPU count))")  # fmt: skip
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


def settings_from_args(args: argparse.Namespace):
    """:class:`~affseg.serve.app.Settings` of the parsed options."""
    from affseg.serve.app import Settings

    for name in ("max_upload_mb", "max_pixels", "cache_mb"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')} must be > 0")
    if args.max_side < 16 or args.workers < 1:
        raise InputError("--max-side must be >= 16 and --workers >= 1")
    loop = is_loopback(args.host)
    hosts = ("127.0.0.1", "localhost", "[::1]", "::1") if loop else ()
    return Settings(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=int(args.max_pixels),
        max_side=int(args.max_side),
        cache_bytes=int(args.cache_mb * 1024 * 1024),
        workers=int(args.workers),
        allowed_hosts=hosts,
    )


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
    import torch

    from affseg.serve.app import create_app

    threads = args.threads or max(1, min(2, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    app = create_app(settings_from_args(args))
    if not is_loopback(args.host):
        print(
            f"affseg serve: listening on {args.host}, reachable from other machines",
            file=sys.stderr,
        )
    print(f"affseg serve: http://{args.host}:{args.port}/  (Ctrl+C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
