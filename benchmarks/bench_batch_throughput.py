"""Throughput of ``affseg segment`` on BSDS images: in-process vs ``--workers N`` (Dask).

Runs the real command line twice on the same ``--n`` BSDS500 images (val, then train,
sorted ids) into fresh folders -- once in-process, once with ``--workers N`` (local Dask
cluster, start-up included), writes wall times and images/s, and counts identical label
maps and UCMs: against the default in-process run (torch's own thread count) and against an
in-process run of the first ``--check`` images with the workers' thread count.

Usage::

    python benchmarks/bench_batch_throughput.py [--n 50] [--workers 2] [--method ndd] \
        [--json benchmarks/results/batch_throughput.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root (default $AFFSEG_DATA)")
    parser.add_argument("--n", type=int, default=50, help="number of images (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--method", default="ndd", help="segmentation method (default ndd)")
    parser.add_argument("--check", type=int, default=5, help="images rerun with --threads")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    import numpy as np
    import scipy.io

    from affseg.data import bsds
    from affseg.data.io import read_label_png, write_json

    paths: list[str] = []
    for split in ("val", "train"):
        ids = bsds.list_split(args.data, split)
        paths += [str(bsds.image_path(args.data, split, i)) for i in ids]
    paths = paths[: args.n]
    cli = [sys.executable, "-c", "import sys; from affseg.cli import main; sys.exit(main())"]

    def same(d1: Path, d2: Path, stems: list[str]) -> int:
        n_same = 0
        for stem in stems:
            a = read_label_png(d1 / f"{stem}.labels.png")
            b = read_label_png(d2 / f"{stem}.labels.png")
            ua = scipy.io.loadmat(d1 / f"{stem}.mat")["ucm2"]
            ub = scipy.io.loadmat(d2 / f"{stem}.mat")["ucm2"]
            n_same += bool(np.array_equal(a, b) and np.array_equal(ua, ub))
        return n_same

    stems = [Path(p).stem for p in paths]
    threads_each = max(1, (os.cpu_count() or 1) // args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        serial, dist, s1 = Path(tmp) / "serial", Path(tmp) / "dask", Path(tmp) / "s1"
        base = [*cli, "segment", *paths, "--method", args.method]
        load = [os.getloadavg()[0]]
        t_serial = _run([*base, "--out", str(serial)])
        load.append(os.getloadavg()[0])
        t_dask = _run([*base, "--out", str(dist), "--workers", str(args.workers)])
        load.append(os.getloadavg()[0])
        same_default = same(serial, dist, stems)
        # the same torch threads per image as a worker: bit-identical (first --check images)
        k = min(args.check, len(paths))
        t_s1 = _run([*cli, "segment", *paths[:k], "--method", args.method, "--out", str(s1),
                     "--threads", str(threads_each)])  # fmt: skip
        same_threads = same(s1, dist, stems[:k])
    n = len(paths)
    res = {
        "what": f"affseg segment on {n} BSDS500 images ({args.method}), wall time of the "
        "whole command (start-up, model load and, for Dask, cluster start included)",
        "command_serial": f"affseg segment <{n} BSDS images> --method {args.method} --out DIR",
        "command_dask": f"affseg segment <{n} BSDS images> --method {args.method} --out DIR "
        f"--workers {args.workers}",
        "images": n,
        "cores": os.cpu_count(),
        "load_average_1min_start_after_serial_after_dask": load,
        "serial_seconds": t_serial,
        "serial_images_per_second": n / t_serial,
        "dask_workers": args.workers,
        "dask_seconds": t_dask,
        "dask_images_per_second": n / t_dask,
        "speedup": t_serial / t_dask,
        "identical_outputs_serial_default_threads": f"{same_default} of {n}",
        "identical_outputs_serial_same_threads": f"{same_threads} of {k} "
        f"(in-process --threads {threads_each} vs the workers' {threads_each})",
        "serial_same_threads_seconds_first_images": t_s1,
    }
    print(
        f"{n} images, {args.method}: serial {t_serial:.1f} s ({n / t_serial:.2f} img/s), "
        f"--workers {args.workers} {t_dask:.1f} s ({n / t_dask:.2f} img/s), speed-up "
        f"{t_serial / t_dask:.2f}x; identical to the workers' outputs: {same_default}/{n} "
        f"(serial, torch default threads), {same_threads}/{k} (serial --threads {threads_each})"
    )
    if args.json is not None:
        write_json(args.json, res)
        print(f"wrote {args.json}")
    return 0 if same_threads == k else 1


if __name__ == "__main__":
    raise SystemExit(main())
