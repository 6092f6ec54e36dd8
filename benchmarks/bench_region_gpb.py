"""Score the gPb-owt-ucm hierarchies of BSDS500 val and check them against the reference.

Reads every ``BSDS500_gPb_ucm2/val/<id>.mat`` (``ucm2``) and the ground truth
``BSDS500/groundTruth/val/<id>.mat``, runs :class:`affseg.metrics.RegionBenchmark` at the 99
BSDS thresholds, compares every statistic of ``all_100`` (and of ``first_10``, and every
``per_image`` entry) in ``gpb_val_reference.json`` to 4 decimals, and prints the time spent
scoring (file reading excluded, reported separately).

Usage::

    python benchmarks/bench_region_gpb.py [--data ROOT] [--limit N] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root (default $AFFSEG_DATA)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument(
        "--naive",
        action="store_true",
        help="for comparison: label every threshold with ucm_to_labels, score the 99 maps",
    )
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import numpy as np
    import scipy.io

    from affseg.data.bsds import load_ground_truth
    from affseg.data.paths import data_root
    from affseg.grouping.ucm import BSDS_THRESHOLDS, ucm_nested_labels, ucm_to_labels
    from affseg.metrics import RegionBenchmark

    root = Path(args.data) if args.data else data_root()
    ucm_dir = root / "BSDS500_gPb_ucm2" / "val"
    gt_dir = root / "BSDS500" / "groundTruth" / "val"
    ref = json.loads((root / "BSDS500_gPb_ucm2" / "gpb_val_reference.json").read_text())
    files = sorted(ucm_dir.glob("*.mat"))[: args.limit]
    if not files:
        print(f"no .mat files in {ucm_dir}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    data = [
        (f.stem, scipy.io.loadmat(f)["ucm2"], load_ground_truth(gt_dir / f.name)) for f in files
    ]
    t_read = time.perf_counter() - t0
    ucm_nested_labels(np.zeros((5, 5)))  # warm-up, outside the timing

    bench = RegionBenchmark()
    t0 = time.perf_counter()
    for image_id, ucm2, gts in data:
        if args.naive:
            bench.update([ucm_to_labels(ucm2, t) for t in BSDS_THRESHOLDS], gts, image_id)
        else:
            bench.update(ucm2, gts, image_id)
    res = bench.compute()
    t_score = time.perf_counter() - t0

    block = "all_100" if len(files) == 100 else ("first_10" if len(files) == 10 else None)
    failures = 0
    rows = []
    if block is not None:
        for metric, fields in ref[block].items():
            if not isinstance(fields, dict):
                continue
            for key, want in fields.items():
                got = res[metric][key]
                ok = round(got, 4) == round(want, 4) or abs(got - want) < 5e-5
                failures += not ok
                flag = "ok" if ok else "FAIL"
                rows.append(f"{metric + '.' + key:30s} {got:.6f} {want:.6f} {flag}")
    n_img = 0
    for image_id, want in ref["per_image"].items():
        if image_id not in res["per_image"]:
            continue
        n_img += 1
        for key, value in want.items():
            got = res["per_image"][image_id][key]
            if abs(got - value) >= 5e-5:
                failures += 1
                rows.append(f"per_image {image_id} {key}: {got:.6f} vs {value:.6f} FAIL")
    print(f"{'statistic':30s} {'affseg':>8s} {'reference':>9s}")
    print("\n".join(rows))
    print(f"per-image entries checked: {n_img} images")
    print(
        f"images={res['images']} scoring={t_score:.2f}s ({t_score / len(files) * 1000:.0f} "
        f"ms/image) reading={t_read:.2f}s failures={failures}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
