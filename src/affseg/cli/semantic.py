"""``affseg semantic``: label every pixel with one of the 21 MSRC-21 object classes.

Per image ``<stem>`` it writes into ``--out``:

* ``<stem>.classes.png``   uint8 class map, 1..21 = building, grass, tree, cow, sheep, sky,
  aeroplane, water, face, car, bicycle, flower, sign, bird, book, chair, road, cat, dog,
  body, boat (0 is never written)
* ``<stem>.semantic.png``  the photo blended with the class colours, with a legend of the
  classes present

The image's class labels are not an input. Example::

    affseg semantic photos/ --out sem_out              # NDD-guided WSSS (default)
    affseg semantic img.png --out sem_out --method cam
    affseg semantic img.png --out sem_out --class-filter 0 --fuse 0   # segmenter alone

An image larger than ``--working-side`` (default 512) is labelled at that longer side and
its class probabilities upsampled to full resolution. A file named on the command line is
checked before any work; an image of a folder that fails is reported and skipped (exit
status 1 when some failed, 2 when all did).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affseg.errors import InputError

if TYPE_CHECKING:
    import numpy as np


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg semantic``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_parser(p.add_subparsers())
    ArgumentParser(prog='... semantic', ...)
    """
    from affseg.cli import SUBCOMMANDS
    from affseg.methods import DEFAULT_SEMANTIC_METHOD as DEFAULT_METHOD
    from affseg.methods import SEMANTIC_METHODS as METHODS

    p = subparsers.add_parser(
        "semantic",
        help=SUBCOMMANDS["semantic"][1],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR", help="image files or folders")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=list(METHODS),
        help="wsss: NDD-guided weakly supervised (default); cam: CAM baseline; "
        "supervised: trained on pixel labels (reference)",
    )
    p.add_argument("--weights", type=Path, default=None, help="weights of `affseg train wsss`")
    p.add_argument(
        "--upsample",
        choices=("fai", "bilinear"),
        default="fai",
        help="grid -> image: feature-attentional interpolation (default) or bilinear",
    )
    p.add_argument(
        "--class-filter",
        type=float,
        default=None,
        metavar="T",
        help="wsss/cam: drop classes the method's image classifier gives <= T "
        "(default 0.2; 0 = off)",
    )
    p.add_argument(
        "--working-side",
        type=int,
        default=None,
        metavar="PIXELS",
        help="working resolution: larger images are labelled with their longer side scaled "
        "to this and the class probabilities upsampled to full size (default 512; 0: no "
        "bound, refused when the memory estimate exceeds $AFFSEG_MAX_MEMORY_GB)",
    )
    p.add_argument(
        "--fuse",
        type=float,
        default=None,
        metavar="A",
        help="wsss/cam: weight of the weak network's class maps averaged with the "
        "segmenter's (default 0.75; 0 = the segmenter alone)",
    )
    p.set_defaults(func=run)
    return p


def legend_overlay(image: np.ndarray, classes: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The photo blended with the MSRC colours of ``classes`` (1..21), legend on the right.

    Blended by bands of rows, so a large photo costs its own size in uint8, not float64.

    Returns
    -------
    ndarray, shape (H', W + legend width, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> legend_overlay(np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.uint8)).shape
    (24, 140, 3)
    """
    import numpy as np
    from PIL import Image, ImageDraw

    from affseg.data.msrc import CLASS_COLOURS, CLASS_NAMES, MSRC21_CLASS_NAMES

    colours = np.array([CLASS_COLOURS[CLASS_NAMES.index(n)] for n in MSRC21_CLASS_NAMES])
    classes = np.asarray(classes)
    image = np.asarray(image)
    h, w = classes.shape[:2]
    row, width = 16, 110
    counts = np.bincount(classes.ravel().astype(np.intp), minlength=len(colours))
    present = [c for c in range(1, len(counts)) if counts[c] > 0]
    canvas = np.full((max(h, row * len(present) + 8), w + width, 3), 255, np.uint8)
    band = max(1, 2_000_000 // max(1, 3 * w))  # rows per step (~50 MB of float64)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        col = colours[classes[r0:r1]]
        pix = np.asarray(image[r0:r1], dtype=np.float64)
        canvas[r0:r1, :w] = (alpha * col + (1 - alpha) * pix).astype(np.uint8)
    im = Image.fromarray(canvas)
    del canvas
    draw = ImageDraw.Draw(im)
    for k, c in enumerate(present):
        y = 4 + k * row
        draw.rectangle([w + 6, y, w + 18, y + 12], fill=tuple(int(v) for v in colours[c]))
        draw.text((w + 24, y), MSRC21_CLASS_NAMES[c], fill=(0, 0, 0))
    return np.asarray(im)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad option values in one line that names the option."""
    from affseg.methods.wsss import MIN_WORKING_SIDE

    for opt, value in (("--class-filter", args.class_filter), ("--fuse", args.fuse)):
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InputError(f"{opt} must be a number in [0, 1] (0 = off); got {value}")
    ws = getattr(args, "working_side", None)
    if ws is not None and ws != 0 and ws < MIN_WORKING_SIDE:
        raise InputError(f"--working-side must be >= {MIN_WORKING_SIDE} (0: no bound), got {ws}")


def run(args: argparse.Namespace) -> int:
    """Label every input; returns the exit code.

    A file named on the command line is checked (header, size) before any work and
    stops the run (exit 2); an image found in a folder that fails is reported, skipped
    and counted: exit 1 when some image failed, 2 (one ``affseg: error:`` line, the first
    failure) when every image did.

    Examples
    --------
    >>> from affseg.cli import main
    >>> main(["semantic", "photo.jpg", "--out", "sem"])   # doctest: +SKIP
    0
    """
    import numpy as np
    from tqdm import tqdm

    from affseg.data.io import image_size, list_images, read_image, write_png
    from affseg.data.msrc import MSRC21_CLASS_NAMES
    from affseg.memory import is_out_of_memory, max_memory_bytes, out_of_memory_message
    from affseg.methods.wsss import DEFAULT_WORKING_SIDE, semantic

    if not args.inputs:
        raise InputError("nothing to label: give image files or folders")
    _check_options(args)
    max_memory_bytes()  # a bad $AFFSEG_MAX_MEMORY_GB stops the run before any work
    ws = getattr(args, "working_side", None)
    working_side = DEFAULT_WORKING_SIDE if ws is None else (ws or None)
    items: list[tuple[str, Any]] = []
    for inp in args.inputs:
        for f in list_images(inp):
            if not Path(inp).is_dir():
                image_size(f)  # a named file: header checks before any work
            items.append((f.stem, f))
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    done = 0
    for stem, src in tqdm(
        items, desc="semantic", unit="image", disable=True if len(items) < 2 else None
    ):
        t0 = time.perf_counter()
        try:
            image = read_image(src)
            classes = semantic(
                image,
                args.method,
                weights=args.weights,
                upsample=args.upsample,
                class_filter=args.class_filter,
                fuse=args.fuse,
                working_side=working_side,
            )
            seconds = time.perf_counter() - t0
            write_png(out / f"{stem}.classes.png", classes.astype(np.uint8, copy=False))
            write_png(out / f"{stem}.semantic.png", legend_overlay(image, classes))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad image never ends the run
            text = " ".join(str(exc).split()) or type(exc).__name__
            if is_out_of_memory(exc):
                text = out_of_memory_message(exc, "try a smaller --working-side")
            msg = f"{type(exc).__name__}: {text}"
            failed[stem] = msg
            tqdm.write(f"{stem}: FAILED {msg}")
            continue
        done += 1
        counts = np.bincount(classes.ravel(), minlength=len(MSRC21_CLASS_NAMES))
        names = [MSRC21_CLASS_NAMES[c] for c in range(len(counts)) if counts[c] > 0]
        tqdm.write(f"{stem}: {', '.join(names)} ({args.method}, {seconds:.2f} s) -> {out / stem}.*")
    if failed:
        print(f"{done} labelled, {len(failed)} failed of {len(items)}")
        if done == 0:
            first = next(iter(failed.values()))
            raise InputError(first.split(": ", 1)[1] if ": " in first else first)
        return 1
    return 0


def _effective(value: float | None, default: float, weak: bool) -> float | None:
    """The class filter / fusion weight a run used (None: the method has no weak network)."""
    if value is not None:
        return float(value)
    return default if weak else None


def run_eval(args: argparse.Namespace) -> int:
    """``affseg eval --task semantic``: MSRC-21 scores of a semantic method on a split.

    Examples
    --------
    >>> from affseg.cli import main
    >>> main(["eval", "--task", "semantic", "--split", "val"])   # doctest: +SKIP
    0
    """
    from tqdm import tqdm

    from affseg.data.io import write_json
    from affseg.data.msrc import MSRC21_CLASS_NAMES, list_split, load_ground_truth, load_image
    from affseg.methods.wsss import (
        DEFAULT_CLASS_FILTER,
        DEFAULT_FUSE,
        DEFAULT_METHOD,
        METHODS,
        semantic,
    )
    from affseg.train.wsss import SemanticScore

    method = args.method or DEFAULT_METHOD
    if method not in METHODS:
        raise InputError(f"--task semantic takes --method {'|'.join(METHODS)}; got {method!r}")
    if args.ucm is not None:
        raise InputError("--ucm applies to the region benchmark, not to --task semantic")
    if args.set:
        raise InputError("--set applies to the region benchmark, not to --task semantic")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    ids = list_split(args.data, args.split)
    ids = ids[: args.limit] if args.limit else ids
    score = SemanticScore()
    seconds = 0.0
    for image_id in tqdm(ids, desc=f"eval {method}", unit="image", disable=None):
        image = load_image(args.data, args.split, image_id)
        t0 = time.perf_counter()
        pred = semantic(
            image,
            method,
            weights=args.weights,
            class_filter=getattr(args, "class_filter", None),
            fuse=getattr(args, "fuse", None),
        )
        seconds += time.perf_counter() - t0
        score.update(pred, load_ground_truth(args.data, args.split, image_id, msrc21=True))
    res = score.compute()
    weak = method in ("wsss", "cam")
    out = {
        "task": "semantic",
        "dataset": "MSRC-21",
        "method": method,
        "weights": str(args.weights) if args.weights else "shipped",
        "class_filter": _effective(getattr(args, "class_filter", None), DEFAULT_CLASS_FILTER, weak),
        "fuse": _effective(getattr(args, "fuse", None), DEFAULT_FUSE, weak),
        "split": args.split,
        "images": len(ids),
        "seconds_per_image": seconds / max(1, len(ids)),
        **res,
    }
    lines = [
        f"MSRC-21 {args.split}: method {method} ({len(ids)} images, "
        f"{out['seconds_per_image']:.3f} s/image)",
        f"{'mIoU':24}{100 * res['miou']:7.1f}",
        f"{'global pixel accuracy':24}{100 * res['pixel_accuracy']:7.1f}",
        f"{'class-average accuracy':24}{100 * res['mean_class_accuracy']:7.1f}",
        "per-class IoU:",
    ]
    for name in MSRC21_CLASS_NAMES[1:]:
        v = res["per_class"][name]
        lines.append(f"  {name:22}{'   n/a' if v is None else f'{100 * v:7.1f}'}")
    print("\n".join(lines))
    if args.json is not None:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0
