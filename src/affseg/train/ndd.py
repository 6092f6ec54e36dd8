"""Train spec-diff-net (neural diffusion distance) on BSDS500 or on your own segmentations.

Data (:mod:`affseg.train.segmentation_args`): BSDS500 by default; ``--data DIR`` with
``images/<split>/`` + ``masks/<split>/`` label maps, or ``--images SPLIT=DIR --masks
SPLIT=DIR`` pairs of folders (several ``--masks`` folders: several annotators),
``--ignore-index`` for void pixels. On BSDS500 a run starts from scratch (the shipped
model's recipe); on other data it fine-tunes the shipped model (``--init``), whose
architecture it keeps. The weights file records the data, the starting weights and the
command, and ``affseg segment --set weights=FILE`` uses it.

CPU budget: the EfficientNet-Lite0 backbone is frozen and its features are cached on disk
once per image, scale and flip (:mod:`affseg.train.ndd_cache`), so a training step runs only
the feature head, the diffusion engine and the interpolation on a cached crop. This is what
makes a useful run fit in well under 90 minutes on 2 CPU cores; the price is that the
backbone is not fine-tuned (the reference fine-tunes its ResNet-101 for 160k GPU steps).

Schedule (seed 001 Sect. 5): stage 1 uses the LR kernel matching loss (Eq. 7) only, stage 2
adds the HR segment matching loss (Eq. 8). Adam with poly decay; the diffusion and
interpolation parameters (mu, t, tau, gammas; log-parametrised) get 10x the learning rate,
as in the reference. The schedule is step-based (``--steps``, default 1740: about 45 minutes
on 2 quiet CPU cores, exactly reproducible); ``--steps 0 --minutes M`` makes it follow
wall-clock time instead, and ``--minutes`` alone caps a step-based run.

Each step draws, from a per-step seeded generator (so that a resumed run draws the same
samples): an image, one of the cached scales (0.8 / 1.0 / 1.2) and flips, one human
annotation at random, and a random crop of at most ``--crop`` pixels aligned to 16 pixels.
A checkpoint (head, optimiser, step, elapsed time) is written atomically every
``--checkpoint-minutes``; ``--resume`` continues from it. Logs: ``<out>/log.jsonl`` (loss,
val cosine, mu, t, tau) and a tqdm bar.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.data.io import atomic_write, check_writable_dir, check_writable_file, write_json
from affseg.errors import AffsegError, CorruptFileError, InputError, first_line
from affseg.runtime import torch_threads
from affseg.train.segmentation_args import (
    add_segmentation_arguments,
    open_training_segmentations,
    resolve_init,
)

#: Defaults of the shipped run.
DEFAULT_SCALES = (0.8, 1.0, 1.2)
DEFAULT_STEPS = 1740


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``affseg train ndd``."""
    add_segmentation_arguments(p)
    p.add_argument(
        "--splits",
        nargs="+",
        default=["train"],
        help="splits to train on (the shipped model: BSDS500 train; train val for the final "
        "one); a split named val is otherwise used for the val cosine",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-clock training budget "
        "(excluding feature caching); the schedule itself follows it with --steps 0",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help="train this many steps with a step-based, reproducible schedule "
        "(0: time-based, needs --minutes)",
    )
    p.add_argument("--out", default="runs/ndd", help="output folder (checkpoint, log, weights)")
    p.add_argument("--cache", default=None, help="feature cache folder (default OUT/cache)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate of the head (default 1e-3 from scratch, 3e-4 fine-tuning)",
    )
    p.add_argument("--batch", type=int, default=2, help="crops per optimiser step")
    p.add_argument("--crop", type=int, default=256, help="crop size in pixels (multiple of 16)")
    p.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES))
    p.add_argument(
        "--stage1", type=float, default=0.5, help="fraction of the schedule with the LR loss only"
    )
    p.add_argument("--hr-weight", type=float, default=1.0, help="weight of the HR loss")
    p.add_argument(
        "--hr-segments",
        type=int,
        default=12,
        help="at most this many GT segments (the largest) per crop in the HR loss",
    )
    p.add_argument(
        "--val-images",
        type=int,
        default=20,
        help="val images for the kernel cosine (0: none; skipped when training on val)",
    )
    g = p.add_argument_group(
        "diffusion engine (saved with the weights; a fine-tuned run keeps its start's)"
    )
    g.add_argument("--window", type=int, default=17, help="graph window k (odd)")
    g.add_argument("--n-eig", type=int, default=50, help="number of eigenvectors Ne")
    g.add_argument("--n-outer", type=int, default=2, help="outer QR iterations T")
    g.add_argument("--n-inner", type=int, default=20, help="operator applications per QR")
    g.add_argument("--t-init", type=float, default=10.0, help="initial diffusion time t")
    g.add_argument("--hidden", type=int, default=128, help="head width")
    g.add_argument("--feat-dim", type=int, default=64, help="grid feature channels")
    p.add_argument("--checkpoint-minutes", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument(
        "--ship",
        action="store_true",
        help="also write the final weights into the package (affseg/weights/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------- sampling
def crop_item(
    item: dict[str, torch.Tensor], rng: np.random.Generator, crop: int, annotation: int | slice
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Random crop of a cached item, aligned to 16 pixels.

    Parameters
    ----------
    item : dict of Tensor
        A :class:`~affseg.train.ndd_cache.FeatureCache` item.
    rng : numpy Generator
    crop : int
        Crop size in pixels (multiple of 16); smaller images are used whole along that axis.
    annotation : int or slice
        Which human annotation to use (``slice(None)``: all of them, labels then gain a
        leading (K,) axis).

    Returns
    -------
    pyramid : list of Tensor
        ``[f2, f4, f8, f16]`` crops, each (1, C, ch/s, cw/s), float32.
    grid_labels : Tensor, shape (ch/8, cw/8), int64
    half_labels : Tensor, shape (ch/2, cw/2), int64
    """
    hh, ww = (int(v) * 8 for v in item["grid"].shape[-2:])
    ch, cw = min(crop, hh), min(crop, ww)
    y0 = 16 * int(rng.integers(0, (hh - ch) // 16 + 1))
    x0 = 16 * int(rng.integers(0, (ww - cw) // 16 + 1))
    pyr = [
        item[f"f{s}"][None, :, y0 // s : (y0 + ch) // s, x0 // s : (x0 + cw) // s].float()
        for s in (2, 4, 8, 16)
    ]
    grid = item["grid"][annotation, y0 // 8 : (y0 + ch) // 8, x0 // 8 : (x0 + cw) // 8].long()
    half = item["half"][annotation, y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2].long()
    return pyr, grid, half


def sample_loss(
    model: Any,
    item: dict[str, torch.Tensor],
    rng: np.random.Generator,
    crop: int,
    use_hr: bool,
    hr_segments: int,
    hr_weight: float,
) -> tuple[torch.Tensor, float, float]:
    """Loss of one random crop of one cached item.

    Returns
    -------
    loss : Tensor, scalar
        LR loss (+ hr_weight x HR loss when ``use_hr``).
    lr_value, hr_value : float
        The two terms (``nan`` for HR when unused).
    """
    from affseg.models.ndd_losses import hr_segment_loss, lr_kernel_loss, sample_segment_nodes

    ann = int(rng.integers(0, item["grid"].shape[0]))
    pyr, grid, half = crop_item(item, rng, crop, ann)
    image_size = (half.shape[0] * 2, half.shape[1] * 2)
    out = model.encode_pyramid(pyr, image_size)
    labels = grid.reshape(1, -1)
    loss_lr = lr_kernel_loss(out.embedding, out.tau, labels)
    loss = loss_lr
    hr_value = float("nan")
    nodes, segs = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if use_hr:
        nodes, segs = sample_segment_nodes(labels[0].numpy(), rng, hr_segments)
    if len(nodes):
        rows = model.similarity_rows(out, torch.from_numpy(nodes))  # (1, M, N)
        maps = rows.reshape(1, len(nodes), *out.grid)
        up = model.upsample(maps, out, size=tuple(half.shape))[0]  # (M, h2, w2)
        loss_hr = hr_segment_loss(up, half, torch.from_numpy(segs))
        loss = loss + hr_weight * loss_hr
        hr_value = float(loss_hr.detach())
    return loss, float(loss_lr.detach()), hr_value


@torch.no_grad()
def val_cosine(model: Any, cache: Any, keys: list[str]) -> float:
    """Mean Eq. 7 cosine over images and all their annotations (full cached images)."""
    from affseg.models.ndd_losses import diffusion_kernel, kernel_cosine

    if not keys:
        return float("nan")
    was = model.training
    model.eval()
    vals = []
    for key in keys:
        item = cache.load(key)
        pyr = [item[f"f{s}"][None].float() for s in (2, 4, 8, 16)]
        grid = item["grid"].long()
        out = model.encode_pyramid(pyr, (grid.shape[1] * 8, grid.shape[2] * 8))
        k = diffusion_kernel(out.embedding, out.tau)
        labels = grid.reshape(grid.shape[0], -1)
        vals.append(float(kernel_cosine(k.expand(len(labels), -1, -1), labels).mean()))
    model.train(was)
    return float(np.mean(vals))


# ----------------------------------------------------------------------------- schedule
def lr_factor(progress: float, power: float = 0.9) -> float:
    """Poly decay ``(1 - progress) ** power``, floored at 1 %."""
    return max(0.01, (1.0 - min(progress, 1.0)) ** power)


def _param_groups(model: Any, lr: float) -> list[dict[str, Any]]:
    head = [p for p in model.head.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    return [
        {"params": head, "lr": lr, "base_lr": lr},
        {"params": other, "lr": 10 * lr, "base_lr": 10 * lr},
    ]


# ----------------------------------------------------------------------------- validation
def check_args(args: argparse.Namespace) -> None:
    """Validate every option before any work (nothing is written when one is wrong).

    Raises
    ------
    InputError
        The first bad option, named with its constraint.
    """

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise InputError(msg)

    def finite(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    need(isinstance(args.steps, int) and args.steps >= 0, f"--steps must be >= 0, got {args.steps}")
    if args.minutes is not None:
        need(
            finite(args.minutes) and args.minutes > 0,
            f"--minutes must be a positive number, got {args.minutes}",
        )
    need(args.steps > 0 or args.minutes is not None, "--steps 0 (time-based) needs --minutes")
    need(args.batch >= 1, f"--batch must be >= 1, got {args.batch}")
    need(
        args.crop % 16 == 0 and args.crop >= 32,
        f"--crop must be a multiple of 16 and >= 32; got {args.crop}",
    )
    if args.lr is not None:
        need(finite(args.lr) and args.lr > 0, f"--lr must be a positive number, got {args.lr}")
    need(len(args.scales) >= 1, "--scales needs at least one scale")
    need(
        all(finite(v) and 0.1 <= v <= 4 for v in args.scales),
        f"--scales must lie in [0.1, 4], got {args.scales}",
    )
    need(
        finite(args.stage1) and 0 <= args.stage1 <= 1,
        f"--stage1 must lie in [0, 1], got {args.stage1}",
    )
    need(
        finite(args.hr_weight) and args.hr_weight >= 0,
        f"--hr-weight must be >= 0, got {args.hr_weight}",
    )
    need(args.hr_segments >= 1, f"--hr-segments must be >= 1, got {args.hr_segments}")
    need(args.val_images >= 0, f"--val-images must be >= 0, got {args.val_images}")
    need(
        args.window >= 3 and args.window % 2 == 1,
        f"--window must be odd and >= 3, got {args.window}",
    )
    for name in ("n_eig", "n_outer", "n_inner", "hidden", "feat_dim", "threads"):
        v = getattr(args, name)
        need(v >= 1, f"--{name.replace('_', '-')} must be >= 1, got {v}")
    need(finite(args.t_init) and args.t_init > 0, f"--t-init must be > 0, got {args.t_init}")
    need(
        finite(args.checkpoint_minutes) and args.checkpoint_minutes >= 0,
        f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}",
    )
    need(args.seed >= 0, f"--seed must be >= 0, got {args.seed}")
    need(len(args.splits) >= 1, "--splits needs at least one split")


def _engine_config(args: argparse.Namespace) -> dict[str, Any]:
    """The options a checkpoint must share with the run that resumes it."""
    # the architecture and the engine; the schedule (--steps, --lr, ...) may change on
    # resume (e.g. to extend a run), but then the run is no longer an uninterrupted one
    keys = ("hidden", "feat_dim", "window", "n_eig", "n_outer", "n_inner")
    return {k: getattr(args, k) for k in keys}


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


# ----------------------------------------------------------------------------- main loop
def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) a training; return the final record (also written to OUT)."""
    from tqdm import tqdm

    from affseg.backbones import load_backbone
    from affseg.models.spec_diff_net import (
        SpecDiffNet,
        default_weights_path,
        load_pretrained,
        save_weights,
    )
    from affseg.train.ndd_cache import FeatureCache

    args = argparse.Namespace(**vars(args))  # defaults are filled in below: a copy
    check_args(args)
    # the data first: a missing split leaves no --out, no cache
    data = open_training_segmentations(args)
    split_items = {split: data.items(split) for split in args.splits}
    need_val = args.val_images > 0 and "val" not in args.splits and "val" in data.splits
    val_items = data.items("val")[: args.val_images] if need_val else []
    init = resolve_init(args.init, data.is_bsds, default_weights_path())
    if init is not None:
        _adopt_architecture(args, init)
    if args.lr is None:
        args.lr = 1e-3 if init is None else 3e-4
    out_dir = check_writable_dir(args.out, "--out")
    ckpt_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "log.jsonl"
    ck: dict[str, Any] | None = None
    if args.resume:
        if not ckpt_path.is_file():
            raise InputError(f"--resume: no checkpoint at {ckpt_path}")
        ck = _load_checkpoint(ckpt_path, _engine_config(args))  # before any work
    if args.ship:
        check_writable_file(default_weights_path(), "--ship target")
    with torch_threads(max(1, int(args.threads))):
        cache = FeatureCache(args.cache or out_dir / "cache")
        torch.manual_seed(args.seed)

        backbone = load_backbone()
        keys: list[str] = []
        for split, items in split_items.items():
            keys += cache.build(
                backbone, items, split, args.scales, (False, True), progress=not args.no_progress
            )
        val_keys: list[str] = []
        if val_items:
            val_keys = cache.build(
                backbone, val_items, "val", (1.0,), (False,), progress=not args.no_progress
            )

        if init is None:
            model = SpecDiffNet(
                backbone=backbone,
                hidden=args.hidden,
                feat_dim=args.feat_dim,
                k=args.window,
                n_eig=args.n_eig,
                n_outer=args.n_outer,
                n_inner=args.n_inner,
                t=args.t_init,
            )
        else:
            model = load_pretrained(init, backbone=backbone)
        model.train()
        optim = torch.optim.Adam(_param_groups(model, args.lr))
        step, elapsed = 0, 0.0
        lr_hist: list[float] = []
        hr_hist: list[float] = []
        val = float("nan")
        if ck is not None:
            try:
                model.load_trainable_state_dict(ck["model"])
                optim.load_state_dict(ck["optim"])
            except Exception as exc:  # noqa: BLE001 - a checkpoint of another model
                raise CorruptFileError(
                    f"{ckpt_path} does not match this model ({first_line(exc)}); "
                    "resume with the options it was written with"
                ) from None
            step, elapsed = int(ck["step"]), float(ck["elapsed"])
            torch.set_rng_state(ck["torch_rng"])
            lr_hist, hr_hist = list(ck["lr_hist"]), list(ck["hr_hist"])
            val = float(ck["val"])
        elif log_path.exists():
            log_path.unlink()

        budget = math.inf if args.minutes is None else 60.0 * float(args.minutes)

        def progress_of(step_: int, elapsed_: float) -> float:
            if args.steps:
                return step_ / args.steps
            return elapsed_ / budget

        def save_checkpoint() -> None:
            state = {
                "model": model.trainable_state_dict(),
                "optim": optim.state_dict(),
                "step": step,
                "elapsed": elapsed,
                # everything the rest of the run depends on, so that a resumed run ends
                # with the weights of an uninterrupted one (data order: per-step seeds)
                "torch_rng": torch.get_rng_state(),
                "lr_hist": lr_hist[-100:],
                "hr_hist": hr_hist[-100:],
                "val": val,
                "config": _engine_config(args),
            }
            atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))

        def log(rec: dict[str, Any]) -> None:
            clean = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in rec.items()}
            with open(log_path, "a") as fh:
                fh.write(json.dumps(clean, allow_nan=False) + "\n")

        total = args.steps if args.steps else None
        bar = tqdm(
            total=total,
            initial=step,
            desc="train ndd",
            disable=args.no_progress,
            dynamic_ncols=True,
        )
        last_ckpt = time.monotonic()
        run_start = time.monotonic() - elapsed
        while progress_of(step, elapsed) < 1.0 and elapsed < budget:
            prog = progress_of(step, elapsed)
            use_hr = prog >= args.stage1
            for g in optim.param_groups:
                g["lr"] = g["base_lr"] * lr_factor(prog)
            rng = np.random.default_rng([args.seed, step])
            optim.zero_grad(set_to_none=True)
            for _ in range(args.batch):
                item = cache.load(keys[int(rng.integers(0, len(keys)))])
                loss, lv, hv = sample_loss(
                    model, item, rng, args.crop, use_hr, args.hr_segments, args.hr_weight
                )
                (loss / args.batch).backward()
                lr_hist.append(lv)
                if use_hr and math.isfinite(hv):
                    hr_hist.append(hv)
            optim.step()
            step += 1
            elapsed = time.monotonic() - run_start
            bar.update(1)
            params = model.diffusion_parameters()
            bar.set_postfix(
                stage=2 if use_hr else 1,
                lr_loss=f"{np.mean(lr_hist[-50:]):.3f}",
                hr_loss=f"{np.mean(hr_hist[-50:]):.3f}" if hr_hist else "-",
                val=f"{val:.3f}",
                min=f"{elapsed / 60:.1f}",
            )
            done = progress_of(step, elapsed) >= 1.0 or elapsed >= budget
            if done or time.monotonic() - last_ckpt >= 60.0 * args.checkpoint_minutes:
                val = val_cosine(model, cache, val_keys)
                rec = {
                    "step": step,
                    "minutes": round(elapsed / 60, 3),
                    "stage": 2 if use_hr else 1,
                    "lr_loss": float(np.mean(lr_hist[-100:])),
                    "hr_loss": float(np.mean(hr_hist[-100:])) if hr_hist else None,
                    "val_cosine": val,
                    **params,
                }
                log(rec)
                save_checkpoint()
                last_ckpt = time.monotonic()
        bar.close()
        record = {
            "command": "affseg train ndd " + " ".join(_cli_args(args)),
            "data": data.name,
            "splits": list(args.splits),
            "init": "scratch" if init is None else str(init),
            "ignore_index": args.ignore_index,
            "regions": args.regions,
            "steps": step,
            "minutes": round(elapsed / 60, 2),
            "final_lr_loss": float(np.mean(lr_hist[-100:])) if lr_hist else None,
            "final_hr_loss": float(np.mean(hr_hist[-100:])) if hr_hist else None,
            "val_cosine": _finite_or_none(val) if val_keys else None,
            "val_images": len(val_keys),
            "seed": args.seed,
        }
        if not lr_hist or not all(math.isfinite(v) for v in lr_hist[-100:]):
            raise AffsegError(
                "training diverged or ran no step (non-finite loss); no weights written"
            )
        # only now, after a complete run: each file is written atomically, the shipped
        # weights last
        save_weights(model, out_dir / "spec_diff_net.pt", record)
        write_json(out_dir / "record.json", record)
        if args.ship:
            save_weights(model, default_weights_path(), record)
        return record


def _adopt_architecture(args: argparse.Namespace, init: Path) -> None:
    """Set the architecture options of ``args`` to those of the starting weights."""
    try:
        config = dict(torch.load(init, map_location="cpu", weights_only=True)["config"])
        arch = {
            "hidden": int(config["hidden"]),
            "feat_dim": int(config["feat_dim"]),
            "window": int(config["k"]),
            "n_eig": int(config["n_eig"]),
            "n_outer": int(config["n_outer"]),
            "n_inner": int(config["n_inner"]),
            "t_init": float(config["t"]),
        }
    except Exception as exc:  # noqa: BLE001 - random bytes, another kind of weights
        raise CorruptFileError(
            f"--init {init} is not spec-diff-net weights written by affseg ({first_line(exc)})"
        ) from None
    for k, v in arch.items():
        setattr(args, k, v)


def _load_checkpoint(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of this trainer, checked against the options of the resuming run."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)  # cannot run code
        for k in ("model", "optim", "step", "elapsed", "torch_rng", "lr_hist", "hr_hist"):
            ck[k]  # noqa: B018 - presence check
    except Exception as exc:  # noqa: BLE001 - random bytes, pickled code, old checkpoints
        raise CorruptFileError(
            f"{path} is not an affseg train ndd checkpoint ({first_line(exc)})"
        ) from None
    saved = ck.get("config") or {}
    diff = [k for k in config if k in saved and saved[k] != config[k]]
    if diff:
        listed = ", ".join(f"--{k.replace('_', '-')} {saved[k]} (now {config[k]})" for k in diff)
        raise InputError(f"--resume: {path} was written with {listed}; use the same options")
    return ck


def _cli_args(args: argparse.Namespace) -> list[str]:
    """The options of this run as command-line words (repeatable options repeated)."""
    keep = (
        "data",
        "images",
        "masks",
        "ignore_index",
        "regions",
        "init",
        "splits",
        "minutes",
        "steps",
        "seed",
        "lr",
        "batch",
        "crop",
        "scales",
        "stage1",
        "hr_weight",
        "hr_segments",
        "window",
        "n_eig",
        "n_outer",
        "n_inner",
        "t_init",
    )
    words: list[str] = []
    for k in keep:
        v = getattr(args, k, None)
        if v is None:
            continue
        flag = f"--{k.replace('_', '-')}"
        if k in ("images", "masks"):
            words += [w for folder in v for w in (flag, str(folder))]
        elif isinstance(v, list | tuple):
            words += [flag, *map(str, v)]
        else:
            words += [flag, str(v)]
    return words


def run(args: argparse.Namespace) -> int:
    """``affseg train ndd`` entry point."""
    rec = train(args)
    lr = rec["final_lr_loss"]
    msg = f"trained {rec['steps']} steps in {rec['minutes']} min"
    if lr is not None:
        msg += f"; LR loss {lr:.4f}"
    if rec["final_hr_loss"] is not None and math.isfinite(rec["final_hr_loss"]):
        msg += f", HR loss {rec['final_hr_loss']:.4f}"
    if rec["val_cosine"] is not None and not math.isnan(rec["val_cosine"]):
        msg += f", val cosine {rec['val_cosine']:.4f}"
    print(msg + f"; weights: {Path(args.out) / 'spec_diff_net.pt'}")
    return 0
