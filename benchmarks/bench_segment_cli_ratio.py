"""End-to-end ``affseg segment DIR --out O`` as a ratio to a 10-scale Felzenszwalb sweep.

The first ``--images`` BSDS500 val images are segmented by the command line in a fresh
process (start-up, decoding, the default ``ndd`` hierarchy, all four outputs per image),
and the sweep (skimage ``felzenszwalb`` at 10 scales geometrically spaced from 50 to 5000)
runs on the same decoded images in this process; the two are run alternately ``--repeats``
times so that load changes on a shared machine hit both alike. Reports the medians and
their ratio (the target of a folder run is the method's own ratio, ~0.2).

Usage::

    python benchmarks/bench_segment_cli_ratio.py --images 20 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from skimage.segmentation import felzenszwalb

    from affseg.data import bsds

    ids = bsds.list_split(None, "val")[: args.images]
    work = Path(tempfile.mkdtemp(prefix="affseg-cli-ratio-"))
    src = work / "images"
    src.mkdir()
    for i in ids:
        shutil.copy(bsds.image_path(None, "val", i), src / f"{i}.jpg")
    images = [bsds.load_image(None, "val", i) for i in ids]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cli, sweep = [], []
    for r in range(args.repeats):
        out = work / f"out{r}"
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "affseg.cli", "segment", str(src), "--out", str(out),
               "--threads", str(args.threads)]  # fmt: skip
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        cli.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for img in images:
            for scale in np.geomspace(50, 5000, 10):
                felzenszwalb(img, scale=float(scale), sigma=0.8, min_size=20)
        sweep.append(time.perf_counter() - t0)
        print(f"run {r}: cli {cli[-1]:.1f} s, sweep {sweep[-1]:.1f} s", flush=True)
    res = {
        "images": len(ids),
        "cli_seconds": statistics.median(cli),
        "sweep_seconds": statistics.median(sweep),
        "ratio": statistics.median(cli) / statistics.median(sweep),
    }
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
