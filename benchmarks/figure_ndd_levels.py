"""README figure: the shipped ``ndd`` hierarchy on two scikit-image photos.

Each row: the photo, then the finest level, the default level (height 0.87) and a coarser
level, painted with segment mean colours. Writes ``docs/figures/ndd_levels.png``::

    python benchmarks/figure_ndd_levels.py
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import data

from affseg.data.io import atomic_write
from affseg.grouping.visualize import overlay
from affseg.methods.ndd import ndd_hierarchy

OUT = "docs/figures/ndd_levels.png"
TILE_HEIGHT = 200


def _tile(image: np.ndarray) -> np.ndarray:
    """Resize to the tile height and add a 2-pixel white frame."""
    w = int(round(image.shape[1] * TILE_HEIGHT / image.shape[0]))
    t = np.asarray(Image.fromarray(image).resize((w, TILE_HEIGHT), Image.LANCZOS))
    return np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255)


def main() -> None:
    rows = []
    for name in ("coffee", "astronaut"):
        img = getattr(data, name)()
        if name == "astronaut":
            img = np.ascontiguousarray(img[::2, ::2][:, :384])
        hier = ndd_hierarchy(img)
        coarse = hier.default_level + (len(hier.levels) - hier.default_level) // 2
        picks = [0, hier.default_level, min(len(hier.levels) - 1, coarse)]
        print(name, "segments:", [int(hier.levels[i].max()) for i in picks])
        rows.append(
            np.concatenate([_tile(img)] + [_tile(overlay(img, hier.levels[i])) for i in picks], 1)
        )
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    figure = Image.fromarray(np.concatenate(rows, 0)).quantize(
        colors=128, method=Image.Quantize.MEDIANCUT
    )
    atomic_write(OUT, lambda tmp: figure.save(tmp, format="PNG", optimize=True))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
