"""Task A table: guided depth SR on Middlebury, cross-scene (train on one, report the other).

Usage::

    python benchmarks/depth_sr_table.py [--threads 1] [--scenes art_big] \
        [--json benchmarks/results/depth_sr_art_big.json] [--weights-dir DIR] \
        [--geometries hyperbolic] [--tta 4] [--factors 8 16]

For each scene S it loads the naive (``euclidean``) and HAM (``hyperbolic``) weights
trained on the *other* scene (``src/affseg/weights/ham_depth_sr_{geometry}_{other}.pt``,
made by ``affseg depth-sr train``) and prints a markdown table of RMSE (MAE) in 8-bit
disparity units for bicubic, the published Barron-Poole bilateral-solver outputs
(divided by 256), naive propagation and HAM, at x2/x4/x8/x16 (``--tta N``: the models as a
test-time ensemble over N flips/transpositions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from affseg.data.io import write_json
from affseg.methods.depth_sr import WEIGHTS_DIR, evaluate

SCENES = ("art_big", "books_big")
ROWS = {
    "bicubic": "bicubic",
    "barron_poole": "Barron-Poole (bilateral solver)",
    "euclidean": "naive propagation (Euclidean)",
    "hyperbolic": "HAM (hyperbolic)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    ap.add_argument("--geometries", nargs="+", default=["euclidean", "hyperbolic"])
    ap.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1)
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 4, 8, 16])
    args = ap.parse_args()
    cols = [f"x{f}" for f in args.factors]
    results = {}
    for scene in args.scenes:
        other = next(s for s in SCENES if s != scene)
        weights = {
            g: str(Path(args.weights_dir) / f"ham_depth_sr_{g}_{other}.pt") for g in args.geometries
        }
        table = evaluate(
            list(weights.values()),
            scene,
            threads=args.threads,
            tta=args.tta,
            factors=tuple(args.factors),
        )
        table = {
            ("euclidean" if "euclidean" in k else "hyperbolic" if "hyperbolic" in k else k): v
            for k, v in table.items()
        }
        results[scene] = table
        print(f"\n### {scene} (learned models trained on {other})\n")
        print("| method | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for key, label in ROWS.items():
            if key not in table:
                continue
            cells = [f"{table[key][f]['rmse']:.3f} ({table[key][f]['mae']:.3f})" for f in cols]
            print(f"| {label} | " + " | ".join(cells) + " |")
        for key in args.geometries:
            secs = [table[key][f]["seconds"] for f in cols]
            print(f"\n{key} inference seconds {cols} (tta {args.tta}): {secs}")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
