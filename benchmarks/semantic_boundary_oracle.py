"""How much of a segmenter's val error lies at class borders: the mIoU of its bilinear
scores when every pixel within r pixels of a ground-truth class border is replaced by the
ground truth (r = 0: the segmenter as it is). The head room a boundary refinement has.

    PYTHONPATH=src python benchmarks/semantic_boundary_oracle.py --run runs/camvid/sup0 \
        --images train=$C/train --images val=$C/val --masks train=$C/trainannot \
        --masks val=$C/valannot --classes $C/classes.txt --ignore-index 11 \
        --cache runs/camvid/cache --json benchmarks/results/camvid_boundary_oracle.json

(the dataset options of ``affseg train refine``; r: Euclidean distance at the masks' size
to the nearest pixel whose right or lower neighbour has another label, void included).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy import ndimage as ndi

from affseg.evaluation.semantic import SegScore
from affseg.methods.seg_refine import grid_to_image
from affseg.methods.wsss import batch_feats, build_seg, load_weights, upsampled_argmax
from affseg.train.refine import _run_data, add_arguments
from affseg.train.wsss_cache import load_cache

RADII = (0, 1, 2, 4, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blob = load_weights(f"{args.run}/weights.pt")
    ds, _, val, _ = _run_data(args, blob)
    seg = build_seg(blob)
    scores = {r: SegScore(ds.classes) for r in RADII}
    with torch.no_grad():
        for it in load_cache(args.cache, val):
            gt = ds.mask(val, it["id"]).astype(np.int64)
            size = (int(it["size"][0]), int(it["size"][1]))
            p = seg(batch_feats([it]), tuple(int(v) for v in it["grid"]))[0].softmax(0)
            labels = upsampled_argmax(grid_to_image(p, size), gt.shape).astype(np.int64)
            border = np.zeros(gt.shape, bool)
            border[:, :-1] |= gt[:, 1:] != gt[:, :-1]
            border[:-1, :] |= gt[1:, :] != gt[:-1, :]
            dist = ndi.distance_transform_edt(~border)
            for r in RADII:
                scores[r].update(np.where(dist < r, gt, labels) if r else labels, gt)
    res = {str(r): round(100 * scores[r].compute()["miou"], 2) for r in RADII}
    print(json.dumps(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"run": args.run, "split": val, "miou_by_radius": res}, fh, indent=1)


if __name__ == "__main__":
    main()
