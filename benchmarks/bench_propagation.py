"""Speed of CSPN-style propagation: a 1376 x 1088 map, 3 x 3, 18 iterations (target < 1 s).

Usage::

    python benchmarks/bench_propagation.py [--threads 2] [--repeats 5] [--k 3]

Prints the median and best wall time of :func:`affseg.affinity.propagation.propagate`
(inference path, no autograd) over ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from affseg.affinity.propagation import propagate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=18)
    ap.add_argument("--height", type=int, default=1088)
    ap.add_argument("--width", type=int, default=1376)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    h = torch.rand(1, 1, args.height, args.width, generator=g)
    a = torch.rand(1, args.k * args.k - 1, args.height, args.width, generator=g)
    mask = (torch.rand(1, 1, args.height, args.width, generator=g) < 0.01).float()
    with torch.no_grad():
        propagate(h, a, args.k, 1, h0=h, mask=mask)  # compile
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            propagate(h, a, args.k, args.iterations, h0=h, mask=mask)
            times.append(time.perf_counter() - t0)
    print(
        f"propagate {args.width}x{args.height} k={args.k} it={args.iterations} "
        f"threads={args.threads}: median {statistics.median(times):.3f} s, "
        f"best {min(times):.3f} s (incl. normalisation and re-imposition)"
    )


if __name__ == "__main__":
    main()
