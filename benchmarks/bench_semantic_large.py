"""Time and peak memory of ``affseg semantic`` on large photos (e.g. 12 megapixels).

A photo of ``--size W H`` (default 4000 x 3000) is made from a built-in example (Lanczos
upscale of scikit-image's ``coffee``, so it has real content) and labelled by ``affseg
semantic`` in a fresh process per weights file (start-up included); the child's wall time
and peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) are reported. Default
weights: the shipped MSRC-21 ``wsss`` model; add any ``--weights RUN/weights.pt``.

Usage::

    python benchmarks/bench_semantic_large.py --size 4000 3000 --weights runs/camvid/sup0/weights.pt
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def run_child(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process (run alone, so the max is its own)."""
    t0 = time.perf_counter()
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=(4000, 3000), metavar=("W", "H"))
    p.add_argument("--weights", action="append", default=None, help="weights files (repeatable)")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    from affseg.data.examples import load_example

    work = Path(tempfile.mkdtemp(prefix="affseg-semantic-large-"))
    photo = work / "large.jpg"
    Image.fromarray(load_example("coffee")).resize(tuple(args.size), Image.LANCZOS).save(
        photo, quality=92
    )
    rows = []
    for w in args.weights or [None]:
        cmd = [sys.executable, "-m", "affseg.cli", "semantic", str(photo), "--out",
               str(work / "out")]  # fmt: skip
        if w is not None:
            cmd += ["--weights", w]
        seconds, gb = run_child(cmd)
        labels = np.asarray(Image.open(work / "out" / "large.classes.png"))
        row = {"weights": w or "shipped wsss (MSRC-21)", "size": list(args.size),
               "megapixels": args.size[0] * args.size[1] / 1e6, "seconds": round(seconds, 2),
               "peak_rss_gb": round(gb, 3), "labels_shape": list(labels.shape)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
