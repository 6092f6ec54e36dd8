"""``affseg eval``: the BSDS500 region benchmark of a method, or of hierarchies made elsewhere.

Run a registered method over a split::

    affseg eval --method felzenszwalb --split val --json fz_val.json

Score saved hierarchies (``<id>.mat`` holding a BSDS ``ucm2``, or ``<id>.labels.png``
uint16 label maps) against a split's ground truth::

    affseg eval --ucm DIR --split val --json scores.json

``--data ROOT`` is the folder holding ``BSDS500/`` (default ``$AFFSEG_DATA``, else
``../shared/data``). The table and the JSON give segmentation covering ODS/OIS/Best, PRI
and VI (log2) ODS/OIS, Hungarian pixel accuracy ODS/OIS, seconds per image and the mean
number of segments at the covering-ODS threshold. ``--boundary`` adds the BSDS boundary
benchmark (precision / recall: ODS, OIS, AP; JSON key ``"boundary"``), ``--pr-curve PNG``
its precision-recall curve. ``--workers N`` / ``--scheduler ADDRESS`` score the images on
Dask (map per image, reduce in image order: the same numbers as in-process); an image that
fails is reported, left out of the scores, and the exit code is 1. ``--plot curves.png``
draws covering against the mean number of segments (``--compare a.json ...`` adds earlier
runs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affseg.cli import SUBCOMMANDS
from affseg.errors import InputError

if TYPE_CHECKING:
    pass


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg eval``."""
    from affseg.cli.segment import add_engine_arguments
    from affseg.methods import METHODS
    from affseg.train.segmentation_args import add_regions_argument

    p = subparsers.add_parser(
        "eval",
        help=SUBCOMMANDS["eval"][1],
        description=__doc__.split("\n\n")[0],
    )
    from affseg.methods import SEMANTIC_METHODS

    p.add_argument(
        "--task",
        choices=("region", "semantic"),
        default="region",
        help="region: BSDS500 region benchmark (default); semantic: semantic segmentation "
        "on --data / --images (default MSRC-21; mIoU, accuracies; --method or --weights)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--method",
        choices=sorted(METHODS) + list(SEMANTIC_METHODS),
        help="segmentation method to run",
    )
    src.add_argument(
        "--ucm",
        type=Path,
        metavar="DIR",
        help="folder of <id>.mat (ucm2) or <id>.labels.png files to score",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="ROOT",
        help="folder holding BSDS500/ (region), or a semantic dataset / a folder holding "
        "MSRC_v2/ (--task semantic) (default $AFFSEG_DATA, else ../shared/data)",
    )
    p.add_argument("--split", default="val", help="BSDS500 split (default val)")
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="only the first N images of the split (sorted ids)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the method")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option (repeatable), e.g. --set scales=64,256,1024",
    )
    p.add_argument(
        "--mode",
        choices=("ucm", "levels"),
        default="ucm",
        help="score a method's hierarchy as its UCM at the 99 BSDS thresholds "
        "(default, the official protocol) or as its list of label maps "
        "(each level one 'threshold'; needs the same level count per image)",
    )
    p.add_argument(
        "--boundary",
        action="store_true",
        help="also run the BSDS boundary benchmark (precision/recall: ODS, OIS, AP)",
    )
    p.add_argument(
        "--pr-curve",
        type=Path,
        default=None,
        metavar="PNG",
        help="write the boundary PR curve here (implies --boundary; needs matplotlib)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="write covering vs number of segments (this run and any --compare)",
    )
    p.add_argument("--compare", type=Path, nargs="+", default=[], metavar="JSON",
                   help="earlier --json results whose curves --plot draws too")  # fmt: skip
    add_engine_arguments(p)
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="FILE",
        help="--task semantic: weights of `affseg train wsss` instead of the shipped ones",
    )
    p.add_argument(
        "--class-filter",
        type=float,
        default=None,
        metavar="T",
        help="--task semantic, wsss/cam: drop classes the image classifier gives <= T "
        "(default 0.2; 0 = off)",
    )
    p.add_argument(
        "--fuse",
        type=float,
        default=None,
        metavar="A",
        help="--task semantic, wsss/cam: weight of the weak network's class maps averaged "
        "with the segmenter's (default 0.75; 0 = the segmenter alone)",
    )
    p.add_argument(
        "--images",
        action="append",
        default=None,
        metavar="[SPLIT=]DIR",
        help="--task semantic: images folder of a pairs dataset (SPLIT=DIR to repeat)",
    )
    p.add_argument(
        "--masks",
        action="append",
        default=None,
        metavar="[SPLIT=]DIR",
        help="--task semantic: masks folder matched by stem",
    )
    p.add_argument("--classes", default=None, metavar="FILE", help="--task semantic: classes.txt")
    p.add_argument(
        "--ignore-index",
        type=int,
        default=None,
        metavar="K",
        help="--task semantic: mask value of ignored pixels (default 255)",
    )
    p.add_argument("--tags", default=None, metavar="CSV",
                   help="--task semantic: tags.csv")  # fmt: skip
    add_regions_argument(
        p,
        "region task on your own label maps (--data DIR with images/ + masks/, or "
        "--images/--masks): ",
    )
    p.add_argument("--stability", type=int, default=None, metavar="K",
                   help="run --method with K seeds (--seed, --seed+1, ...) and report the "
                        "spread of Hungarian pixel accuracy over seeds")  # fmt: skip
    p.set_defaults(func=run)
    return p


def _saved_items(folder: Path) -> list[tuple[str, Path]]:
    """(id, file) for every ``<id>.mat`` / ``<id>.labels.png`` in ``folder`` (a .mat wins)."""
    if not folder.is_dir():
        raise InputError(f"--ucm folder not found: {folder}")
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.name.endswith(".labels.png"):
            found.setdefault(f.name[: -len(".labels.png")], f)
    for f in sorted(folder.glob("*.mat")):
        found[f.stem] = f
    if not found:
        raise InputError(f"no <id>.mat or <id>.labels.png files in {folder}")
    return sorted(found.items())


def _table(res: dict[str, Any], title: str) -> str:
    f = "{:.4f}".format
    rows = [
        ("covering", f(res["covering"]["ods"]), f(res["covering"]["ois"]),
         f(res["covering"]["best"])),
        ("PRI", f(res["pri"]["ods"]), f(res["pri"]["ois"]), ""),
        ("VI", f(res["vi"]["ods"]), f(res["vi"]["ois"]), ""),
        ("pixel accuracy", f(res["pixel_accuracy"]["ods"]), f(res["pixel_accuracy"]["ois"]), ""),
    ]  # fmt: skip
    lines = [title, f"{'':16}{'ODS':>8}{'OIS':>8}{'Best':>8}"]
    lines += [f"{n:16}{a:>8}{b:>8}{c:>8}" for n, a, b, c in rows]
    extra = f"images {res['images']}, {res['seconds_per_image']:.3f} s/image"
    if res.get("mean_segments") is not None:
        extra += f", mean segments at covering ODS {res['mean_segments']:.1f}"
    if res.get("boundary") is not None:
        b = res["boundary"]
        lines.append(
            f"boundary        ODS {b['ods']:.4f} (R {b['ods_recall']:.4f} P "
            f"{b['ods_precision']:.4f} at {b['ods_threshold']:.3f})  OIS {b['ois']:.4f}  "
            f"AP {b['ap']:.4f}"
        )
    lines.append(extra)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the exit code (1 when some images failed)."""
    import numpy as np

    if args.task == "semantic":
        from affseg.cli.semantic import run_eval

        return run_eval(args)
    from affseg.methods import SEMANTIC_METHODS

    if args.method is None and args.ucm is None:
        raise InputError("give --method NAME or --ucm DIR")
    if args.method in SEMANTIC_METHODS:
        raise InputError(f"--method {args.method} is a semantic method: add --task semantic")
    if args.weights is not None:
        raise InputError("--weights applies to --task semantic")
    from affseg.data.io import check_writable_file
    from affseg.figures import load_curves

    if args.compare and args.plot is None:
        raise InputError("--compare adds curves to --plot PNG; give --plot too")
    compared = load_curves(args.compare)  # read before the benchmark, not after
    for path in (args.json, args.plot, args.pr_curve):
        if path is not None:
            check_writable_file(path, "output")  # before the benchmark, not after
    if getattr(args, "stability", None) is not None:
        return _run_stability(args)
    from affseg.batch import evaluate, make_engine
    from affseg.data import bsds
    from affseg.data.io import write_json
    from affseg.evaluation.bsds import EvalTask
    from affseg.methods import check_options, parse_sets
    from affseg.metrics.boundary import boundary_summary, plot_pr_curve
    from affseg.train.segmentation_args import (
        is_segmentation_layout,
        open_training_segmentations,
    )

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    t_start = time.perf_counter()
    own = args.images is not None or args.masks is not None or is_segmentation_layout(args.data)
    items_of: dict[str, Any] = {}
    if own:
        seg_data = open_training_segmentations(args, default_split=args.split)
        items_of = {it.stem: it for it in seg_data.items(args.split)}
        title = f"{seg_data.name} {args.split}"
        if args.ignore_index is not None and (args.boundary or args.pr_curve is not None):
            raise InputError(
                "--boundary scores every pixel (the BSDS boundary benchmark has no void); "
                "drop --boundary or --ignore-index"
            )
    else:
        if args.ignore_index is not None:
            raise InputError("--ignore-index applies to your own label maps, not to BSDS500")
        bsds.split_dirs(args.split, args.data)
        title = f"BSDS500 {args.split}"
    options = parse_sets(args.set)
    if args.method is not None:
        options = check_options(args.method, options)
    want_boundary = bool(getattr(args, "boundary", False) or args.pr_curve is not None)
    data = None if args.data is None else str(Path(args.data).resolve())

    if args.ucm is not None:
        if args.set:
            raise InputError("--set applies to --method, not to --ucm")
        items = _saved_items(args.ucm)
        known = set(items_of) if own else set(bsds.list_split(args.data, args.split))
        unknown = [i for i, _ in items if i not in known]
        if unknown:
            raise InputError(
                f"{len(unknown)} file(s) in {args.ucm} are not images of split "
                f"{args.split!r} (e.g. {unknown[0]!r})"
            )
        items = items[: args.limit] if args.limit else items
        label = f"saved hierarchies in {args.ucm}"
        tasks = [
            EvalTask(i, data, args.split, path=str(path.resolve()), boundary=want_boundary,
                     item=items_of.get(i))
            for i, path in items
        ]  # fmt: skip
    else:
        ids = sorted(items_of) if own else bsds.list_split(args.data, args.split)
        ids = ids[: args.limit] if args.limit else ids
        if not ids:
            raise InputError(f"{title} holds no images")
        label = f"method {args.method} (--mode {args.mode})"
        tasks = [
            EvalTask(i, data, args.split, method=args.method, seed=args.seed, options=options,
                     mode=args.mode, boundary=want_boundary, item=items_of.get(i))
            for i in ids
        ]  # fmt: skip
    with make_engine(args.workers, args.scheduler, args.threads) as eng:
        ev = evaluate(tasks, eng, progress=None)
    res = ev.region.compute()
    total = time.perf_counter() - t_start
    n = res["images"]
    axis = ev.region.axis if ev.region.axis is not None else np.zeros(1)
    i_ods = int(np.argmin(np.abs(axis - res["covering"]["ods_threshold"])))
    out: dict[str, Any] = {
        "source": {"method": args.method, "ucm": str(args.ucm) if args.ucm else None},
        "data": title,
        "split": args.split,
        "mode": args.mode if args.method else "files",
        "seed": args.seed,
        "options": options,
        "covering": res["covering"],
        "pri": res["pri"],
        "vi": res["vi"],
        "pixel_accuracy": res["pixel_accuracy"],
        "images": n,
        "seconds": total,
        "seconds_per_image": (ev.method_seconds if args.method else total) / n,
        "mean_segments": float(np.mean([s[i_ods] for s in ev.n_segments])),
        "per_image": res["per_image"],
        "engine": ev.engine,
        "failed": ev.failed,
    }
    from affseg.figures import covering_curve

    out["curve"] = covering_curve(ev.scored)
    if ev.boundary is not None:
        bres = ev.boundary.compute()
        out["boundary"] = boundary_summary(bres)
        if args.pr_curve is not None:
            plot_pr_curve(bres, args.pr_curve, title=f"{title}: {label}")
    print(_table(out, f"{title}: {label}"))
    if ev.failed:
        print(f"{len(ev.failed)} of {len(tasks)} images failed and are not scored:")
        for image_id, err in ev.failed.items():
            print(f"  {image_id}: {err}")
    if args.json is not None:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    if args.plot is not None:
        from affseg.figures import plot_covering_curves

        curves = {args.method or args.ucm.name: out["curve"], **compared}
        plot_covering_curves(curves, args.plot, f"{title}, {n} images")
        print(f"wrote {args.plot}")
    if args.pr_curve is not None:
        print(f"wrote {args.pr_curve}")
    return 1 if ev.failed else 0


def _run_stability(args: argparse.Namespace) -> int:
    """``affseg eval --method NAME --stability K``: print (and optionally save) the spread."""
    from affseg.data import bsds
    from affseg.data.io import write_json
    from affseg.evaluation.stability import seed_stability
    from affseg.methods import parse_sets

    if args.method is None:
        raise InputError("--stability needs --method")
    if args.stability < 2:
        raise InputError(f"--stability needs K >= 2 seeds, got {args.stability}")
    _, gt_dir = bsds.split_dirs(args.split, args.data)
    ids = bsds.list_split(args.data, args.split)
    ids = ids[: args.limit] if args.limit else ids
    items = [(i, bsds.load_image(args.data, args.split, i),
              bsds.load_ground_truth(gt_dir / f"{i}.mat")) for i in ids]  # fmt: skip
    seeds = list(range(args.seed, args.seed + args.stability))
    res = seed_stability(args.method, items, seeds, parse_sets(args.set))
    print(
        f"BSDS500 {args.split}: method {args.method}, {len(ids)} images x {len(seeds)} seeds\n"
        f"pixel accuracy mean {res['mean_accuracy']:.4f}; per-image std over seeds "
        f"(mean over images) {res['mean_per_image_std']:.4f}; std of per-seed means "
        f"{res['std_of_seed_means']:.4f}; mean segments {res['mean_segments']:.1f}; "
        f"{res['seconds_per_run']:.2f} s/run"
    )
    if args.json is not None:
        write_json(args.json, {"split": args.split, "options": parse_sets(args.set), **res})
        print(f"wrote {args.json}")
    return 0
