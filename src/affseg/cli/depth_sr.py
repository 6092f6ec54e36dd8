"""``affseg depth-sr``: guided depth super-resolution with HAM / naive propagation.

Three actions::

    affseg depth-sr run   --guide rgb.png --depth lr.png --out hr.png [--method ham]
    affseg depth-sr eval  --scene dolls_big [--data ROOT] [--json out.json]
    affseg depth-sr train --geometry hyperbolic --out W.pt [--steps 700] [--seed 0]

``run --method`` is ``ham`` (default, the shipped hyperbolic model, started from a fast
global smoothing), ``naive`` (its Euclidean twin), ``ham-bilateral`` / ``naive-bilateral``
(the models started from the fast bilateral solver's output: more accurate, 3-6x slower),
``bicubic`` or ``bilateral`` (the fast bilateral solver); ``--weights`` overrides the
model file. ``eval`` without ``--weights`` tables the shipped models and the
computed baselines (and Barron-Poole's published outputs where the scene has them).
``train`` uses the ``RGBD_depth_train`` scenes only. ``--tta N`` averages a model over N
flips/transpositions of the inputs (N times slower). The method itself lives in
:mod:`affseg.methods.depth_sr`.
"""

from __future__ import annotations

import argparse
import math
import sys

from affseg.cli import SUBCOMMANDS
from affseg.cli import main as affseg_main
from affseg.errors import InputError

#: Learned models (keys of :data:`affseg.methods.depth_sr.DEFAULT_WEIGHTS`), then baselines.
MODEL_METHODS = ("ham", "naive", "ham-bilateral", "naive-bilateral")
METHODS = (*MODEL_METHODS, "bicubic", "bilateral")

TTA_HELP = (
    "test-time ensemble: average over the first N of the 8 flips/transpositions "
    "(1 = off, default; N times slower)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``affseg depth-sr``."""
    p = subparsers.add_parser(
        "depth-sr",
        help=SUBCOMMANDS["depth-sr"][1],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from affseg.cli.lazy import add_lazy_subparsers

    def train_options(t: argparse.ArgumentParser) -> None:
        from affseg.train.depth_sr import add_arguments  # torch: only when training

        add_arguments(t)

    sub = add_lazy_subparsers(
        p,
        "action",
        {
            "train": (
                "train on the RGBD_depth_train scenes (the same as `affseg train depth-sr`)",
                train_options,
            )
        },
    )
    e = sub.add_parser("eval", help="RMSE/MAE table on one Middlebury scene")
    e.add_argument(
        "--weights", nargs="+", default=[], help="model files (default: every shipped model)"
    )
    e.add_argument("--scene", required=True)
    e.add_argument("--json", default=None)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1, help=TTA_HELP)
    e.add_argument("--factors", type=int, nargs="+", choices=(2, 4, 8, 16), default=None)
    e.add_argument("--no-baselines", action="store_true", help="table the models only")
    e.add_argument("--data", default=None)
    r = sub.add_parser("run", help="super-resolve one depth map")
    r.add_argument("--method", choices=METHODS, default="ham")
    r.add_argument("--weights", default=None, help="model file (a model method; default shipped)")
    r.add_argument("--guide", required=True, help="RGB guide image (H, W, 3)")
    r.add_argument(
        "--depth",
        required=True,
        help="low-res disparity PNG: 8-bit (disparity) or 16-bit (disparity x 256)",
    )
    r.add_argument("--out", required=True, help="output PNG (uint16 = disparity x 256)")
    r.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1, help=TTA_HELP)
    r.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=run)


def _train(args: argparse.Namespace) -> int:
    from affseg.train.depth_sr import run as train_run

    return train_run(args)


def _eval(args: argparse.Namespace) -> int:
    from affseg.data.io import check_writable_file, write_json
    from affseg.evaluation.depth import evaluate_depth_sr as evaluate

    if args.json:
        check_writable_file(args.json, "--json")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    table = evaluate(
        args.weights or None,
        args.scene,
        args.data,
        args.threads,
        args.tta,
        tuple(args.factors) if args.factors else None,
        baselines=not args.no_baselines,
    )
    for name, rows in table.items():
        cells = "  ".join(f"{f}: {m['rmse']:.3f}/{m['mae']:.3f}" for f, m in rows.items())
        print(f"{name:>18s}  RMSE/MAE  {cells}")
    if args.json:
        write_json(args.json, {"scene": args.scene, "table": table})
    return 0


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from affseg.data.io import check_writable_file, image_size, read_image, write_png
    from affseg.methods.depth_baselines import baseline_upsample
    from affseg.methods.depth_sr import (
        DEFAULT_WEIGHTS,
        check_sr_memory,
        load_model,
        read_disparity,
        super_resolve,
    )
    from affseg.runtime import torch_threads

    check_writable_file(args.out, "--out")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.weights and args.method not in MODEL_METHODS:
        raise InputError(
            f"--weights applies to --method {', '.join(MODEL_METHODS)}, not {args.method}"
        )
    model = None
    if args.method in MODEL_METHODS:  # bad weights fail before the images are read
        model = load_model(args.weights or DEFAULT_WEIGHTS[args.method])
    # the output has the guide's size: its header sets the peak memory, checked before
    # any pixel is decoded
    check_sr_memory(args.method if model is None else model, *image_size(args.guide), args.tta)
    rgb = read_image(args.guide)
    lr = read_disparity(args.depth)
    factor = rgb.shape[0] // lr.shape[0]
    if (
        factor < 1
        or rgb.shape[0] != lr.shape[0] * factor
        or rgb.shape[1] != lr.shape[1] * factor
        or 2 ** int(math.log2(factor)) != factor
    ):
        raise InputError(
            f"guide {rgb.shape[:2]} is not a power-of-two multiple of depth {lr.shape}"
        )
    with torch_threads(args.threads):
        if model is None:
            pred = baseline_upsample(args.method, rgb, lr, factor)
        else:
            pred = super_resolve(model, rgb, lr, factor, args.tta)
    write_png(args.out, np.clip(np.round(pred * 256), 0, 65535).astype(np.uint16))
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch ``affseg depth-sr ACTION``."""
    return {"train": _train, "eval": _eval, "run": _run}[args.action](args)


def main(argv: list[str] | None = None) -> int:
    """Run ``depth-sr`` alone (``python -m affseg.cli.depth_sr ACTION ...``)."""
    return affseg_main(["depth-sr", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
