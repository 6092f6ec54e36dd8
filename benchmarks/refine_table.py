"""Table of `affseg train refine` runs from their refiner files' records: val mIoU of the
run's head alone (bilinear), the jointly trained head alone and the refined scores, per
seed and as mean +- std, plus the paired refined - head differences.

    python benchmarks/refine_table.py --ham runs/camvid/v2/hyperbolic_e2_s{0,1,2}.pt \
        --naive runs/camvid/v2/euclidean_e2_s{0,1,2}.pt \
        --head-only runs/camvid/v2/headonly_e2_s{0,1,2}.pt \
        --json benchmarks/results/camvid_refine_3seeds.json

Files of one option are matched by position (the same seed in the same place).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def record(path: str) -> dict:
    """The training record stored in a refiner file."""
    return torch.load(path, map_location="cpu", weights_only=True)["record"]


def summary(values: list[float]) -> dict:
    """Mean, sample std, min, max and the values (percent, 2 decimals)."""
    v = np.asarray(values, dtype=np.float64)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {"mean": round(float(v.mean()), 2), "std": round(std, 2),
            "min": round(float(v.min()), 2), "max": round(float(v.max()), 2),
            "values": [round(float(x), 2) for x in v]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ham", nargs="+", required=True)
    ap.add_argument("--naive", nargs="+", required=True)
    ap.add_argument("--head-only", nargs="*", default=[])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    groups = {"ham": args.ham, "naive": args.naive, "head_only": args.head_only}
    recs = {k: [record(f) for f in files] for k, files in groups.items() if files}
    miou = {k: {m: [100 * r["val"][m]["miou"] for r in rs if m in r["val"]]
                for m in ("bilinear", "head", "ham")} for k, rs in recs.items()}  # fmt: skip
    out: dict = {"files": groups, "base_bilinear": summary(miou["ham"]["bilinear"])}
    for k in recs:
        out[k] = {"head": summary(miou[k]["head"]), "refined": summary(miou[k]["ham"]),
                  "refined_minus_head": summary(np.subtract(miou[k]["ham"], miou[k]["head"])),
                  "train_s": [r["train_s"] for r in recs[k]]}  # fmt: skip
    out["ham_minus_naive"] = summary(np.subtract(miou["ham"]["ham"], miou["naive"]["ham"]))
    print(f"base head (bilinear): {out['base_bilinear']}")
    for k in recs:
        print(f"{k}: head {out[k]['head']}\n   refined {out[k]['refined']}\n"
              f"   refined - head {out[k]['refined_minus_head']}")  # fmt: skip
    print(f"HAM - naive (refined): {out['ham_minus_naive']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
