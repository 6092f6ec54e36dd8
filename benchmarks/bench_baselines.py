"""Every classical baseline on BSDS500 val through ``affseg eval``; prints a Markdown table.

Each row is exactly ``affseg eval --method NAME --split val --json FILE`` (plus ``--mode``
where noted), so any row can be reproduced on its own. Runs one method after the other on
one thread per library (set before NumPy loads).

Usage::

    nice -n 10 python benchmarks/bench_baselines.py [--limit N] [--out benchmarks/results]
    python benchmarks/bench_baselines.py --table-only      # table from existing JSON files
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

#: (row name, method, extra eval arguments)
RUNS: list[tuple[str, str, list[str]]] = [
    ("felzenszwalb", "felzenszwalb", []),
    ("felzenszwalb (levels: best single scale)", "felzenszwalb", ["--mode", "levels"]),
    ("slic", "slic", []),
    ("quickshift", "quickshift", []),
    ("ncut", "ncut", []),
    ("kmeans", "kmeans", []),
    ("kmeans (levels: colour clusters)", "kmeans", ["--mode", "levels"]),
]


def _json_name(name: str) -> str:
    return "baselines_" + name.split(" ")[0] + ("_levels" if "levels" in name else "") + ".json"


def table(out: Path, split: str) -> str:
    """Markdown table of the JSON results found in ``out``."""
    head = (
        "| method | covering ODS | OIS | Best | PRI ODS | OIS | VI ODS | OIS "
        "| pix. acc. ODS | OIS | s/image | segments | images |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for name, _, _ in RUNS:
        f = out / _json_name(name)
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        c, p, v, a = r["covering"], r["pri"], r["vi"], r["pixel_accuracy"]
        rows.append(
            f"| {name} | {c['ods']:.3f} | {c['ois']:.3f} | {c['best']:.3f} | {p['ods']:.3f} "
            f"| {p['ois']:.3f} | {v['ods']:.3f} | {v['ois']:.3f} | {a['ods']:.3f} "
            f"| {a['ois']:.3f} | {r['seconds_per_image']:.2f} | {r['mean_segments']:.0f} "
            f"| {r['images']} |"
        )
    return "\n".join(rows)


def main() -> None:
    """Run every baseline (or only print the table)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--only", nargs="*", default=None, help="row names to run")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        from affseg.cli import main as affseg_main

        for name, method, extra in RUNS:
            if args.only and name.split(" ")[0] not in args.only and name not in args.only:
                continue
            cmd = ["eval", "--method", method, "--split", args.split, *extra,
                   "--json", str(args.out / _json_name(name))]  # fmt: skip
            if args.limit and "--limit" not in cmd:
                cmd += ["--limit", str(args.limit)]
            print("affseg " + " ".join(cmd), flush=True)
            rc = affseg_main(cmd)
            if rc:
                raise SystemExit(rc)
    print(table(args.out, args.split))


if __name__ == "__main__":
    main()
