"""``affseg depth-sr``: guided depth super-resolution with HAM / naive propagation.

Three actions::

    affseg depth-sr run   --guide rgb.png --depth lr.png --out hr.png [--method ham]
    affseg depth-sr eval  --scene dolls_big [--data ROOT] [--json out.json]
    affseg depth-sr train --geometry hyperbolic --out W.pt [--steps 700] [--seed 0]

``run --method`` is ``ham`` (default, the shipped hyperbolic model), ``naive`` (its
Euclidean twin), ``bicubic`` or ``bilateral`` (the fast bilateral solver); ``--weights``
overrides the model file. ``eval`` without ``--weights`` tables the shipped models and the
computed baselines (and Barron-Poole's published outputs where the scene has them).
``train`` uses the ``RGBD_depth_train`` scenes only. ``--tta N`` averages a model over N
flips/transpositions of the inputs (N times slower). The method itself lives in
:mod:`affseg.methods.depth_sr`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from affseg.cli.curvature_args import add_curvature_arguments, check_curvature_arguments
from affseg.data.io import write_json
from affseg.errors import InputError
from affseg.methods.depth_sr import (
    DEFAULT_WEIGHTS,
    TRAIN_FACTORS,
    check_sr_memory,
    evaluate,
    load_model,
    read_disparity,
    super_resolve,
    train,
)

METHODS = ("ham", "naive", "bicubic", "bilateral")

TTA_HELP = (
    "test-time ensemble: average over the first N of the 8 flips/transpositions "
    "(1 = off, default; N times slower)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``affseg depth-sr``."""
    from affseg.cli import SUBCOMMANDS

    p = subparsers.add_parser(
        "depth-sr",
        help=SUBCOMMANDS["depth-sr"][1],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    t = sub.add_parser("train", help="train on the RGBD_depth_train scenes")
    t.add_argument("--geometry", choices=("hyperbolic", "euclidean"), default="hyperbolic")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=700)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--iterations", type=int, default=2, help="propagation steps per dilation stage")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument(
        "--init",
        choices=("bicubic", "fgs"),
        default="fgs",
        help="initial map: bicubic, or a learned blend of bicubic and its fast global smoothing",
    )
    t.add_argument(
        "--reimpose",
        choices=("init", "bicubic"),
        default="init",
        help="data term re-imposed during propagation with --init fgs",
    )
    t.add_argument(
        "--blend-detail",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --init fgs: full-resolution correction of the blend weight (default on)",
    )
    t.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0],
        help="train on every scene resized by each of these factors (bilinear)",
    )
    add_curvature_arguments(t)
    t.add_argument(
        "--factor-schedule",
        type=int,
        nargs="+",
        choices=(2, 4, 8, 16),
        default=None,
        help="factors cycled over the training steps (default 2 4 8 16 8 16)",
    )
    t.add_argument(
        "--edge-weight",
        type=float,
        default=0.0,
        help="extra loss weight of pixels at ground-truth depth discontinuities (default 0)",
    )
    t.add_argument(
        "--ranked-head",
        action="store_true",
        help="add the ranked-neighbour (UniDC HALM) head to the affinities; such a model "
        "runs the slower torch path",
    )
    t.add_argument("--data", default=None)
    e = sub.add_parser("eval", help="RMSE/MAE table on one Middlebury scene")
    e.add_argument(
        "--weights", nargs="+", default=[], help="model files (default: the shipped ham, naive)"
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
    r.add_argument("--weights", default=None, help="model file (ham / naive; default shipped)")
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
    from affseg.data.io import check_writable_file

    if args.steps < 1 or args.crop % 16 or args.crop < 32:
        raise InputError("--steps must be >= 1 and --crop a multiple of 16 (>= 32)")
    if not all(math.isfinite(x) and 0.25 <= x <= 8 for x in args.scales):
        raise InputError(f"--scales must lie in [0.25, 8], got {args.scales}")
    if args.batch < 1 or args.iterations < 1 or args.threads < 1:
        raise InputError("--batch, --iterations and --threads must be >= 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr must be a positive number, got {args.lr}")
    if not (math.isfinite(args.edge_weight) and args.edge_weight >= 0):
        raise InputError(f"--edge-weight must be a number >= 0, got {args.edge_weight}")
    check_curvature_arguments(args)
    check_writable_file(args.out, "--out")
    rec = train(
        args.geometry,
        Path(args.out),
        args.steps,
        args.crop,
        args.batch,
        args.lr,
        args.seed,
        args.data,
        args.threads,
        iterations=args.iterations,
        init=args.init,
        reimpose=args.reimpose,
        scales=tuple(args.scales),
        blend_detail=args.blend_detail,
        curvature=args.curvature,
        c_param=args.c_param,
        c_lr_mult=args.c_lr_mult,
        factor_schedule=tuple(args.factor_schedule or TRAIN_FACTORS),
        edge_weight=args.edge_weight,
        ranked_head=args.ranked_head,
    )
    print(json.dumps(rec))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from affseg.data.io import check_writable_file

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
    from affseg.data.io import check_writable_file, image_size, read_image, write_png
    from affseg.methods.depth_sr_baselines import baseline_upsample
    from affseg.runtime import torch_threads

    check_writable_file(args.out, "--out")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.weights and args.method not in ("ham", "naive"):
        raise InputError(f"--weights applies to --method ham or naive, not {args.method}")
    model = None
    if args.method in ("ham", "naive"):  # bad weights fail before the images are read
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
    import sys

    from affseg.cli import main as affseg_main

    return affseg_main(["depth-sr", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
