"""``affseg semantic``: label every pixel with one of a model's classes (shipped: MSRC-21).

Per image ``<stem>`` it writes into ``--out``:

* ``<stem>.classes.png``   class map: class indices 0..K-1 in the model's class order (the
  convention of the masks; uint8, uint16 above 255 classes). The shipped MSRC-21 models:
  0..20 = building, grass, tree, cow, sheep, sky, aeroplane, water, face, car, bicycle,
  flower, sign, bird, book, chair, road, cat, dog, body, boat (earlier releases wrote
  1..21). ``affseg info WEIGHTS`` lists a model's classes.
* ``<stem>.semantic.png``  the photo blended with the model's class colours, with a legend
  of the classes present

The image's class labels are not an input. Example::

    affseg semantic photos/ --out sem_out              # NDD-guided WSSS (default)
    affseg semantic img.png --out sem_out --method cam
    affseg semantic img.png --out sem_out --weights runs/mine/weights.pt   # your classes
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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affseg.cli import SUBCOMMANDS
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
        "--refine",
        type=Path,
        default=None,
        metavar="FILE",
        help="a HAM refiner of `affseg train refine` trained on these weights' scores",
    )
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


def legend_overlay(
    image: np.ndarray,
    classes: np.ndarray,
    alpha: float = 0.55,
    names: Sequence[str] | None = None,
    colours: Any = None,
) -> np.ndarray:
    """The photo blended with the colours of ``classes`` (0..K-1), legend on the right.

    Blended by bands of rows, so a large photo costs its own size in uint8, not float64.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    classes : ndarray, shape (H, W)
        Class indices 0..K-1.
    alpha : float
        Weight of the class colour.
    names, colours : optional
        The K class names and (K, 3) colours (a model's ``meta``); default MSRC-21.

    Returns
    -------
    ndarray, shape (H', W + legend width, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> legend_overlay(np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.uint8)).shape
    (24, 140, 3)
    >>> legend_overlay(np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.uint8),
    ...                names=["bg", "cat"], colours=[[0, 0, 0], [255, 0, 0]])[0, 0].tolist()
    [140, 0, 0]
    """
    import numpy as np
    from PIL import Image, ImageDraw

    if names is None:
        from affseg.methods.wsss import msrc21_meta

        meta = msrc21_meta()
        names, colours = meta["classes"], meta["colours"]
    if colours is None:
        from affseg.data.segdata import default_palette

        colours = default_palette(len(names))
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    classes = np.asarray(classes)
    image = np.asarray(image)
    h, w = classes.shape[:2]
    row, width = 16, 110
    counts = np.bincount(classes.ravel().astype(np.intp), minlength=len(colours))
    present = np.flatnonzero(counts[: len(colours)]).tolist()
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
        draw.text((w + 24, y), str(names[c])[:14], fill=(0, 0, 0))
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
    from affseg.memory import is_out_of_memory, max_memory_bytes, out_of_memory_message
    from affseg.methods.wsss import DEFAULT_WORKING_SIDE, class_dtype, semantic, semantic_model

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
    model = semantic_model(args.method, args.weights)  # a bad weights file stops here
    if args.refine is not None:  # likewise a refiner of other weights
        from affseg.methods.seg_refine import load_refiner

        load_refiner(args.refine, model["sha256"])
    meta = model["meta"]
    names, colours = meta["classes"], meta["colours"]
    dtype = class_dtype(len(names))
    method = model["kind"]
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
                refine=args.refine,
            )
            seconds = time.perf_counter() - t0
            write_png(out / f"{stem}.classes.png", classes.astype(dtype, copy=False))
            overlay = legend_overlay(image, classes, names=names, colours=colours)
            write_png(out / f"{stem}.semantic.png", overlay)
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
        counts = np.bincount(classes.ravel(), minlength=len(names))
        found = [names[c] for c in np.flatnonzero(counts)]
        tqdm.write(f"{stem}: {', '.join(found)} ({method}, {seconds:.2f} s) -> {out / stem}.*")
    if failed:
        print(f"{done} labelled, {len(failed)} failed of {len(items)}")
        if done == 0:
            first = next(iter(failed.values()))
            raise InputError(first.split(": ", 1)[1] if ": " in first else first)
        return 1
    return 0


def _eval_dataset(args: argparse.Namespace, meta: dict[str, Any]) -> tuple[Any, Any]:
    """The dataset of ``affseg eval --task semantic`` and its class lookup into the model.

    Without dataset options: MSRC-v2 (MSRC-21) under ``--data`` / ``$AFFSEG_DATA``, which
    only an MSRC-21 model can be scored on. The dataset's classes must be the model's (by
    name, any order; the masks are renumbered into the model's order).
    """
    import numpy as np

    from affseg.train.wsss_args import open_data

    ds = open_data(args, args.split)
    model_names = [str(n) for n in meta["classes"]]
    if list(ds.classes) == model_names:
        return ds, None
    lower = {n.lower(): i for i, n in enumerate(model_names)}
    missing = [n for n in ds.classes if n.lower() not in lower]
    if missing or len(ds.classes) != len(model_names):
        extra = sorted(set(lower) - {n.lower() for n in ds.classes})
        raise InputError(
            f"the dataset's {ds.num_classes} classes are not the model's {len(model_names)}"
            + (f": the model lacks {', '.join(missing[:5])}" if missing else "")
            + (f"; the dataset lacks {', '.join(extra[:5])}" if extra else "")
            + " (give the dataset the model was trained for: `affseg info WEIGHTS`)"
        )
    lut = np.array([lower[n.lower()] for n in ds.classes], np.int64)
    return ds, lut


def run_eval(args: argparse.Namespace) -> int:
    """``affseg eval --task semantic``: scores of a semantic model on a dataset split.

    The data: ``--data DIR`` (any layout of :func:`affseg.data.segdata.open_dataset`, or a
    folder holding ``MSRC_v2/``), or the pairs options ``--images/--masks/--classes
    [--ignore-index] [--tags]`` when the parser has them; default MSRC-21. The model:
    ``--weights FILE`` (its classes, method and inference rule) or a shipped ``--method``.
    Prints mIoU, global and class-average accuracy and per-class IoU; ``--json F`` writes
    them (percent; ``miou`` = mean IoU in percent), with the confusion matrix.

    Examples
    --------
    >>> from affseg.cli import main
    >>> main(["eval", "--task", "semantic", "--split", "val"])   # doctest: +SKIP
    0
    """
    import numpy as np
    from tqdm import tqdm

    from affseg.data.io import check_writable_file, write_json
    from affseg.evaluation.semantic import SegScore
    from affseg.methods.wsss import DEFAULT_METHOD, METHODS, semantic, semantic_model
    from affseg.train.wsss_args import dataset_name

    method = args.method or DEFAULT_METHOD
    if method not in METHODS:
        raise InputError(f"--task semantic takes --method {'|'.join(METHODS)}; got {method!r}")
    if args.ucm is not None:
        raise InputError("--ucm applies to the region benchmark, not to --task semantic")
    if args.set:
        raise InputError("--set applies to the region benchmark, not to --task semantic")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    if args.json is not None:
        check_writable_file(args.json, "output")
    model = semantic_model(method, args.weights)
    meta = model["meta"]
    method = model["kind"]
    ds, lut = _eval_dataset(args, meta)
    if args.split not in ds.splits():
        raise InputError(f"--split {args.split!r}: the dataset has splits {', '.join(ds.splits())}")
    ds.validate(args.split, training=False)  # every file checked before any work
    if not ds.has_masks(args.split):
        raise InputError(f"split {args.split!r} has no masks to score against")
    stems = ds.stems(args.split)
    stems = stems[: args.limit] if args.limit else stems
    names = [str(n) for n in meta["classes"]]
    score = SegScore(names)
    k = len(names)
    seconds = 0.0
    for stem in tqdm(stems, desc=f"eval {method}", unit="image", disable=None):
        image, gt = ds.pair(args.split, stem)
        if lut is not None:
            gt = np.where(gt < ds.num_classes, lut[np.minimum(gt, ds.num_classes - 1)], k)
        t0 = time.perf_counter()
        pred = semantic(
            image,
            method,
            weights=args.weights,
            class_filter=getattr(args, "class_filter", None),
            fuse=getattr(args, "fuse", None),
        )
        seconds += time.perf_counter() - t0
        score.update(pred, gt)
    res = score.compute()
    rule = meta.get("inference") or {}
    weak = model["weak"] is not None
    cf = getattr(args, "class_filter", None)
    fu = getattr(args, "fuse", None)
    pct = {n: (None if v is None else 100 * v) for n, v in res["per_class"].items()}
    out = {
        "task": "semantic",
        "dataset": dataset_name(ds),
        "data_root": str(ds.root) if ds.root is not None else None,
        "method": method,
        "weights": str(args.weights) if args.weights else "shipped",
        "classes": names,
        "num_classes": k,
        "class_filter": (float(cf) if cf is not None else rule.get("class_filter"))
        if weak
        else None,
        "fuse": (float(fu) if fu is not None else rule.get("fuse")) if weak else None,
        "split": args.split,
        "images": len(stems),
        "seconds_per_image": seconds / max(1, len(stems)),
        "units": "percent",
        "miou": 100 * res["miou"],
        "pixel_accuracy": 100 * res["pixel_accuracy"],
        "mean_class_accuracy": 100 * res["mean_class_accuracy"],
        "per_class": pct,
        "confusion": res["confusion"],
    }
    lines = [
        f"{out['dataset']} {args.split}: method {method} ({len(stems)} images, "
        f"{out['seconds_per_image']:.3f} s/image)",
        f"{'mIoU':24}{out['miou']:7.1f}",
        f"{'global pixel accuracy':24}{out['pixel_accuracy']:7.1f}",
        f"{'class-average accuracy':24}{out['mean_class_accuracy']:7.1f}",
        "per-class IoU:",
    ]
    for name in names:
        v = pct[name]
        lines.append(f"  {name:22}{'   n/a' if v is None else f'{v:7.1f}'}")
    print("\n".join(lines))
    if args.json is not None:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0
