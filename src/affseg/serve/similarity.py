"""Per-image neural-diffusion similarity with everything but the clicked row cached.

A click asks for one row of ``K_D = exp(-tau D_t)`` brought to image resolution by the
network's feature-attentional interpolation (the ``affseg similarity --features ndd``
map, seed 001 Fig. 2). The interpolation is linear in the map and its attention weights
depend only on the image, so :class:`SimilarityField` computes the diffusion embedding
and the attention weights of every interpolation stage once; a click is then one kernel
row on the grid (a dot product with the embedding) and two 5 x 5 local operators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import InputError

#: Images with a shorter side are enlarged to this for the embedding (grid >= 12 x 12).
MIN_SIDE = 96

#: Most pixels a similarity field works on (after the enlargement of a small image).
MAX_WORK_PIXELS = 1 << 20

#: Largest ratio of the longer to the shorter image side a similarity field accepts: the
#: enlargement of a thin strip to :data:`MIN_SIDE` would otherwise grow without bound.
MAX_ASPECT = 32

#: Peak memory of a field per working pixel (measured: 0.8-1.6 kB on 96 x 96 ... 800 x 800
#: and 96 x 3200 images) and fixed part, for :func:`field_bytes`.
FIELD_BYTES_PER_PIXEL = 1800
FIELD_BYTES_FIXED = 32 << 20


def field_working_size(
    height: int, width: int, max_pixels: int = MAX_WORK_PIXELS
) -> tuple[int, int]:
    """The (height, width) a :class:`SimilarityField` of an image works at.

    An image with a shorter side under :data:`MIN_SIDE` is enlarged so that this side is
    :data:`MIN_SIDE`; the working size is bounded in both sides: the aspect ratio by
    :data:`MAX_ASPECT` and the pixel count by ``max_pixels``.

    Parameters
    ----------
    height, width : int
        The image's size.
    max_pixels : int
        Bound on the working pixel count.

    Returns
    -------
    tuple of int

    Raises
    ------
    InputError
        The image is too elongated or the working size exceeds ``max_pixels``.

    Examples
    --------
    >>> field_working_size(40, 50)
    (96, 120)
    >>> field_working_size(400, 600)
    (400, 600)
    >>> field_working_size(2, 800)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: the image is 800 x 2 pixels (aspect ratio 400:1); ...
    """
    h, w = int(height), int(width)
    if h < 1 or w < 1:
        raise InputError(f"the image is {w} x {h} pixels: empty")
    ratio = max(h, w) / min(h, w)
    if ratio > MAX_ASPECT:
        raise InputError(
            f"the image is {w} x {h} pixels (aspect ratio {ratio:.0f}:1); the similarity map "
            f"needs an aspect ratio of at most {MAX_ASPECT}:1"
        )
    if min(h, w) < MIN_SIDE:
        s = MIN_SIDE / min(h, w)
        h, w = max(MIN_SIDE, round(h * s)), max(MIN_SIDE, round(w * s))
    if h * w > max_pixels:
        raise InputError(
            f"the similarity map of a {width} x {height} image would work on {w} x {h} "
            f"pixels, more than this server's bound of {max_pixels:,}"
        )
    return h, w


def field_bytes(height: int, width: int, max_pixels: int = MAX_WORK_PIXELS) -> int:
    """Estimated peak memory (bytes) of building the :class:`SimilarityField` of an image.

    Parameters
    ----------
    height, width : int
        The image's size.
    max_pixels : int
        As in :func:`field_working_size`.

    Returns
    -------
    int

    Raises
    ------
    InputError
        As :func:`field_working_size`.

    Examples
    --------
    >>> field_bytes(400, 600) // 2**20
    443
    """
    h, w = field_working_size(height, width, max_pixels)
    return FIELD_BYTES_FIXED + FIELD_BYTES_PER_PIXEL * h * w


class SimilarityField:
    """Cached diffusion embedding and interpolation weights of one image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    model : SpecDiffNet, optional
        Default: the shipped model (:func:`affseg.methods.ndd.shipped_model`).
    output : NDDOutput, optional
        ``model.encode`` of this image when already computed (e.g. by the ``ndd`` method).
    max_pixels : int
        Bound on the working size (:func:`field_working_size`), checked before any work.

    Raises
    ------
    InputError
        The image is too elongated or too large (:func:`field_working_size`).
    """

    def __init__(
        self,
        rgb: np.ndarray,
        model: Any | None = None,
        output: Any = None,
        max_pixels: int = MAX_WORK_PIXELS,
    ) -> None:
        from affseg.affinity.graph import LocalOperator, local_sq_distances, valid_mask
        from affseg.methods.ndd import _image_tensor, shipped_model

        self.size = (int(rgb.shape[0]), int(rgb.shape[1]))
        # bounded in both sides before anything is allocated
        wh, ww = field_working_size(*self.size, max_pixels=max_pixels)
        net = shipped_model() if model is None else model
        work = rgb
        if (wh, ww) != self.size and output is None:
            # the diffusion embedding needs more grid nodes than eigenvectors: work on an
            # enlarged copy, the map comes back at the image's own size
            from PIL import Image

            work = np.asarray(Image.fromarray(rgb).resize((ww, wh), Image.Resampling.BICUBIC))
        x = _image_tensor(work)
        with torch.no_grad():
            out = net.encode(x) if output is None else output
            self.embedding = out.embedding[0].detach().float().contiguous()  # (N, E)
            self.sq_norms = (self.embedding * self.embedding).sum(-1)
            self.tau = float(out.tau)
            self.grid = tuple(int(v) for v in out.grid)
            # the stages of net.upsample: stride 8 -> 4 -> 2 guided by [f4, f2]
            guides = [out.guide[1].float(), out.guide[0].float()]
            gammas = [float(g) for g in net.interp.gammas[-len(guides) :]]
            window = int(net.interp.window)
            self.stages: list[tuple[int, int, list[Any]]] = []
            h, w = self.grid
            for g, gam in zip(guides, gammas, strict=True):
                c, hh, ww = g.shape[1:]
                if hh % h or ww % w:
                    raise InputError(f"guide {hh}x{ww} is not an integer multiple of {h}x{w}")
                sy, sx = hh // h, ww // w
                coarse = F.interpolate(g, size=(h, w), mode="bilinear", align_corners=False)
                mask = valid_mask(h, w, window, g.device)
                ops = []
                for a in range(sy):
                    for b in range(sx):
                        gp = g[:, :, a::sy, b::sx].contiguous()
                        d = local_sq_distances(gp, window, other=coarse) / c
                        logits = torch.where(mask, -gam * d, torch.full((), -math.inf))
                        ops.append(LocalOperator(torch.softmax(logits, 1), window))
                self.stages.append((sy, sx, ops))
                h, w = hh, ww

    @property
    def nbytes(self) -> int:
        """Approximate memory held (for the byte-bounded cache)."""
        total = self.embedding.numel() * 4 * 2
        for _, _, ops in self.stages:
            for op in ops:
                total += op.coef.numel() * op.coef.element_size()
        return int(total)

    def node(self, y: int, x: int) -> int:
        """Grid node (row-major) of image pixel (y, x)."""
        h, w = self.grid
        h_img, w_img = self.size
        return min(h - 1, int(y * h / h_img)) * w + min(w - 1, int(x * w / w_img))

    def row(self, y: int, x: int) -> np.ndarray:
        """Similarity of pixel (y, x) to every pixel, shape (H, W), values in [0, 1]."""
        h_img, w_img = self.size
        if not (0 <= y < h_img and 0 <= x < w_img):
            raise InputError(f"pixel ({y}, {x}) is outside the {h_img} x {w_img} image")
        i = self.node(y, x)
        with torch.no_grad():
            e = self.embedding
            d = (self.sq_norms[i] + self.sq_norms - 2.0 * (e @ e[i])).clamp_min(0.0)
            maps = torch.exp(-self.tau * d).reshape(1, *self.grid, 1)  # (B, h, w, M)
            h, w = self.grid
            for sy, sx, ops in self.stages:
                phases = [op.apply(maps) for op in ops]  # each (1, h, w, 1)
                maps = torch.stack(phases, 1).reshape(1, sy, sx, h, w, 1)
                maps = maps.permute(0, 3, 1, 4, 2, 5).reshape(1, h * sy, w * sx, 1)
                h, w = h * sy, w * sx
            fine = maps.reshape(1, 1, h, w)
            if (h, w) != (h_img, w_img):
                fine = F.interpolate(
                    fine, size=(h_img, w_img), mode="bilinear", align_corners=False
                )
        return fine[0, 0].numpy()


class CapturingModel:
    """Wraps a spec-diff-net for ``ndd_hierarchy(model=...)`` and keeps its last encoding.

    The ``ndd`` method encodes the image anyway; keeping that output lets the similarity
    field skip a second pass of the network.
    """

    def __init__(self, net: Any) -> None:
        self.net = net
        self.output: Any = None
        self.shape: tuple[int, ...] | None = None

    def encode(self, images: torch.Tensor) -> Any:
        self.output = self.net.encode(images)
        self.shape = tuple(images.shape)
        return self.output

    def upsample(self, maps: torch.Tensor, out: Any, size: Any = None) -> torch.Tensor:
        return self.net.upsample(maps, out, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.net, name)
