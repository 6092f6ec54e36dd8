"""Speed of the ``ndd`` method: one 321 x 481 image -> full hierarchy at image resolution.

Reports the median wall time over ``--repeats`` runs (after one warm-up run, model loaded)
of the whole ``ndd_hierarchy`` call, and of its stages run one by one:
backbone forward, feature head + diffusion, grid grouping (K_D, coverage centres, kernel
k-means), full-resolution masks (feature-attentional interpolation for HR, bilinear for
LR) + argmax, clean-up + merging, and the UCM (``Hierarchy.to_ucm``, needed to write the
BSDS ``.mat``; not part of the hierarchy itself).

Usage::

    python benchmarks/bench_segment_speed.py --threads 2 --repeats 10
    python benchmarks/bench_segment_speed.py --untrained   # before weights exist

The totals are also given as a ratio to a 10-scale Felzenszwalb sweep (skimage
``felzenszwalb`` at 10 scales geometrically spaced from 50 to 5000) timed in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _image() -> np.ndarray:
    """A 321 x 481 photo: a BSDS500 val image if the data is there, else skimage coffee."""
    try:
        from affseg.data import bsds

        ids = bsds.list_split(None, "val")
        img = bsds.load_image(None, "val", ids[0])
        if img.shape[:2] == (481, 321):
            img = np.ascontiguousarray(np.transpose(img, (1, 0, 2)))
        return img
    except Exception:  # noqa: BLE001 - no data: fall back to a built-in photo
        from skimage import data

        return np.ascontiguousarray(data.coffee()[40:361, 60:541])


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="random feature head (before the shipped weights exist)",
    )
    parser.add_argument("--max-centres", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from affseg.backbones.efficientnet_lite import snapped_size
    from affseg.grouping.diffusion_hierarchy import (
        grid_clustering,
        labels_to_hierarchy,
        resize_maps,
    )
    from affseg.methods import ndd as ndd_segmenter
    from affseg.models.spec_diff_net import SpecDiffNet, load_pretrained

    t0 = time.perf_counter()
    net = SpecDiffNet().eval() if args.untrained else load_pretrained()
    load_s = time.perf_counter() - t0
    image = _image()
    hh, ww = image.shape[:2]
    opts: dict[str, Any] = {}
    if args.max_centres is not None:
        opts["max_centres"] = args.max_centres
    print(
        f"image {hh}x{ww}, torch threads {torch.get_num_threads()}, model "
        f"{'untrained' if args.untrained else 'shipped'} (load {load_s:.2f} s)"
    )

    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
    hs, ws = snapped_size(hh, ww)

    def backbone() -> Any:
        with torch.no_grad():
            xs = torch.nn.functional.interpolate(
                x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
            )
            return net.backbone(xs)

    t_bb, pyr = _median_ms(backbone, args.repeats)

    def diffusion() -> Any:
        with torch.no_grad():
            return net.encode_pyramid(pyr, (hh, ww))

    t_diff, out = _median_ms(diffusion, args.repeats)
    phi = out.embedding[0].numpy()
    tau = float(out.tau)
    kw = {k: v for k, v in opts.items() if k == "max_centres"}
    t_group, (kernel, assign) = _median_ms(
        lambda: grid_clustering(phi, tau, out.grid, **kw), args.repeats
    )

    def hr() -> np.ndarray:
        with torch.no_grad():
            full = net.upsample(torch.from_numpy(assign)[None], out)[0].numpy()
        return full

    t_hr, full_hr = _median_ms(lambda: hr().argmax(0), args.repeats)
    t_lr, _ = _median_ms(lambda: resize_maps(assign, (hh, ww)).argmax(0), args.repeats)
    soft = hr()
    t_merge, hier = _median_ms(
        lambda: labels_to_hierarchy(full_hr, kernel, out.grid, soft=soft), args.repeats
    )
    t_ucm, _ = _median_ms(hier.to_ucm, args.repeats)
    # edge-following leaves (grouping "leaves" / "snap"), stage by stage
    from affseg.grouping import leaf_merge, leaf_statistics, leaf_superpixels, leaf_ucm
    from affseg.grouping.kernel_grouping import diffusion_kernel

    leaf_kw = {"method": "watershed", "n_segments": 1200}
    t_kd, kd = _median_ms(lambda: diffusion_kernel(phi, tau), args.repeats)
    t_leaf, leaf = _median_ms(
        lambda: leaf_superpixels.superpixel_leaves(image, **leaf_kw), args.repeats
    )

    def pair_stats() -> Any:
        m = leaf_statistics.leaf_node_weights(leaf, out.grid)
        mt = m.T.tocsr()
        km = np.asarray(mt @ kd)
        mass = np.asarray(m.sum(0)).ravel()
        a, b, length, contrast = leaf_statistics.boundary_contrast(image, leaf)
        mb = mt[b].tocoo()
        pk = np.bincount(mb.row, weights=mb.data * km[a[mb.row], mb.col], minlength=a.size)
        sums = np.asarray(mt @ km.T)
        pair_k = pk / np.maximum(mass[a] * mass[b], 1e-12)
        return 0.5 * (sums + sums.T), mass, a, b, length, contrast, pair_k

    t_pairs, (sums, mass, a, b, length, contrast, pair_k) = _median_ms(pair_stats, args.repeats)
    t_lmerge, (merges, heights) = _median_ms(
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
        ),
        args.repeats,
    )
    t_ltree, _ = _median_ms(lambda: leaf_ucm.merge_tree_ucm(leaf, merges, heights), args.repeats)
    rows = []
    for mode, grouping in (("hr", "paper"), ("lr", "paper"), ("hr", "snap"), ("hr", "leaves")):
        t_all, h_all = _median_ms(
            lambda mode=mode, grouping=grouping: ndd_segmenter.ndd_hierarchy(
                image, model=net, upsample=mode, grouping=grouping, **opts
            ),
            args.repeats,
        )
        rows.append((f"{grouping}, {mode.upper()}", t_all, h_all))
    from skimage.segmentation import felzenszwalb

    scales = np.geomspace(50, 5000, 10)
    t_fz, _ = _median_ms(
        lambda: [felzenszwalb(image, scale=float(s)) for s in scales], args.repeats
    )
    print(
        f"grid {out.grid}, N = {phi.shape[0]}, Ne = {phi.shape[1]}, "
        f"clusters {assign.shape[0]}, levels {len(hier.levels)}"
    )
    print("| stage | median ms | ratio to the Felzenszwalb sweep |")
    print("|---|---:|---:|")
    for name, t in [
        ("backbone forward (resize + EfficientNet-Lite0)", t_bb),
        ("feature head + diffusion embedding", t_diff),
        ("grouping: K_D, coverage centres, kernel k-means", t_group),
        ("HR masks: feature-attentional interpolation + argmax", t_hr),
        ("LR masks: bilinear resize + argmax", t_lr),
        ("clean-up + greedy merging -> levels", t_merge),
        ("UCM of the hierarchy (for the .mat)", t_ucm),
        ("leaves: K_D on the grid", t_kd),
        ("leaves: watershed superpixels (1200 markers)", t_leaf),
        ("leaves: node weights, M^T K_D M, border lengths / contrast", t_pairs),
        ("leaves: greedy merging (mixed linkage + contrast, heap)", t_lmerge),
        ("leaves: levels + UCM from the merge tree", t_ltree),
    ]:
        print(f"| {name} | {t:.0f} |")
    for name, t_all, h_all in rows:
        print(
            f"| **total `ndd_hierarchy` (grouping {name})**, {len(h_all.levels)} levels, "
            f"{h_all.n_segments[0]} leaves | **{t_all:.0f}** | {t_all / t_fz:.2f} |"
        )
    print(f"| 10-scale Felzenszwalb sweep (skimage, scales 50 ... 5000) | {t_fz:.0f} | 1.00 |")


if __name__ == "__main__":
    main()
