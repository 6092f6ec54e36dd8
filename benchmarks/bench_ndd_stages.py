"""Per-stage speed of the default ``ndd`` hierarchy (grouping ``leaves``), interleaved with
the 10-scale Felzenszwalb sweep, on BSDS500 val images.

For each of ``--images`` val images (after one warm-up image that loads the
kernels): every stage of ``ndd_hierarchy(image)`` with the default options is timed one by
one (the same calls the library makes), then the whole ``ndd_hierarchy`` call, then the
sweep (skimage ``felzenszwalb`` at 10 scales geometrically spaced from 50 to 5000), so
load changes on a shared machine hit all of them alike. Reports the median per image of
every stage and of the two totals, and the ratio of the summed totals.

Usage::

    python benchmarks/bench_ndd_stages.py --images 20 --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed(store: dict[str, list[float]], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    store.setdefault(name, []).append(time.perf_counter() - t0)
    return out


def _clear_caches() -> None:
    """Forget the per-image Lab / gradient caches, so that every timing starts cold."""
    from affseg.grouping import leaf_superpixels

    leaf_superpixels._lab_of.cache_clear()
    leaf_superpixels._gradient_of.cache_clear()


def _stages(img: np.ndarray, net: Any, store: dict[str, list[float]]) -> None:
    """The stages of ``ndd_hierarchy(img)`` (defaults), one by one."""
    import torch.nn.functional as F

    from affseg.backbones.efficientnet_lite import snapped_size
    from affseg.grouping import leaf_kernels as lk
    from affseg.grouping import leaf_merge, leaf_statistics, leaf_superpixels, leaf_ucm
    from affseg.grouping.kernel_grouping import diffusion_kernel
    from affseg.methods.ndd import _fast_backbone, _image_tensor

    x = _image_tensor(img)
    fast = _fast_backbone(net)
    hs, ws = snapped_size(int(x.shape[2]), int(x.shape[3]))

    def backbone() -> Any:
        xs = F.interpolate(x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True)
        return fast(xs.clamp(0, 1))

    with torch.no_grad():
        pyr = _timed(store, "backbone (resize + fused EfficientNet-Lite0)", backbone)
        out = _timed(
            store,
            "feature head + diffusion embedding",
            lambda: net.encode_pyramid(pyr, tuple(img.shape[:2])),
        )
    phi = out.embedding[0].numpy()
    k = _timed(store, "K_D on the grid", lambda: diffusion_kernel(phi, float(out.tau)))
    _clear_caches()
    leaf = _timed(
        store,
        "leaves: Lab, Sobel, compact watershed (1200 markers), clean-up",
        lambda: leaf_superpixels.superpixel_leaves(img, method="watershed", n_segments=1200),
    )

    def products() -> Any:
        mt = leaf_statistics.leaf_rows(leaf, out.grid)
        return mt, lk.gram_of_kernel(mt.indptr, mt.indices, mt.data, k)

    mt, sums = _timed(store, "node weights M, M^T K_D M", products)
    a, b, length, contrast = _timed(
        store,
        "border lengths + colour contrast",
        lambda: leaf_statistics.boundary_contrast(img, leaf, 10.0),
    )
    mass = np.asarray(mt.sum(1)).ravel()
    pair_k = sums[a, b] / np.maximum(mass[a] * mass[b], 1e-12)
    merges, heights = _timed(
        store,
        "greedy merging (mixed linkage + contrast + size prior)",
        lambda: leaf_merge.merge_leaves(
            sums,
            mass,
            a,
            b,
            pair_k=pair_k,
            length=length,
            contrast=contrast,
            boundary_weight=0.2,
            linkage="mixed",
            small=0.01 * leaf.size,
            overwrite_sums=True,
        ),
    )
    _timed(
        store,
        "levels + UCM from the merge tree",
        lambda: leaf_ucm.merge_tree_ucm(leaf, merges, heights, default_height=0.65),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default=None, help="default: the shipped weights")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from skimage.segmentation import felzenszwalb

    from affseg.data import bsds
    from affseg.data.io import atomic_write
    from affseg.methods.ndd import ndd_hierarchy, shipped_model

    net = shipped_model(args.weights)
    scales = np.geomspace(50, 5000, 10)
    ids = bsds.list_split(None, "val")[: args.images]
    warm = bsds.load_image(None, "val", ids[0])
    ndd_hierarchy(warm, model=net)  # warm-up: model, caches
    _stages(warm, net, {})
    store: dict[str, list[float]] = {}
    for image_id in ids:
        img = bsds.load_image(None, "val", image_id)
        _stages(img, net, store)
        _clear_caches()
        _timed(store, "whole ndd_hierarchy", lambda img=img: ndd_hierarchy(img, model=net))
        _timed(
            store,
            "10-scale Felzenszwalb sweep",
            lambda img=img: [felzenszwalb(img, scale=float(s)) for s in scales],
        )
    n = len(ids)
    total = sum(store["whole ndd_hierarchy"])
    sweep = sum(store["10-scale Felzenszwalb sweep"])
    med = {k: 1000 * statistics.median(v) for k, v in store.items()}
    print(f"{n} val images, torch threads {torch.get_num_threads()}")
    print("| stage | median ms per image |")
    print("|---|---:|")
    for name, t in med.items():
        print(f"| {name} | {t:.0f} |")
    print(f"ratio (summed whole ndd_hierarchy / summed sweep): {total / sweep:.3f}")
    if args.json is not None:
        res = {
            "images": n,
            "threads": torch.get_num_threads(),
            "median_ms": med,
            "sum_s": {k: float(sum(v)) for k, v in store.items()},
            "ratio": total / sweep,
        }
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(args.json, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
