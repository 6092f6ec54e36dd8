"""Covering vs number of segments of several methods, from ``affseg eval --json`` results.

The results were written by (first 25 BSDS500 val images)::

    for m in ndd spectral felzenszwalb slic; do
      affseg eval --method $m --limit 25 --json benchmarks/results/covering_curve_$m.json
    done
    python benchmarks/figure_covering_curves.py

``affseg eval --method M --plot out.png --compare A.json B.json`` draws the same figure
with a fresh run of M.
"""

from __future__ import annotations

import sys
from pathlib import Path

from affseg.figures import load_curves, plot_covering_curves

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    names = ("ndd", "spectral", "felzenszwalb", "slic")
    files = [ROOT / f"benchmarks/results/covering_curve_{m}.json" for m in names]
    out = ROOT / "docs/figures/covering_curves.png"
    plot_covering_curves(load_curves(files), out, "BSDS500 val, first 25 images")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
