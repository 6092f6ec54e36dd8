"""Per-stage inference time of HAM / naive on a 1376 x 1088 image vs the baselines.

Usage::

    python benchmarks/depth_sr_speed.py --threads 2 --scene art_big --factors 8 16 \
        --json benchmarks/results/depth_sr_speed.json

Each method runs ``--repeats`` times after one warm-up run (caches) on
the same input; the median wall time is reported, for the models per stage
(:attr:`affseg.models.depth_sr_fast.FastDepthSR.timings`), and the ratio of the HAM times
(the shipped ``ham`` and ``ham-bilateral`` models) to the bilateral solver's. ``--threads``
sets torch's thread count, which the compiled kernels use too (the machine is otherwise
shared: the numbers are upper bounds of an idle machine's).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from affseg.data.io import write_json
from affseg.methods.depth_baselines import baseline_upsample
from affseg.methods.depth_sr import DEFAULT_WEIGHTS, load_model, load_scene, super_resolve
from affseg.runtime import torch_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scene", default="art_big")
    ap.add_argument("--factors", type=int, nargs="+", default=[8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sc = load_scene(args.scene)
    models = {name: load_model(w) for name, w in DEFAULT_WEIGHTS.items()}
    out: dict[str, object] = {"scene": args.scene, "threads": args.threads}
    with torch_threads(args.threads):
        for f in args.factors:
            rgb, lr = sc["rgb"], sc[f"lr{f}"]
            row: dict[str, object] = {}
            for name in ("bicubic", "guided", "bilateral"):
                baseline_upsample(name, rgb, lr, f)
                ts = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    baseline_upsample(name, rgb, lr, f)
                    ts.append(time.perf_counter() - t0)
                row[name] = {"seconds": float(np.median(ts))}
            for name, model in models.items():
                super_resolve(model, rgb, lr, f)
                ts, stages = [], []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    super_resolve(model, rgb, lr, f)
                    ts.append(time.perf_counter() - t0)
                    stages.append(dict(model.timings))
                med = {k: float(np.median([s[k] for s in stages])) for k in stages[0]}
                row[name] = {"seconds": float(np.median(ts)), "stages": med}
            for name in ("ham", "ham-bilateral"):
                ratio = row[name]["seconds"] / row["bilateral"]["seconds"]  # type: ignore[index]
                row[f"{name.replace('-', '_')}_over_bilateral"] = ratio
            out[f"x{f}"] = row
            print(f"x{f}:", {k: v for k, v in row.items()}, flush=True)
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
