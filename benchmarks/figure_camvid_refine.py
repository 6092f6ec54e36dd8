"""CamVid val figure of the HAM segmentation refinement: image | ground truth | the run's
segmentation head alone | the naive refinement | the HAM refinement (each row one image).

    PYTHONPATH=src python benchmarks/figure_camvid_refine.py --run runs/camvid/sup0 \
        --naive runs/camvid/joint/euclidean_s0.pt --ham runs/camvid/joint/hyperbolic_s0.pt \
        --camvid ../shared/data/CamVid --out docs/figures/camvid_refine.png

Every column is what ``affseg semantic`` writes: ``--weights RUN/weights.pt`` with
``--upsample bilinear`` (the refiners' start), then with ``--refine FILE``. Void ground
truth is black.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from affseg.data.io import atomic_write
from affseg.methods.wsss import load_weights, semantic


def colourise(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8; indices outside the palette are black."""
    out = np.zeros((*labels.shape, 3), np.uint8)
    ok = (labels >= 0) & (labels < len(colours))
    out[ok] = colours[labels[ok]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="folder of an `affseg train wsss` run")
    ap.add_argument("--naive", required=True, help="refiner file of --geometry euclidean")
    ap.add_argument("--ham", required=True, help="refiner file of --geometry hyperbolic")
    ap.add_argument("--camvid", required=True, help="the CamVid folder (val/, valannot/)")
    ap.add_argument("--images", type=int, nargs="+", default=[3, 35, 70])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    weights = Path(args.run) / "weights.pt"
    colours = np.array(load_weights(weights)["meta"]["colours"], np.uint8)
    names = sorted(p for p in (Path(args.camvid) / "val").iterdir() if p.is_file())
    rows = []
    for i in args.images:
        rgb = np.asarray(Image.open(names[i]).convert("RGB"))
        gt = np.asarray(Image.open(Path(args.camvid) / "valannot" / f"{names[i].stem}.png"))
        cols = [rgb, colourise(gt.astype(np.int64), colours)]
        cols.append(colourise(semantic(rgb, weights=weights, upsample="bilinear"), colours))
        for ref in (args.naive, args.ham):
            cols.append(colourise(semantic(rgb, weights=weights, refine=ref), colours))
        rows.append(np.concatenate(cols, axis=1))
    grid = np.concatenate(rows, axis=0)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 24), "white")
    canvas.paste(Image.fromarray(grid), (0, 24))
    draw = ImageDraw.Draw(canvas)
    width = grid.shape[1] // 5
    titles = ("image", "ground truth", "head alone", "naive refinement", "HAM refinement")
    for j, title in enumerate(titles):
        draw.text((j * width + 6, 6), title, fill="black")
    atomic_write(Path(args.out), lambda tmp: canvas.save(tmp, format="PNG"))
    print(args.out)


if __name__ == "__main__":
    main()
