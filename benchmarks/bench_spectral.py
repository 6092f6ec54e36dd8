"""Deep spectral clustering benchmarks: loss and KwikCluster speed, pairwise accuracy.

Usage::

    python benchmarks/bench_spectral.py speed [--threads 1 2]
    python benchmarks/bench_spectral.py pairwise --split val [--limit N] [--json FILE]

``speed``: the exact spectral loss on N = 100k pixels, d = 21 (forward, and forward +
backward), the dense definition and the sampled estimator for scale; KwikCluster on the
embeddings of a 321 x 481 BSDS500 val image (shipped weights): at pixel level (154k
points), on the stride-4 feature grid with full-resolution boundary refinement, and the
whole 10-threshold hierarchy; plus the network's embedding time.

``pairwise``: pairwise accuracy / precision / recall (``affseg.metrics.pairwise``) of the
method ``spectral`` against every human annotation (mean over annotators, then images), at
every threshold level of the hierarchy (0.5 is the paper's rounding); in the same pass the
region benchmark (covering / PRI / VI), scored exactly as
``affseg eval --method spectral --split val`` does (``RegionBenchmark.update(hierarchy)``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _time(fn, repeat: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _loss_speed(f: torch.Tensor, lab: torch.Tensor) -> dict:
    from affseg.affinity.spectral import sampled_spectral_loss, spectral_loss, spectral_loss_dense

    small_f, small_l = f[:5000], lab[:5000]
    fr = f.clone().requires_grad_(True)

    def fwd_bwd() -> None:
        fr.grad = None
        spectral_loss(fr, lab).backward()

    return {
        "exact_fwd_ms_N100k_d21": _time(lambda: spectral_loss(f, lab)),
        "exact_fwd_bwd_ms_N100k_d21": _time(fwd_bwd, repeat=10),
        "exact_fwd_ms_N5k": _time(lambda: spectral_loss(small_f, small_l)),
        "dense_fwd_ms_N5k": _time(lambda: spectral_loss_dense(small_f, small_l), 3, 1),
        "sampled_m1024_ms_N100k": _time(lambda: sampled_spectral_loss(f, lab, 1024)),
    }


def _kwik_speed(net, image: np.ndarray) -> dict:
    from affseg.grouping.kwikcluster import (
        kwikcluster,
        kwikcluster_hierarchy,
        kwikcluster_image,
        refine_upsampled_labels,
    )
    from affseg.methods.spectral import spectral_hierarchy

    grid, pix = net.embed_image(image, stride=(4, 1))
    flat = pix.reshape(-1, pix.shape[-1])
    kwikcluster(flat[:100])  # warm-up
    return {
        "image": f"{image.shape[0]}x{image.shape[1]}",
        "embed_ms": _time(lambda: net.embed_image(image, stride=(4, 1)), 5, 1),
        "kwik_pixels_t0.5_ms": _time(lambda: kwikcluster(flat, 0.5), 10, 1),
        "kwik_grid_t0.5_plus_refine_ms": _time(
            lambda: refine_upsampled_labels(kwikcluster_image(grid, 0.5, min_size=64), grid, pix),
            10,
            1,
        ),
        "hierarchy_10_thresholds_ms": _time(
            lambda: kwikcluster_hierarchy(grid, min_size=1024, pixel_embeddings=pix), 5, 1
        ),
        "method_spectral_ms": _time(lambda: spectral_hierarchy(image, seed=0), 3, 1),
        "clusters_pixels_t0.5": int(kwikcluster(flat, 0.5).max() + 1),
        "grid": list(grid.shape[:2]),
    }


def speed(threads: list[int], data: str | None) -> dict:
    from affseg.data.bsds import BSDS500
    from affseg.models.spectral_net import SpectralNet

    out: dict = {"loss": {}, "kwikcluster": {}}
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(100_000, 21, generator=g), dim=1)
    lab = torch.randint(0, 30, (100_000,), generator=g)
    for th in threads:
        torch.set_num_threads(th)
        out["loss"][f"threads={th}"] = _loss_speed(f, lab)
        print(json.dumps({f"threads={th}": out["loss"][f"threads={th}"]}), flush=True)
    image_id, image, _ = BSDS500(split="val", root=data)[0]
    net = SpectralNet()
    for th in threads:
        torch.set_num_threads(th)
        res = dict(_kwik_speed(net, image), image_id=image_id)
        out["kwikcluster"][f"threads={th}"] = res
        print(json.dumps({f"threads={th}": res}), flush=True)
    return out


def pairwise(
    split: str, limit: int | None, data: str | None, threads: int, log: Path | None
) -> dict:
    from affseg.data.bsds import BSDS500
    from affseg.grouping.kwikcluster import DEFAULT_THRESHOLDS
    from affseg.methods.spectral import spectral_hierarchy
    from affseg.metrics import RegionBenchmark
    from affseg.metrics.pairwise import pairwise_scores

    torch.set_num_threads(threads)
    ds = BSDS500(split=split, root=data)
    n = len(ds) if limit is None else min(limit, len(ds))
    ts = sorted(DEFAULT_THRESHOLDS, reverse=True)
    per = {t: {"accuracy": [], "precision": [], "recall": [], "segments": []} for t in ts}
    bench = RegionBenchmark()  # the same scoring as `affseg eval --method spectral`
    t0 = time.perf_counter()
    for i in range(n):
        image_id, image, gts = ds[i]
        h = spectral_hierarchy(image, seed=0)
        bench.update(h, gts, image_id)
        row = {"image": image_id}
        for t, lv in zip(ts, h.levels, strict=True):
            scores = [pairwise_scores(lv, gt) for gt in gts]
            for key in ("accuracy", "precision", "recall"):
                per[t][key].append(float(np.mean([s[key] for s in scores])))
            per[t]["segments"].append(int(lv.max()))
            row[f"{t:g}"] = [per[t][k][-1] for k in ("accuracy", "precision", "recall")]
        if log is not None:
            region = {k: v for k, v in bench.compute().items() if k != "per_image"}
            row["region_so_far"] = region
            with open(log, "a") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
    table = {f"{t:g}": {k: float(np.mean(v)) for k, v in per[t].items()} for t in ts}
    region = bench.compute()
    region = {k: v for k, v in region.items() if k != "per_image"}
    res = {
        "split": split,
        "images": n,
        "seconds": time.perf_counter() - t0,
        "pairwise_by_threshold": table,
        "region": region,
    }
    for t, row in table.items():
        print(
            f"t={t:>5}  acc {row['accuracy']:.3f}  prec {row['precision']:.3f}  "
            f"rec {row['recall']:.3f}  segments {row['segments']:.1f}"
        )
    print(json.dumps(region, default=str))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("speed", "pairwise"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None, help="per-image JSON lines (pairwise)")
    args = ap.parse_args()
    if args.what == "speed":
        res = speed(args.threads, args.data)
    else:
        res = pairwise(args.split, args.limit, args.data, args.threads[0], args.log)
    if args.json:
        from affseg.data.io import write_json

        write_json(args.json, res)


if __name__ == "__main__":
    main()
