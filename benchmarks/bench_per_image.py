"""Unsupervised per-image segmentation (MMT, Kim 2020, Kanezaki 2018) on a BSDS500 subset.

Four parts, each writing into one JSON file (``--json``):

``compare``
    Every method on the first ``--images`` val images (sorted ids), seed 0: Hungarian
    pixel accuracy of the label classes (the MMT paper's metric), the same after splitting
    classes into connected components (what ``affseg eval`` scores through a UCM), region
    covering / PRI / VI of the label map, mean #segments and s/image. Baselines: k-means on
    Lab colour (each k) and Felzenszwalb (each scale); the best single k / scale on this
    subset is reported.
``stability``
    MMT and Kim over ``--seeds`` seeds on the first ``--stability-images`` images: per-image
    std of the accuracy over seeds, averaged over images.
``sweep``
    The option configs ``--configs`` on ``--images`` val images after the first ``--start``
    (how the defaults were tuned on val): accuracy of seed 0 and the seed spread.
``merge_baseline``
    No network: ~``--slic`` SLIC superpixels (compactness 10) merged by the per-image
    methods' ``merge`` stage (``--merge``, ``--merge-edge``) on ``--images`` val images after
    ``--start``: what the merge stage alone gives.
``speed``
    Seconds per iteration of MMT on one 321 x 481 image for the speed knobs (resolution,
    channels; 2 iterations each, setup included), forward + backward of one network in
    channels-last vs NCHW memory format, and full runs of each method with its options on
    the first 5 images (mean and max s/image).
    (The papers' full-resolution q = 100 setting is far too slow to time here.)

Run (2 CPU cores shared with other jobs; one torch thread)::

    nice -n 10 python benchmarks/bench_per_image.py --parts compare stability speed \\
        --images 20 --stability-images 10 --json benchmarks/results/per_image.json
    nice -n 10 python benchmarks/bench_per_image.py --parts sweep --start 20 --images 10 \
        --seeds 1 --configs '[{"method": "mmt", "beta": 15}]' --json /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.data import bsds
from affseg.evaluation.stability import seed_stability
from affseg.grouping.relabel import connected_relabel
from affseg.methods.baselines import (
    FELZENSZWALB_SCALES,
    KMEANS_KS,
    felzenszwalb_hierarchy,
    kmeans_hierarchy,
)
from affseg.methods.per_image import run_per_image
from affseg.metrics.pixel_accuracy import hungarian_accuracy
from affseg.metrics.region import RegionBenchmark


def _load(n: int, data: Path | None) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    ids = bsds.list_split(data, "val")[:n]
    _, gt_dir = bsds.split_dirs("val", data)
    return [(i, bsds.load_image(data, "val", i), bsds.load_ground_truth(gt_dir / f"{i}.mat"))
            for i in ids]  # fmt: skip


def _score(label_maps: list[np.ndarray], items: list, seconds: list[float]) -> dict[str, Any]:
    """Accuracy (classes and connected components), covering/PRI/VI, #segments, s/image."""
    bench = RegionBenchmark()
    acc, acc_cc, nseg = [], [], []
    for lab, (i, _, gts) in zip(label_maps, items, strict=True):
        acc.append(hungarian_accuracy(lab, gts))
        acc_cc.append(hungarian_accuracy(connected_relabel(lab), gts))
        nseg.append(len(np.unique(lab)))
        bench.update([lab], gts, i)
    res = bench.compute()
    return {
        "pixel_accuracy": float(np.mean(acc)),
        "pixel_accuracy_connected": float(np.mean(acc_cc)),
        "covering": float(res["covering"]["ods"]),
        "pri": float(res["pri"]["ods"]),
        "vi": float(res["vi"]["ods"]),
        "mean_segments": float(np.mean(nseg)),
        "seconds_per_image": float(np.mean(seconds)),
        "per_image_accuracy": [float(a) for a in acc],
    }


def compare(items: list, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mmt", "kanezaki", "kim"):
        labs, secs = [], []
        for i, im, _ in items:
            r = run_per_image(name, im, seed=0, **options.get(name, {}))
            labs.append(r.labels)
            secs.append(r.seconds)
            print(f"  {name} {i}: K={r.n_segments} it={r.iterations} {r.seconds:.1f}s", flush=True)
        out[name] = _score(labs, items, secs)
        print(name, {k: v for k, v in out[name].items() if k != "per_image_accuracy"}, flush=True)
    for name, fn, values, key in (
        ("felzenszwalb", felzenszwalb_hierarchy, FELZENSZWALB_SCALES, "scale"),
        ("kmeans", kmeans_hierarchy, KMEANS_KS, "k"),
    ):
        per_level: list[list[np.ndarray]] = []
        secs = []
        for _, im, _ in items:
            t0 = time.perf_counter()
            h = fn(im, seed=0)
            secs.append((time.perf_counter() - t0) / len(h.levels))
            per_level.append(h.levels)
        # levels are fine -> coarse; Felzenszwalb scales ascend, k-means ks descend
        order = list(values) if name == "felzenszwalb" else sorted(values, reverse=True)
        scores = {}
        for lv, v in enumerate(order):
            scores[v] = _score([p[lv] for p in per_level], items, secs)
        best = max(scores, key=lambda v: scores[v]["pixel_accuracy"])
        by_value = {str(v): s["pixel_accuracy"] for v, s in scores.items()}
        out[name] = {**scores[best], key: best, "accuracy_by_" + key: by_value}
        print(name, key, best, {k: v for k, v in out[name].items() if k != "per_image_accuracy"},
              flush=True)  # fmt: skip
    return out


def stability(items: list, seeds: list[int], options: dict[str, dict[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for name in ("mmt", "kim"):
        s = seed_stability(name, items, seeds, options.get(name, {}))
        rows = [
            {"seeds": s["seeds"], "accuracy": acc, "n_segments": n, "seconds": sec,
             "iterations": it, "mean": mean, "std": std}
            for acc, n, sec, it, mean, std in zip(
                s["accuracy"], s["n_segments"], s["seconds"], s["iterations"],
                s["per_image_mean"], s["per_image_std"], strict=True)
        ]  # fmt: skip
        for i, r in zip(s["ids"], rows, strict=True):
            print(f"  {name} {i}: mean {r['mean']:.4f} std {r['std']:.4f}", flush=True)
        out[name] = {
            "mean_accuracy": s["mean_accuracy"],
            "mean_per_image_std": s["mean_per_image_std"],
            "std_of_mean_over_seeds": s["std_of_seed_means"],
            "per_image": rows,
        }
        print(name, {k: v for k, v in out[name].items() if k != "per_image"}, flush=True)
    return out


def speed(items: list, options: dict[str, Any]) -> dict[str, Any]:
    _, im, _ = items[0]
    run_per_image("mmt", im, seed=0, max_iter=0)  # load the backbone once, untimed
    configs = [
        ("full res, q=32", {"max_side": None, "channels": 32}),
        ("max_side 160, q=100", {"max_side": 160, "channels": 100}),
        ("max_side 160, q=32", {"max_side": 160, "channels": 32}),
        ("max_side 96, q=32 (default)", {"max_side": 96, "channels": 32}),
        ("max_side 96, q=16", {"max_side": 96, "channels": 16}),
    ]
    out: dict[str, Any] = {"image_shape": list(im.shape[:2]), "per_iteration": {}}
    for label, cfg in configs:
        r = run_per_image("mmt", im, seed=0, max_iter=2, min_labels=1, target_segments=None,
                          **cfg)  # fmt: skip
        assert r.iterations == 2
        out["per_iteration"][label] = r.seconds / 2
        print(f"  {label}: {r.seconds / 2:.3f} s/iteration", flush=True)
    out["channels_last_fwd_bwd"] = _memory_format(im)
    out["full_runs"] = {}
    for name in ("mmt", "kim", "kanezaki"):
        runs = []
        for _, image, truth in items[:5]:
            t0 = time.perf_counter()
            r = run_per_image(name, image, seed=0, **options.get(name, {}))
            runs.append({"seconds": time.perf_counter() - t0, "iterations": r.iterations,
                         "n_segments": r.n_segments,
                         "accuracy": hungarian_accuracy(r.labels, truth)})  # fmt: skip
        out["full_runs"][name] = {
            "images": len(runs),
            "mean_seconds": float(np.mean([r["seconds"] for r in runs])),
            "max_seconds": float(np.max([r["seconds"] for r in runs])),
            "runs": runs,
        }
        print(f"  {name} full runs", {k: v for k, v in out["full_runs"][name].items()
                                      if k != "runs"}, flush=True)  # fmt: skip
    return out


def _memory_format(im: np.ndarray, steps: int = 10) -> dict[str, float]:
    """Seconds per forward + backward of one MMT-sized network, channels-last vs NCHW."""
    from affseg.models.per_image_net import PerImageNet, image_tensor

    out = {}
    for fmt, mf in (("channels_last", torch.channels_last), ("nchw", torch.contiguous_format)):
        torch.manual_seed(0)
        x = image_tensor(im, 96, 1.0).contiguous(memory_format=mf)
        net = PerImageNet(x.shape[1], 32, 3).to(memory_format=mf)
        net(x).sum().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            net(x).sum().backward()
        out[fmt] = (time.perf_counter() - t0) / steps
    print("  forward+backward (max_side 96, q=32):", out, flush=True)
    return out


def sweep(items: list, configs: list[dict[str, Any]], seeds: int) -> list[dict[str, Any]]:
    """Mean accuracy (seed 0) and, with ``seeds`` > 1, the seed spread of each config."""
    rows = []
    for cfg in configs:
        cfg = dict(cfg)
        name = cfg.pop("method")
        s = seed_stability(name, items, list(range(max(seeds, 1))), cfg)
        row = {"method": name, "options": cfg,
               "pixel_accuracy_seed0": float(np.mean([a[0] for a in s["accuracy"]])),
               "mean_per_image_std": s["mean_per_image_std"],
               "mean_segments": float(np.mean([n[0] for n in s["n_segments"]])),
               "mean_iterations": float(np.mean([it[0] for it in s["iterations"]])),
               "per_image": [{"accuracy": a, "n_segments": n, "iterations": it}
                             for a, n, it in zip(s["accuracy"], s["n_segments"],
                                                 s["iterations"], strict=True)]}  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    return rows


def merge_baseline(items: list, n_sp: int, merge: float, edge: float) -> dict[str, Any]:
    """SLIC superpixels + :func:`~affseg.grouping.label_merging.merge_adjacent` (no network)."""
    from skimage.segmentation import slic

    from affseg.grouping.label_merging import colour_cues, merge_adjacent
    from affseg.grouping.relabel import absorb_small

    labs, secs = [], []
    for _, im, _ in items:
        t0 = time.perf_counter()
        sp = absorb_small(slic(im, n_segments=n_sp, compactness=10.0, start_label=1), 1)
        feats, edges = colour_cues(im)
        labs.append(merge_adjacent(sp, feats, merge, edges=edges, edge_weight=edge))
        secs.append(time.perf_counter() - t0)
    out = {"slic": n_sp, "merge": merge, "merge_edge": edge, **_score(labs, items, secs)}
    print("slic + merge", {k: v for k, v in out.items() if k != "per_image_accuracy"}, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["compare", "stability", "speed"],
                   choices=["compare", "stability", "speed", "sweep",
                            "merge_baseline"])  # fmt: skip
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="skip the first START val images (sweep: tune off the report subset)",
    )
    p.add_argument(
        "--configs", default="[]", help='sweep: JSON list [{"method": "mmt", "beta": 10}, ...]'
    )
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--stability-images", type=int, default=10)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--slic", type=int, default=300, help="merge_baseline: SLIC superpixels")
    p.add_argument("--merge", type=float, default=17.5, help="merge_baseline: threshold")
    p.add_argument("--merge-edge", type=float, default=0.25, help="merge_baseline: edge weight")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--options", default="{}", help='JSON {"mmt": {...}, "kim": {...}, "kanezaki": {...}}'
    )
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/per_image.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    options = json.loads(a.options)
    result: dict[str, Any] = {}
    if a.json.exists():
        result = json.loads(a.json.read_text())
    result.update({"split": "val", "threads": a.threads, "options": options})
    items = _load(a.start + max(a.images, a.stability_images), a.data)[a.start :]

    def save() -> None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(a.json)

    if "compare" in a.parts:
        result["compare"] = {"images": a.images, **compare(items[: a.images], options)}
        save()
    if "stability" in a.parts:
        seeds = list(range(a.seeds))
        stab = stability(items[: a.stability_images], seeds, options)
        result["stability"] = {"images": a.stability_images, "seeds": seeds, **stab}
        save()
    if "sweep" in a.parts:
        result["sweep"] = {
            "images": a.images,
            "start": a.start,
            "seeds": a.seeds,
            "rows": sweep(items[: a.images], json.loads(a.configs), a.seeds),
        }
        save()
    if "merge_baseline" in a.parts:
        result["merge_baseline"] = {
            "images": a.images,
            "start": a.start,
            **merge_baseline(items[: a.images], a.slic, a.merge, a.merge_edge),
        }
        save()
    if "speed" in a.parts:
        result["speed"] = speed(items, options)
        save()


if __name__ == "__main__":
    main()
