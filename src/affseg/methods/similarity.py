"""Diffusion-similarity maps of a few pixels (like seed 001, Fig. 2), as arrays and figures.

``colour``: the graph is built on a grid of colour + position features (CIE Lab / 8 and grid
position / 8, long side ``grid`` nodes, aspect ratio kept) with the diffusion engine of
:mod:`affseg.affinity.diffusion`; each selected pixel's K_D row is brought back to image
resolution by feature-attentional interpolation guided by the Lab image. ``ndd``: the
trained spec-diff-net (:mod:`affseg.models.spec_diff_net`) instead. :func:`compose` lays
out the image with the pixels (red squares) followed by one heat map per pixel; ``affseg
similarity`` (:mod:`affseg.cli.similarity`) writes it.

An image whose longer side exceeds ``working_side`` (default 1024) is processed at that
longer side and its maps upsampled (bilinear) to full resolution; :func:`similarity_memory`
estimates the peak from the size, for the memory rule of :mod:`affseg.memory`.

Examples
--------
>>> import numpy as np
>>> img = np.zeros((24, 32, 3), np.uint8)
>>> colour_similarity(img, [(3, 4)], grid=12, mu=0.5, t=10.0, tau=0.6, k=5, n_eig=8).shape
(1, 24, 32)
>>> ndd_similarity(np.zeros((96, 128, 3), np.uint8), [(10, 10)], working_side=128).shape
(1, 96, 128)
>>> ndd_similarity(np.zeros((300, 400, 3), np.uint8), [(10, 10)], working_side=64)
Traceback (most recent call last):
...
affseg.errors.InputError: image of 400 x 300 pixels is too small at working side 64 ...
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import InputError
from affseg.methods import DEFAULT_WORKING_SIDE as _DEFAULT_SIDE
from affseg.methods import min_side, working_image

#: Default working side: the longer side the maps are computed at (``affseg segment``'s
#: default); larger images are downscaled first and their maps upsampled.
DEFAULT_WORKING_SIDE = _DEFAULT_SIDE
#: Smallest working side (the spec-diff-net's grid needs 64 x 64 pixels).
MIN_WORKING_SIDE = min_side("ndd")
#: Memory model (bytes), fitted to the peak RSS (``ru_maxrss``) of ``affseg similarity`` in a
#: child process: fixed cost; per pixel of the working image (``ndd``: backbone pyramid,
#: grid, interpolation; ``colour``: Lab image and the attention steps); per grid node and
#: window cell (``colour``: the k x k affinities and their temporaries); per full-resolution
#: pixel and per map (float32 map, heat map, figure panels, PNG). Measured: ``ndd`` 0.57 /
#: 0.83 / 1.63 GB on 640 x 480 / 1024 x 768 / 1600 x 1200 (no bound) and 1.04 GB on
#: 4000 x 3000 at the default working side (the model gives 0.68 / 1.04 / 1.88 / 1.53);
#: ``colour`` 0.51 / 0.81 / 1.33 / 1.14 GB (model 0.70 / 1.03 / 1.82 / 1.52), 2.58 GB with
#: ``--grid 512`` on 640 x 480 (model 2.94).
MEMORY_MODEL: dict[str, float] = {
    "base": 0.45e9,
    "ndd_work_pixel": 700.0,
    "colour_work_pixel": 650.0,
    "node_cell": 40.0,
    "full_pixel": 12.0,
    "full_pixel_map": 8.0,
}


def _lab(rgb: np.ndarray) -> torch.Tensor:
    from skimage.color import rgb2lab

    return torch.from_numpy(rgb2lab(rgb).astype(np.float32)).permute(2, 0, 1)[None] / 8.0


def _working(
    rgb: np.ndarray, pixels: list[tuple[int, int]], working_side: int | None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The working image (longer side ``working_side``, Lanczos) and the pixels on it."""
    h, w = rgb.shape[:2]
    if not working_side or max(h, w) <= working_side:
        return rgb, list(pixels)

    work = working_image(rgb, int(working_side))
    hw, ww = work.shape[:2]
    px = [
        (min(hw - 1, int((y + 0.5) * hw / h)), min(ww - 1, int((x + 0.5) * ww / w)))
        for y, x in pixels
    ]
    return work, px


def _to_full(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (M, h, w) -> (M, H, W) float32, bilinear (no-op at the same size)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()


def colour_similarity(
    rgb: np.ndarray,
    pixels: list[tuple[int, int]],
    grid: int,
    mu: float,
    t: float,
    tau: float,
    k: int,
    n_eig: int,
    working_side: int | None = DEFAULT_WORKING_SIDE,
) -> np.ndarray:
    """Similarity maps (M, H, W) in [0, 1] from colour + position features.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    pixels : list of (row, col)
        M pixels of the image.
    grid, mu, t, tau, k, n_eig
        Long side of the node grid and the diffusion parameters (see the module doc).
    working_side : int, optional
        Longer side (pixels) the maps are computed at when the image is larger (Lanczos
        downscale); they are then upsampled bilinearly to (H, W). ``None``: no bound.

    Returns
    -------
    ndarray, shape (M, H, W), float32

    Examples
    --------
    >>> img = np.zeros((24, 32, 3), np.uint8)
    >>> colour_similarity(img, [(3, 4)], grid=12, mu=0.5, t=10.0, tau=0.6, k=5, n_eig=8).shape
    (1, 24, 32)
    """
    from affseg.affinity.diffusion import diffusion_map
    from affseg.affinity.interpolation import attention_upsample

    full = (int(rgb.shape[0]), int(rgb.shape[1]))
    rgb, pixels = _working(rgb, pixels, working_side)
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
        # coarse-to-fine by factors of 2, then to the image size; the gather method keeps
        # memory O(pixels x window^2) (the phases method's distances cost O(pixels x width):
        # 16 GB for a 1024 x 768 image whose size is the grid's times a power of two)
        while maps.shape[-2] * 2 <= h_img and maps.shape[-1] * 2 <= w_img:
            size = (maps.shape[-2] * 2, maps.shape[-1] * 2)
            guide = F.interpolate(lab, size=size, mode="area")
            maps = attention_upsample(maps, guide, 2.0, method="gather")
        maps = attention_upsample(maps, lab, 2.0, method="gather")
    return _to_full(maps[0].numpy(), full)


def ndd_similarity(
    rgb: np.ndarray,
    pixels: list[tuple[int, int]],
    working_side: int | None = DEFAULT_WORKING_SIDE,
) -> np.ndarray:
    """Similarity maps (M, H, W) from the trained spec-diff-net.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    pixels : list of (row, col)
        M pixels of the image.
    working_side : int, optional
        Longer side (pixels) the network sees when the image is larger (Lanczos
        downscale); the maps are then upsampled bilinearly to (H, W). ``None``: no bound
        (memory grows with the pixel count).

    Returns
    -------
    ndarray, shape (M, H, W), float32

    Raises
    ------
    InputError
        The (working) image is too small for the network's grid.

    Examples
    --------
    >>> ndd_similarity(np.zeros((96, 128, 3), np.uint8), [(10, 10)], working_side=128).shape
    (1, 96, 128)
    """
    from affseg.backbones.efficientnet_lite import snapped_size
    from affseg.models.spec_diff_net import load_pretrained

    full = (int(rgb.shape[0]), int(rgb.shape[1]))
    rgb, pixels = _working(rgb, pixels, working_side)
    model = load_pretrained()
    hs, ws = snapped_size(*rgb.shape[:2])
    n_eig = int(model.config.get("n_eig", 50))
    if (hs // 8) * (ws // 8) < n_eig:
        at = f" at working side {working_side}" if rgb.shape[:2] != full else ""
        raise InputError(
            f"image of {full[1]} x {full[0]} pixels is too small{at} for the spec-diff-net: "
            f"its 8-pixel grid needs at least {n_eig} nodes (raise --working-side)"
        )
    img = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        out = model.encode(img)
        h, w = out.grid
        h_img, w_img = rgb.shape[:2]
        idx = [
            min(h - 1, int(y * h / h_img)) * w + min(w - 1, int(x * w / w_img)) for y, x in pixels
        ]
        rows = model.similarity_rows(out, idx).reshape(1, len(idx), h, w)
        return _to_full(model.upsample(rows, out)[0].numpy(), full)


def similarity_memory(
    features: str,
    size: tuple[int, int],
    n_maps: int,
    working_side: int | None = DEFAULT_WORKING_SIDE,
    grid: int = 64,
    k: int = 17,
) -> float:
    """Estimated peak memory (bytes) of ``affseg similarity`` on an (H, W) image.

    ``base + work_pixel x (working pixels) + node_cell x nodes x k^2 (colour) +
    (full_pixel + full_pixel_map x M) x H W`` with the constants of :data:`MEMORY_MODEL`.

    Parameters
    ----------
    features : {"colour", "ndd"}
    size : tuple of int
        (H, W) of the image.
    n_maps : int
        Number of pixels (maps) M.
    working_side : int, optional
        As ``--working-side`` (``None``: no bound).
    grid, k : int
        ``colour``: long side of the node grid and the window size.

    Returns
    -------
    float
        Bytes.

    Examples
    --------
    >>> round(similarity_memory("ndd", (3000, 4000), 4) / 1e9, 1)
    1.5
    >>> round(similarity_memory("ndd", (3000, 4000), 4, working_side=None) / 1e9)
    9
    """
    m = MEMORY_MODEL
    h, w = float(size[0]), float(size[1])
    scale = 1.0 if not working_side or max(h, w) <= working_side else working_side / max(h, w)
    work = (h * scale) * (w * scale)
    est = m["base"] + m["full_pixel"] * h * w + m["full_pixel_map"] * n_maps * h * w
    if features == "ndd":
        return est + m["ndd_work_pixel"] * work
    g = max(h, w) * scale
    nodes = max(4.0, (grid / g) ** 2 * work) if g > 0 else 4.0
    return est + m["colour_work_pixel"] * work + m["node_cell"] * nodes * k * k


def heat(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] values (H, W) to an RGB uint8 heat map (black-red-yellow-white).

    Examples
    --------
    >>> heat(np.array([[0.0, 0.5, 1.0]])).tolist()
    [[[0, 0, 0], [255, 128, 0], [255, 255, 255]]]
    """
    v = np.clip(values, 0.0, 1.0)
    out = np.empty((*v.shape, 3), np.uint8)
    for c in range(3):  # one channel at a time: a large map costs its size, not 3x in float
        out[..., c] = (np.clip(3 * v - c, 0, 1) * 255).round()
    return out


def _mark(img: np.ndarray, y: int, x: int) -> None:
    r = max(2, min(img.shape[:2]) // 80)
    y0, y1 = max(0, y - r), min(img.shape[0], y + r + 1)
    x0, x1 = max(0, x - r), min(img.shape[1], x + r + 1)
    img[y0:y1, x0:x1] = (255, 0, 0)


def compose(rgb: np.ndarray, maps: np.ndarray, pixels: list[tuple[int, int]]) -> np.ndarray:
    """Panel row: image with marks, then one heat map per pixel (each with its mark).

    Examples
    --------
    >>> compose(np.zeros((20, 30, 3), np.uint8), np.zeros((2, 20, 30)), [(5, 5), (9, 9)]).shape
    (20, 102, 3)
    """
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


def figure_size(size: tuple[int, int], n_maps: int, height: int | None = None) -> tuple[int, int]:
    """(height, width) of the figure of :func:`compose` (optionally scaled to ``height``).

    Examples
    --------
    >>> figure_size((24, 32), 2), figure_size((24, 32), 2, height=12)
    ((24, 108), (12, 54))
    """
    h, w = int(size[0]), int(size[1])
    fig_w = (n_maps + 1) * w + 6 * n_maps
    if height is None:
        return h, fig_w
    return int(height), max(1, round(fig_w * height / h))
