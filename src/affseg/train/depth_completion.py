"""Train depth completion from sparse samples (HAM / naive twin).

``affseg train depth-complete`` (also ``affseg depth-complete --train``): random crops of
the 30 ``RGBD_depth_train`` scenes (never a benchmark scene), the same flips, transposition
and channel permutation as depth super-resolution (:func:`affseg.train.ham_loop.augment`),
sparse samples drawn at the benchmark's density (:func:`affseg.methods.depth_completion.
sample_sparse`), trained by the loop shared with depth super-resolution
(:func:`affseg.train.ham_loop.train_loop`). Inference and the benchmark are in
:mod:`affseg.methods.depth_completion`.

Example
-------
>>> from affseg.train.depth_completion import load_train_scenes
>>> load_train_scenes(data="/nonexistent")
Traceback (most recent call last):
...
affseg.errors.DatasetNotFoundError: dataset RGBD_depth_train not found at ...
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from affseg.data import rgbd_train
from affseg.data.io import check_writable_file
from affseg.errors import InputError
from affseg.methods.depth_completion import DENSITY, network_inputs, sample_sparse
from affseg.train.ham_loop import augment, save_weights, seeded, train_loop


def load_train_scenes(data: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every ``RGBD_depth_train`` scene as (rgb (H, W, 3) uint8, depth (H, W) float32),
    uncropped (:func:`affseg.data.rgbd_train.load_scenes` with ``multiple=1``).

    Examples
    --------
    >>> load_train_scenes(data="/nonexistent")
    Traceback (most recent call last):
    ...
    affseg.errors.DatasetNotFoundError: dataset RGBD_depth_train not found at ...
    """
    return rgbd_train.load_scenes(data, multiple=1)


def train(
    geometry: str,
    out: Path,
    steps: int = 300,
    crop: int = 128,
    batch: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
    data: str | None = None,
    threads: int = 1,
    iterations: int = 4,
    log_every: int = 50,
    init: str = "fgs",
    curvature: float = 0.1,
    c_param: str = "softplus",
    c_lr_mult: float = 1.0,
) -> dict[str, object]:
    """Train a :class:`~affseg.models.depth_completion_net.DepthCompletionPropagation`.

    Random ``crop x crop`` crops of the ``RGBD_depth_train`` scenes (flips, transposition,
    channel permutation) with ``round(DENSITY * crop**2)`` samples each; the initial fill
    ``init`` ("fgs": :func:`~affseg.methods.depth_baselines.fgs_complete`, default;
    "nearest": :func:`~affseg.methods.depth_completion.nearest_fill`) is
    computed per crop; MSE loss on all pixels, Adam with a cosine schedule.
    ``curvature`` / ``c_param`` set the hyperbolic ball's initial curvature and its
    parametrisation; the curvature's learning rate is ``lr * c_lr_mult``.

    Returns
    -------
    dict
        Training record (steps, seconds, final loss, ...), also stored in the weights.

    Examples
    --------
    >>> train("spherical", Path("w.pt"))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: unknown geometry 'spherical'; use hyperbolic or euclidean
    """
    from affseg.models.depth_completion_net import DepthCompletionPropagation

    if geometry not in ("hyperbolic", "euclidean"):
        raise InputError(f"unknown geometry {geometry!r}; use hyperbolic or euclidean")
    if init not in ("nearest", "fgs"):
        raise InputError(f"unknown initial fill {init!r}; use nearest or fgs")
    with seeded(seed, threads) as gen:
        rng = np.random.default_rng(seed)
        model = DepthCompletionPropagation(
            geometry,  # type: ignore[arg-type]
            iterations=iterations,
            init=init,
            curvature=curvature,
            c_param=c_param,  # type: ignore[arg-type]
        )
        scenes = [
            (torch.from_numpy(r.astype(np.float32) / 255.0).permute(2, 0, 1), torch.from_numpy(d))
            for r, d in load_train_scenes(data)
        ]
        if crop > min(min(d.shape) for _, d in scenes):
            raise InputError(f"crop {crop} exceeds the smallest training scene")
        n_samp = max(1, round(DENSITY * crop * crop))

        def make_batch(step: int) -> tuple[list[torch.Tensor], torch.Tensor]:
            ims, gts, inits, masks, dists = [], [], [], [], []
            for _ in range(batch):
                im, d = scenes[int(torch.randint(len(scenes), (1,), generator=gen))]
                y = int(torch.randint(d.shape[0] - crop + 1, (1,), generator=gen))
                x = int(torch.randint(d.shape[1] - crop + 1, (1,), generator=gen))
                g, im = augment(
                    d[y : y + crop, x : x + crop], im[:, y : y + crop, x : x + crop], gen
                )
                sparse = sample_sparse(g.numpy(), n_samp, int(rng.integers(2**31)))
                im8 = (im * 255).round().byte().permute(1, 2, 0).numpy()
                _, fill, mask, dist = network_inputs(im8, sparse, init)
                ims.append(im)
                gts.append(g[None])
                inits.append(fill[0])
                masks.append(mask[0])
                dists.append(dist[0])
            inputs = [torch.stack(t) for t in (ims, inits, masks, dists)]
            return inputs, torch.stack(gts)

        def loss_fn(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            valid = (gt > 0).float()
            return (((pred - gt) ** 2) * valid).sum() / valid.sum().clamp_min(1.0)

        result = train_loop(
            model, make_batch, loss_fn, steps, lr, c_lr_mult, log_every=log_every, loss_format=".3f"
        )
        record = {
            "task": "depth_completion",
            "geometry": geometry,
            "train_data": "RGBD_depth_train (30 scenes)",
            "steps": steps,
            "crop": crop,
            "batch": batch,
            "samples_per_crop": n_samp,
            "lr": lr,
            "seed": seed,
            "iterations": iterations,
            "init": init,
            "curvature": curvature,
            "c_param": c_param,
            "c_lr_mult": c_lr_mult,
            "final_curvature": float(model.affinity.curvature.detach()),
            "seconds": result.seconds(),
            "final_loss": result.final_loss(50),
        }
        save_weights(out, model, record)
        return record


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train depth-complete``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--out", "w.pt"]).steps
    300
    """
    from affseg.train.curvature_args import add_curvature_arguments

    p.add_argument("--out", required=True, help="weights file to write")
    p.add_argument("--geometry", choices=("hyperbolic", "euclidean"), default="hyperbolic")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--init",
        choices=("fgs", "nearest"),
        default="fgs",
        help="initial fill the trained model propagates",
    )
    p.add_argument("--data", default=None, help="data root holding RGBD_depth_train/")
    add_curvature_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Check every argument, then train (``affseg train depth-complete``).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> run(p.parse_args(["--out", "w.pt", "--steps", "0"]))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --steps and --batch must be >= 1, --crop a multiple of 8 (>= 32)
    """
    from affseg.train.curvature_args import check_curvature_arguments

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.steps < 1 or args.batch < 1 or args.crop < 32 or args.crop % 8:
        raise InputError("--steps and --batch must be >= 1, --crop a multiple of 8 (>= 32)")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr must be a positive number, got {args.lr}")
    check_curvature_arguments(args)
    check_writable_file(args.out, "--out")
    rec = train(
        args.geometry,
        Path(args.out),
        steps=args.steps,
        crop=args.crop,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        data=args.data,
        threads=args.threads,
        init=args.init,
        curvature=args.curvature,
        c_param=args.c_param,
        c_lr_mult=args.c_lr_mult,
    )
    print(json.dumps(rec))
    return 0
