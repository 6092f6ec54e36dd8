"""``affseg depth-complete``: dense depth from sparse samples and an RGB guide (HAM).

::

    affseg depth-complete --guide rgb.png --sparse sparse.png --out dense.png \
        [--method {ham,naive,fgs}] [--weights W.pt] [--threads 1]
    affseg depth-complete --train --geometry hyperbolic --out W.pt [--steps 300] [--seed 0]

``--sparse``: single-channel PNG, 0 = no sample; 8-bit (values as stored) or 16-bit
(depth x 256). ``--out``: 16-bit PNG of the dense depth x 256 (the same format, so it can be
read back), written atomically. ``--method ham`` (default) and ``naive`` use the shipped
weights (or ``--weights``); ``fgs`` is the classical colour-guided interpolation (fast
global smoother). ``--train`` trains a model on ``RGBD_depth_train`` instead. The method
lives in :mod:`affseg.methods.depth_completion`.
"""

from __future__ import annotations

import argparse

from affseg.cli import SUBCOMMANDS
from affseg.errors import InputError
from affseg.methods import DEPTH_COMPLETION_METHODS as METHODS
from affseg.train.curvature_args import add_curvature_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``affseg depth-complete``.

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> add_parser(sub)
    >>> args = sub.choices["depth-complete"].parse_args(["--out", "d.png"])
    >>> args.method, args.func is run
    ('ham', True)
    """
    p = subparsers.add_parser(
        "depth-complete",
        help=SUBCOMMANDS["depth-complete"][1],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--guide", help="RGB guide image (H, W, 3)")
    p.add_argument("--sparse", help="sparse depth PNG (H, W), 0 = no sample")
    p.add_argument("--out", required=True, help="output PNG (uint16 = depth x 256) or weights")
    p.add_argument("--method", choices=METHODS, default="ham")
    p.add_argument("--weights", default=None, help="weights of --method ham/naive")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=None, help="data root (training)")
    p.add_argument("--train", action="store_true", help="train a model instead")
    p.add_argument("--geometry", choices=("hyperbolic", "euclidean"), default="hyperbolic")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        choices=("fgs", "nearest"),
        default="fgs",
        help="initial fill the trained model propagates (training)",
    )
    add_curvature_arguments(p, " (training)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``affseg depth-complete``.

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> add_parser(sub)
    >>> run(sub.choices["depth-complete"].parse_args(["--out", "d.png"]))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --guide and --sparse are required (or --train)
    """
    from affseg.data.io import check_writable_file
    from affseg.methods import depth_completion as dc
    from affseg.runtime import torch_threads

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    check_writable_file(args.out, "--out")
    if args.train:  # the older spelling of `affseg train depth-complete`
        from affseg.train.depth_completion import run as train_run

        return train_run(args)
    if not args.guide or not args.sparse:
        raise InputError("--guide and --sparse are required (or --train)")
    if args.weights and args.method == "fgs":
        raise InputError("--weights applies to --method ham or naive, not fgs")
    import numpy as np

    from affseg.data.io import image_size, read_image, write_png

    # the output has the guide's size: its header sets the peak memory, checked before
    # any pixel is decoded
    dc.check_completion_memory(args.method, *image_size(args.guide))
    rgb = read_image(args.guide)
    sparse = dc.read_sparse(args.sparse)
    if sparse.shape != rgb.shape[:2]:
        raise InputError(f"sparse map {sparse.shape} does not match the guide {rgb.shape[:2]}")
    with torch_threads(args.threads):
        dense = dc.run_method(args.method, rgb, sparse, args.weights)
    write_png(args.out, np.clip(np.round(dense * 256), 0, 65535).astype(np.uint16))
    return 0
