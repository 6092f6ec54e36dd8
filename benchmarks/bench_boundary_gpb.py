"""Boundary benchmark (precision / recall, ODS / OIS / AP) of the gPb-owt-ucm val hierarchies.

Reads every ``BSDS500_gPb_ucm2/val/<id>.mat`` (``ucm2``) and the ground truth
``BSDS500/groundTruth/val/<id>.mat``, runs :class:`affseg.metrics.boundary.BoundaryBenchmark`
at the 99 BSR thresholds over ``--procs`` processes (map: per-image counts; reduce: pooled
in id order, so the numbers do not depend on ``--procs``), prints ODS / OIS / AP and the
wall time (file reading included), and writes a JSON (and optionally the PR curve PNG).

Usage::

    python benchmarks/bench_boundary_gpb.py [--data ROOT] [--limit N] [--procs 2] \
        [--json benchmarks/results/boundary_gpb_val.json] [--pr-png FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _score(job: tuple[str, str, str]) -> tuple[str, dict, float]:
    import scipy.io

    from affseg.data.bsds import load_ground_truth
    from affseg.metrics.boundary import BoundaryBenchmark

    image_id, ucm_path, gt_path = job
    t0 = time.process_time()
    ucm2 = scipy.io.loadmat(ucm_path)["ucm2"]
    stats = BoundaryBenchmark().score(ucm2, load_ground_truth(gt_path))
    return image_id, stats, time.process_time() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root (default $AFFSEG_DATA)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N")
    parser.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--pr-png", type=Path, default=None, help="write the PR curve here")
    args = parser.parse_args()

    from affseg.data.io import write_json
    from affseg.data.paths import data_root
    from affseg.metrics.boundary import BoundaryBenchmark, plot_pr_curve

    root = Path(args.data) if args.data else data_root()
    ucm_dir = root / "BSDS500_gPb_ucm2" / "val"
    gt_dir = root / "BSDS500" / "groundTruth" / "val"
    files = sorted(ucm_dir.glob("*.mat"))[: args.limit]
    if not files:
        print(f"no .mat files in {ucm_dir}", file=sys.stderr)
        return 2
    jobs = [(f.stem, str(f), str(gt_dir / f.name)) for f in files]
    t0 = time.perf_counter()
    if args.procs > 1:
        with ProcessPoolExecutor(args.procs) as pool:
            results = list(pool.map(_score, jobs))
    else:
        results = [_score(j) for j in jobs]
    wall = time.perf_counter() - t0
    bench = BoundaryBenchmark()
    for image_id, stats, _ in results:  # reduce in id order: independent of --procs
        bench.add(stats, image_id)
    res = bench.compute()
    cpu = sum(s for _, _, s in results)
    print(
        f"gPb-owt-ucm BSDS500 val, {res['images']} images x 99 thresholds: "
        f"ODS {res['ods']:.4f} (R {res['ods_recall']:.4f}, P {res['ods_precision']:.4f}, "
        f"t {res['ods_threshold']:.3f})  OIS {res['ois']:.4f}  AP {res['ap']:.4f}"
    )
    print(
        f"wall {wall:.1f} s with {args.procs} process(es); CPU {cpu:.1f} s in the workers "
        f"({cpu / len(results):.2f} s/image, {cpu / args.procs:.1f} s per process); load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.json is not None:
        out = {
            "what": "gPb-owt-ucm BSDS500 val, BSR boundary benchmark (99 thresholds, "
            "maxDist 0.0075, thinning), affseg.metrics.boundary",
            "command": "python benchmarks/bench_boundary_gpb.py "
            + " ".join(a for a in sys.argv[1:]),
            **{k: res[k] for k in ("ods", "ods_recall", "ods_precision", "ods_threshold")},
            **{k: res[k] for k in ("ois", "ois_recall", "ois_precision", "ap", "images")},
            "wall_seconds": wall,
            "procs": args.procs,
            "cpu_seconds_in_workers": cpu,
            "cpu_seconds_per_image": cpu / len(results),
            "cpu_seconds_per_process": cpu / args.procs,
            "load_average_1min": os.getloadavg()[0],
            "pr_curve": res["pr_curve"],
            "per_image": res["per_image"],
        }
        write_json(args.json, out)
        print(f"wrote {args.json}")
    if args.pr_png is not None:
        plot_pr_curve(res, args.pr_png, title="gPb-owt-ucm, BSDS500 val")
        print(f"wrote {args.pr_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
