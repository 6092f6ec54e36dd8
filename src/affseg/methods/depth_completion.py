"""Depth completion from ~500 sparse samples with HAM / naive propagation.

The method behind ``affseg depth-complete`` (the CLI in :mod:`affseg.cli.depth_complete`
only parses arguments and calls these functions). Protocol of NLSPN / CSPN: a few hundred
random valid pixels of the ground-truth depth plus the RGB guide -> a dense map.

* **Sampling** (:func:`sample_sparse`): ``n`` distinct valid pixels drawn uniformly by a
  seeded generator; 0 marks "no sample".
* **Resolution**: 500 samples on a 1376 x 1088 Middlebury image are ~9x sparser than on a
  ~430 x 370 training scene, so the validation scenes are evaluated at 1/3 resolution
  (:func:`reduce_scene`: 458 x 362, 3 x 3 block mean of the RGB, block-centre pixel of the
  depth, so no depth value is a mix of two surfaces), close to the training size and to
  NLSPN's ~300 x 230 images. Training keeps the same density, :data:`DENSITY` samples per
  pixel (500 on 458 x 362), on random crops of the 30 ``RGBD_depth_train`` scenes.
* **Model**: :class:`affseg.models.depth_completion_net.DepthCompletionPropagation`,
  propagation of the nearest-sample fill with HAM (hyperbolic) or Euclidean ("naive")
  affinities, samples re-imposed after every step.
* **Classical baseline** (:func:`affseg.methods.depth_baselines.fgs_complete`): edge-aware
  normalised interpolation with the fast global smoother (Min et al. 2014, OpenCV contrib
  ``fastGlobalSmootherFilter``): ``FGS(s) / FGS(m)`` for sparse values ``s`` and mask
  ``m``, a weighted-least-squares colour-guided interpolation; parameters chosen on the
  training scenes
  (``benchmarks/depth_completion_table.py --tune``). The fast bilateral solver of the
  installed OpenCV wheel is unusable (built without Eigen).

Weights are plain tensors and Python containers, read with ``torch.load(...,
weights_only=True)``.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] J. Park, K. Joo, Z. Hu, C.-K. Liu and I. S. Kweon, "Non-Local Spatial Propagation
   Network for Depth Completion", ECCV 2020.
.. [3] D. Min, S. Choi, J. Lu, B. Ham, K. Sohn and M. N. Do, "Fast Global Image Smoothing
   Based on Weighted Least Squares", IEEE TIP 2014.

Example
-------
>>> import numpy as np
>>> from affseg.methods.depth_completion import sample_sparse
>>> s = sample_sparse(np.full((20, 30), 5.0), 10, seed=0)
>>> int((s > 0).sum()), float(s.max())
(10, 5.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from affseg.errors import CorruptFileError, InputError
from affseg.memory import check_memory, max_pixels_within
from affseg.methods import DEPTH_COMPLETION_METHODS
from affseg.methods.depth_baselines import fgs_complete
from affseg.methods.depth_sr import load_model

#: Samples per image of the protocol.
N_SAMPLES = 500
#: Downscaling of the 1376 x 1088 validation scenes (to 458 x 362).
EVAL_STRIDE = 3
#: Samples per pixel: 500 on the 458 x 362 evaluation images; training keeps it.
DENSITY = N_SAMPLES / (458 * 362)
#: Validation scenes (``Middlebury_depth_sr``).
VAL_SCENES: tuple[str, ...] = ("art_big", "books_big", "dolls_big")
METHODS: tuple[str, ...] = DEPTH_COMPLETION_METHODS
#: Shipped weights per learned method.
DEFAULT_WEIGHTS: dict[str, str] = {
    "ham": "ham_depth_completion_hyperbolic.pt",
    "naive": "ham_depth_completion_euclidean.pt",
}
#: Memory model of one completion (bytes): ``(base, per pixel)`` for the learned
#: propagation (``ham`` / ``naive``: the guidance network and the affinities run at full
#: resolution) and for ``fgs``. The output has the guide's resolution, so the guide's size
#: sets the peak. Fitted to the peak RSS (``ru_maxrss``) of child processes: ``ham`` 0.69 /
#: 1.42 / 2.42 GB at 0.12 / 0.47 / 1.08 megapixels, and ``affseg depth-complete`` 2.15 /
#: 3.90 GB on 0.79 / 1.92 MP; ``naive`` at most that; ``fgs`` 0.34 / 0.36 / 0.40 GB at
#: 0.12 / 0.47 / 1.08 MP and 0.96 GB for the command on 12 MP.
#: Not tiled: the initial fill (FGS) is a global smoother and the samples are sparse, so
#: tiles would not reproduce the whole-image output.
MEMORY_MODEL: dict[str, tuple[float, float]] = {
    "learned": (0.7e9, 2000.0),
    "fgs": (0.35e9, 70.0),
}


def sample_sparse(depth: np.ndarray, n: int = N_SAMPLES, seed: int = 0) -> np.ndarray:
    """Keep ``n`` random valid pixels of a depth map (0 elsewhere).

    Parameters
    ----------
    depth : ndarray, shape (H, W)
        Valid pixels are finite and > 0.
    n : int
        Number of samples (all valid pixels if fewer).
    seed : int
        Seed of the generator (``numpy.random.default_rng``): same seed, same pixels.

    Returns
    -------
    ndarray, shape (H, W), float32
        The depth at the chosen pixels, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.arange(12.0).reshape(3, 4)
    >>> s = sample_sparse(d, 4, seed=1)
    >>> int((s > 0).sum()), bool(np.all(s[s > 0] == d[s > 0]))
    (4, True)
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise InputError(f"depth must be (H, W), got shape {d.shape}")
    if n < 1:
        raise InputError(f"number of samples must be >= 1, got {n}")
    valid = np.flatnonzero(np.isfinite(d) & (d > 0))
    if valid.size == 0:
        raise InputError("depth map has no valid pixel (finite and > 0) to sample")
    rng = np.random.default_rng(seed)
    pick = rng.choice(valid, size=min(n, valid.size), replace=False)
    out = np.zeros(d.size, np.float32)
    out[pick] = d.reshape(-1)[pick]
    return out.reshape(d.shape)


def nearest_fill(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of, and distance to, the nearest sample of every pixel.

    Parameters
    ----------
    sparse : ndarray, shape (H, W)
        Samples > 0, 0 = no sample.

    Returns
    -------
    fill : ndarray, shape (H, W), float32
    dist : ndarray, shape (H, W), float32
        Euclidean distance in pixels (0 at the samples).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((1, 5), np.float32)
    >>> s[0, 0], s[0, 4] = 1.0, 3.0
    >>> fill, dist = nearest_fill(s)
    >>> fill.tolist(), dist.tolist()
    ([[1.0, 1.0, 1.0, 3.0, 3.0]], [[0.0, 1.0, 2.0, 1.0, 0.0]])
    """
    from scipy import ndimage

    s = np.asarray(sparse, dtype=np.float32)
    mask = s > 0
    if not mask.any():
        raise InputError("sparse depth map has no sample (every pixel is 0)")
    dist, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
    return s[iy, ix], dist.astype(np.float32)


def reduce_scene(
    rgb: np.ndarray, depth: np.ndarray, stride: int = EVAL_STRIDE
) -> tuple[np.ndarray, np.ndarray]:
    """Downscale an aligned guide and depth map by an integer ``stride``.

    RGB: mean of each ``stride x stride`` block; depth: the block's centre pixel (no
    mixing of surfaces). The size is cropped to a multiple of ``stride`` first.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    depth : ndarray, shape (H, W)
    stride : int

    Returns
    -------
    (ndarray, ndarray)
        shapes (H // stride, W // stride, 3) uint8 and (H // stride, W // stride) float32.

    Examples
    --------
    >>> import numpy as np
    >>> rgb, d = reduce_scene(np.zeros((7, 10, 3), np.uint8), np.arange(70.0).reshape(7, 10))
    >>> rgb.shape, d.tolist()
    ((2, 3, 3), [[11.0, 14.0, 17.0], [41.0, 44.0, 47.0]])
    """
    h, w = (depth.shape[0] // stride) * stride, (depth.shape[1] // stride) * stride
    if h == 0 or w == 0 or rgb.shape[:2] != depth.shape:
        raise InputError(f"cannot reduce guide {rgb.shape} / depth {depth.shape} by {stride}")
    blocks = rgb[:h, :w].astype(np.float64).reshape(h // stride, stride, w // stride, stride, 3)
    small = np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)
    c = stride // 2
    return small, np.ascontiguousarray(depth[c:h:stride, c:w:stride], dtype=np.float32)


def load_val_scene(
    scene: str, data: str | None = None, stride: int = EVAL_STRIDE
) -> tuple[np.ndarray, np.ndarray]:
    """A ``Middlebury_depth_sr`` scene's guide and gt at the evaluation resolution.

    Returns
    -------
    (ndarray, ndarray)
        rgb (H / stride, W / stride, 3) uint8 and gt (H / stride, W / stride) float32
        (see :func:`reduce_scene`).

    Examples
    --------
    >>> load_val_scene("art_big", data="/nonexistent")
    Traceback (most recent call last):
    ...
    affseg.errors.DatasetNotFoundError: dataset Middlebury_depth_sr not found at ...
    """
    from affseg.data.io import read_image
    from affseg.data.paths import dataset_dir

    root = dataset_dir("Middlebury_depth_sr", data) / scene
    rgb = read_image(root / "input" / f"{scene}_color.png")
    gt = _read_gray(root / "gt.png").astype(np.float32)
    return reduce_scene(rgb, gt, stride)


def _read_gray(path: Path) -> np.ndarray:
    """Pixels of a single-channel image file as stored (a gt / depth map)."""
    from affseg.data.io import open_image

    with open_image(path, "depth map") as im:
        try:
            arr = np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt file
            raise CorruptFileError(f"cannot decode {path}: {exc}") from exc
    if arr.ndim != 2:
        raise InputError(f"depth map {path} has shape {arr.shape}; expected one channel")
    return arr


def network_inputs(
    rgb: np.ndarray, sparse: np.ndarray, init: str = "nearest"
) -> tuple[torch.Tensor, ...]:
    """Network inputs (1, C, H, W): rgb in [0, 1], initial fill, mask, distance.

    Examples
    --------
    >>> sparse = np.zeros((8, 8), np.float32); sparse[2, 3] = 5.0
    >>> [tuple(t.shape) for t in network_inputs(np.zeros((8, 8, 3), np.uint8), sparse)]
    [(1, 3, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)]
    """
    fill, dist = nearest_fill(sparse)
    if init == "fgs":  # the samples themselves where known: they are re-imposed
        fill = np.where(sparse > 0, sparse, fgs_complete(rgb, sparse)).astype(np.float32)
    t = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    mask = torch.from_numpy((sparse > 0).astype(np.float32))[None, None]
    return t, torch.from_numpy(fill)[None, None], mask, torch.from_numpy(dist)[None, None]


def _check(rgb: np.ndarray, sparse: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or sparse.shape != rgb.shape[:2]:
        raise InputError(f"sparse map {sparse.shape} does not match the guide {rgb.shape[:2]}")
    if not np.isfinite(sparse).all() or (sparse < 0).any():
        raise InputError("sparse map must hold finite values >= 0 (0 = no sample)")
    if not (sparse > 0).any():
        raise InputError("sparse depth map has no sample (every pixel is 0)")


def completion_memory(method: str, height: int, width: int) -> float:
    """Estimated peak memory (bytes) of completing a (height, width) guide with ``method``.

    Parameters
    ----------
    method : {"ham", "naive", "fgs"}
        ``ham`` / ``naive`` (or any learned model): :data:`MEMORY_MODEL` ``"learned"``.
    height, width : int

    Returns
    -------
    float
        ``base + per_pixel x height x width``.

    Examples
    --------
    >>> round(completion_memory("ham", 3000, 4000) / 1e9, 1)
    24.7
    """
    base, per_pixel = MEMORY_MODEL["fgs" if method == "fgs" else "learned"]
    return base + per_pixel * float(height) * float(width)


def check_completion_memory(method: str, height: int, width: int) -> None:
    """Refuse (one line) a guide whose :func:`completion_memory` exceeds the limit.

    The limit is ``$AFFSEG_MAX_MEMORY_GB`` (:func:`affseg.memory.max_memory_bytes`).

    Raises
    ------
    InputError
        Naming the estimate, the limit and the largest guide that fits.

    Examples
    --------
    >>> check_completion_memory("fgs", 362, 458)
    >>> check_completion_memory("ham", 3000, 4000)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: depth completion (ham) of a 4000 x 3000 guide would need about ...
    """
    kind = "fgs" if method == "fgs" else "learned"
    most = max_pixels_within(*MEMORY_MODEL[kind])
    check_memory(
        completion_memory(method, height, width),
        f"depth completion ({method}) of a {width} x {height} guide",
        f"the output has the guide's size: give a guide and sparse map of at most "
        f"{most / 1e6:.1f} megapixels"
        + ("" if method == "fgs" else " (or use --method fgs)")
        + ", or raise the limit",
    )


def complete(model: torch.nn.Module, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """Dense depth from sparse samples with a learned model.

    Parameters
    ----------
    model : DepthCompletionPropagation
    rgb : ndarray, shape (H, W, 3), uint8
    sparse : ndarray, shape (H, W)
        Samples > 0, 0 = no sample.

    Returns
    -------
    ndarray, shape (H, W), float32
        Equal to ``sparse`` at the samples.

    Raises
    ------
    InputError
        Mismatched or empty inputs; a guide whose estimated peak memory
        (:func:`completion_memory`) exceeds ``$AFFSEG_MAX_MEMORY_GB``.

    Examples
    --------
    >>> import numpy as np
    >>> from affseg.models.depth_completion_net import DepthCompletionPropagation
    >>> net = DepthCompletionPropagation(width=4, embed_dim=2, iterations=1).eval()
    >>> s = np.zeros((16, 16), np.float32)
    >>> s[3, 4] = 2.0
    >>> float(complete(net, np.zeros((16, 16, 3), np.uint8), s).max())
    2.0
    """
    s = np.asarray(sparse, dtype=np.float32)
    _check(rgb, s)
    geometry = getattr(getattr(model, "affinity", None), "geometry", "learned")
    check_completion_memory(
        {"hyperbolic": "ham", "euclidean": "naive"}.get(str(geometry), "learned"), *s.shape
    )
    with torch.no_grad():
        out = model(*network_inputs(rgb, s, str(getattr(model, "init", "nearest"))))
    return out[0, 0].numpy()


def run_method(
    method: str, rgb: np.ndarray, sparse: np.ndarray, weights: str | Path | None = None
) -> np.ndarray:
    """Complete with ``method`` in :data:`METHODS` (learned ones: shipped or given weights).

    Parameters
    ----------
    method : {"ham", "naive", "fgs"}
    rgb : ndarray, shape (H, W, 3), uint8
    sparse : ndarray, shape (H, W)
        Samples > 0, 0 = no sample.
    weights : path-like, optional
        Weights of ``ham`` / ``naive`` (default :data:`DEFAULT_WEIGHTS`).

    Returns
    -------
    ndarray, shape (H, W), float32

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((8, 8), np.float32)
    >>> s[1, 1] = 3.0
    >>> float(run_method("ham", np.zeros((8, 8, 3), np.uint8), s).min())
    3.0
    """
    if method == "fgs":
        return fgs_complete(rgb, sparse)
    if method not in DEFAULT_WEIGHTS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return complete(load_model(weights or DEFAULT_WEIGHTS[method], "depth_completion"), rgb, sparse)


def read_sparse(path: str | Path) -> np.ndarray:
    """Read a sparse depth PNG: 8-bit (values as stored) or 16-bit (value x 256); 0 = none.

    Returns
    -------
    ndarray, shape (H, W), float32

    Raises
    ------
    InputError
        Missing file, not a single-channel 8/16-bit PNG, or no sample.
    CorruptFileError
        The file cannot be decoded.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from affseg.data.io import write_png
    >>> a = np.zeros((4, 5), np.uint16)
    >>> a[1, 2] = 512
    >>> path = os.path.join(tempfile.mkdtemp(), "s.png")
    >>> float(read_sparse(write_png(path, a)).max())
    2.0
    """
    from affseg.data.io import open_image

    p = Path(path)
    with open_image(p, "sparse depth map") as im:
        mode = im.mode
        if mode == "L":
            arr = np.asarray(im).astype(np.float32)
        elif mode in ("I;16", "I;16B", "I;16L", "I") and p.suffix.lower() == ".png":
            arr = np.asarray(im).astype(np.float64)
            if arr.min() < 0 or arr.max() > 65535:
                raise InputError(f"sparse depth map {p} has values outside the 16-bit range")
            arr = (arr / 256.0).astype(np.float32)
        else:
            raise InputError(
                f"sparse depth map {p} has mode {mode}; expected a single-channel 8-bit PNG "
                "or 16-bit PNG (depth x 256)"
            )
    if not (arr > 0).any():
        raise InputError(f"sparse depth map {p} has no sample (every pixel is 0)")
    return arr
