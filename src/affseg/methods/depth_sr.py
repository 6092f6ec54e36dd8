"""Guided depth super-resolution with HAM / naive propagation: data, training, inference.

The method behind ``affseg depth-sr`` (the CLI in :mod:`affseg.cli.depth_sr` only parses
arguments and calls these functions).

The model (:class:`affseg.models.depth_sr_fast.FastDepthSR`, HAM v2) propagates the
bicubic upsampling at full resolution with learned HAM (``geometry="hyperbolic"``) or
Euclidean ("naive") affinities predicted by a guidance network at 1/4 resolution; one
model serves x2 ... x16. :func:`train` uses the 30 ``RGBD_depth_train`` scenes (never a
benchmark scene): random aligned crops (flips, transposition, channel permutation),
degraded on the fly like the benchmark inputs (:func:`degrade`: area downsampling by
2/4/8/16, Gaussian noise of std ~ U(4.5, 6.5) disparity units, 8-bit rounding; the
measured std of the provided inputs vs the area-downsampled gt is 5.0-6.1 with gain 1.00,
``benchmarks/depth_sr_degradation.py``). :func:`super_resolve` runs a model, optionally as
a test-time dihedral ensemble; :func:`evaluate` tables RMSE/MAE per factor for the shipped
models (:data:`DEFAULT_WEIGHTS`) and the computed baselines
(:mod:`affseg.methods.depth_sr_baselines`).

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
>>> from affseg.methods.depth_sr import bicubic_upsample
>>> bicubic_upsample(np.full((4, 5), 7.0, np.float32), 4).shape
(16, 20)
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from affseg.data.io import atomic_write
from affseg.errors import CorruptFileError, InputError, first_line
from affseg.models.ham import curvature_adam
from affseg.runtime import torch_threads

#: Benchmark scale index i -> factor 2**i (``depth_{i}_n.png``).
FACTORS: dict[int, int] = {1: 2, 2: 4, 3: 8, 4: 16}
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: Shipped models of ``affseg depth-sr`` (trained on RGBD_depth_train, all factors).
DEFAULT_WEIGHTS: dict[str, str] = {
    "ham": "ham_depth_sr_hyperbolic.pt",
    "naive": "ham_depth_sr_euclidean.pt",
}
#: Factor of training step ``i`` is ``TRAIN_FACTORS[i % 6]`` (x8 and x16 drawn twice as often).
TRAIN_FACTORS: tuple[int, ...] = (2, 4, 8, 16, 8, 16)
#: Range of the synthetic noise std (8-bit disparity units). Measured on the benchmark
#: inputs vs the area-downsampled gt (benchmarks/depth_sr_degradation.py): gain 0.999-1.002,
#: std 5.0-5.1 (dolls), 5.8-5.9 (art), 6.0-6.1 (books) at every factor.
NOISE_STD: tuple[float, float] = (4.5, 6.5)
#: Smallest ground-truth disparity step (8-bit units) that :func:`depth_edge_mask` calls
#: a discontinuity.
EDGE_JUMP: float = 2.0
#: Memory model of one super-resolution (bytes): ``(base, per output pixel)`` by path.
#: The output has the guide's resolution, so the guide's size sets the peak. Fitted to the
#: peak RSS (``ru_maxrss``) of a child process at x8 on 0.47 / 1.92 / 4.3 megapixel guides
#: and of ``affseg depth-sr run`` on a 12 MP guide: the numba path of the shipped HAM v2
#: models (``fast``: 0.54 / 0.87 / 1.51 / 3.12 GB), the torch path (``torch``: models with a
#: ranked head or older files, 1.48 / 3.84 GB at 0.47 / 1.92 MP), and the baselines of
#: :mod:`affseg.methods.depth_sr_baselines` (``bicubic``; ``bilateral``: 0.43 / 0.75 / 1.29).
#: Whole-image propagation is not tiled: the learned initial map is a global smoother (FGS)
#: of the bicubic map, so tiles would not reproduce the whole-image output.
MEMORY_MODEL: dict[str, tuple[float, float]] = {
    "fast": (0.45e9, 260.0),
    "torch": (0.6e9, 2000.0),
    "bicubic": (0.35e9, 40.0),
    "bilateral": (0.4e9, 250.0),
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


def bicubic_upsample(lr: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling (torch, ``align_corners=False``) of (h, w) to (h*f, w*f).

    Examples
    --------
    >>> import numpy as np
    >>> bicubic_upsample(np.ones((4, 4)), 2).shape
    (8, 8)
    """
    t = torch.from_numpy(lr.astype(np.float32))[None, None]
    return F.interpolate(t, scale_factor=factor, mode="bicubic", align_corners=False)[0, 0].numpy()


def degrade(
    gt: torch.Tensor, factor: int, noise_std: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Simulate a benchmark input: area-downsample, add Gaussian noise, round to 8 bits.

    Parameters
    ----------
    gt : Tensor, shape (B, 1, H, W)
    factor : int
    noise_std : Tensor, shape (B, 1, 1, 1)
    generator : torch.Generator

    Returns
    -------
    Tensor, shape (B, 1, H/factor, W/factor)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> degrade(torch.ones(1, 1, 8, 8), 2, torch.tensor([0.0]), g).shape
    torch.Size([1, 1, 4, 4])
    """
    lr = F.avg_pool2d(gt, factor)
    noise = torch.randn(lr.shape, generator=generator) * noise_std
    return (lr + noise).round().clamp(0, 255)


def synthesize_input(gt: np.ndarray, factor: int, noise_std: float, seed: int = 0) -> np.ndarray:
    """A benchmark-like low-resolution input from a full-resolution disparity map.

    Area downsampling by ``factor`` (``(H, W) -> (H / f, W / f)``, e.g. 1376 x 1088 ->
    688 x 544 ... 86 x 68 for f = 2 ... 16, the benchmark's sizes), Gaussian noise of std
    ``noise_std`` and 8-bit rounding (:func:`degrade`).

    Parameters
    ----------
    gt : ndarray, shape (H, W)
        H and W divisible by ``factor``.
    factor : int
    noise_std : float
    seed : int

    Returns
    -------
    ndarray, shape (H / factor, W / factor), float32

    Examples
    --------
    >>> import numpy as np
    >>> synthesize_input(np.zeros((1088, 1376)), 16, 5.5).shape
    (68, 86)
    """
    h, w = gt.shape
    if factor < 1 or h % factor or w % factor:
        raise InputError(f"disparity {gt.shape} is not divisible by the factor {factor}")
    g = torch.Generator().manual_seed(seed)
    t = torch.from_numpy(np.asarray(gt, np.float32))[None, None]
    return degrade(t, factor, torch.full((1, 1, 1, 1), float(noise_std)), g)[0, 0].numpy()


def augment(
    gt: torch.Tensor, rgb: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, 90-degree rotation and colour-channel permutation of aligned crops.

    Parameters
    ----------
    gt : Tensor, shape (B, 1, S, S)
    rgb : Tensor, shape (B, 3, S, S)
    generator : torch.Generator

    Returns
    -------
    (Tensor, Tensor)
        The same shapes; one transform for the whole batch.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> gt, rgb = augment(torch.ones(1, 1, 8, 8), torch.ones(1, 3, 8, 8), g)
    >>> gt.shape, rgb.shape
    (torch.Size([1, 1, 8, 8]), torch.Size([1, 3, 8, 8]))
    """
    r = torch.rand(4, generator=generator)
    if r[0] < 0.5:
        gt, rgb = gt.flip(-1), rgb.flip(-1)
    if r[1] < 0.5:
        gt, rgb = gt.flip(-2), rgb.flip(-2)
    if r[2] < 0.5:
        gt, rgb = gt.transpose(-1, -2), rgb.transpose(-1, -2)
    if r[3] < 0.5:
        rgb = rgb[:, torch.randperm(3, generator=generator)]
    return gt.contiguous(), rgb.contiguous()


def load_training_pairs(
    data: str | None = None,
    scenes: list[str] | None = None,
    scales: tuple[float, ...] = (1.0,),
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Guides (3, H, W) in [0, 1] and disparities (1, H, W) of ``RGBD_depth_train`` scenes.

    Every scene is returned once per entry of ``scales``, resized by it (bilinear; 1 =
    unchanged): the benchmark's scenes are ~3x the training scenes' size, so an upscaled
    copy shows a factor-f degradation at the benchmark's scale of objects.

    Examples
    --------
    >>> pairs = load_training_pairs()          # doctest: +SKIP
    >>> len(pairs), pairs[0][0].shape[0]       # doctest: +SKIP
    (30, 3)
    """
    from affseg.data import rgbd_train

    names = scenes or rgbd_train.list_scenes(data)
    pairs = []
    for name in names:
        rgb, depth = rgbd_train.load_pair(name, data)
        im, d = _to_tensor_rgb(rgb), torch.from_numpy(depth)[None, None]
        for sc in scales:
            if sc == 1:
                pairs.append((im[0], d[0]))
                continue
            size = (int(round(d.shape[-2] * sc)), int(round(d.shape[-1] * sc)))
            pairs.append(
                (
                    F.interpolate(im, size=size, mode="bilinear", align_corners=False)[0],
                    F.interpolate(d, size=size, mode="bilinear", align_corners=False)[0],
                )
            )
    return pairs


def sample_batch(
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    crop: int,
    batch: int,
    factor: int,
    generator: torch.Generator,
    noise: tuple[float, float] = NOISE_STD,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random aligned crops of random scenes, augmented and degraded (:func:`degrade`).

    Parameters
    ----------
    pairs : list of (Tensor (3, H, W), Tensor (1, H, W))
    crop, batch, factor : int
    generator : torch.Generator
    noise : (float, float)
        Noise std drawn uniformly in this range per crop (8-bit disparity units).

    Returns
    -------
    rgb : Tensor, shape (batch, 3, crop, crop)
    low : Tensor, shape (batch, 1, crop / factor, crop / factor)
    gt : Tensor, shape (batch, 1, crop, crop)

    Examples
    --------
    >>> import torch
    >>> pairs = [(torch.rand(3, 40, 48), torch.rand(1, 40, 48) * 255)]
    >>> rgb, low, gt = sample_batch(pairs, 32, 2, 4, torch.Generator().manual_seed(0))
    >>> rgb.shape, low.shape, gt.shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]))
    """
    ims, gts = [], []
    for i in torch.randint(0, len(pairs), (batch,), generator=generator).tolist():
        rgb, gt = pairs[i]
        h, w = gt.shape[-2:]
        if crop > min(h, w):
            raise InputError(f"crop {crop} exceeds a {w}x{h} training scene")
        y = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
        x = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
        ims.append(rgb[:, y : y + crop, x : x + crop])
        gts.append(gt[:, y : y + crop, x : x + crop])
    g, im = augment(torch.stack(gts), torch.stack(ims), generator)
    std = noise[0] + (noise[1] - noise[0]) * torch.rand((batch, 1, 1, 1), generator=generator)
    return im, degrade(g, factor, std, generator), g


def depth_edge_mask(gt: torch.Tensor, jump: float = EDGE_JUMP) -> torch.Tensor:
    """Pixels within one pixel of a depth discontinuity of the ground truth.

    A pixel is an edge pixel when its 3 x 3 neighbourhood holds a pair of 4-neighbours
    whose disparities differ by more than ``jump``.

    Parameters
    ----------
    gt : Tensor, shape (B, 1, H, W)
        Disparity (8-bit units).
    jump : float
        Smallest disparity step that counts as a discontinuity.

    Returns
    -------
    Tensor, shape (B, 1, H, W), float in {0, 1}

    Examples
    --------
    >>> import torch
    >>> g = torch.zeros(1, 1, 4, 6)
    >>> g[..., 3:] = 10.0
    >>> depth_edge_mask(g)[0, 0, 0].tolist()
    [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """
    dx = (gt[..., :, 1:] - gt[..., :, :-1]).abs() > jump
    dy = (gt[..., 1:, :] - gt[..., :-1, :]).abs() > jump
    jumps = torch.zeros_like(gt, dtype=torch.bool)
    jumps[..., :, 1:] |= dx
    jumps[..., :, :-1] |= dx
    jumps[..., 1:, :] |= dy
    jumps[..., :-1, :] |= dy
    return F.max_pool2d(jumps.to(gt.dtype), 3, stride=1, padding=1)


def train(
    geometry: str,
    out: Path,
    steps: int = 1500,
    crop: int = 128,
    batch: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
    data: str | None = None,
    threads: int = 1,
    log_every: int = 50,
    iterations: int = 2,
    scenes: list[str] | None = None,
    init: str = "fgs",
    reimpose: str = "init",
    scales: tuple[float, ...] = (1.0,),
    blend_detail: bool = True,
    curvature: float = 0.1,
    c_param: str = "softplus",
    c_lr_mult: float = 1.0,
    factor_schedule: tuple[int, ...] = TRAIN_FACTORS,
    edge_weight: float = 0.0,
    ranked_head: bool = False,
) -> dict[str, object]:
    """Train a :class:`~affseg.models.depth_sr_fast.FastDepthSR` on ``RGBD_depth_train``.

    Every step draws ``batch`` random crops of random training scenes at factor
    ``factor_schedule[step % len(factor_schedule)]`` (default :data:`TRAIN_FACTORS`;
    :func:`sample_batch`) and minimises the MSE to the ground truth with Adam and a
    cosine schedule. No benchmark scene is used.
    ``curvature`` / ``c_param`` set the hyperbolic ball's initial curvature and its
    parametrisation; the curvature's learning rate is ``lr * c_lr_mult``.
    ``edge_weight`` > 0 weights the squared error of pixels near ground-truth depth
    discontinuities (:func:`depth_edge_mask`) by ``1 + edge_weight`` (weighted mean).
    ``ranked_head`` adds the ranked-neighbour head to the affinities (torch path only).

    Returns
    -------
    dict
        Training record (steps, seconds, final loss, ...) also stored in the weights.
    """
    from affseg.models.depth_sr_fast import FastDepthSR

    if not factor_schedule or any(f not in FACTORS.values() for f in factor_schedule):
        raise InputError(f"factor schedule must list factors of 2, 4, 8, 16, got {factor_schedule}")
    if not (math.isfinite(edge_weight) and edge_weight >= 0):
        raise InputError(f"edge weight must be a number >= 0, got {edge_weight}")
    with torch_threads(max(1, int(threads))):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = FastDepthSR(
            geometry=geometry,  # type: ignore[arg-type]
            iterations=iterations,
            init=init,  # type: ignore[arg-type]
            reimpose=reimpose,  # type: ignore[arg-type]
            blend_detail=blend_detail,
            curvature=curvature,
            c_param=c_param,  # type: ignore[arg-type]
            ranked_head=ranked_head,
        )
        pairs = load_training_pairs(data, scenes, scales)
        opt = curvature_adam(model, model.affinity, lr, c_lr_mult)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        t0 = time.time()
        losses: list[float] = []
        for step in range(steps):
            factor = factor_schedule[step % len(factor_schedule)]
            im, low, g = sample_batch(pairs, crop, batch, factor, gen)
            sq = (model(im, low, factor, fast=False) - g) ** 2
            if edge_weight:
                w = 1.0 + edge_weight * depth_edge_mask(g)
                loss = (w * sq).sum() / w.sum()
            else:
                loss = sq.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if log_every and (step + 1) % log_every == 0:
                print(
                    f"step {step + 1}/{steps} loss {np.mean(losses[-log_every:]):.4f} "
                    f"c {float(model.affinity.curvature.detach()):.4f} {time.time() - t0:.0f}s",
                    flush=True,
                )
        record = {
            "data": "RGBD_depth_train",
            "scenes": len(pairs) // len(scales),
            "geometry": geometry,
            "steps": steps,
            "crop": crop,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "iterations": iterations,
            "init": init,
            "reimpose": reimpose,
            "blend_detail": blend_detail,
            "curvature": curvature,
            "c_param": c_param,
            "c_lr_mult": c_lr_mult,
            "factor_schedule": [int(f) for f in factor_schedule],
            "edge_weight": float(edge_weight),
            "final_curvature": float(model.affinity.curvature.detach()),
            "scales": [float(x) for x in scales],
            "noise_std": list(NOISE_STD),
            "seconds": round(time.time() - t0, 1),
            "final_loss": float(np.mean(losses[-100:])),
        }
        payload = {"config": model.config(), "state_dict": model.state_dict(), "record": record}
        atomic_write(out, lambda p: torch.save(payload, p))
        return record


def load_model(path: str | Path) -> torch.nn.Module:
    """Load weights written by :func:`train` (a bare name is looked up in the package)."""
    return _load_payload(path)[0].eval()


def _load_payload(path: str | Path) -> tuple[torch.nn.Module, dict[str, object]]:
    """Model and training record of weights written by :func:`train`.

    Weights whose config has a ``stride`` are :class:`~affseg.models.depth_sr_fast.FastDepthSR`
    (HAM v2); older files are :class:`~affseg.models.depth_sr_net.DepthSRPropagation`.
    """
    from affseg.models.depth_sr_fast import FastDepthSR
    from affseg.models.depth_sr_net import DepthSRPropagation

    p = Path(path)
    if not p.is_file() and (WEIGHTS_DIR / p.name).is_file():
        p = WEIGHTS_DIR / p.name
    if not p.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        payload = _safe_load(p)
        config = dict(payload["config"])
        model: torch.nn.Module
        if "stride" in config:
            config["dilations"] = tuple(config["dilations"])
            config["coarse_dilations"] = tuple(config.get("coarse_dilations", ()))
            model = FastDepthSR(**config)
        else:
            model = DepthSRPropagation(**config)
        model.load_state_dict(payload["state_dict"])
        record = dict(payload["record"])
    except Exception as exc:  # noqa: BLE001 - any unpickling / key / shape failure
        raise CorruptFileError(f"{p} is not affseg depth-sr weights ({first_line(exc)})") from exc
    return model, record


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
        return "fast"
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
    3.4
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


def evaluate(
    weights: list[str] | None = None,
    scene: str = "art_big",
    data: str | None = None,
    threads: int = 2,
    tta: int = 1,
    factors: tuple[int, ...] | None = None,
    baselines: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """Table for one scene: method -> ``x{f}`` -> metrics (and ``seconds``).

    Parameters
    ----------
    weights : list of str, optional
        Model weights, tabled under their file stem; default the shipped models
        (:data:`DEFAULT_WEIGHTS`, keys ``ham`` and ``naive``).
    scene : str
        A ``Middlebury_depth_sr`` scene; ``barron_poole`` is tabled where its published
        outputs exist.
    tta : int
        Test-time dihedral ensemble size of the models (:func:`super_resolve`).
    factors : tuple of int, optional
        A subset of 2, 4, 8, 16 (default all).
    baselines : bool
        Also table ``bicubic``, ``bilateral_solver`` and ``guided_filter`` (computed,
        :mod:`affseg.methods.depth_sr_baselines`).
    """
    from affseg.methods.depth_sr_baselines import bilateral_upsample, guided_upsample

    named = dict(DEFAULT_WEIGHTS) if not weights else {Path(w).stem: w for w in weights}
    with torch_threads(max(1, int(threads))):
        models = {name: load_model(w) for name, w in named.items()}  # bad weights fail first
        sc = load_scene(scene, data)
        table: dict[str, dict[str, dict[str, float]]] = {}
        methods: dict[str, object] = {}
        if baselines:
            methods = {
                "bicubic": lambda rgb, lr, f: bicubic_upsample(lr, f),
                "bilateral_solver": bilateral_upsample,
                "guided_filter": guided_upsample,
            }
        for name, model in models.items():
            methods[name] = lambda rgb, lr, f, model=model: super_resolve(model, rgb, lr, f, tta)
        for f in factors or FACTORS.values():
            for name, fn in methods.items():
                t0 = time.perf_counter()
                pred = fn(sc["rgb"], sc[f"lr{f}"], f)  # type: ignore[operator]
                m = error_metrics(pred, sc["gt"])
                m["seconds"] = round(time.perf_counter() - t0, 3)
                table.setdefault(name, {})[f"x{f}"] = m
            if f"bp{f}" in sc:
                table.setdefault("barron_poole", {})[f"x{f}"] = error_metrics(
                    sc[f"bp{f}"], sc["gt"]
                )
        return table
