"""Train guided depth super-resolution (HAM v2 / naive twin).

``affseg train depth-sr`` (also spelled ``affseg depth-sr train``): the 30
``RGBD_depth_train`` scenes (never a benchmark scene), random aligned crops (flips,
transposition, channel permutation), degraded on the fly like the benchmark inputs
(:func:`degrade`: area downsampling by 2/4/8/16, Gaussian noise of std ~ U(4.5, 6.5)
disparity units, 8-bit rounding; the measured std of the provided inputs vs the
area-downsampled gt is 5.0-6.1 with gain 1.00, ``benchmarks/depth_sr_degradation.py``).
Inference, weights loading and the benchmark table are in :mod:`affseg.methods.depth_sr`.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.

Example
-------
>>> import numpy as np
>>> from affseg.train.depth_sr import synthesize_input
>>> synthesize_input(np.full((32, 32), 100.0, np.float32), 4, noise_std=0.0).shape
(8, 8)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from affseg.data import rgbd_train
from affseg.data.io import check_writable_file
from affseg.errors import InputError
from affseg.methods.depth_sr import FACTORS, _to_tensor_rgb
from affseg.train.ham_loop import augment, save_weights, seeded, train_loop

#: Factor of training step ``i`` is ``TRAIN_FACTORS[i % 6]`` (x8 and x16 drawn twice as often).
TRAIN_FACTORS: tuple[int, ...] = (2, 4, 8, 16, 8, 16)
#: Range of the synthetic noise std (8-bit disparity units). Measured on the benchmark
#: inputs vs the area-downsampled gt (benchmarks/depth_sr_degradation.py): gain 0.999-1.002,
#: std 5.0-5.1 (dolls), 5.8-5.9 (art), 6.0-6.1 (books) at every factor.
NOISE_STD: tuple[float, float] = (4.5, 6.5)
#: Smallest ground-truth disparity step (8-bit units) that :func:`depth_edge_mask` calls
#: a discontinuity.
EDGE_JUMP: float = 2.0


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
    pairs = []
    for rgb, depth in rgbd_train.load_scenes(data, scenes or None):
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


#: One precomputed input of a whole training scene: guide (3, H, W), gt (1, H, W), the
#: degraded low-resolution map (1, H/f, W/f) and its smoothed start map (1, H, W).
SceneStart = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def scene_starts(
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    factors: tuple[int, ...],
    draws: int,
    generator: torch.Generator,
    noise: tuple[float, float] = NOISE_STD,
) -> dict[int, list[SceneStart]]:
    """Degrade whole training scenes and solve each with the fast bilateral solver once.

    The bilateral solver's output depends on the whole image (its grid spans it), so the
    start maps of ``init="bilateral"`` training are computed on whole scenes, as at test
    time, not on crops: per factor, scene and draw, the scene (trimmed to a multiple of
    16) is degraded (:func:`degrade`, noise std uniform in ``noise``), upsampled
    bicubically (clamped to its range) and solved
    (:func:`~affseg.models.depth_sr_fast.bilateral_smooth`).

    Parameters
    ----------
    pairs : list of (Tensor (3, H, W), Tensor (1, H, W))
    factors : tuple of int
    draws : int
        Noise realisations per scene and factor.
    generator : torch.Generator
    noise : (float, float)

    Returns
    -------
    dict
        factor -> list of ``(rgb, gt, low, smooth)`` (:data:`SceneStart`).

    Examples
    --------
    >>> import torch
    >>> pairs = [(torch.rand(3, 40, 50), torch.rand(1, 40, 50) * 255)]
    >>> bank = scene_starts(pairs, (4,), 2, torch.Generator().manual_seed(0))
    >>> [tuple(t.shape) for t in bank[4][0]]
    [(3, 32, 48), (1, 32, 48), (1, 8, 12), (1, 32, 48)]
    """
    from affseg.models.depth_sr_fast import bilateral_smooth

    bank: dict[int, list[SceneStart]] = {}
    for f in sorted(set(factors)):
        bank[f] = []
        for rgb, gt in pairs:
            h, w = (gt.shape[-2] // 16) * 16, (gt.shape[-1] // 16) * 16
            im, g = rgb[:, :h, :w], gt[:, :h, :w]
            for _ in range(draws):
                std = noise[0] + (noise[1] - noise[0]) * torch.rand(1, generator=generator)
                low = degrade(g[None], f, std.view(1, 1, 1, 1), generator)
                up = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
                up = up.clamp(float(low.min()), float(low.max()))
                bank[f].append((im, g, low[0], bilateral_smooth(im[None], up, f)[0]))
    return bank


def sample_scene_starts(
    bank: dict[int, list[SceneStart]],
    crop: int,
    batch: int,
    factor: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random factor-aligned crops of precomputed scenes (:func:`scene_starts`), augmented.

    The same flips / transposition apply to the guide, gt, low-resolution map and start
    map (the colour permutation to the guide only, as in :func:`sample_batch`).

    Returns
    -------
    rgb : Tensor, shape (batch, 3, crop, crop)
    low : Tensor, shape (batch, 1, crop / factor, crop / factor)
    gt, smooth : Tensor, shape (batch, 1, crop, crop)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> bank = scene_starts([(torch.rand(3, 48, 48), torch.rand(1, 48, 48) * 255)], (4,), 1, g)
    >>> [tuple(t.shape) for t in sample_scene_starts(bank, 32, 2, 4, g)]
    [(2, 3, 32, 32), (2, 1, 8, 8), (2, 1, 32, 32), (2, 1, 32, 32)]
    """
    items = bank[factor]
    ims, stacks = [], []
    for i in torch.randint(0, len(items), (batch,), generator=generator).tolist():
        rgb, gt, low, smooth = items[i]
        h, w = gt.shape[-2:]
        if crop > min(h, w) or crop % factor:
            raise InputError(f"crop {crop} does not fit a {w}x{h} scene at factor {factor}")
        y = factor * int(torch.randint(0, (h - crop) // factor + 1, (1,), generator=generator))
        x = factor * int(torch.randint(0, (w - crop) // factor + 1, (1,), generator=generator))
        lo = low[:, y // factor : (y + crop) // factor, x // factor : (x + crop) // factor]
        lo = lo.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        ims.append(rgb[:, y : y + crop, x : x + crop])
        sl = (slice(None), slice(y, y + crop), slice(x, x + crop))
        stacks.append(torch.cat([gt[sl], smooth[sl], lo]))
    st, im = augment(torch.stack(stacks), torch.stack(ims), generator)
    return im, F.avg_pool2d(st[:, 2:3], factor), st[:, 0:1], st[:, 1:2]


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
    blend: bool = True,
    curvature: float = 0.1,
    c_param: str = "softplus",
    c_lr_mult: float = 1.0,
    factor_schedule: tuple[int, ...] = TRAIN_FACTORS,
    edge_weight: float = 0.0,
    ranked_head: bool = False,
    scene_draws: int = 0,
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
    ``scene_draws`` > 0 (``init="bilateral"``): the solver's start maps are computed on
    whole degraded scenes, that many noise draws per scene and factor
    (:func:`scene_starts`), and crops are taken from them (:func:`sample_scene_starts`);
    0: each crop is degraded and solved on its own.

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
    if scene_draws < 0 or (scene_draws and init != "bilateral"):
        raise InputError(f"scene draws must be >= 0 and need init 'bilateral', got {scene_draws}")
    with seeded(seed, threads) as gen:
        model = FastDepthSR(
            geometry=geometry,  # type: ignore[arg-type]
            iterations=iterations,
            init=init,  # type: ignore[arg-type]
            reimpose=reimpose,  # type: ignore[arg-type]
            blend_detail=blend_detail,
            blend=blend,
            curvature=curvature,
            c_param=c_param,  # type: ignore[arg-type]
            ranked_head=ranked_head,
        )
        pairs = load_training_pairs(data, scenes, scales)
        bank = scene_starts(pairs, factor_schedule, scene_draws, gen) if scene_draws else None

        def make_batch(step: int) -> tuple[tuple, torch.Tensor]:
            factor = factor_schedule[step % len(factor_schedule)]
            if bank is not None:
                im, low, g, smooth = sample_scene_starts(bank, crop, batch, factor, gen)
                return (im, low, factor, smooth), g
            im, low, g = sample_batch(pairs, crop, batch, factor, gen)
            return (im, low, factor, None), g

        def loss_fn(pred: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            sq = (pred - g) ** 2
            if edge_weight:
                w = 1.0 + edge_weight * depth_edge_mask(g)
                return (w * sq).sum() / w.sum()
            return sq.mean()

        result = train_loop(
            model,
            make_batch,
            loss_fn,
            steps,
            lr,
            c_lr_mult,
            forward=lambda im, low, factor, smooth: model(
                im, low, factor, fast=False, smooth=smooth
            ),
            log_every=log_every,
            loss_format=".4f",
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
            "blend": blend,
            "curvature": curvature,
            "c_param": c_param,
            "c_lr_mult": c_lr_mult,
            "factor_schedule": [int(f) for f in factor_schedule],
            "edge_weight": float(edge_weight),
            "scene_draws": int(scene_draws),
            "final_curvature": float(model.affinity.curvature.detach()),
            "scales": [float(x) for x in scales],
            "noise_std": list(NOISE_STD),
            "seconds": result.seconds(),
            "final_loss": result.final_loss(100),
        }
        save_weights(out, model, record)
        return record


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train depth-sr``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--out", "w.pt"]).geometry
    'hyperbolic'
    """
    from affseg.train.curvature_args import add_curvature_arguments

    p.add_argument("--geometry", choices=("hyperbolic", "euclidean"), default="hyperbolic")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=2, help="propagation steps per dilation stage")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--init",
        choices=("bicubic", "fgs", "bilateral"),
        default="fgs",
        help="initial map: bicubic, or a learned blend of bicubic and its fast global smoothing "
        "(fgs) or of bicubic and the fast bilateral solver's output (bilateral)",
    )
    p.add_argument(
        "--reimpose",
        choices=("init", "bicubic"),
        default="init",
        help="data term re-imposed during propagation with --init fgs",
    )
    p.add_argument(
        "--blend-detail",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --init fgs: full-resolution correction of the blend weight (default on)",
    )
    p.add_argument(
        "--blend",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --init fgs / bilateral: start from a learned blend of the bicubic and the "
        "smoothed map (default); --no-blend: from the smoothed map itself",
    )
    p.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0],
        help="train on every scene resized by each of these factors (bilinear)",
    )
    add_curvature_arguments(p)
    p.add_argument(
        "--factor-schedule",
        type=int,
        nargs="+",
        choices=(2, 4, 8, 16),
        default=None,
        help="factors cycled over the training steps (default 2 4 8 16 8 16)",
    )
    p.add_argument(
        "--edge-weight",
        type=float,
        default=0.0,
        help="extra loss weight of pixels at ground-truth depth discontinuities (default 0)",
    )
    p.add_argument(
        "--ranked-head",
        action="store_true",
        help="add the ranked-neighbour (UniDC HALM) head to the affinities; such a model "
        "runs the slower torch path",
    )
    p.add_argument(
        "--scene-draws",
        type=int,
        default=0,
        metavar="K",
        help="with --init bilateral: solve K degraded copies of every whole training scene "
        "per factor once and train on crops of them (as at test time, where the solver sees "
        "the whole image); 0 (default): solve each training crop on its own",
    )
    p.add_argument("--data", default=None)


def run(args: argparse.Namespace) -> int:
    """Check every argument, then train (``affseg train depth-sr``); returns the exit code.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> run(p.parse_args(["--out", "w.pt", "--steps", "0"]))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --steps must be >= 1 and --crop a multiple of 16 (>= 32)
    """
    from affseg.train.curvature_args import check_curvature_arguments

    if args.steps < 1 or args.crop % 16 or args.crop < 32:
        raise InputError("--steps must be >= 1 and --crop a multiple of 16 (>= 32)")
    if not all(math.isfinite(x) and 0.25 <= x <= 8 for x in args.scales):
        raise InputError(f"--scales must lie in [0.25, 8], got {args.scales}")
    if args.batch < 1 or args.iterations < 1 or args.threads < 1:
        raise InputError("--batch, --iterations and --threads must be >= 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr must be a positive number, got {args.lr}")
    if not (math.isfinite(args.edge_weight) and args.edge_weight >= 0):
        raise InputError(f"--edge-weight must be a number >= 0, got {args.edge_weight}")
    if args.scene_draws < 0 or (args.scene_draws and args.init != "bilateral"):
        raise InputError("--scene-draws must be >= 0 and needs --init bilateral")
    check_curvature_arguments(args)
    check_writable_file(args.out, "--out")
    rec = train(
        args.geometry,
        Path(args.out),
        args.steps,
        args.crop,
        args.batch,
        args.lr,
        args.seed,
        args.data,
        args.threads,
        iterations=args.iterations,
        init=args.init,
        reimpose=args.reimpose,
        scales=tuple(args.scales),
        blend_detail=args.blend_detail,
        blend=args.blend,
        curvature=args.curvature,
        c_param=args.c_param,
        c_lr_mult=args.c_lr_mult,
        factor_schedule=tuple(args.factor_schedule or TRAIN_FACTORS),
        edge_weight=args.edge_weight,
        ranked_head=args.ranked_head,
        scene_draws=args.scene_draws,
    )
    print(json.dumps(rec))
    return 0
