"""Write MSRC-v2 (all 23 classes) into affseg's canonical segmentation layout.

    python benchmarks/make_msrc23_layout.py OUT [--data-root ROOT]

A weakly supervised instance of the layout that ``affseg.data.segdata.open_dataset``
reads, made from ``MSRC_v2/`` under the data root (``$AFFSEG_DATA`` or ``../shared/data``;
read through :func:`affseg.data.segdata.open_msrc`, vocabulary ``msrc23``)::

    OUT/classes.txt            the 23 classes, 'name r g b' (MSRC-v2's colours; horse and
                               mountain are classes here, unlike MSRC-21)
    OUT/images/train/<id>.png  the 298 train photos, copied byte for byte
    OUT/images/val/<id>.png    the 57 val photos
    OUT/masks/val/<id>.png     val class maps: palette PNGs, index = class (0..22) with
                               the classes' colours, 255 = void (ignore)
    OUT/tags.csv               train image-level labels 'id,name;name;...', the non-void
                               classes of each image's ground truth

The train split has **no masks**: a method trained on it sees images and tags only.
The result is checked by reopening it (``validate`` of both splits) before the script ends.

OUT is created if needed. The script refuses to write into a non-empty folder it did not
create (it marks its folders with a ``.msrc23-layout`` file); it rewrites one it did.
Exit status 0 on success, 2 with one ``error:`` line otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from affseg.data.io import atomic_write
from affseg.data.segdata import open_dataset, open_msrc
from affseg.errors import AffsegError, InputError

#: The file that marks a folder written by this script (rewriting it is allowed).
MARKER = ".msrc23-layout"


def check_output(out: Path) -> None:
    """Refuse ``out`` unless it is new, empty, or a folder this script wrote."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(
            f"{out} is not empty and was not written by this script (no {MARKER} in it): "
            "give a new or empty folder"
        )


def prepare_output(out: Path) -> None:
    """Create ``out`` and mark it, or clear what this script wrote there before."""
    check_output(out)
    if (out / MARKER).is_file():
        for sub in ("images", "masks"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for name in ("classes.txt", "tags.csv"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by benchmarks/make_msrc23_layout.py\n")


def write_palette_mask(path: Path, mask: np.ndarray, colours: np.ndarray) -> None:
    """Save a class map (H, W) of 0..K-1 and 255 as a palette PNG with the class colours."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colours)] = colours
    im = Image.fromarray(mask.astype(np.uint8))  # mode L
    im.putpalette(palette.ravel().tolist())  # L -> P, indices kept
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output folder (new, empty, or written by this script)")
    ap.add_argument("--data-root", type=Path, default=None, help="folder holding MSRC_v2/")
    args = ap.parse_args(argv)
    try:
        check_output(args.out)
        ds = open_msrc(args.data_root, vocabulary="msrc23")  # MSRC_v2 found: now write
        prepare_output(args.out)
        out = args.out
        lines = [
            f"{n} {r} {g} {b}" for n, (r, g, b) in zip(ds.classes, ds.colours.tolist(), strict=True)
        ]
        (out / "classes.txt").write_text("\n".join(lines) + "\n")
        tag_rows = ["# MSRC-v2 train image-level labels (non-void classes of the ground truth)"]
        for split in ("train", "val"):
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            for s in ds.samples(split):
                shutil.copyfile(s.image, out / "images" / split / f"{s.stem}{s.image.suffix}")
                if split == "val":
                    write_palette_mask(
                        out / "masks" / split / f"{s.stem}.png", ds.mask(split, s.stem), ds.colours
                    )
                else:
                    names = ";".join(ds.classes[c] for c in ds.tags(split, s.stem))
                    tag_rows.append(f"{s.stem},{names}")
        (out / "tags.csv").write_text("\n".join(tag_rows) + "\n")
        check = open_dataset(out)
        reports = [check.validate(split) for split in ("train", "val")]
    except AffsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in reports:
        print(f"{r.split}: {r.num_images} images, masks: {'yes' if r.has_masks else 'no'}")
    print(f"wrote {out} ({check.num_classes} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
