"""Fig. 6-style figure of MSRC-21 val results: image | CAM | ours w/o RFP | ours | GT, and the
pseudo-label maps of the weak networks w/o and with RFP (made with the image's labels).

    PYTHONPATH=src python benchmarks/figure_wsss.py --runs runs/wsss \
        --out docs/figures/wsss_msrc21.png

``--runs`` holds the folders written by ``affseg train wsss`` (``cam``, ``norfp``, ``wsss``).
The CAM / w/o RFP / ours columns use the shipped inference rule of ``affseg semantic``
(class filter :data:`~affseg.methods.wsss.DEFAULT_CLASS_FILTER` and fusion
:data:`~affseg.methods.wsss.DEFAULT_FUSE` with each method's own weak network).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affseg.data.msrc import (
    CLASS_COLOURS,
    CLASS_NAMES,
    MSRC21_CLASS_NAMES,
    load_ground_truth,
    load_image,
)
from affseg.methods.wsss import (
    DEFAULT_CLASS_FILTER,
    DEFAULT_FUSE,
    build_seg,
    class_scores,
    load_weights,
    restrict,
    segment_item,
    upsample_probs,
    weak_outputs,
)
from affseg.models.wsss_net import CAMNet, WSSSNet
from affseg.train.wsss_cache import load_cache

COLOURS = np.array([CLASS_COLOURS[CLASS_NAMES.index(n)] for n in MSRC21_CLASS_NAMES])


def weak_net(blob):
    cfg = dict(blob["weak"]["config"])
    net = CAMNet(**cfg) if blob["method"] == "cam" else WSSSNet(**cfg)
    net.load_state_dict(blob["weak"]["state_dict"])
    return net.eval()


def pseudo_map(blob, item):
    kind = "cam" if blob["method"] == "cam" else "wsss"
    s = class_scores(weak_net(blob), kind, [item])[0]
    s = restrict(s + (1e-6 if kind == "cam" else 0), item["labels"].float())
    up = upsample_probs(s.t().reshape(-1, *item["grid"]), item)
    return (up.argmax(0) + 1).numpy()


def shipped_rule(blob, seg, item):
    kind = "cam" if blob["method"] == "cam" else "wsss"
    cls, maps = weak_outputs(weak_net(blob), kind, item)
    return segment_item(seg, item, class_probs=cls, class_filter=DEFAULT_CLASS_FILTER,
                        weak_probs=maps, fuse=DEFAULT_FUSE, offset=1)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=Path("runs/wsss"))
    ap.add_argument("--out", type=Path, default=Path("docs/figures/wsss_msrc21.png"))
    ap.add_argument("--ids", nargs="*", default=None)
    ap.add_argument("--n", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    items = {it["id"]: it for it in load_cache(a.runs / "cache", "val")}
    ids = a.ids or list(items)[:: max(1, len(items) // a.n)][: a.n]
    blobs = {k: load_weights(a.runs / k / "weights.pt") for k in ("cam", "norfp", "wsss")}
    segs = {k: build_seg(b) for k, b in blobs.items()}
    cols = ["image", "CAM", "ours w/o RFP", "ours", "ground truth", "pseudo w/o RFP", "pseudo ours"]
    tiles = []
    for i in ids:
        it = items[i]
        img = load_image(None, "val", i)
        gt = load_ground_truth(None, "val", i, msrc21=True)
        row = [img] + [COLOURS[shipped_rule(blobs[k], segs[k], it)]
                       for k in ("cam", "norfp", "wsss")]  # fmt: skip
        row += [COLOURS[gt]]
        row += [COLOURS[pseudo_map(blobs[k], it)] for k in ("norfp", "wsss")]
        row = [np.asarray(Image.fromarray(t.astype(np.uint8)).resize((240, 160))) for t in row]
        tiles.append(np.concatenate(row, 1))
    grid = np.concatenate(tiles, 0)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 18), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (0, 18))
    d = ImageDraw.Draw(canvas)
    for k, c in enumerate(cols):
        d.text((k * 240 + 6, 3), c, fill=(0, 0, 0))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(a.out)
    print(a.out, ids)


if __name__ == "__main__":
    main()
