"""``affseg similarity``: diffusion-similarity maps of a few pixels (like seed 001, Fig. 2).

::

    affseg similarity IMAGE --out fig.png [--pixels y,x ...] [--features colour|ndd]
    affseg similarity --example coffee --out similarity_coffee.png

``colour`` (default): the graph is built on a grid of colour + position features (CIE Lab
/ 8 and grid position / 8, long side ``--grid`` nodes, aspect ratio kept) with the
diffusion engine of :mod:`affseg.affinity.diffusion`; each selected pixel's K_D row is
brought back to image resolution by feature-attentional interpolation guided by the Lab
image. ``ndd``: the trained spec-diff-net (:mod:`affseg.models.spec_diff_net`) instead.
The PNG shows the image with the pixels (red squares) followed by one heat map per pixel.

An image whose longer side exceeds ``--working-side`` (default 1024) is processed at that
longer side and its maps upsampled (bilinear) to full resolution. The peak memory is
estimated from the image's header before any work and refused in one line above
``$AFFSEG_MAX_MEMORY_GB`` (:mod:`affseg.memory`).

The maps come from :mod:`affseg.methods.similarity`.
"""

from __future__ import annotations

import argparse
import math

from affseg.cli import SUBCOMMANDS
from affseg.errors import InputError
from affseg.methods import DEFAULT_WORKING_SIDE, min_side

#: Smallest ``--working-side`` (the spec-diff-net's grid needs 64 x 64 pixels).
MIN_WORKING_SIDE = min_side("ndd")
#: Bounds of the options (beyond them the run is pointless or unbounded in time).
MAX_GRID = 1024
MAX_K = 33
MAX_N_EIG = 256
MAX_HEIGHT = 16384


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``similarity`` subcommand."""
    p = sub.add_parser(
        "similarity",
        help=SUBCOMMANDS["similarity"][1],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("image", nargs="?", default=None, help="RGB image file")
    from affseg.cli.segment import EXAMPLES

    p.add_argument(
        "--example",
        choices=EXAMPLES,
        default=None,
        metavar="NAME",
        help=f"a scikit-image example photo instead of a file ({', '.join(EXAMPLES)})",
    )
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument(
        "--pixels",
        nargs="+",
        default=None,
        metavar="Y,X",
        help="image pixels (row,col); default four spread-out pixels",
    )
    p.add_argument("--features", choices=("colour", "ndd"), default="colour")
    p.add_argument(
        "--grid", type=int, default=64, help=f"long side of the node grid (2..{MAX_GRID})"
    )
    p.add_argument("--mu", type=float, default=0.5, help="affinity bandwidth (> 0)")
    p.add_argument("--t", type=float, default=10.0, help="diffusion time (> 0)")
    p.add_argument("--tau", type=float, default=0.6, help="scale of K_D = exp(-tau D) (> 0)")
    p.add_argument("--k", type=int, default=17, help=f"odd window size (3..{MAX_K})")
    p.add_argument("--n-eig", type=int, default=50, help=f"eigenvectors (1..{MAX_N_EIG})")
    p.add_argument(
        "--working-side",
        type=int,
        default=None,
        metavar="PIXELS",
        help="working resolution: larger images are processed with their longer side scaled "
        f"to this and the maps upsampled to full size (default {DEFAULT_WORKING_SIDE}; "
        "0: no bound)",
    )
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help=f"scale the figure to this height in pixels (8..{MAX_HEIGHT}; default: image height)",
    )
    p.set_defaults(func=run)


def parse_pixels(specs: list[str] | None, h: int, w: int) -> list[tuple[int, int]]:
    """'y,x' strings -> pixel tuples inside an (h, w) image (default: four pixels)."""
    if not specs:
        return [
            (h // 3, w // 3),
            (h // 3, 2 * w // 3),
            (2 * h // 3, w // 3),
            (2 * h // 3, 2 * w // 3),
        ]
    out = []
    for s in specs:
        try:
            y, x = (int(v) for v in s.split(","))
        except ValueError:
            raise InputError(f"pixel {s!r} must be 'row,col' integers") from None
        if not (0 <= y < h and 0 <= x < w):
            raise InputError(f"pixel {s!r} is outside the {h} x {w} image")
        out.append((y, x))
    return out


def _check_options(args: argparse.Namespace) -> None:
    """Refuse out-of-range options in one line naming the option."""
    for opt, value in (("--mu", args.mu), ("--t", args.t), ("--tau", args.tau)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{opt} must be a positive finite number; got {value}")
    if not 2 <= args.grid <= MAX_GRID:
        raise InputError(f"--grid must be in 2..{MAX_GRID}; got {args.grid}")
    if not (3 <= args.k <= MAX_K and args.k % 2 == 1):
        raise InputError(f"--k must be an odd window size in 3..{MAX_K}; got {args.k}")
    if not 1 <= args.n_eig <= MAX_N_EIG:
        raise InputError(f"--n-eig must be in 1..{MAX_N_EIG}; got {args.n_eig}")
    if args.height is not None and not 8 <= args.height <= MAX_HEIGHT:
        raise InputError(f"--height must be in 8..{MAX_HEIGHT}; got {args.height}")
    ws = args.working_side
    if ws is not None and ws != 0 and ws < MIN_WORKING_SIDE:
        raise InputError(f"--working-side must be >= {MIN_WORKING_SIDE} (0: no bound), got {ws}")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    import numpy as np

    from affseg.data.io import check_writable_file, image_size, max_pixels, read_image, write_png
    from affseg.memory import check_memory
    from affseg.methods.similarity import (
        colour_similarity,
        compose,
        figure_size,
        ndd_similarity,
        similarity_memory,
    )

    if (args.image is None) == (args.example is None):
        raise InputError("give either an image file or --example NAME (not both)")
    _check_options(args)
    check_writable_file(args.out, "--out")
    working_side = DEFAULT_WORKING_SIDE if args.working_side is None else args.working_side
    rgb = None
    if args.example is not None:
        from affseg.cli.segment import load_example

        rgb = load_example(args.example)
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
    else:
        size = image_size(args.image)  # the header: everything below is checked before decoding
    pixels = parse_pixels(args.pixels, *size)
    # the figure: its size is bounded like an input image's, its memory by the rule below
    fig_h, fig_w = figure_size(size, len(pixels), args.height)
    if fig_h * fig_w > max_pixels():
        raise InputError(
            f"the figure would be {fig_w} x {fig_h} = {fig_h * fig_w / 1e6:.0f} megapixels, "
            f"above the limit of {max_pixels() / 1e6:g} megapixels (AFFSEG_MAX_PIXELS); give "
            "fewer --pixels or a smaller --height"
        )
    est = similarity_memory(
        args.features, size, len(pixels), working_side or None, args.grid, args.k
    )
    if args.height is not None:
        est += 12.0 * fig_h * fig_w  # the resized figure (PIL and numpy copies)
    check_memory(
        est,
        f"similarity maps ({args.features}) of a {size[1]} x {size[0]} image",
        "use a smaller --working-side (default "
        f"{DEFAULT_WORKING_SIDE}), --grid or --height, fewer --pixels, or a smaller image",
    )
    if rgb is None:
        rgb = read_image(args.image)
    if args.features == "ndd":
        maps = ndd_similarity(rgb, pixels, working_side or None)
    else:
        maps = colour_similarity(
            rgb,
            pixels,
            args.grid,
            args.mu,
            args.t,
            args.tau,
            args.k,
            args.n_eig,
            working_side or None,
        )
    fig = compose(rgb, maps, pixels)
    del maps
    if args.height is not None:
        from PIL import Image

        fig = np.asarray(Image.fromarray(fig).resize((fig_w, fig_h), Image.Resampling.LANCZOS))
    write_png(args.out, fig)
    print(f"wrote {args.out} ({len(pixels)} pixels, features={args.features})")
    return 0
