"""A 10-image semantic dataset in the canonical layout, drawn from a seed (docs and tests).

The README's "Your own data" commands run on it, so a user can try every step (train,
``affseg info``, ``affseg semantic``, ``affseg eval --task semantic``) in a minute without
downloading anything. Each image is an outdoor scene of up to 4 classes: ``sky`` above a
wavy horizon (in most images), ``grass``, ``sand`` or both below it, and in every other
image a ``ball`` (a disc); every class has its own colour distribution and texture. The
layout written (:mod:`affseg.data.segdata`)::

    DIR/classes.txt            sky 70 130 180 / grass 60 160 60 / sand 220 200 120 / ball 200 30 30
    DIR/images/train/*.png     8 photos (images/val/: 2)
    DIR/masks/train/*.png      uint8 class indices (masks/val/ likewise)
    DIR/tags.csv               image-level labels of the train images

``python -m affseg.data.toy DIR`` writes it (``--images N``, ``--seed S``).

Examples
--------
>>> import tempfile, pathlib
>>> from affseg.data.segdata import open_dataset
>>> root = write_toy_dataset(pathlib.Path(tempfile.mkdtemp()) / "toy")
>>> ds = open_dataset(data=root)
>>> ds.classes, ds.splits(), len(ds.stems("train"))
(('sky', 'grass', 'sand', 'ball'), ('train', 'val'), 8)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affseg.errors import InputError

#: The toy vocabulary: (name, (r, g, b)), line i = class i.
TOY_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("sky", (70, 130, 180)),
    ("grass", (60, 160, 60)),
    ("sand", (220, 200, 120)),
    ("ball", (200, 30, 30)),
)
#: Size (H, W) of every toy image.
TOY_SIZE = (120, 160)


def toy_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = TOY_SIZE,
    sky: bool = True,
    ground: int = 0,
    ball: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One toy photo and its class map.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the scene (horizon, ground class, ball, textures).
    size : tuple of int
        (H, W) of the image.
    sky : bool
        Sky above a wavy horizon (else a close-up of the ground).
    ground : int
        0 grass, 1 sand, 2 both on either side of a slanted border.
    ball : bool
        A ball (disc) somewhere in the picture.
    sky : bool
        Sky above a wavy horizon (else a close-up of the ground).
    ground : int
        0 grass, 1 sand, 2 both on either side of a slanted border.
    ball : bool
        A ball (disc) somewhere in the picture.

    Returns
    -------
    image : numpy.ndarray
        (H, W, 3) uint8 RGB.
    mask : numpy.ndarray
        (H, W) uint8 class indices into :data:`TOY_CLASSES`.

    Examples
    --------
    >>> img, m = toy_scene(np.random.default_rng(0))
    >>> img.shape, m.shape, set(np.unique(m)) <= {0, 1, 2, 3}
    ((120, 160, 3), (120, 160), True)
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    wave = 0.06 * h * np.sin(2 * np.pi * xx / w * rng.uniform(0.5, 2) + rng.uniform(0, 6))
    horizon = h * rng.uniform(0.3, 0.6) + wave if sky else np.full_like(xx, -1.0)
    border = w * rng.uniform(0.3, 0.7) + (yy - h / 2) * rng.uniform(-0.5, 0.5)
    below = np.where(xx < border, 1, 2) if ground == 2 else np.full(xx.shape, 1 + ground)
    mask = np.where(yy < horizon, 0, below).astype(np.uint8)
    if ball:  # on the ground or in the air
        r = rng.uniform(0.1, 0.2) * h
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 3
    colours = np.array([c for _, c in TOY_CLASSES], dtype=np.float64)
    image = colours[mask]
    image[..., :] += (yy / h * 30.0)[..., None] * (mask == 0)[..., None]  # sky gradient
    grain = rng.normal(0, 1, (h, w))
    stripes = np.sin(yy * 0.9 + rng.uniform(0, 6)) * (mask == 1)  # grass blades
    image += (14 * grain + 18 * stripes)[..., None] * (mask > 0)[..., None]
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_toy_dataset(
    dest: str | os.PathLike[str],
    num_images: int = 10,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> Path:
    """Write the toy dataset into a new (or empty) folder; returns its path.

    Parameters
    ----------
    dest : path-like
        Folder to create. An existing folder must be empty: nothing is overwritten.
    num_images : int
        Number of images (>= 4), split train / val by ``val_fraction`` (at least one each).
    seed : int
        Seed of the scenes (the same seed writes the same files).
    val_fraction : float
        Share of the images in ``val``.

    Raises
    ------
    InputError
        ``dest`` exists and is not an empty folder, or ``num_images < 4``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = write_toy_dataset(pathlib.Path(tempfile.mkdtemp()) / "t", num_images=4)
    >>> sorted(p.name for p in root.iterdir())
    ['classes.txt', 'images', 'masks', 'tags.csv']
    """
    from affseg.data.io import atomic_write, write_png

    dest = Path(dest)
    if num_images < 4:
        raise InputError(f"--images {num_images}: the toy dataset needs at least 4 images")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest} exists and is not an empty folder: choose a new one")
    rng = np.random.default_rng(seed)
    n_val = min(num_images - 1, max(1, round(num_images * val_fraction)))
    names = [name for name, _ in TOY_CLASSES]
    tags = ["stem,tags"]
    for i in range(num_images):
        split = "train" if i < num_images - n_val else "val"
        stem = f"toy{i:03d}"
        # class sets cycle so that every class is absent from some train images
        image, mask = toy_scene(rng, sky=i % 4 != 3, ground=i % 3, ball=i % 2 == 0)
        for kind, arr in (("images", image), ("masks", mask)):
            folder = dest / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            write_png(folder / f"{stem}.png", arr)
        if split == "train":
            tags.append(f"{stem}," + ";".join(names[c] for c in np.unique(mask)))
    lines = [f"{n} {r} {g} {b}" for n, (r, g, b) in TOY_CLASSES]
    atomic_write(dest / "classes.txt", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    atomic_write(dest / "tags.csv", lambda tmp: Path(tmp).write_text("\n".join(tags) + "\n"))
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m affseg.data.toy DIR [--images N] [--seed S]``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> main([str(pathlib.Path(tempfile.mkdtemp()) / "toy")])  # doctest: +ELLIPSIS
    wrote ... (8 train + 2 val images, 4 classes)
    0
    """
    p = argparse.ArgumentParser(
        prog="python -m affseg.data.toy", description=__doc__.split("\n")[0]
    )
    p.add_argument("dest", help="new folder to write")
    p.add_argument("--images", type=int, default=10, help="number of images (default 10)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        root = write_toy_dataset(args.dest, args.images, args.seed)
    except InputError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    n = args.images
    n_val = min(n - 1, max(1, round(n * 0.2)))
    print(f"wrote {root} ({n - n_val} train + {n_val} val images, {len(TOY_CLASSES)} classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
