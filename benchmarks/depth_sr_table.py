"""Guided depth SR on the Middlebury validation scenes: HAM and naive (several seeds) vs baselines.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/depth_sr_table.py --threads 1 \
        --ham W_h0.pt W_h1.pt W_h2.pt --naive W_e0.pt W_e1.pt W_e2.pt \
        --json benchmarks/results/depth_sr_v2_5seeds.json

Without ``--ham`` / ``--naive`` the shipped models are used. For each scene (default art,
books and dolls) it tables RMSE (MAE) in 8-bit disparity units at x2..x16 for bicubic, the
bilateral solver and the guided filter (computed, parameters chosen on the training scenes),
Barron-Poole's published bilateral-solver outputs where they exist, and HAM / naive as the
mean +- std over the given training seeds (every seed's numbers are in the JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from affseg.data.io import write_json
from affseg.evaluation.depth import evaluate_depth_sr as evaluate
from affseg.methods.depth_sr import DEFAULT_WEIGHTS, WEIGHTS_DIR

SCENES = ("art_big", "books_big", "dolls_big")
BASE_ROWS = {
    "bicubic": "bicubic",
    "guided_filter": "guided filter",
    "bilateral_solver": "bilateral solver (ours)",
    "barron_poole": "Barron-Poole (published)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--ham", nargs="+", default=[str(WEIGHTS_DIR / DEFAULT_WEIGHTS["ham"])])
    ap.add_argument("--naive", nargs="+", default=[str(WEIGHTS_DIR / DEFAULT_WEIGHTS["naive"])])
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 4, 8, 16])
    args = ap.parse_args()
    cols = [f"x{f}" for f in args.factors]
    groups = {"ham": args.ham, "naive": args.naive}
    stems = {g: [Path(w).stem for w in ws] for g, ws in groups.items()}
    if len({s for v in stems.values() for s in v}) != len(args.ham) + len(args.naive):
        raise SystemExit("weights files need distinct names")
    results: dict[str, object] = {"weights": groups}
    for scene in args.scenes:
        table = evaluate(
            args.ham + args.naive, scene, threads=args.threads, factors=tuple(args.factors)
        )
        summary: dict[str, dict[str, dict[str, float]]] = {}
        for g in groups:
            summary[g] = {}
            for c in cols:
                cell: dict[str, float] = {"seeds": len(stems[g])}
                for k in ("rmse", "mae", "seconds"):
                    v = np.array([table[s][c][k] for s in stems[g]])
                    cell[k], cell[f"{k}_std"] = float(v.mean()), float(v.std())
                summary[g][c] = cell
        results[scene] = {"per_weights": table, "summary": summary}
        print(f"\n### {scene}\n")
        print("| method | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for key, label in BASE_ROWS.items():
            if key in table:
                cells = [f"{table[key][c]['rmse']:.3f} ({table[key][c]['mae']:.3f})" for c in cols]
                print(f"| {label} | " + " | ".join(cells) + " |")
        for g, label in (("naive", "naive (Euclidean)"), ("ham", "HAM (hyperbolic)")):
            s = summary[g]
            cells = [
                f"{s[c]['rmse']:.3f} +- {s[c]['rmse_std']:.3f} ({s[c]['mae']:.3f} +- "
                f"{s[c]['mae_std']:.3f})"
                for c in cols
            ]
            print(f"| {label}, {len(stems[g])} seeds | " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
