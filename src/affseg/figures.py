"""Figures from the command line: a segmentation panel and covering-vs-segments curves.

* :func:`segment_figure` (``affseg segment --figure``): one PNG panel per image: the
  photo and its boundaries at three levels of the hierarchy (top row), the photo with three
  pixels marked and their neural-diffusion similarity maps (bottom row, as seed 001 Fig. 2).
  Composed with numpy and Pillow.
* :func:`covering_curve` / :func:`plot_covering_curves` (``affseg eval --plot``):
  segmentation covering against the mean number of segments, one curve per method, over the
  thresholds of the region benchmark. Needs matplotlib (``pip install affseg[plot]``).

Examples
--------
>>> import numpy as np
>>> from affseg.grouping.hierarchy import Hierarchy
>>> rgb = np.zeros((60, 80, 3), np.uint8)
>>> lab = np.ones((60, 80), np.int32)
>>> lab[:, 40:] = 2
>>> sims = np.zeros((3, 60, 80))
>>> segment_figure(rgb, Hierarchy([lab]), similarity=sims).shape
(170, 338, 3)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from affseg.errors import InputError

#: Colours of the marked pixels (one per similarity map).
PIXEL_COLOURS = ((0, 255, 255), (255, 0, 255), (80, 255, 80))
#: Default working resolution of :func:`segment_figure`'s similarity maps: a larger image is
#: downscaled to this longer side before the spec-diff-net runs (``affseg segment``'s
#: default working side), so the figure costs bounded memory at any image size.
FIGURE_WORKING_SIDE = 1024


def pick_levels(n_segments: Sequence[int], k: int = 3, max_segments: int = 300) -> list[int]:
    """``k`` level indices spread from fine to coarse (levels with 2..max_segments segments).

    Examples
    --------
    >>> pick_levels([800, 400, 200, 100, 50, 20, 8, 3, 1])
    [2, 4, 7]
    """
    counts = list(n_segments)
    cand = [i for i, c in enumerate(counts) if 2 <= c <= max_segments] or list(range(len(counts)))
    if len(cand) <= k:
        return cand
    pos = np.linspace(0, len(cand) - 1, k).round().astype(int)
    return [cand[p] for p in pos]


def pick_pixels(labels: np.ndarray, k: int = 3) -> list[tuple[int, int]]:
    """One pixel deep inside each of the ``k`` largest segments of ``labels`` (H, W)."""
    from scipy import ndimage

    lab = np.asarray(labels)
    ids, sizes = np.unique(lab, return_counts=True)
    out: list[tuple[int, int]] = []
    for i in ids[np.argsort(-sizes)][:k]:
        dist = ndimage.distance_transform_edt(np.pad(lab == i, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        out.append((int(y), int(x)))
    h, w = lab.shape
    fallback = [(h // 3, w // 3), (h // 2, 2 * w // 3), (2 * h // 3, w // 4)]
    while len(out) < k:
        out.append(fallback[len(out)])
    return out


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _caption(panel: np.ndarray, text: str, height: int = 22) -> np.ndarray:
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (panel.shape[1], height), (255, 255, 255))
    ImageDraw.Draw(strip).text((4, 3), text, fill=(0, 0, 0), font=_font(height - 8))
    return np.concatenate([np.asarray(strip), panel], 0)


def _mark(img: np.ndarray, y: int, x: int, colour: tuple[int, int, int]) -> None:
    r = max(3, min(img.shape[:2]) // 70)
    y0, y1 = max(0, y - r), min(img.shape[0], y + r + 1)
    x0, x1 = max(0, x - r), min(img.shape[1], x + r + 1)
    img[y0:y1, x0:x1] = (0, 0, 0)
    img[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = colour


def _grid(rows: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    h = max(p.shape[0] for row in rows for p in row)
    w = max(p.shape[1] for row in rows for p in row)
    ncol = max(len(row) for row in rows)
    out = np.full((len(rows) * (h + gap) - gap, ncol * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, p in enumerate(row):
            y, x = r * (h + gap), c * (w + gap)
            out[y : y + p.shape[0], x : x + p.shape[1]] = p
    return out


def segment_figure(
    image: np.ndarray,
    hier: Any,
    *,
    pixels: Sequence[tuple[int, int]] | None = None,
    levels: Sequence[int] | None = None,
    similarity: np.ndarray | None = None,
    max_side: int = 400,
    working_side: int | None = FIGURE_WORKING_SIDE,
) -> np.ndarray:
    """The ``--figure`` panel of one segmented image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    hier : Hierarchy
    pixels : sequence of (row, col), optional
        Pixels (of the image) whose similarity maps are shown (default: one deep inside each
        of the three largest segments of the middle shown level).
    levels : sequence of int, optional
        Level indices whose boundaries are shown (default :func:`pick_levels`).
    similarity : ndarray, shape (len(pixels), H, W), optional
        Precomputed maps in [0, 1]; default: the shipped spec-diff-net
        (:func:`affseg.methods.similarity.ndd_similarity`).
    max_side : int
        Each panel is shrunk to this long side.
    working_side : int, optional
        Without ``similarity``: an image whose longer side exceeds this (default
        :data:`FIGURE_WORKING_SIDE`) is downscaled to it before the spec-diff-net computes
        the maps (at that resolution, then shrunk to the panels), so memory stays bounded;
        ``None``: the whole image, after :func:`affseg.memory.check_memory` accepts the
        estimate of :func:`affseg.methods.similarity.similarity_memory`.

    Returns
    -------
    ndarray, shape (H', W', 3), uint8
        Two rows of four captioned panels.

    Raises
    ------
    InputError
        Mismatched hierarchy, levels, pixels or similarity; an estimated peak memory above
        ``$AFFSEG_MAX_MEMORY_GB`` (``working_side=None`` only).

    See the module's Examples.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from affseg.data.io import as_rgb
    from affseg.methods.similarity import heat, ndd_similarity

    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    if hier.shape != (h, w):
        raise InputError(f"hierarchy is {hier.shape} but the image is {(h, w)}")
    counts = hier.n_segments
    lv = list(levels) if levels is not None else pick_levels(counts)
    for i in lv:
        if not 0 <= i < len(hier.levels):
            raise InputError(f"level {i} outside 0..{len(hier.levels) - 1}")
    if pixels is not None:
        px = [(int(y), int(x)) for y, x in pixels]
    else:  # levels of an upsampled hierarchy are at its working resolution: scale back
        lab_mid = hier.levels[lv[len(lv) // 2]]
        lh, lw = lab_mid.shape
        px = [
            (min(h - 1, int((y + 0.5) * h / lh)), min(w - 1, int((x + 0.5) * w / lw)))
            for y, x in pick_pixels(lab_mid)
        ]
    for y, x in px:
        if not (0 <= y < h and 0 <= x < w):
            raise InputError(f"pixel ({y}, {x}) is outside the {h} x {w} image")
    if similarity is not None:
        sims = np.asarray(similarity)
        if sims.shape != (len(px), h, w):
            raise InputError(f"similarity has shape {sims.shape}; expected {(len(px), h, w)}")
    elif working_side and max(h, w) > working_side:
        # maps at the working resolution only: they are shrunk to the panels below
        from affseg.methods import working_image

        work = working_image(rgb, int(working_side))
        hw, ww = work.shape[:2]
        px_work = [
            (min(hw - 1, int((y + 0.5) * hw / h)), min(ww - 1, int((x + 0.5) * ww / w)))
            for y, x in px
        ]
        sims = ndd_similarity(work, px_work, working_side=None)
    else:
        if not working_side:
            from affseg.memory import check_memory
            from affseg.methods.similarity import similarity_memory

            check_memory(
                similarity_memory("ndd", (h, w), len(px), working_side=None),
                f"the figure's similarity maps of a {w} x {h} image",
                f"use a working side (e.g. {FIGURE_WORKING_SIDE}, the default)",
            )
        sims = ndd_similarity(rgb, px, working_side=None)

    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))

    def fit(a: np.ndarray) -> np.ndarray:  # to the panel size (from any resolution)
        if a.shape[:2] == (size[1], size[0]):
            return a
        return np.array(Image.fromarray(a).resize(size, Image.Resampling.LANCZOS))

    small = fit(rgb)
    top = [_caption(small, "image")]
    for i in lv:
        lab = np.asarray(Image.fromarray(hier.levels[i].astype(np.int32)).resize(size, 0))
        pic = (0.55 * small + 0.45 * 255).astype(np.uint8)
        pic[find_boundaries(lab, mode="inner")] = (220, 20, 20)
        top.append(_caption(pic, f"level {i}: {counts[i]} segments"))
    marked = np.array(small)
    bottom = []
    for k, ((y, x), sim) in enumerate(zip(px, sims, strict=True)):
        colour = PIXEL_COLOURS[k % len(PIXEL_COLOURS)]
        yy, xx = min(size[1] - 1, int(y * s)), min(size[0] - 1, int(x * s))
        _mark(marked, yy, xx, colour)
        hm = fit(heat(sim)).copy()
        _mark(hm, yy, xx, colour)
        bottom.append(_caption(hm, f"similarity of ({y}, {x})"))
    bottom.insert(0, _caption(marked, "pixels"))
    return _grid([top, bottom])


# ---------------------------------------------------------------------- eval curves
def covering_curve(stats: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Dataset covering and mean segment count per threshold from per-image statistics.

    Parameters
    ----------
    stats : sequence of dict
        What :meth:`affseg.metrics.region.RegionBenchmark.update` returned per image
        (``cntR`` (T,), ``sumR``, ``n_segments`` (T,)).

    Returns
    -------
    dict
        ``segments`` (T,) mean number of segments and ``covering`` (T,) dataset covering
        (sum of cntR / sum of sumR, as the covering ODS), fine -> coarse as scored.
    """
    if not stats:
        raise InputError("no image was scored")
    cnt = np.sum([np.asarray(s["cntR"], dtype=np.float64) for s in stats], axis=0)
    total = float(sum(float(s["sumR"]) for s in stats))
    seg = np.mean([np.asarray(s["n_segments"], dtype=np.float64) for s in stats], axis=0)
    return {"segments": seg.tolist(), "covering": (cnt / max(total, 1e-12)).tolist()}


def plot_covering_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> None:
    """Write covering-vs-number-of-segments curves (log x axis) as a PNG.

    Parameters
    ----------
    curves : mapping name -> {"segments": [...], "covering": [...]}
    path : path-like
        Output PNG (written atomically).
    title : str, optional
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'affseg[plot]'") from None
    from affseg.data.io import atomic_write

    if not curves:
        raise InputError("no curves to plot")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name, c in curves.items():
        seg = np.asarray(c["segments"], dtype=np.float64)
        cov = np.asarray(c["covering"], dtype=np.float64)
        if seg.shape != cov.shape or seg.size == 0:
            raise InputError(f"curve {name!r}: segments and covering differ in length")
        order = np.argsort(seg, kind="stable")
        seg, cov = seg[order], cov[order]
        keep = seg >= 1
        i = int(np.argmax(cov))
        label = f"{name} (ODS {cov[i]:.3f} at {seg[i]:.1f})"
        (line,) = ax.plot(seg[keep], cov[keep], marker=".", ms=3, lw=1.5, label=label)
        ax.plot([seg[i]], [cov[i]], "o", color=line.get_color(), ms=6)
    ax.set_xscale("log")
    ax.set_xlabel("mean number of segments")
    ax.set_ylabel("segmentation covering")
    ax.set_ylim(0, 1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="dot: covering ODS at mean segments", fontsize=8, title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def load_curves(paths: Sequence[str | os.PathLike[str]]) -> dict[str, dict[str, list[float]]]:
    """Curves of earlier ``affseg eval --json`` results (named by their method or file)."""
    out: dict[str, dict[str, list[float]]] = {}
    for p in paths:
        path = Path(p)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read eval results {path}: {exc}") from None
        if not isinstance(data, dict) or "curve" not in data:
            raise InputError(f"{path} has no 'curve' (write it with affseg eval --json)")
        name = (data.get("source") or {}).get("method") or path.stem
        while name in out:
            name = f"{name} ({path.stem})"
        out[name] = data["curve"]
    return out
