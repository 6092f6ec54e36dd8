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
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from affseg.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg semantic``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_parser(p.add_subparsers())
    ArgumentParser(prog='... semantic', ...)
    """
    from affseg.methods.wsss import DEFAULT_METHOD, METHODS

    p = subparsers.add_parser(
        "semantic",
        help="semantic segmentation into the 21 MSRC-21 classes (class map + overlay)",
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

    Returns
    -------
    ndarray, shape (H', W + legend width, 3), uint8

    Examples
    --------
    >>> legend_overlay(np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.uint8)).shape
    (24, 140, 3)
    """
    from PIL import Image, ImageDraw

    from affseg.data.msrc import CLASS_COLOURS, CLASS_NAMES, MSRC21_CLASS_NAMES

    colours = np.array([CLASS_COLOURS[CLASS_NAMES.index(n)] for n in MSRC21_CLASS_NAMES])
    col = colours[np.asarray(classes)]
    blend = (alpha * col + (1 - alpha) * np.asarray(image, dtype=np.float64)).astype(np.uint8)
    present = [int(c) for c in np.unique(classes) if c > 0]
    h, w = blend.shape[:2]
    row, width = 16, 110
    canvas = Image.new("RGB", (w + width, max(h, row * len(present) + 8)), (255, 255, 255))
    canvas.paste(Image.fromarray(blend), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, c in enumerate(present):
        y = 4 + k * row
        draw.rectangle([w + 6, y, w + 18, y + 12], fill=tuple(int(v) for v in colours[c]))
        draw.text((w + 24, y), MSRC21_CLASS_NAMES[c], fill=(0, 0, 0))
    return np.asarray(canvas)


def run(args: argparse.Namespace) -> int:
    """Label every input; returns the exit code.

    Examples
    --------
    >>> from affseg.cli import main
    >>> main(["semantic", "photo.jpg", "--out", "sem"])   # doctest: +SKIP
    0
    """
    from tqdm import tqdm

    from affseg.data.io import list_images, read_image, write_png
    from affseg.data.msrc import MSRC21_CLASS_NAMES
    from affseg.methods.wsss import semantic

    if not args.inputs:
        raise InputError("nothing to label: give image files or folders")
    items: list[tuple[str, Any]] = []
    for inp in args.inputs:
        items.extend((f.stem, f) for f in list_images(inp))
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for stem, src in tqdm(
        items, desc="semantic", unit="image", disable=True if len(items) < 2 else None
    ):
        image = read_image(src)
        t0 = time.perf_counter()
        classes = semantic(
            image,
            args.method,
            weights=args.weights,
            upsample=args.upsample,
            class_filter=args.class_filter,
            fuse=args.fuse,
        )
        seconds = time.perf_counter() - t0
        write_png(out / f"{stem}.classes.png", classes.astype(np.uint8))
        write_png(out / f"{stem}.semantic.png", legend_overlay(image, classes))
        names = [MSRC21_CLASS_NAMES[int(c)] for c in np.unique(classes)]
        tqdm.write(f"{stem}: {', '.join(names)} ({args.method}, {seconds:.2f} s) -> {out / stem}.*")
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
