"""``affseg segment``: segment photos (files, folders or a built-in example) and save results.

Per image ``<stem>`` it writes into ``--out``:

* ``<stem>.labels.png``      uint16 label map (1..K) of the chosen level
* ``<stem>.overlay.png``     segments painted with their mean colour, boundaries in yellow
* ``<stem>.boundaries.png``  white boundary pixels on black
* ``<stem>.mat``             the whole hierarchy as a BSDS ``ucm2`` (double resolution)
* ``<stem>.figure.png``      with ``--figure``: boundaries at 3 levels, similarity of 3 pixels

Every file is written atomically; ``<out>/affseg_manifest.json`` records the version,
method, options and per-image status. A rerun skips images whose outputs are complete
(``--overwrite`` redoes them); a failing image is reported and skipped, and the exit code
is 1 when any failed. ``--workers N`` runs on a local Dask cluster of N processes,
``--scheduler ADDRESS`` on an existing Dask cluster (``pip install 'affseg[dask]'``).

Example::

    affseg segment --example coffee --out affseg_out
    affseg segment photos/ --method slic --segments 100 --out out/
    affseg segment photos/ --out out/ --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affseg.cli import SUBCOMMANDS
from affseg.data.examples import EXAMPLES, load_example  # noqa: F401 - re-exported
from affseg.errors import InputError
from affseg.methods import DEFAULT_METHOD, METHODS, check_options, min_side, parse_sets, run_method

if TYPE_CHECKING:
    import numpy as np


def run_named(image: np.ndarray, method: str | None, seed: int, options: dict[str, Any]):
    """Run registry method ``method`` on ``image`` (H, W, 3) with ``seed`` and ``options``.

    Returns
    -------
    Hierarchy

    Raises
    ------
    InputError
        Unknown method, or an option the method does not take.
    """
    return run_method(image, method, seed=seed, **options)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg segment``."""
    p = subparsers.add_parser(
        "segment",
        help=SUBCOMMANDS["segment"][1],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR", help="image files or folders")
    p.add_argument(
        "--example",
        action="append",
        metavar="NAME",
        choices=EXAMPLES,
        help=f"a built-in scikit-image photo ({', '.join(EXAMPLES)}); repeatable",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=sorted(METHODS),
        help=f"segmentation method (default {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--segments",
        type=int,
        default=None,
        metavar="K",
        help="save the level with about K segments (default: the method's own)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--working-side",
        type=int,
        default=None,
        metavar="PIXELS",
        help="working resolution: larger images are segmented with their longer side "
        "scaled to this and the labels upsampled to full size (default 1024; 0: no bound)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, e.g. --set scales=64,256,1024 (repeatable)",
    )
    p.add_argument(
        "--figure",
        action="store_true",
        help="also write <stem>.figure.png: boundaries at 3 levels, similarity maps of 3 pixels",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="redo images whose outputs already exist"
    )
    add_engine_arguments(p)
    p.set_defaults(func=run)
    return p


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers N`` / ``--scheduler ADDRESS``: where the per-image tasks run."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run on a local Dask cluster of N worker processes (needs affseg[dask])",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://host:8786 or a scheduler file",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="torch threads per image task (default: torch's own in-process, cores / N "
        "with --workers N, 1 on a --scheduler cluster); outputs of torch methods are "
        "bit-identical across runs with the same T",
    )


def finish_batch(summary) -> int:
    """Print a batch's summary; the exit code (0 all done, 1 some failed).

    Raises
    ------
    InputError
        Every image failed: the first failure, as one line.
    """
    print(summary.line())
    if summary.failed and summary.done == 0 and summary.skipped == 0:
        first = next(iter(summary.failed.values()))
        raise InputError(first.split(": ", 1)[1] if ": " in first else first)
    return 1 if summary.failed else 0


def _sources(args: argparse.Namespace) -> list[tuple[str, Any]]:
    from affseg.data.io import image_size, list_images

    least = min_side(args.method)

    items: list[tuple[str, Any]] = [(name, name) for name in dict.fromkeys(args.example or [])]
    seen_files: set[Path] = set()
    for inp in args.inputs:
        # files of --out that its manifest records as outputs are left out by the batch
        for f in list_images(inp):
            if f.resolve() not in seen_files:  # the same file named twice is read once
                seen_files.add(f.resolve())
                if not Path(inp).is_dir():
                    # a file named on the command line: its header checks (size limit,
                    # frames, minimum size) before any work; images found in a folder are
                    # checked by the batch, which reports a bad one and goes on
                    h, w = image_size(f)
                    if min(h, w) < least:
                        raise InputError(
                            f"{f} ({w}x{h} pixels) is too small for method {args.method!r}: "
                            f"its shorter side must be at least {least} pixels"
                        )
                items.append((f.stem, f))
    if not items:
        raise InputError("nothing to segment: give image files, folders or --example NAME")
    # outputs are named by stem: two inputs with one stem would overwrite each other
    by_stem: dict[str, list[str]] = {}
    for stem, src in items:
        by_stem.setdefault(stem, []).append(str(src))
    clashes = {k: v for k, v in by_stem.items() if len(v) > 1}
    if clashes:
        stem, srcs = next(iter(clashes.items()))
        raise InputError(
            f"inputs {' and '.join(srcs)} share the name {stem!r} and would overwrite each "
            f"other's outputs ({stem}.labels.png, ...); rename one or segment them separately"
        )
    return items


def run(args: argparse.Namespace) -> int:
    """Segment every input; returns the exit code."""
    from affseg.batch import make_engine, segment_images
    from affseg.batch.engine import check_engine_args
    from affseg.data.io import check_writable_dir, remove_if_empty

    options = parse_sets(args.set)
    options = check_options(args.method, options)
    if args.segments is not None and args.segments < 1:
        raise InputError(f"--segments must be >= 1, got {args.segments}")
    if args.working_side is not None:
        if args.working_side < 0:
            raise InputError(f"--working-side must be >= 0 (0: no bound), got {args.working_side}")
        if args.working_side and args.working_side < min_side(args.method):
            raise InputError(
                f"--working-side must be >= {min_side(args.method)} for method {args.method!r}"
            )
        options = {**options, "working_side": args.working_side or None}
    engine_args = (args.workers, args.scheduler, args.threads)
    check_engine_args(*engine_args)
    items = _sources(args)
    existed = Path(args.out).exists()
    out: Path = check_writable_dir(args.out, "--out")  # before any computation
    with make_engine(*engine_args) as eng:
        summary = segment_images(
            items,
            out,
            args.method,
            seed=args.seed,
            options=options,
            segments=args.segments,
            engine=eng,
            overwrite=getattr(args, "overwrite", False),
            figure=getattr(args, "figure", False),
        )
    if not existed and summary.done == 0 and summary.skipped == 0:
        remove_if_empty(out)  # nothing was produced: leave no empty --out behind
    return finish_batch(summary)
