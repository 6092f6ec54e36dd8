"""First run vs warm run of the README's main command, in one or more installs.

For every install (its ``bin/`` directory holding ``affseg``): ``affseg segment --example
coffee --out DIR`` with an empty cache directory (``AFFSEG_CACHE_DIR`` and
``NUMBA_CACHE_DIR`` fresh: the very first run after installing), then again with the same
cache (warm); repeated, the installs interleaved, medians reported. The load average of the
machine is printed with every run.

    python benchmarks/bench_first_run.py --bin before=/tmp/venv_old/bin --bin after=.venv/bin

Results: BENCHMARKS.md, "First run".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def run_once(bin_dir: Path, cache: Path, out: Path) -> float:
    env = {**os.environ, "AFFSEG_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache / "numba")}
    env.pop("AFFSEG_NATIVE", None)
    cmd = [str(bin_dir / "affseg"), "segment", "--example", "coffee", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH/TO/bin")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    installs = dict(b.split("=", 1) for b in args.bin)
    times: dict[str, dict[str, list[float]]] = {n: {"first": [], "warm": []} for n in installs}
    for rep in range(args.repeats):
        for name, bin_dir in installs.items():
            with tempfile.TemporaryDirectory() as tmp:
                cache = Path(tmp) / "cache"
                first = run_once(Path(bin_dir), cache, Path(tmp) / "out1")
                warm = run_once(Path(bin_dir), cache, Path(tmp) / "out2")
            times[name]["first"].append(first)
            times[name]["warm"].append(warm)
            load = os.getloadavg()[0]
            print(f"{rep} {name}: first {first:.2f} s, warm {warm:.2f} s (load {load:.2f})")
    summary = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    for name, s in summary.items():
        ratio = s["first"] / s["warm"]
        print(f"{name}: first {s['first']:.2f} s, warm {s['warm']:.2f} s, ratio {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": times, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
