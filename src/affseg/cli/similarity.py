"""``affseg similarity``: diffusion-similarity maps of a few pixels (like seed 001, Fig. 2).

::

    affseg similarity IMAGE --out fig.png [--pixels y,x ...] [--features colour|ndd]
    affseg similarity --example coffee --out similarity_coffee.png

``colour`` (default): the graph is built on a grid of colour + position features (CIE Lab
/ 8 and grid position / 8, long side ``--grid`` nodes, aspect ratio kept) with the
diffusion engine of :mod:`affseg.affinity.diffusion`; each selected pixel's K_D row is
brought back to image resolution by feature-attentional interpolation guided by the Lab
image. ``ndd``: the trained spec-diff-net (:mod:`affseg.models.spec_diff_net`) instead.
The PNG shows the image with the pixels (red squares) followed by one heat map per pixel.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``similarity`` subcommand."""
    p = sub.add_parser(
        "similarity",
        help="figure of diffusion-similarity maps of pixels",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("image", nargs="?", default=None, help="RGB image file")
    from affseg.cli.segment import EXAMPLES

    p.add_argument(
        "--example",
        choices=EXAMPLES,
        default=None,
        metavar="NAME",
        help=f"a scikit-image example photo instead of a file ({', '.join(EXAMPLES)})",
    )
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument(
        "--pixels",
        nargs="+",
        default=None,
        metavar="Y,X",
        help="image pixels (row,col); default four spread-out pixels",
    )
    p.add_argument("--features", choices=("colour", "ndd"), default="colour")
    p.add_argument("--grid", type=int, default=64, help="long side of the node grid")
    p.add_argument("--mu", type=float, default=0.5)
    p.add_argument("--t", type=float, default=10.0)
    p.add_argument("--tau", type=float, default=0.6)
    p.add_argument("--k", type=int, default=17)
    p.add_argument("--n-eig", type=int, default=50)
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help="scale the figure to this height in pixels (default: image height)",
    )
    p.set_defaults(func=run)


def parse_pixels(specs: list[str] | None, h: int, w: int) -> list[tuple[int, int]]:
    """'y,x' strings -> pixel tuples inside an (h, w) image (default: four pixels)."""
    if not specs:
        return [
            (h // 3, w // 3),
            (h // 3, 2 * w // 3),
            (2 * h // 3, w // 3),
            (2 * h // 3, 2 * w // 3),
        ]
    out = []
    for s in specs:
        try:
            y, x = (int(v) for v in s.split(","))
        except ValueError:
            raise InputError(f"pixel {s!r} must be 'row,col' integers") from None
        if not (0 <= y < h and 0 <= x < w):
            raise InputError(f"pixel {s!r} is outside the {h} x {w} image")
        out.append((y, x))
    return out


def _lab(rgb: np.ndarray) -> torch.Tensor:
    from skimage.color import rgb2lab

    return torch.from_numpy(rgb2lab(rgb).astype(np.float32)).permute(2, 0, 1)[None] / 8.0


def colour_similarity(
    rgb: np.ndarray,
    pixels: list[tuple[int, int]],
    grid: int,
    mu: float,
    t: float,
    tau: float,
    k: int,
    n_eig: int,
) -> np.ndarray:
    """Similarity maps (M, H, W) in [0, 1] from colour + position features."""
    from affseg.affinity.diffusion import diffusion_map
    from affseg.affinity.interpolation import attention_upsample

    h_img, w_img = rgb.shape[:2]
    s = grid / max(h_img, w_img)
    h, w = max(2, round(h_img * s)), max(2, round(w_img * s))
    lab = _lab(rgb)
    lab_g = F.interpolate(lab, size=(h, w), mode="area")
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    feats = torch.cat([lab_g, torch.stack([yy, xx])[None] / 8.0], 1)
    with torch.no_grad():
        res = diffusion_map(feats, mu, t, k=k, n_eig=min(n_eig, h * w), tau=tau)
        idx = [
            min(h - 1, int(y * h / h_img)) * w + min(w - 1, int(x * w / w_img)) for y, x in pixels
        ]
        maps = res.rows(idx).reshape(1, len(idx), h, w)
        # coarse-to-fine by factors of 2, then to the image size
        while maps.shape[-2] * 2 <= h_img and maps.shape[-1] * 2 <= w_img:
            size = (maps.shape[-2] * 2, maps.shape[-1] * 2)
            maps = attention_upsample(maps, F.interpolate(lab, size=size, mode="area"), 2.0)
        maps = attention_upsample(maps, lab, 2.0)
    return maps[0].numpy()


def ndd_similarity(rgb: np.ndarray, pixels: list[tuple[int, int]]) -> np.ndarray:
    """Similarity maps (M, H, W) from the trained spec-diff-net."""
    from affseg.models.spec_diff_net import load_pretrained

    model = load_pretrained()
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        out = model.encode(img)
        h, w = out.grid
        h_img, w_img = rgb.shape[:2]
        idx = [
            min(h - 1, int(y * h / h_img)) * w + min(w - 1, int(x * w / w_img)) for y, x in pixels
        ]
        rows = model.similarity_rows(out, idx).reshape(1, len(idx), h, w)
        return model.upsample(rows, out)[0].numpy()


def heat(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] values (H, W) to an RGB uint8 heat map (black-red-yellow-white)."""
    v = np.clip(values, 0.0, 1.0)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def _mark(img: np.ndarray, y: int, x: int) -> None:
    r = max(2, min(img.shape[:2]) // 80)
    y0, y1 = max(0, y - r), min(img.shape[0], y + r + 1)
    x0, x1 = max(0, x - r), min(img.shape[1], x + r + 1)
    img[y0:y1, x0:x1] = (255, 0, 0)


def compose(rgb: np.ndarray, maps: np.ndarray, pixels: list[tuple[int, int]]) -> np.ndarray:
    """Panel row: image with marks, then one heat map per pixel (each with its mark)."""
    panels = [rgb.copy()]
    for p in pixels:
        _mark(panels[0], *p)
    for m, p in zip(maps, pixels, strict=True):
        hm = heat(m)
        _mark(hm, *p)
        panels.append(hm)
    gap = np.full((rgb.shape[0], 6, 3), 255, np.uint8)
    row = [panels[0]]
    for pnl in panels[1:]:
        row += [gap, pnl]
    return np.concatenate(row, 1)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    from affseg.data.io import check_writable_file, read_image, write_png

    if (args.image is None) == (args.example is None):
        raise InputError("give either an image file or --example NAME (not both)")
    check_writable_file(args.out, "--out")
    if args.example is not None:
        from affseg.cli.segment import load_example

        rgb = load_example(args.example)
    else:
        rgb = read_image(args.image)
    pixels = parse_pixels(args.pixels, *rgb.shape[:2])
    if args.features == "ndd":
        maps = ndd_similarity(rgb, pixels)
    else:
        if args.grid < 2:
            raise InputError(f"--grid must be >= 2; got {args.grid}")
        maps = colour_similarity(
            rgb, pixels, args.grid, args.mu, args.t, args.tau, args.k, args.n_eig
        )
    fig = compose(rgb, maps, pixels)
    if args.height is not None:
        if args.height < 8:
            raise InputError(f"--height must be >= 8; got {args.height}")
        from PIL import Image

        width = max(1, round(fig.shape[1] * args.height / fig.shape[0]))
        fig = np.asarray(
            Image.fromarray(fig).resize((width, args.height), Image.Resampling.LANCZOS)
        )
    write_png(args.out, fig)
    print(f"wrote {args.out} ({len(pixels)} pixels, features={args.features})")
    return 0
