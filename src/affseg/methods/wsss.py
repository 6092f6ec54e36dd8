"""Weakly supervised semantic segmentation with the neural diffusion distance (seed 001 §7).

Assembly of the pieces of :mod:`affseg.models.wsss_net` around the frozen networks:

- :func:`extract` runs, once per image, the frozen EfficientNet-Lite0 (all its stages) and
  the pinned spec-diff-net at the image's own working size (its size snapped to multiples
  of 16, e.g. 208 x 320 for a 213 x 320 MSRC photo; stride-8 grid 26 x 40 = 1040 nodes).
  It returns the semantic features (backbone levels at strides 8, 16, 32 and the 1280-d
  head, each at its own resolution), the diffusion embedding whose squared row distances
  are D_t (``K_D = exp(-tau D_t)``) and the interpolation guides.
- :func:`semantic` labels every pixel of a new image with one of the classes of a model:
  the shipped MSRC-21 segmenter of a method (``wsss``, ``cam`` or ``supervised``) or any
  ``affseg train wsss`` weights file (any K >= 2 classes); the result holds class indices
  0..K-1 in the model's class order (the convention of the masks). The image's class
  labels are not an input.
- Weights files describe themselves (:func:`weights_meta`): class names and colours, K,
  ignore index, method, the spec-diff-net sha256, the inference rule, a fingerprint of the
  training data and the val scores. Files written before this metadata existed (the
  shipped MSRC-21 models, ``format`` 1) get it filled from the MSRC-21 constants when
  loaded.
- :func:`pseudo_labels` turns the class scores of a trained weakly supervised network
  (``WSSSNet`` P_sg or the CAMs of ``CAMNet``) into grid label maps, restricted to the
  classes known to be present in the image.

spec-diff-net pinning: every model here is trained on the K_D of one spec-diff-net
weights file, :data:`NDD_WEIGHTS` (BSDS500-train model). Its sha256 is recorded in the
shipped weights and checked when they are loaded, so a retrained spec-diff-net cannot
silently change the inputs of the trained heads.
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affseg.errors import AffsegError, InputError
from affseg.methods import DEFAULT_SEMANTIC_METHOD, SEMANTIC_METHODS

#: spec-diff-net weights file (in ``affseg/weights/``) whose K_D the heads are trained on.
NDD_WEIGHTS = "spec_diff_net_train_only.pt"
#: sha256 of that file when the shipped heads were trained.
NDD_SHA256 = "3d7245b7d3a93f0d588bc27b1ad42d6cb72778be3afd4da94155a3c5d8a2d822"

#: Methods of :func:`semantic` and their shipped weights files (defined in
#: :mod:`affseg.methods`, which the command line reads without importing torch).
METHODS = SEMANTIC_METHODS
DEFAULT_METHOD = DEFAULT_SEMANTIC_METHOD
#: Inference rule of ``wsss`` and ``cam`` (the same for both; chosen on MSRC-21 val, see
#: BENCHMARKS.md): class filter threshold on the weak network's image classifier ...
DEFAULT_CLASS_FILTER = 0.2
#: ... and weight of the weak network's class maps fused with the segmenter.
DEFAULT_FUSE = 0.75

#: Default working resolution of :func:`semantic`: an image whose longer side exceeds it is
#: labelled at this longer side (Lanczos downscale) and its class probabilities are
#: upsampled to full resolution, so the stride-8 grid stays near the training size (MSRC
#: photos, 320 x 213, are untouched) and memory stays bounded. ``None`` / 0 lifts the bound.
DEFAULT_WORKING_SIDE = 512
#: Memory of the HAM refiner per working pixel (bytes), added to :func:`semantic_memory`
#: when ``refine`` is given. Measured: the peak RSS of :func:`semantic` with an 11-class
#: refiner rises by 1.77 GB at 512 x 384 (9.0 kB per pixel) and 0.41 GB at 256 x 192; 12 kB
#: leaves room for more classes.
REFINE_PIXEL_BYTES = 12_000.0
#: Smallest working side (pixels): the grid must hold more nodes than the 50 eigenvectors.
MIN_WORKING_SIDE = 64
#: Memory model of :func:`semantic` (bytes): fixed cost (torch, the pinned spec-diff-net,
#: the heads), per pixel of the (snapped) working image (backbone pyramid, interpolation),
#: per squared grid node (the dense K_D of the weak network and its temporaries: four
#: float32 N x N arrays at the peak) and per pixel of the full image (decoding, labels,
#: overlay, PNGs). Fitted to the peak RSS of ``affseg semantic --working-side 0`` in a child
#: process (``ru_maxrss``) on 640 x 480 ... 1200 x 900 photos (0.79, 1.41, 2.86, 5.00 GB;
#: the model gives 0.91, 1.60, 3.38, 5.83) and at the default on 4000 x 3000 (0.64 GB;
#: model 0.99).
MEMORY_MODEL: dict[str, float] = {
    "base": 0.4e9,
    "work_pixel": 300.0,
    "node_pair": 18.0,
    "full_pixel": 30.0,
}

#: Backbone levels kept as semantic features: name -> channels.
FEATURE_LEVELS: dict[str, int] = {"f8": 40, "f16": 112, "f32": 320, "head": 1280}


def weights_dir() -> Path:
    """``affseg/weights/`` of the installed package.

    Examples
    --------
    >>> weights_dir().name
    'weights'
    """
    return Path(__file__).resolve().parents[1] / "weights"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file.

    Examples
    --------
    >>> len(sha256_of(weights_dir() / NDD_WEIGHTS))
    64
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def pinned_ndd(check: bool = True) -> Any:
    """The spec-diff-net the WSSS heads are trained on (:data:`NDD_WEIGHTS`), eval mode.

    Raises
    ------
    AffsegError
        The file is missing or its sha256 differs from :data:`NDD_SHA256`.

    Examples
    --------
    >>> net = pinned_ndd()                      # doctest: +SKIP
    >>> net.config["n_eig"]                      # doctest: +SKIP
    50
    """
    from affseg.models.spec_diff_net import load_pretrained

    p = weights_dir() / NDD_WEIGHTS
    if not p.is_file():
        raise AffsegError(f"spec-diff-net weights {p} missing; the WSSS heads need them")
    if check and sha256_of(p) != NDD_SHA256:
        raise AffsegError(
            f"{p} changed (sha256 differs from the one the WSSS heads were trained with); "
            "retrain them with `affseg train wsss` or restore that file"
        )
    return load_pretrained(p).eval()


def _image_tensor(image: np.ndarray) -> Tensor:
    from affseg.data.io import as_rgb

    rgb = as_rgb(image)
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0


@torch.no_grad()
def extract(image: np.ndarray, ndd: Any | None = None, flip: bool = False) -> dict[str, Any]:
    """Frozen features of one image on its stride-8 grid.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    ndd : SpecDiffNet, optional
        Default :func:`pinned_ndd`.
    flip : bool
        Mirror the image left-right first.

    Returns
    -------
    dict
        ``f8, f16, f32, head``: float16 (C, h_s, w_s) backbone maps at strides 8, 16, 32, 32;
        ``emb``: float32 (N, Ne) diffusion embedding on the (h, w) grid (N = h w);
        ``tau``: float; ``grid``: (h, w); ``size``: (H, W);
        ``f2, f4``: float16 guides for the interpolation.

    Examples
    --------
    >>> import numpy as np
    >>> r = extract(np.zeros((213, 320, 3), np.uint8))   # doctest: +SKIP
    >>> r["grid"], tuple(r["emb"].shape)                  # doctest: +SKIP
    ((26, 40), (1040, 50))
    """
    from affseg.backbones.efficientnet_lite import snapped_size as snap_size

    net = pinned_ndd() if ndd is None else ndd
    x = _image_tensor(image)
    if flip:
        x = x.flip(-1)
    h, w = x.shape[-2:]
    hs, ws = snap_size(int(h), int(w))
    if (hs, ws) != (h, w):
        x = F.interpolate(
            x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 1)
    bb = net.backbone
    body = bb.net
    y = bb._stem(bb._check(x))
    taps = {0: "f2", 2: "f4", 4: "f8", 10: "f16", 15: "f32"}
    feats: dict[str, Tensor] = {}
    for idx, block in enumerate(body._blocks):
        y = block(y)
        if idx in taps:
            feats[taps[idx]] = y
    feats["head"] = body._swish(body._bn1(body._conv_head(y)))
    pyramid = [feats["f2"], feats["f4"], feats["f8"], feats["f16"]]
    out = net.encode_pyramid(pyramid, (int(h), int(w)))
    res: dict[str, Any] = {k: feats[k][0].half() for k in ("f8", "f16", "f32", "head")}
    res.update(
        emb=out.embedding[0].float(),
        tau=float(out.tau),
        grid=tuple(out.grid),
        size=(int(h), int(w)),
        f2=feats["f2"][0].half(),
        f4=feats["f4"][0].half(),
    )
    return res


# ----------------------------------------------------------------------------- helpers
def batch_feats(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Stack the feature levels of items with one grid size: name -> (B, C, h_s, w_s).

    Examples
    --------
    >>> import torch
    >>> it = {k: torch.zeros(c, 2, 2) for k, c in FEATURE_LEVELS.items()}
    >>> batch_feats([it, it])["head"].shape
    torch.Size([2, 1280, 2, 2])
    """
    return {k: torch.stack([it[k] for it in items]).float() for k in FEATURE_LEVELS}


def upsample_probs(
    probs: Tensor, item: dict[str, Any], ndd: Any | None = None, mode: str = "fai"
) -> Tensor:
    """Class probabilities (C, h, w) on the grid -> (C, H, W) at image resolution.

    ``mode="fai"``: the spec-diff-net's feature-attentional interpolation guided by the
    item's ``f2, f4`` backbone maps (stride 8 -> 4 -> 2), then bilinear; ``"bilinear"``:
    a plain bilinear resize.

    Examples
    --------
    >>> import torch
    >>> item = {"size": [16, 24]}                        # no guides: bilinear
    >>> upsample_probs(torch.rand(3, 2, 3), item).shape
    torch.Size([3, 16, 24])
    """
    size = (int(item["size"][0]), int(item["size"][1]))
    if mode == "bilinear" or "f2" not in item:
        return F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0]
    from affseg.models.spec_diff_net import NDDOutput

    net = pinned_ndd() if ndd is None else ndd
    out = NDDOutput(
        embedding=item["emb"][None],
        tau=torch.tensor(float(item["tau"])),
        grid=(int(item["grid"][0]), int(item["grid"][1])),
        features=torch.empty(0),
        guide=[item["f2"][None].float(), item["f4"][None].float()],
        image_size=size,
    )
    return net.upsample(probs[None].float(), out, size)[0]


def _source_index(n_out: int, n_in: int, start: int = 0, stop: int | None = None) -> tuple:
    """Bilinear source rows (i0, i1) and weights of i1 for outputs ``start..stop``.

    The rule of ``F.interpolate(mode="bilinear", align_corners=False)``: output ``o`` reads
    source ``max(0, (o + 0.5) n_in / n_out - 0.5)``.
    """
    stop = n_out if stop is None else stop
    src = ((torch.arange(start, stop, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(
        0.0
    )
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).float()


def upsampled_argmax(
    probs: Tensor,
    size: tuple[int, int],
    offset: int = 0,
    dtype: Any = np.int64,
    chunk: int = 4_000_000,
) -> np.ndarray:
    """Argmax over classes of probabilities (C, h, w) bilinearly resized to ``size``, by rows.

    The same as ``F.interpolate(probs[None], size, mode="bilinear").argmax(1)`` (up to
    float rounding) without the (C, H, W) array: rows of the output are interpolated
    ``chunk // (C W)`` at a time, so memory stays at the (H, W) result plus one chunk.

    Parameters
    ----------
    probs : Tensor, shape (C, h, w)
    size : tuple of int
        (H, W).
    offset : int
        Added to the class indices (1: MSRC-21 ids 1..21).
    dtype : numpy dtype
        Of the result (e.g. ``np.uint8`` for up to 255 classes).
    chunk : int
        Interpolated values (C x rows x W) per step.

    Returns
    -------
    ndarray, shape (H, W)
        Class indices ``offset .. offset + C - 1``.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])       # (2, 1, 2): class 0 left
    >>> upsampled_argmax(p, (2, 6)).tolist()
    [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]]
    """
    c, h, w = (int(v) for v in probs.shape)
    big_h, big_w = int(size[0]), int(size[1])
    out = np.empty((big_h, big_w), dtype)
    x0, x1, wx = _source_index(big_w, w)
    p = probs.float()
    step = max(1, int(chunk) // max(1, c * big_w))
    for r0 in range(0, big_h, step):
        r1 = min(big_h, r0 + step)
        y0, y1, wy = _source_index(big_h, h, r0, r1)
        rows = torch.lerp(p[:, y0], p[:, y1], wy[None, :, None])  # (C, n, w)
        full = torch.lerp(rows[:, :, x0], rows[:, :, x1], wx)  # (C, n, W)
        out[r0:r1] = (full.argmax(0) + int(offset)).numpy()
    return out


def restrict(probs: Tensor, labels: Tensor) -> Tensor:
    """Keep only the classes present (labels (C,) in {0, 1}) of probs (N, C); renormalise.

    Examples
    --------
    >>> import torch
    >>> restrict(torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([1.0, 0.0, 1.0]))
    tensor([[0.7143, 0.0000, 0.2857]])
    """
    p = probs * labels[None]
    return p / p.sum(-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def class_scores(model: Any, kind: str, items: list[dict[str, Any]]) -> list[Tensor]:
    """Per-node class scores (N, C) of a weakly supervised net for each item.

    ``kind="wsss"``: P_sg; ``kind="cam"``: ReLU(CAM) of each class divided by its maximum.

    Examples
    --------
    >>> from affseg.models.wsss_net import CAMNet
    >>> import torch
    >>> it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
    ...       "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3]}
    >>> class_scores(CAMNet(dim=8), "cam", [it])[0].shape
    torch.Size([6, 21])
    """
    model.eval()
    res = []
    for it in items:
        feats = batch_feats([it])
        if kind == "cam":
            cam = model(feats, tuple(it["grid"]))["cam"][0].clamp_min(0)
            res.append(cam / cam.amax(0, keepdim=True).clamp_min(1e-6))
        else:
            res.append(model(feats, it["emb"][None].float(), float(it["tau"]))["p_sg"][0])
    return res


def pseudo_labels(
    model: Any, kind: str, items: list[dict[str, Any]], ignore_below: float = 0.0
) -> list[Tensor]:
    """Pseudo label maps (h, w) int64 (class ids 0..C-1, -1 = ignored) of training items.

    Only each item's image-level ``labels`` and its cached features are used: the argmax of
    the scores of :func:`class_scores` over the classes present in the image. Nodes whose
    renormalised top score is below ``ignore_below`` are ignored (-1).

    Examples
    --------
    >>> from affseg.models.wsss_net import CAMNet
    >>> import torch
    >>> it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
    ...       "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3],
    ...       "labels": torch.eye(21)[4]}
    >>> pseudo_labels(CAMNet(dim=8), "cam", [it])[0]
    tensor([[4, 4, 4],
            [4, 4, 4]])
    """
    out = []
    for it, s in zip(items, class_scores(model, kind, items), strict=True):
        lab = it["labels"].float()
        if kind == "cam":
            s = s * lab[None] + 1e-6 * lab[None]
            conf = s.amax(-1)
        else:
            s = restrict(s, lab)
            conf = s.amax(-1)
        y = s.argmax(-1)
        if ignore_below > 0:
            y = torch.where(conf >= ignore_below, y, torch.full_like(y, -1))
        out.append(y.reshape(*[int(v) for v in it["grid"]]))
    return out


@torch.no_grad()
def segment_item(
    seg: Any,
    item: dict[str, Any],
    ndd: Any | None = None,
    mode: str = "fai",
    class_probs: Tensor | None = None,
    class_filter: float | None = None,
    weak_probs: Tensor | None = None,
    fuse: float = 0.0,
    size: tuple[int, int] | None = None,
    offset: int = 0,
) -> np.ndarray:
    """(H, W) class indices (0..K-1) of a cached / extracted item with a :class:`SegHead`.

    Parameters
    ----------
    seg : SegHead
    item : dict
        Cached or :func:`extract` ed item.
    ndd : SpecDiffNet, optional
        For the feature-attentional interpolation (default :func:`pinned_ndd`).
    mode : {"fai", "bilinear"}
    class_probs : Tensor, shape (C,), optional
        Image-level class probabilities of the method's weak network.
    class_filter : float, optional
        Class filter threshold (:func:`filter_classes`); needs ``class_probs``.
    weak_probs : Tensor, shape (C, h, w), optional
        The weak network's class maps on the grid (:func:`weak_outputs`).
    fuse : float
        Weight of ``weak_probs`` in :func:`fuse_scores` (0: the segmenter alone).
    size : tuple of int, optional
        (H, W) of the labels; default the item's own ``size``. Another size (the full
        image of an item extracted at a working resolution): the class probabilities at
        the interpolation's finest level are resized bilinearly to it, by rows
        (:func:`upsampled_argmax`), so no (C, H, W) array is made.
    offset : int
        Added to the class indices (1: the MSRC-21 ids 1..21 of earlier releases).

    Returns
    -------
    ndarray, shape (H, W)
        uint8 (uint16 above 255 classes, :func:`class_dtype`): ``offset .. offset + K - 1``.

    Examples
    --------
    >>> from affseg.models.wsss_net import SegHead
    >>> import torch
    >>> it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
    ...       "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3],
    ...       "size": [16, 24]}
    >>> ids = segment_item(SegHead(dim=8, hidden=8), it)
    >>> ids.shape, ids.dtype, 0 <= int(ids.min()) and int(ids.max()) <= 20
    ((16, 24), dtype('uint8'), True)
    """
    seg.eval()
    logits = seg(batch_feats([item]), tuple(int(v) for v in item["grid"]))[0]
    dtype = class_dtype(int(logits.shape[0]) + int(offset))
    grid_probs = fuse_scores(logits.softmax(0), weak_probs, class_probs, class_filter, fuse)
    if size is None or tuple(int(v) for v in size) == tuple(int(v) for v in item["size"]):
        probs = upsample_probs(grid_probs, item, ndd, mode)
        return (probs.argmax(0) + int(offset)).numpy().astype(dtype)
    fine = grid_probs
    if mode != "bilinear" and "f2" in item:  # the feature-attentional steps, 8 -> 4 -> 2
        fine_size = (int(item["f2"].shape[-2]), int(item["f2"].shape[-1]))
        fine = upsample_probs(grid_probs, {**item, "size": fine_size}, ndd, mode)
    return upsampled_argmax(fine, (int(size[0]), int(size[1])), offset=offset, dtype=dtype)


def fuse_scores(
    seg_probs: Tensor,
    weak_probs: Tensor | None = None,
    class_probs: Tensor | None = None,
    class_filter: float | None = None,
    fuse: float = 0.0,
) -> Tensor:
    """Segmenter class probabilities, class-filtered and averaged with the weak class maps.

    ``q = (1 - fuse) f(seg_probs) + fuse f(weak_probs)``, with ``f`` the class filter of
    :func:`filter_classes` (identity without ``class_probs`` / ``class_filter``): both
    distributions are restricted to the classes the image classifier keeps and
    renormalised, then averaged. The same rule for every weakly supervised method; for
    ``wsss`` the weak maps are P_sg (K_D-pooled), for ``cam`` the normalised CAMs.

    Parameters
    ----------
    seg_probs : Tensor, shape (C, h, w)
        Segmenter softmax.
    weak_probs : Tensor, shape (C, h, w), optional
        The weak network's class maps (non-negative; renormalised over the classes).
    class_probs : Tensor, shape (C,), optional
    class_filter : float, optional
    fuse : float
        In [0, 1]; 0 returns the (filtered) segmenter probabilities.

    Returns
    -------
    Tensor, shape (C, h, w)
        Class distributions (sum to one over C).

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([0.6, 0.3, 0.1])[:, None, None]
    >>> w = torch.tensor([0.1, 0.8, 0.1])[:, None, None]
    >>> fuse_scores(p, w, torch.tensor([0.9, 0.5, 0.05]), 0.1, 0.5)[:, 0, 0]
    tensor([0.3889, 0.6111, 0.0000])
    """
    if not 0.0 <= float(fuse) <= 1.0:
        raise InputError(f"fuse must be in [0, 1]; got {fuse}")

    def f(p: Tensor) -> Tensor:
        if class_filter is not None and class_probs is not None:
            return filter_classes(p, class_probs, class_filter)
        return p / p.sum(0, keepdim=True).clamp_min(1e-12)

    q = f(seg_probs)
    if fuse > 0.0:
        if weak_probs is None:
            raise InputError("fuse > 0 needs the weak network's class maps")
        q = (1.0 - fuse) * q + fuse * f(weak_probs.clamp_min(0.0) + 1e-6)
    return q


@torch.no_grad()
def weak_outputs(model: Any, kind: str, item: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Image class probabilities (C,) and class maps (C, h, w) of a weak network, one pass.

    ``kind="wsss"``: sigmoid(P_cl) and P_sg; ``kind="cam"``: sigmoid of the GAP logits and
    ReLU(CAM) of each class divided by its maximum (as in :func:`class_scores`).

    Examples
    --------
    >>> from affseg.models.wsss_net import CAMNet
    >>> import torch
    >>> it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
    ...       "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3]}
    >>> cls, maps = weak_outputs(CAMNet(dim=8), "cam", it)
    >>> cls.shape, maps.shape
    (torch.Size([21]), torch.Size([21, 2, 3]))
    """
    model.eval()
    feats = batch_feats([item])
    grid = tuple(int(v) for v in item["grid"])
    if kind == "cam":
        out = model(feats, grid)
        cam = out["cam"][0].clamp_min(0)
        maps = cam / cam.amax(0, keepdim=True).clamp_min(1e-6)
    else:
        out = model(feats, item["emb"][None].float(), float(item["tau"]))
        maps = out["p_sg"][0]
    return torch.sigmoid(out["p_cl"][0]), maps.t().reshape(-1, *grid)


@torch.no_grad()
def image_class_probs(model: Any, kind: str, item: dict[str, Any]) -> Tensor:
    """Image-level class probabilities (C,) of a weak network (sigmoid of its ``p_cl``).

    Examples
    --------
    >>> from affseg.models.wsss_net import CAMNet
    >>> import torch
    >>> it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
    ...       "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3]}
    >>> image_class_probs(CAMNet(dim=8), "cam", it).shape
    torch.Size([21])
    """
    model.eval()
    feats = batch_feats([item])
    grid = tuple(int(v) for v in item["grid"])
    if kind == "cam":
        out = model(feats, grid)
    else:
        out = model(feats, item["emb"][None].float(), float(item["tau"]))
    return torch.sigmoid(out["p_cl"][0])


def filter_classes(probs: Tensor, class_probs: Tensor, threshold: float) -> Tensor:
    """Zero the classes (C, h, w) the image classifier gives <= ``threshold``; renormalise.

    The classifier's top class is always kept.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([0.5, 0.3, 0.2])[:, None, None]
    >>> filter_classes(p, torch.tensor([0.9, 0.05, 0.4]), 0.1)[:, 0, 0]
    tensor([0.7143, 0.0000, 0.2857])
    """
    keep = (class_probs > threshold).to(probs.dtype)
    keep[int(class_probs.argmax())] = 1.0
    q = probs * keep[:, None, None]
    return q / q.sum(0, keepdim=True).clamp_min(1e-12)


def build_weak(blob: dict[str, Any]) -> Any:
    """The weak network (``WSSSNet`` or ``CAMNet``) of a ``wsss`` / ``cam`` weights blob.

    Examples
    --------
    >>> weak = build_weak(load_weights(METHODS["cam"]))   # doctest: +SKIP
    """
    from affseg.models.wsss_net import CAMNet, WSSSNet

    if "weak" not in blob:
        raise InputError(f"the {blob.get('method')} weights hold no image classifier")
    net = (CAMNet if blob["method"] == "cam" else WSSSNet)(**blob["weak"]["config"])
    net.load_state_dict(blob["weak"]["state_dict"])
    return net.eval()


# ----------------------------------------------------------------------------- metadata
#: Version of the metadata of a weights file (``blob["meta"]``).
META_FORMAT = 2


def class_dtype(num_classes: int) -> Any:
    """numpy dtype of a class-index map of ``num_classes`` classes: uint8, uint16 above 255.

    Examples
    --------
    >>> class_dtype(21).__name__, class_dtype(300).__name__
    ('uint8', 'uint16')
    """
    return np.uint8 if int(num_classes) <= 255 else np.uint16


def msrc21_meta(method: str = DEFAULT_METHOD) -> dict[str, Any]:
    """The metadata of an MSRC-21 weights file that predates it (the shipped ``format`` 1).

    Examples
    --------
    >>> m = msrc21_meta("cam")
    >>> m["num_classes"], m["classes"][:2], m["colours"][0], m["inference"]["fuse"]
    (21, ['building', 'grass'], [128, 0, 0], 0.75)
    """
    from affseg.data.msrc import CLASS_COLOURS, CLASS_NAMES, MSRC21_CLASS_NAMES

    names = list(MSRC21_CLASS_NAMES[1:])
    weak = method in ("wsss", "cam")
    return {
        "format": META_FORMAT,
        "classes": names,
        "colours": [[int(v) for v in CLASS_COLOURS[CLASS_NAMES.index(n)]] for n in names],
        "num_classes": len(names),
        "ignore_index": 255,
        "method": method,
        "ndd_weights": NDD_WEIGHTS,
        "ndd_sha256": NDD_SHA256,
        "inference": {
            "class_filter": DEFAULT_CLASS_FILTER if weak else None,
            "fuse": DEFAULT_FUSE if weak else 0.0,
            "upsample": "fai",
        },
        "data": {
            "name": "MSRC-21",
            "layout": "msrc21",
            "split": "train",
            "num_images": 298,
            "fingerprint": None,
            "val_split": "val",
        },
        "val": None,
        "filled": "MSRC-21 constants (weights written before the metadata existed)",
    }


def weights_meta(blob: dict[str, Any]) -> dict[str, Any]:
    """The self-description of a weights blob (filled from MSRC-21 for ``format`` 1 files).

    Keys: ``classes`` (names, index = class index), ``colours`` (K x [r, g, b]),
    ``num_classes``, ``ignore_index`` (of the training masks), ``method``, ``variant``,
    ``ndd_weights`` / ``ndd_sha256`` (the pinned spec-diff-net), ``inference``
    (``class_filter``, ``fuse``, ``upsample``: the default rule of :func:`semantic`),
    ``data`` (``layout``, ``root``, ``split``, ``num_images``, ``fingerprint``,
    ``val_split``, ``val_fingerprint``) and ``val`` (val scores in percent, or None).

    Examples
    --------
    >>> weights_meta({"method": "supervised"})["inference"]["class_filter"] is None
    True
    """
    meta = blob.get("meta")
    if isinstance(meta, dict) and meta.get("classes"):
        out = dict(meta)
    else:
        out = msrc21_meta(str(blob.get("method", DEFAULT_METHOD)))
        rec = blob.get("record") or {}
        val = rec.get("val") if isinstance(rec, dict) else None
        if isinstance(val, dict) and "miou" in val:
            out["val"] = {
                "split": "val",
                "miou": 100 * float(val["miou"]),
                "pixel_accuracy": 100 * float(val["pixel_accuracy"]),
                "mean_class_accuracy": 100 * float(val["mean_class_accuracy"]),
                "rule": "segmenter alone",
            }
    out.setdefault("method", blob.get("method", DEFAULT_METHOD))
    out.setdefault("variant", blob.get("variant", "full"))
    out["ndd_sha256"] = blob.get("ndd_sha256", out.get("ndd_sha256"))
    return out


def describe_weights(meta: dict[str, Any]) -> str:
    """Human-readable lines of a weights file's metadata (``affseg info``).

    Examples
    --------
    >>> print(describe_weights(msrc21_meta("wsss")).splitlines()[0])
    method        wsss (variant full)
    """
    inf = meta.get("inference") or {}
    data = meta.get("data") or {}
    cols = meta.get("colours") or []
    lines = [
        f"method        {meta.get('method')} (variant {meta.get('variant', 'full')})",
        f"classes       K = {meta.get('num_classes')}, ignore index {meta.get('ignore_index')}",
    ]
    for i, name in enumerate(meta.get("classes") or []):
        c = cols[i] if i < len(cols) else None
        lines.append(f"  {i:5d}  {name:24}" + (f" {c[0]:3d} {c[1]:3d} {c[2]:3d}" if c else ""))
    cf = inf.get("class_filter")
    lines += [
        f"inference     class filter {'off' if cf is None else cf}, fuse {inf.get('fuse')}, "
        f"upsample {inf.get('upsample', 'fai')}",
        f"spec-diff-net {meta.get('ndd_weights', NDD_WEIGHTS)} sha256 {meta.get('ndd_sha256')}",
        f"training data {data.get('name') or data.get('layout')}"
        + (f" at {data['root']}" if data.get("root") else "")
        + f", split {data.get('split')} ({data.get('num_images')} images), fingerprint "
        f"{data.get('fingerprint') or 'n/a'}",
    ]
    val = meta.get("val")
    if isinstance(val, dict):
        lines.append(
            f"val           split {val.get('split')}: mIoU {val['miou']:.1f}, global acc "
            f"{val['pixel_accuracy']:.1f}, class acc {val['mean_class_accuracy']:.1f}"
            + (f" ({val['rule']})" if val.get("rule") else "")
        )
    else:
        lines.append("val           not scored")
    if meta.get("filled"):
        lines.append(f"note          metadata filled from {meta['filled']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- shipped
def load_weights(path: str | Path, check_ndd: bool = True) -> dict[str, Any]:
    """A weights file of ``affseg train wsss`` (checks the spec-diff-net it was made on).

    Examples
    --------
    >>> load_weights(METHODS["wsss"])["method"]   # doctest: +SKIP
    'wsss'
    """
    p = Path(path)
    if not p.is_file() and p.parent == Path(".") and (weights_dir() / p.name).is_file():
        p = weights_dir() / p.name
    if not p.is_file():
        raise AffsegError(
            f"semantic segmentation weights not found at {p}; train them with "
            "`affseg train wsss --ship` (see BENCHMARKS.md)"
        )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise AffsegError(f"cannot read semantic segmentation weights {p}: {exc}") from None
    if not isinstance(blob, dict) or "seg" not in blob:
        raise AffsegError(f"{p} is not a weights file of `affseg train wsss`")
    if check_ndd and blob.get("ndd_sha256") != NDD_SHA256:
        raise AffsegError(
            f"{p} was trained on another spec-diff-net (sha256 {blob.get('ndd_sha256')}); "
            f"expected {NDD_SHA256} ({NDD_WEIGHTS})"
        )
    blob["meta"] = weights_meta(blob)
    return blob


def build_seg(blob: dict[str, Any]) -> Any:
    """The :class:`SegHead` of a weights blob, eval mode.

    Examples
    --------
    >>> seg = build_seg(load_weights(METHODS["cam"]))   # doctest: +SKIP
    """
    from affseg.models.wsss_net import SegHead

    seg = SegHead(**blob["seg"]["config"])
    seg.load_state_dict(blob["seg"]["state_dict"])
    return seg.eval()


@functools.lru_cache(maxsize=4)
def shipped_segmenter(method: str = DEFAULT_METHOD) -> Any:
    """The shipped :class:`SegHead` of a method (loaded once, cached).

    Examples
    --------
    >>> seg = shipped_segmenter("wsss")            # doctest: +SKIP
    """
    if method not in METHODS:
        raise InputError(f"unknown semantic method {method!r}; choose one of: {', '.join(METHODS)}")
    return build_seg(load_weights(weights_dir() / METHODS[method]))


@functools.lru_cache(maxsize=4)
def shipped_weak(method: str = DEFAULT_METHOD) -> Any:
    """The shipped weak network (image classifier) of ``wsss`` or ``cam`` (cached).

    Examples
    --------
    >>> weak = shipped_weak("wsss")            # doctest: +SKIP
    """
    if method not in ("wsss", "cam"):
        raise InputError(f"class_filter needs method 'wsss' or 'cam'; got {method!r}")
    return build_weak(load_weights(weights_dir() / METHODS[method]))


@functools.lru_cache(maxsize=8)
def _model_at(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    blob = load_weights(path)
    meta = blob["meta"]
    kind = str(meta.get("method", blob.get("method")))
    weak = build_weak(blob) if kind in ("wsss", "cam") and "weak" in blob else None
    return {"seg": build_seg(blob), "weak": weak, "meta": meta, "kind": kind,
            "sha256": sha256_of(path)}  # fmt: skip


@functools.lru_cache(maxsize=8)
def _refiner_at(path: str, stamp: tuple[int, int], base_sha256: str) -> tuple[Any, dict]:
    from affseg.methods.seg_refine import load_refiner

    return load_refiner(path, base_sha256)


def _stamp(p: Path) -> tuple[int, int]:
    try:
        st = p.stat()
        return (int(st.st_mtime_ns), int(st.st_size))
    except OSError:
        return (0, 0)


def semantic_model(method: str = DEFAULT_METHOD, weights: str | Path | None = None) -> dict:
    """The networks and metadata :func:`semantic` uses (loaded once per file, cached).

    Parameters
    ----------
    method : {"wsss", "cam", "supervised"}
        The shipped MSRC-21 model of this method, unless ``weights`` is given.
    weights : path, optional
        A weights file of ``affseg train wsss`` (its own method is used).

    Returns
    -------
    dict
        ``seg`` (SegHead), ``weak`` (the weak network or None), ``meta``
        (:func:`weights_meta`), ``kind`` (the method).

    Examples
    --------
    >>> semantic_model("cam")["meta"]["num_classes"]          # doctest: +SKIP
    21
    """
    if weights is None:
        if method not in METHODS:
            raise InputError(
                f"unknown semantic method {method!r}; choose one of: {', '.join(METHODS)}"
            )
        p = weights_dir() / METHODS[method]
    else:
        p = Path(weights)
        if not p.is_file() and p.parent == Path(".") and (weights_dir() / p.name).is_file():
            p = weights_dir() / p.name
    return _model_at(str(p), _stamp(p))


def semantic_memory(work_size: tuple[int, int], full_size: tuple[int, int]) -> float:
    """Estimated peak memory (bytes) of :func:`semantic` / ``affseg semantic`` on one image.

    ``base + work_pixel x (working pixels) + node_pair x N^2 + full_pixel x (image pixels)``
    with the constants of :data:`MEMORY_MODEL` and N the nodes of the stride-8 grid of the
    working image (the weak network's dense K_D is N x N).

    Parameters
    ----------
    work_size : tuple of int
        (h, w) the networks see (the working image).
    full_size : tuple of int
        (H, W) of the image (the labels, the overlay).

    Returns
    -------
    float
        Bytes.

    Examples
    --------
    >>> round(semantic_memory((384, 512), (3000, 4000)) / 1e9, 1)   # 12 MP at the default
    1.0
    >>> round(semantic_memory((3000, 4000), (3000, 4000)) / 1e9)     # no bound: refused
    641
    """
    from affseg.backbones.efficientnet_lite import snapped_size as snap_size

    hs, ws = snap_size(int(work_size[0]), int(work_size[1]))
    nodes = float((hs // 8) * (ws // 8))
    m = MEMORY_MODEL
    return (
        m["base"]
        + m["work_pixel"] * hs * ws
        + m["node_pair"] * nodes * nodes
        + m["full_pixel"] * float(full_size[0]) * float(full_size[1])
    )


def working_rgb(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` downscaled (Lanczos) to longer side ``side`` (unchanged when not larger).

    The shorter side keeps at least ``min(16, its size)`` pixels (one backbone multiple),
    so a thin strip stays an image. Otherwise the size of
    :func:`affseg.methods.working_image`. Training caches and :func:`semantic` use it with
    :data:`DEFAULT_WORKING_SIDE`, so a model sees photos at the scale it was trained at.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    side : int
        Longest side of the result.

    Returns
    -------
    ndarray, shape (h, w, 3), uint8

    Examples
    --------
    >>> working_rgb(np.zeros((3000, 4000, 3), np.uint8), 512).shape
    (384, 512, 3)
    >>> working_rgb(np.zeros((213, 320, 3), np.uint8), 512).shape
    (213, 320, 3)
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(min(w, 16), round(w * scale)), max(min(h, 16), round(h * scale)))
    small = Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(small)


def _check_fraction(name: str, value: float | None) -> None:
    if value is None:
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be in [0, 1]; got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise InputError(f"{name} must be in [0, 1]; got {value!r}")


def semantic(
    image: np.ndarray,
    method: str = DEFAULT_METHOD,
    *,
    weights: str | Path | None = None,
    upsample: str = "fai",
    class_filter: float | None = None,
    fuse: float | None = None,
    working_side: int | None = DEFAULT_WORKING_SIDE,
    refine: str | Path | None = None,
) -> np.ndarray:
    """Class index of every pixel of one RGB image (the model's classes, 0..K-1).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    method : {"wsss", "cam", "supervised"}
        ``wsss`` (default): segmenter trained on the pseudo labels of the NDD-guided
        network (image-level labels only); ``cam``: the same on CAM pseudo labels;
        ``supervised``: the same segmenter trained on the train pixel labels (reference).
    weights : path, optional
        A weights file of ``affseg train wsss`` instead of the shipped MSRC-21 one: its
        classes, its method and its inference rule (``affseg info FILE``) are used.
    upsample : {"fai", "bilinear"}
        Grid -> image: feature-attentional interpolation (default) or bilinear.
    class_filter : float, optional
        ``wsss`` / ``cam``: drop the classes whose image-level probability from the
        method's weak network (its classifier ``P_cl``) is at most this (the top class is
        always kept); default: the weights' rule (shipped: :data:`DEFAULT_CLASS_FILTER`),
        0 turns it off. In [0, 1].
    fuse : float, optional
        ``wsss`` / ``cam``: weight of the weak network's own class maps averaged with the
        segmenter's probabilities (:func:`fuse_scores`); default: the weights' rule
        (shipped: :data:`DEFAULT_FUSE`), 0 = the segmenter alone. ``supervised`` has no
        weak network: both are off.
    working_side : int or None
        An image whose longer side exceeds this (default :data:`DEFAULT_WORKING_SIDE`) is
        labelled at this longer side (Lanczos downscale, as ``affseg segment
        --working-side``) and its class probabilities are upsampled (bilinear, by rows) to
        full resolution before the argmax; smaller images are labelled as they are.
        ``None`` (or 0): no bound, the networks see the whole image; the memory estimate
        (:func:`semantic_memory`) is then checked against ``$AFFSEG_MAX_MEMORY_GB``
        (:func:`affseg.memory.check_memory`) before anything is allocated.
    refine : path, optional
        A refiner of ``affseg train refine`` trained on these weights' scores
        (:mod:`affseg.methods.seg_refine`): the class probabilities (after the class filter
        and fusion) are brought to the working image bilinearly, propagated by the refiner,
        and their argmax taken at full resolution.

    Returns
    -------
    ndarray, shape (H, W), uint8 (uint16 above 255 classes)
        Class indices 0..K-1 in the model's class order (``weights_meta(...)["classes"]``;
        the shipped models: the 21 classes of
        :data:`affseg.data.msrc.MSRC21_CLASS_NAMES` without ``void``, building = 0).
        Earlier releases returned the MSRC-21 ids 1..21: add 1 for those.

    Raises
    ------
    InputError
        Bad image or option; an image too small for the grid; an estimated peak memory
        above the limit.

    Examples
    --------
    >>> import numpy as np
    >>> semantic(np.zeros((213, 320, 3), np.uint8)).shape   # doctest: +SKIP
    (213, 320)
    >>> semantic(np.zeros((3000, 4000, 3), np.uint8)).shape   # doctest: +SKIP
    (3000, 4000)
    """
    from affseg.backbones.efficientnet_lite import snapped_size as snap_size
    from affseg.data.io import as_rgb
    from affseg.memory import check_memory

    rgb = as_rgb(image)
    if working_side is not None and (
        isinstance(working_side, bool)
        or not isinstance(working_side, numbers.Integral)
        or (working_side != 0 and working_side < MIN_WORKING_SIDE)
    ):
        raise InputError(
            f"working side must be an integer >= {MIN_WORKING_SIDE} (0 or None: no bound); "
            f"got {working_side!r}"
        )
    if upsample not in ("fai", "bilinear"):
        raise InputError(f"upsample must be 'fai' or 'bilinear'; got {upsample!r}")
    _check_fraction("class_filter", class_filter)
    _check_fraction("fuse", fuse)
    h, w = rgb.shape[:2]
    bounded = bool(working_side) and max(h, w) > int(working_side or 0)
    work = working_rgb(rgb, int(working_side or 0)) if bounded else rgb
    hs, ws = snap_size(*work.shape[:2])
    n_eig = int(pinned_ndd().config.get("n_eig", 50))
    if (hs // 8) * (ws // 8) < n_eig:
        at = f" at working side {working_side}" if bounded else ""
        raise InputError(
            f"image of {h} x {w} pixels is too small{at}: its 8-pixel feature grid needs at "
            f"least {n_eig} nodes (e.g. 64 x 64 pixels at least)"
        )
    model = semantic_model(method, weights)
    refiner = rblob = None
    if refine is not None:
        refiner, rblob = _refiner_at(str(refine), _stamp(Path(refine)), model["sha256"])
    scale = int(rblob.get("scale", 1)) if rblob is not None else 1
    refine_bytes = (
        0.0
        if refine is None
        else REFINE_PIXEL_BYTES * float(work.shape[0] * work.shape[1]) / scale**2
    )
    check_memory(
        semantic_memory(work.shape[:2], (h, w)) + refine_bytes,
        f"semantic segmentation of {w} x {h} pixels"
        + (f" (working size {work.shape[1]} x {work.shape[0]})" if bounded else ""),
        f"use a working side (--working-side) of {DEFAULT_WORKING_SIDE}, the default, or a "
        "smaller image",
    )
    seg, kind, rule = model["seg"], model["kind"], model["meta"].get("inference") or {}
    has_weak = model["weak"] is not None
    if not has_weak:
        if (class_filter or 0.0) > 0.0 or (fuse or 0.0) > 0.0:
            raise InputError(
                f"class_filter / fuse need method 'wsss' or 'cam' (a weak network); got {kind!r}"
            )
        thr, a = None, 0.0
    else:
        thr = rule.get("class_filter") if class_filter is None else float(class_filter)
        thr = float(thr) if thr is not None and float(thr) > 0.0 else None
        a = float(rule.get("fuse") or 0.0) if fuse is None else float(fuse)
    item = extract(work)
    cls = maps = None
    if thr is not None or a > 0.0:
        cls, maps = weak_outputs(model["weak"], "cam" if kind == "cam" else "wsss", item)
    if refiner is not None and rblob is not None:
        from affseg.methods.seg_refine import grid_to_image, refiner_head, refiner_size
        from affseg.methods.seg_refine import refine as propagate_scores

        head = refiner_head(rblob, seg)
        with torch.no_grad():
            logits = head(batch_feats([item]), tuple(int(v) for v in item["grid"]))[0]
            probs = fuse_scores(logits.softmax(0), maps, cls, thr, a)
            size = refiner_size((int(item["size"][0]), int(item["size"][1])), scale)
            refined = propagate_scores(refiner, work, grid_to_image(probs, size), scale)
        dtype = class_dtype(int(refined.shape[0]))
        return upsampled_argmax(refined, (h, w), dtype=dtype)
    return segment_item(
        seg,
        item,
        mode=upsample,
        class_probs=cls,
        class_filter=thr,
        weak_probs=maps,
        fuse=a,
        size=(h, w),
    )
