"""Ablation of the ndd groupings on BSDS500 val images (one model forward per image).

The train-only spec-diff-net runs once per image (diffusion embedding, K_D, and the HR
masks of the paper's grouping); every grouping configuration is then scored with the BSR
region benchmark (UCM at the 99 thresholds, every human annotation). Configurations are
``ndd_hierarchy`` grouping options (``grouping``, ``leaves``, ``n_leaves``, ``leaf_scale``,
``leaf_linkage``, ``leaf_mix``, ``boundary_weight``, ``upsample``).

Usage::

    python benchmarks/bench_ndd_grouping.py --start 0 --stop 20 --json out.json
    python benchmarks/bench_ndd_grouping.py --set size --json size.json
    python benchmarks/bench_ndd_grouping.py --set edge --json edge.json
    python benchmarks/bench_ndd_grouping.py --set learned --boundary-head H.pt --json l.json

The ``learned`` set computes each image's learned boundary map once (the boundary head on
the same backbone pyramid) and passes it as ``boundary_map``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

_NO_PRIOR = {"leaf_small": 0.0}

#: The ablation (leaves rows without the size prior, then the size-prior rows).
CONFIGS: list[dict] = [
    {"grouping": "paper", "upsample": "hr"},
    {"grouping": "paper", "upsample": "lr"},
    {"grouping": "snap", "upsample": "lr", "leaf_linkage": "border", "boundary_weight": 0.0},
    {"grouping": "snap", "upsample": "hr", "leaf_linkage": "border", "boundary_weight": 0.0},
    {"grouping": "leaves", "leaf_linkage": "border", "boundary_weight": 0.0, **_NO_PRIOR},
    {"grouping": "leaves", "leaf_linkage": "average", "boundary_weight": 0.0, **_NO_PRIOR},
    {"grouping": "leaves", "leaf_linkage": "mixed", "boundary_weight": 0.0, **_NO_PRIOR},
    {"grouping": "leaves", "leaf_linkage": "border", "boundary_weight": 0.2, **_NO_PRIOR},
    {"grouping": "leaves", "leaf_linkage": "mixed", "leaf_mix": 0.3, **_NO_PRIOR},
    {"grouping": "leaves", "leaf_linkage": "mixed", "leaf_mix": 0.75, **_NO_PRIOR},
    {"grouping": "leaves", **_NO_PRIOR},  # watershed 1200, mixed 0.5, contrast 0.2
    {"grouping": "leaves", "n_leaves": 600, **_NO_PRIOR},
    {"grouping": "leaves", "n_leaves": 2000, **_NO_PRIOR},
    {"grouping": "leaves", "leaves": "felzenszwalb", **_NO_PRIOR},
    {"grouping": "leaves", "leaves": "slic", **_NO_PRIOR},
]

#: Edge-strength term of the leaf merging (``edge_weight`` / ``edge_scale``), tuned here.
EDGE_CONFIGS: list[dict] = [
    {"grouping": "leaves"},  # the defaults: no edge term
    {"grouping": "leaves", "edge_weight": 0.1},
    {"grouping": "leaves", "edge_weight": 0.2},
    {"grouping": "leaves", "edge_weight": 0.3},
    {"grouping": "leaves", "edge_weight": 0.2, "edge_scale": 3.0},
    {"grouping": "leaves", "edge_weight": 0.2, "edge_scale": 30.0},
    {"grouping": "leaves", "edge_weight": 0.2, "boundary_weight": 0.0},
]

#: Size prior of the leaf merging (``leaf_small``; the default is 0.01).
SIZE_CONFIGS: list[dict] = [
    {"grouping": "leaves", "leaf_small": 0.002},
    {"grouping": "leaves", "leaf_small": 0.005},
    {"grouping": "leaves"},  # the defaults: leaf_small 0.01
    {"grouping": "leaves", "leaf_small": 0.02},
]


#: Learned boundary term (``learned_weight``) and watershed elevation (``leaf_elevation``).
LEARNED_CONFIGS: list[dict] = [
    {"grouping": "leaves"},  # the defaults
    {"grouping": "leaves", "learned_weight": 0.1},
    {"grouping": "leaves", "learned_weight": 0.2},
    {"grouping": "leaves", "learned_weight": 0.35},
    {"grouping": "leaves", "learned_weight": 0.5},
    {"grouping": "leaves", "learned_weight": 0.35, "boundary_weight": 0.0},
    {"grouping": "leaves", "learned_weight": 0.35, "leaf_elevation": 50.0},
    {"grouping": "leaves", "learned_weight": 0.35, "leaf_elevation": 200.0},
    # second round: the border terms together with the elevation
    {"grouping": "leaves", "learned_weight": 0.35, "leaf_elevation": 100.0},
    {"grouping": "leaves", "learned_weight": 0.5, "leaf_elevation": 100.0},
    {"grouping": "leaves", "learned_weight": 0.35, "leaf_elevation": 100.0, "boundary_weight": 0.0},
    {"grouping": "leaves", "learned_weight": 0.5, "leaf_elevation": 100.0, "boundary_weight": 0.0},
    {"grouping": "leaves", "learned_weight": 0.65, "leaf_elevation": 100.0, "boundary_weight": 0.0},
    {"grouping": "leaves", "learned_weight": 0.5, "leaf_elevation": 100.0, "n_leaves": 600},
    {"grouping": "leaves", "learned_weight": 0.5, "leaf_elevation": 100.0, "leaf_mix": 0.3},
    {"grouping": "leaves", "learned_weight": 0.5, "leaf_elevation": 100.0, "leaf_mix": 0.75},
    # third round: a heavier learned term, 600 leaves
    {"grouping": "leaves", "learned_weight": 0.8, "leaf_elevation": 100.0, "boundary_weight": 0.0},
    {"grouping": "leaves", "learned_weight": 1.0, "leaf_elevation": 100.0, "boundary_weight": 0.0},
    {
        "grouping": "leaves",
        "learned_weight": 0.65,
        "leaf_elevation": 100.0,
        "boundary_weight": 0.0,
        "n_leaves": 600,
    },
    {
        "grouping": "leaves",
        "learned_weight": 0.65,
        "leaf_elevation": 100.0,
        "boundary_weight": 0.1,
        "n_leaves": 600,
    },
    {
        "grouping": "leaves",
        "learned_weight": 0.8,
        "leaf_elevation": 100.0,
        "boundary_weight": 0.0,
        "n_leaves": 600,
    },
    {
        "grouping": "leaves",
        "learned_weight": 0.65,
        "leaf_elevation": 200.0,
        "boundary_weight": 0.0,
        "n_leaves": 600,
    },
]


class _Cached:
    """A model stand-in that returns a precomputed ``encode`` output (one per image)."""

    def __init__(self, net, out) -> None:  # noqa: ANN001
        self.net, self.out = net, out

    def encode(self, x):  # noqa: ANN001, D102
        return self.out

    def upsample(self, maps, out, size=None):  # noqa: ANN001, D102
        return self.net.upsample(maps, out, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=20)
    parser.add_argument("--weights", default="spec_diff_net_train_only.pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--set",
        choices=["ablation", "size", "edge", "learned"],
        default="ablation",
        help="which configurations",
    )
    parser.add_argument("--boundary-head", default=None, help="weights (default: shipped)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from affseg.data import bsds
    from affseg.methods.ndd import _fast_backbone, _image_tensor, ndd_hierarchy, shipped_model
    from affseg.metrics.region import RegionBenchmark

    net = shipped_model(args.weights)
    head = None
    if args.set == "learned":
        from affseg.models.boundary_head import boundary_probability, load_boundary_head

        head = load_boundary_head(args.boundary_head)
    ids = bsds.list_split(None, "val")[args.start : args.stop]
    items = []
    for image_id in ids:
        img = bsds.load_image(None, "val", image_id)
        with torch.no_grad():
            pyramid = net.pyramid(_image_tensor(img), backbone=_fast_backbone(net))
            out = net.encode_pyramid(pyramid, img.shape[:2])
        bmap = None if head is None else boundary_probability(head, pyramid, img.shape[:2])
        gts = bsds.load_ground_truth(bsds.gt_path(None, "val", image_id))
        items.append((image_id, img, _Cached(net, out), gts, bmap))
    results = []
    configs = {
        "ablation": CONFIGS,
        "size": SIZE_CONFIGS,
        "edge": EDGE_CONFIGS,
        "learned": LEARNED_CONFIGS,
    }[args.set]
    for cfg in configs:
        bench = RegionBenchmark()
        seconds, leaves = 0.0, []
        for image_id, img, model, gts, bmap in items:
            extra = {} if bmap is None else {"boundary_map": bmap}
            t0 = time.perf_counter()
            hier = ndd_hierarchy(img, model=model, **cfg, **extra)
            seconds += time.perf_counter() - t0
            leaves.append(hier.n_segments[0])
            bench.update(hier, gts, image_id)
        r = bench.compute()
        c, p, v = r["covering"], r["pri"], r["vi"]
        row = {
            "config": cfg,
            "covering": [c["ods"], c["ois"], c["best"]],
            "pri": [p["ods"], p["ois"]],
            "vi": [v["ods"], v["ois"]],
            "ods_threshold": c["ods_threshold"],
            "leaves": float(np.mean(leaves)),
            "grouping_ms": 1000 * seconds / len(items),
        }
        results.append(row)
        print(
            f"| {json.dumps(cfg)} | {c['ods']:.3f} / {c['ois']:.3f} / {c['best']:.3f} "
            f"| {p['ods']:.3f} / {p['ois']:.3f} | {v['ods']:.3f} / {v['ois']:.3f} "
            f"| {row['leaves']:.0f} | {c['ods_threshold']:.2f} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images": ids, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
