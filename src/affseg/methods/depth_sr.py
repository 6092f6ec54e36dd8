"""Guided depth super-resolution with HAM / naive propagation: data, inference, evaluation.

The method behind ``affseg depth-sr`` (the CLI in :mod:`affseg.cli.depth_sr` only parses
arguments and calls these functions).

The model (:class:`affseg.models.depth_sr_fast.FastDepthSR`, HAM v2) propagates the
bicubic upsampling at full resolution with learned HAM (``geometry="hyperbolic"``) or
Euclidean ("naive") affinities predicted by a guidance network at 1/4 resolution; one
model serves x2 ... x16. Training is :mod:`affseg.train.depth_sr` (``affseg train
depth-sr``). :func:`super_resolve` runs a model, optionally as
a test-time dihedral ensemble; :func:`evaluate` tables RMSE/MAE per factor for the shipped
models (:data:`DEFAULT_WEIGHTS`) and the computed baselines
(:mod:`affseg.methods.depth_baselines`).

Weights are plain tensors and Python containers, read with ``torch.load(...,
weights_only=True)``: a weights file cannot execute code.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
.. [2] D. Ferstl et al., "Image Guided Depth Upsampling using Anisotropic Total
   Generalized Variation", ICCV 2013 (the noisy Middlebury benchmark).
.. [3] J. T. Barron, B. Poole, "The Fast Bilateral Solver", ECCV 2016.

Example
-------
>>> import numpy as np
>>> from affseg.methods.depth_sr import super_resolve
>>> net = load_model(DEFAULT_WEIGHTS["ham"])
>>> super_resolve(net, np.zeros((64, 80, 3), np.uint8), np.full((8, 10), 7.0), 8).shape
(64, 80)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import CorruptFileError, InputError, first_line

#: Benchmark scale index i -> factor 2**i (``depth_{i}_n.png``).
FACTORS: dict[int, int] = {1: 2, 2: 4, 3: 8, 4: 16}
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: Shipped models of ``affseg depth-sr`` (trained on RGBD_depth_train, all factors).
DEFAULT_WEIGHTS: dict[str, str] = {
    "ham": "ham_depth_sr_hyperbolic.pt",
    "naive": "ham_depth_sr_euclidean.pt",
    # started from the fast bilateral solver's output (``init="bilateral"``): more
    # accurate, slower (the solver runs first) and more memory per pixel
    "ham-bilateral": "ham_depth_sr_bilateral_hyperbolic.pt",
    "naive-bilateral": "ham_depth_sr_bilateral_euclidean.pt",
}
#: Memory model of one super-resolution (bytes): ``(base, per output pixel)`` by path.
#: The output has the guide's resolution, so the guide's size sets the peak. Fitted to the
#: peak RSS (``ru_maxrss``) of a child process at x8 on 0.47 / 1.92 / 4.3 megapixel guides
#: and of ``affseg depth-sr run`` on a 12 MP guide: the compiled path of the shipped HAM v2
#: models (``fast``: 0.54 / 0.87 / 1.51 / 3.12 GB), the torch path (``torch``: models with a
#: ranked head or older files, 1.48 / 3.84 GB at 0.47 / 1.92 MP), and the baselines of
#: :mod:`affseg.methods.depth_baselines` (``bicubic``; ``bilateral``, the paper's set-up:
#: 0.45 / 0.94 GB at 0.37 / 1.5 MP); ``fast_bilateral``: the compiled path of a model that
#: starts from the bilateral solver's output (``init="bilateral"``): the solver's grid is
#: freed before the propagation, so the peak is the larger of the two plus the maps kept
#: (measured 1.14 / 2.61 GB at 1.5 / 6.0 MP: art_big x8 and its 2x enlargement).
#: Whole-image propagation is not tiled: the learned initial map is a global smoother (FGS)
#: of the bicubic map, so tiles would not reproduce the whole-image output.
MEMORY_MODEL: dict[str, tuple[float, float]] = {
    "fast": (0.45e9, 260.0),
    "torch": (0.6e9, 2000.0),
    "bicubic": (0.35e9, 40.0),
    "bilateral": (0.3e9, 450.0),
    "fast_bilateral": (0.45e9, 480.0),
}


def read_png(path: Path) -> np.ndarray:
    """Pixels of an image file as stored (after :func:`affseg.data.io.open_image`'s checks)."""
    from affseg.data.io import open_image

    with open_image(path, "file") as im:
        try:
            return np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt file
            raise CorruptFileError(f"cannot decode {path}: {exc}") from exc


def read_disparity(path: str | Path) -> np.ndarray:
    """Read a low-resolution disparity map in one of the two documented formats.

    * 8-bit single-channel PNG (mode ``L``): disparity in pixels, as the Middlebury
      benchmark inputs;
    * 16-bit single-channel PNG (mode ``I;16``): disparity x 256, the format
      ``affseg depth-sr run`` writes, so outputs can be fed back.

    Returns
    -------
    ndarray, shape (h, w), float32
        Disparity in pixels (8-bit range).

    Raises
    ------
    InputError
        Missing file, colour / alpha / 32-bit / float images, or a 16-bit map whose values
        exceed 255 x 256 (not disparity x 256).
    """
    from affseg.data.io import open_image

    p = Path(path)
    with open_image(p, "depth map") as im:
        mode = im.mode
        if mode == "L":
            return np.asarray(im).astype(np.float32)
        if mode in ("I;16", "I;16B", "I;16L", "I") and p.suffix.lower() == ".png":
            arr = np.asarray(im).astype(np.float64)
            if arr.min() < 0 or arr.max() > 65535:
                raise InputError(f"depth map {p} has values outside the 16-bit range")
            return (arr / 256.0).astype(np.float32)
    raise InputError(
        f"depth map {p} has mode {mode}; expected a single-channel 8-bit PNG (disparity) or "
        "16-bit PNG (disparity x 256, as depth-sr run writes)"
    )


def load_scene(scene: str, data: str | None = None) -> dict[str, np.ndarray]:
    """Read one Middlebury scene at every factor via :mod:`affseg.data.middlebury`.

    Returns
    -------
    dict
        ``rgb`` (H, W, 3) uint8; ``gt`` (H, W) float32 disparity; ``lr{f}`` (H/f, W/f)
        float32 noisy inputs and ``bp{f}`` (H, W) float32 bilateral-solver outputs
        (on the gt scale, i.e. divided by 256) for f in 2, 4, 8, 16.
    """
    from affseg.data import middlebury

    out: dict[str, np.ndarray] = {}
    for f in FACTORS.values():
        sc = middlebury.load_scene(scene, f, data)
        out["rgb"], out["gt"] = sc.guide, sc.gt.astype(np.float32)
        out[f"lr{f}"] = sc.lowres.astype(np.float32)
        if sc.barron_poole is not None:
            out[f"bp{f}"] = sc.barron_poole.astype(np.float32)
    return out


def _to_tensor_rgb(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def load_model(
    path: str | Path, task: Literal["depth_sr", "depth_completion"] = "depth_sr"
) -> torch.nn.Module:
    """Load the weights of a depth model, in eval mode: the one loader of both depth tasks.

    ``depth_sr``: weights written by :func:`affseg.train.depth_sr.train`
    (:class:`~affseg.models.depth_sr_fast.FastDepthSR`, HAM v2); ``depth_completion``:
    by :func:`affseg.train.depth_completion.train`
    (:class:`~affseg.models.depth_completion_net.DepthCompletionPropagation`).

    Parameters
    ----------
    path : path-like
        A weights file; a bare name that is not a file is looked up in the package
        (:data:`WEIGHTS_DIR`).
    task : {"depth_sr", "depth_completion"}
        The task the weights must be for.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    InputError
        The file does not exist, or an unknown task.
    CorruptFileError
        It is not weights of ``task`` (including HAM v1 super-resolution files, whose
        model is no longer shipped).

    Examples
    --------
    >>> type(load_model(DEFAULT_WEIGHTS["ham"])).__name__
    'FastDepthSR'
    >>> load_model("ham_depth_completion_hyperbolic.pt", "depth_completion").config()["geometry"]
    'hyperbolic'
    """
    from affseg.models.depth_completion_net import DepthCompletionPropagation
    from affseg.models.depth_sr_fast import FastDepthSR

    if task not in ("depth_sr", "depth_completion"):
        raise InputError(f"unknown depth task {task!r}; use depth_sr or depth_completion")
    p = Path(path)
    if not p.is_file() and (WEIGHTS_DIR / p.name).is_file():
        p = WEIGHTS_DIR / p.name
    if not p.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        payload = _safe_load(p)
        model: torch.nn.Module
        if task == "depth_completion":
            if payload["record"]["task"] != "depth_completion":
                raise ValueError(f"weights of task {payload['record']['task']!r}")
            model = DepthCompletionPropagation(**payload["config"])
        else:
            stored = dict(payload["record"]).get("task", "depth_sr")
            if stored != "depth_sr":
                raise ValueError(f"weights of task {stored!r}")
            config = dict(payload["config"])
            if "stride" not in config:
                raise ValueError("HAM v1 weights (no stride in the config) are not supported")
            config["dilations"] = tuple(config["dilations"])
            config["coarse_dilations"] = tuple(config.get("coarse_dilations", ()))
            model = FastDepthSR(**config)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # noqa: BLE001 - any unpickling / key / shape failure
        what = task.replace("_", "-")
        raise CorruptFileError(f"{p} is not affseg {what} weights ({first_line(exc)})") from exc
    return model.eval()


def _safe_load(p: Path) -> dict:
    """``torch.load`` that cannot run code (``weights_only=True``), for affseg's own files."""
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict):
        raise TypeError(f"expected a dict, got {type(payload).__name__}")
    return payload


def dihedral(x: torch.Tensor, t: int, inverse: bool = False) -> torch.Tensor:
    """Apply dihedral transform ``t`` (0..7) of the last two axes, or its inverse.

    Bit 0: flip left-right, bit 1: flip up-down, bit 2: transpose (applied last; the
    inverse transposes first). Shapes (..., H, W) -> (..., H, W) or (..., W, H).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> all(torch.equal(dihedral(dihedral(x, t), t, inverse=True), x) for t in range(8))
    True
    """
    if inverse and t & 4:
        x = x.transpose(-1, -2)
    if t & 1:
        x = x.flip(-1)
    if t & 2:
        x = x.flip(-2)
    if not inverse and t & 4:
        x = x.transpose(-1, -2)
    return x


def memory_path(model: torch.nn.Module | str) -> str:
    """Key of :data:`MEMORY_MODEL` for a model (its inference path) or a baseline name.

    Examples
    --------
    >>> memory_path("bilateral"), memory_path(load_model(DEFAULT_WEIGHTS["ham"]))
    ('bilateral', 'fast')
    """
    if isinstance(model, str):
        if model in MEMORY_MODEL:
            return model
        raise InputError(f"unknown depth-sr method {model!r}")
    from affseg.models.depth_sr_fast import FastDepthSR

    affinity = getattr(model, "affinity", None)
    if isinstance(model, FastDepthSR) and getattr(affinity, "head", None) is None:
        return "fast_bilateral" if model.init == "bilateral" else "fast"
    return "torch"


def sr_memory(model: torch.nn.Module | str, height: int, width: int, tta: int = 1) -> float:
    """Estimated peak memory (bytes) of super-resolving to a (height, width) guide.

    Parameters
    ----------
    model : Module or str
        A loaded model, or a baseline name (``"bicubic"``, ``"bilateral"``).
    height, width : int
        The guide's (the output's) size.
    tta : int
        Test-time ensemble size (one more float32 accumulator when > 1).

    Returns
    -------
    float
        Bytes: ``base + per_pixel x height x width`` (:data:`MEMORY_MODEL`).

    Examples
    --------
    >>> round(sr_memory("bilateral", 3000, 4000) / 1e9, 1)
    5.7
    """
    base, per_pixel = MEMORY_MODEL[memory_path(model)]
    per_pixel += 8.0 if tta > 1 else 0.0
    return base + per_pixel * float(height) * float(width)


def check_sr_memory(model: torch.nn.Module | str, height: int, width: int, tta: int = 1) -> None:
    """Refuse (one line) a guide whose :func:`sr_memory` exceeds ``$AFFSEG_MAX_MEMORY_GB``.

    Raises
    ------
    InputError
        Naming the estimate, the limit and the largest guide that fits.

    Examples
    --------
    >>> check_sr_memory("bicubic", 1088, 1376)
    >>> check_sr_memory("bilateral", 100_000, 100_000)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: guided depth super-resolution to a 100000 x 100000 guide would ...
    """
    from affseg.memory import check_memory, max_pixels_within

    path = memory_path(model)
    base, per_pixel = MEMORY_MODEL[path]
    most = max_pixels_within(base, per_pixel + (8.0 if tta > 1 else 0.0))
    check_memory(
        sr_memory(model, height, width, tta),
        f"guided depth super-resolution to a {width} x {height} guide",
        f"the output has the guide's size: give a guide of at most {most / 1e6:.1f} megapixels "
        "(and the depth map scaled with it), or raise the limit",
    )


def super_resolve(
    model: torch.nn.Module, rgb: np.ndarray, lr: np.ndarray, factor: int, tta: int = 1
) -> np.ndarray:
    """Run a model on numpy inputs, optionally as a test-time dihedral ensemble.

    Inputs whose size the model cannot take (HAM v2 needs the guide divisible by 16) are
    replicate-padded at the bottom / right and the output cropped back.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    lr : ndarray, shape (H/factor, W/factor)
    factor : int
    tta : {1, 2, 4, 8}
        Average the outputs over the first ``tta`` dihedral transforms of the inputs (see
        :func:`dihedral`: identity, left-right flip, up-down flip, both, then the same
        transposed); ``tta`` times the cost of one run.

    Returns
    -------
    ndarray, shape (H, W), float32

    Raises
    ------
    InputError
        Bad ``tta``; a guide whose estimated peak memory (:func:`sr_memory`) exceeds
        ``$AFFSEG_MAX_MEMORY_GB`` (checked before the model runs).
    """
    if tta not in (1, 2, 4, 8):
        raise InputError(f"tta must be 1, 2, 4 or 8, got {tta}")
    check_sr_memory(model, int(rgb.shape[0]), int(rgb.shape[1]), tta)
    h, w = lr.shape
    m = 4 * int(getattr(model, "stride", 1))
    step = m // math.gcd(m, factor)  # low-res multiple that makes factor * size divisible by m
    ph, pw = (-h) % step, (-w) % step
    g = _to_tensor_rgb(rgb)
    d = torch.from_numpy(lr.astype(np.float32))[None, None]
    if ph or pw:
        g = F.pad(g, (0, pw * factor, 0, ph * factor), mode="replicate")
        d = F.pad(d, (0, pw, 0, ph), mode="replicate")
    with torch.no_grad():
        acc = sum(
            dihedral(model(dihedral(g, t), dihedral(d, t), factor), t, inverse=True)
            for t in range(tta)
        )
    return (acc / tta)[0, 0, : h * factor, : w * factor].numpy()


def error_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (disparity units) and the other :func:`affseg.metrics.depth.depth_metrics`.

    Examples
    --------
    >>> import numpy as np
    >>> m = error_metrics(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    >>> round(m["rmse"], 4), m["mae"]
    (0.7071, 0.5)
    """
    from affseg.metrics.depth import depth_metrics

    return {k: float(v) for k, v in depth_metrics(pred, gt).items()}
