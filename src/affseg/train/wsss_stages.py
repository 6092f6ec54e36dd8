"""The training stages of ``affseg train wsss``: sampling pools, batches, steps, the loop.

- :class:`Pool`, :func:`weak_pool`: the cached training items grouped by grid size, drawn
  in same-size batches (the weak stage by informative-absence weight,
  :func:`absence_weights`);
- :func:`weak_model`, :func:`weak_step`: the weakly supervised network (``wsss`` or
  ``cam``) and the loss of one batch; :func:`seg_step`: the segmenter's loss;
- :func:`run_stage`: the seeded, checkpointed AdamW loop with the :func:`cosine_lr`
  schedule, shared by both stages (and by :mod:`affseg.train.refine`).

:func:`affseg.train.wsss.train` runs them in order.

Examples
--------
>>> from affseg.train.wsss_stages import cosine_lr
>>> round(cosine_lr(50, 100, 1e-3), 6)
0.001
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import InputError

_STAGE_SEEDS = {"weak": 1, "seg": 2}
#: Default cap of the informative-absence sampling weights of the weak stage.
ABSENCE_CAP = 10.0


def absence_weights(labels: np.ndarray, cap: float = ABSENCE_CAP) -> np.ndarray:
    """Sampling weight of each training image from what its image labels rule out.

    With image-level labels only, two classes that nearly always appear together (MSRC-21:
    every train image labelled face is also labelled body) can be told apart only by the
    few images holding one without the other. With ``P(a | b)`` the share of the images
    labelled ``b`` that are also labelled ``a`` (estimated on ``labels``), an image's
    weight is the surprise of its most unlikely absence,

        w_i = clip(1 / (1 - max_{b in y_i, a not in y_i} P(a | b)), 1, cap),

    so a body-without-face image (P(face | body) = 29 / 31) is drawn ``cap`` times as
    often as an image whose absent classes are uninformative. Only image-level labels are
    read.

    Parameters
    ----------
    labels : ndarray, shape (n, C)
        Image-level label vectors in {0, 1}.
    cap : float
        Largest weight (>= 1); ``cap <= 1`` gives uniform weights.

    Returns
    -------
    ndarray, shape (n,)
        Weights in [1, cap].

    Examples
    --------
    >>> y = np.array([[1, 1], [1, 1], [1, 1], [0, 1]])   # class 0 given 1: 3 / 4
    >>> absence_weights(y, cap=10.0)
    array([1., 1., 1., 4.])
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise InputError(f"labels must be (n, C); got shape {y.shape}")
    if cap <= 1.0:
        return np.ones(len(y))
    cond = (y.T @ y) / np.maximum(y.sum(0), 1.0)[None, :]  # cond[a, b] = P(a | b)
    np.fill_diagonal(cond, 0.0)
    pairs = (1.0 - y)[:, :, None] * y[:, None, :] * cond[None]  # absent a, present b
    top = pairs.reshape(len(y), -1).max(1) if y.shape[1] else np.zeros(len(y))
    return np.clip(1.0 / np.maximum(1.0 - top, 1e-12), 1.0, float(cap))


# ----------------------------------------------------------------------------- batching
class Pool:
    """Training items grouped by grid size; draws same-size batches.

    Parameters
    ----------
    items : list of dict
        Cache items (see :mod:`affseg.train.wsss_cache`).
    targets : list of Tensor, optional
        One (h, w) int64 label map per item (pseudo or true labels); values outside
        0..K-1 (-1) are ignored.
    mu : float, optional
        RFP threshold: the region masks ``[K_D > mu]`` are computed once (stored as bits;
        :meth:`mask` unpacks one).
    weights : ndarray, shape (n,), optional
        Relative draw weight of each item (default uniform): a grid size is drawn with
        probability proportional to its items' total weight, then items within it.

    Examples
    --------
    >>> import torch
    >>> items = [{"grid": [2, 3], "f8": torch.zeros(40, 2, 3), "f16": torch.zeros(112, 1, 2),
    ...           "f32": torch.zeros(320, 1, 1), "head": torch.zeros(1280, 1, 1)}] * 3
    >>> grid, idx = Pool(items).draw(np.random.default_rng(0), 2)
    >>> grid, len(idx)
    ((2, 3), 2)
    """

    def __init__(
        self,
        items: list[dict[str, Any]],
        targets: list[Any] | None = None,
        mu: float | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        from affseg.methods.wsss import FEATURE_LEVELS
        from affseg.models.wsss_net import diffusion_kernel, region_mask

        self.items = items
        self.targets = targets
        self.masks = None
        for it in items:  # float32 once, not at every step
            for k in FEATURE_LEVELS:
                it[k] = it[k].float()
        if mu is not None:  # RFP region masks M = [K_D > mu], fixed: computed once and
            # stored one bit per entry (a dense bool N x N per image is 7 MB on a CamVid grid)
            self.masks = [
                np.packbits(
                    region_mask(diffusion_kernel(it["emb"][None].float(), float(it["tau"])), mu)[0]
                    .bool()
                    .numpy()
                )
                for it in items
            ]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault((int(it["grid"][0]), int(it["grid"][1])), []).append(i)
        self.groups = list(groups.items())
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(items),) or not np.all(w > 0):
                raise InputError(f"weights must be {len(items)} positive values")
            self.weights = w
        sizes = np.array(
            [len(g) if self.weights is None else self.weights[g].sum() for _, g in self.groups],
            dtype=np.float64,
        )
        self.p = sizes / sizes.sum()

    def mask(self, i: int) -> torch.Tensor:
        """The RFP region mask (N, N) float32 of item ``i`` (pools made with ``mu``)."""
        if self.masks is None:
            raise ValueError("this pool has no RFP masks (made without mu)")
        n = int(self.items[i]["emb"].shape[0])
        bits = np.unpackbits(self.masks[i], count=n * n)
        return torch.from_numpy(bits.reshape(n, n)).float()

    def draw(self, rng: np.random.Generator, batch: int) -> tuple[tuple[int, int], list[int]]:
        """A grid size and up to ``batch`` item indices of that size."""
        gi = int(rng.choice(len(self.groups), p=self.p))
        grid, idx = self.groups[gi]
        p = None
        if self.weights is not None:
            w = self.weights[idx]
            p = w / w.sum()
        pick = rng.choice(len(idx), size=min(batch, len(idx)), replace=False, p=p)
        return grid, [idx[int(j)] for j in pick]


def weak_pool(items: list[dict[str, Any]], mu: float | None, absence_cap: float) -> Pool:
    """The weak stage's pool: RFP masks at ``mu`` and informative-absence draw weights.

    ``absence_cap <= 1`` draws uniformly (exactly the draws of a pool without weights).

    Examples
    --------
    >>> items = load_train_items(Path("runs/wsss/cache"), None)   # doctest: +SKIP
    >>> pool = weak_pool(items, 0.5, 10.0)                          # doctest: +SKIP
    """
    weights = None
    if absence_cap > 1.0:
        labels = torch.stack([it["labels"] for it in items]).numpy()
        weights = absence_weights(labels, absence_cap)
    return Pool(items, mu=mu, weights=weights)


def _batch(pool: Pool, idx: list[int]) -> dict[str, Any]:
    from affseg.methods.wsss import batch_feats

    its = [pool.items[i] for i in idx]
    out: dict[str, Any] = {
        "feats": batch_feats(its),
        "emb": torch.stack([it["emb"] for it in its]).float(),
        "tau": torch.tensor([float(it["tau"]) for it in its]),
        "labels": torch.stack([it["labels"] for it in its]).float(),
    }
    if pool.masks is not None:
        out["mask"] = torch.stack([pool.mask(i) for i in idx])
    if pool.targets is not None:
        out["target"] = torch.stack([pool.targets[i] for i in idx]).long()
    return out


def cosine_lr(step: int, total: int, base: float, warmup: int = 50) -> float:
    """Linear warm-up then cosine decay to 1 % of ``base``.

    Examples
    --------
    >>> cosine_lr(0, 100, 1.0, warmup=10), cosine_lr(100, 100, 1.0, warmup=10)
    (0.1, 0.01)
    """
    if step < warmup:
        return base * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return float(base * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * prog))))


# ----------------------------------------------------------------------------- stages
def weak_model(
    method: str, variant: str, args: argparse.Namespace, num_classes: int = 21
) -> torch.nn.Module:
    """A fresh weakly supervised network for ``method`` (``wsss`` or ``cam``).

    Examples
    --------
    >>> ns = argparse.Namespace(dim=8, dropout=0.0, theta=0.1, mu=0.5)
    >>> weak_model("wsss", "no-rfp", ns).use_rfp
    False
    """
    from affseg.models.wsss_net import CAMNet, WSSSNet

    if method == "cam":
        return CAMNet(num_classes=num_classes, dim=args.dim, dropout=args.dropout)
    return WSSSNet(
        num_classes=num_classes,
        dim=args.dim,
        use_rfp=variant != "no-rfp",
        share=variant != "no-share",
        theta=args.theta,
        dropout=args.dropout,
        mu=args.mu,
        soft_tau=getattr(args, "soft_rfp", None),
    )


def weak_step(model: torch.nn.Module, method: str, b: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Loss terms of one batch (only features and image-level labels are used).

    Examples
    --------
    >>> loss = weak_step(model, "wsss", batch)["loss"]   # doctest: +SKIP
    """
    from affseg.models.wsss_net import wsss_loss

    y = b["labels"]
    if method == "cam":
        grid = (b["feats"]["f8"].shape[-2], b["emb"].shape[1] // b["feats"]["f8"].shape[-2])
        out = model(b["feats"], grid)
        loss = F.binary_cross_entropy_with_logits(out["p_cl"], y)
        return {"loss": loss, "cls": loss}
    out = model(b["feats"], b["emb"], b["tau"], b.get("mask"))
    total, cls, mil = wsss_loss(out, y)
    return {"loss": total, "cls": cls, "mil": mil}


def seg_step(model: torch.nn.Module, b: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Cross-entropy of the segmenter on the grid targets of one batch.

    Examples
    --------
    >>> loss = seg_step(seg, batch)["loss"]   # doctest: +SKIP
    """
    tgt = b["target"]
    logits = model(b["feats"], tuple(tgt.shape[-2:]))
    tgt = torch.where((tgt < 0) | (tgt >= logits.shape[1]), -1, tgt)  # -1 / 255: ignored
    return {"loss": F.cross_entropy(logits, tgt, ignore_index=-1)}


def run_stage(
    name: str,
    model: torch.nn.Module,
    step_fn: Any,
    pool: Pool,
    steps: int,
    args: argparse.Namespace,
    ckpt: dict[str, Any],
    save: Any,
    log: Any,
) -> dict[str, Any]:
    """Train ``model`` for ``steps`` (resuming from ``ckpt[name]`` when present).

    Examples
    --------
    >>> rec = run_stage("seg", seg, seg_step, pool, 600, args, {}, save, log)  # doctest: +SKIP
    """
    from tqdm import tqdm

    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    state = ckpt.get(name, {})
    step = int(state.get("step", 0))
    elapsed = float(state.get("elapsed", 0.0))
    if state:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
    model.train()
    hist: dict[str, list[float]] = {}
    start = time.monotonic() - elapsed
    last = time.monotonic()
    bar = tqdm(total=steps, initial=step, desc=name, disable=args.no_progress, dynamic_ncols=True)
    while step < steps:
        rng = np.random.default_rng([args.seed, _STAGE_SEEDS[name], step])
        _, idx = pool.draw(rng, args.batch)
        for g in optim.param_groups:
            g["lr"] = cosine_lr(step, steps, args.lr)
        terms = step_fn(model, _batch(pool, idx))
        optim.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optim.step()
        step += 1
        for k, v in terms.items():
            hist.setdefault(k, []).append(float(v.detach()))
        bar.update(1)
        bar.set_postfix({k: f"{np.mean(v[-50:]):.4f}" for k, v in hist.items()})
        elapsed = time.monotonic() - start
        if step == steps or time.monotonic() - last >= 60.0 * args.checkpoint_minutes:
            ckpt[name] = {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "step": step,
                "elapsed": elapsed,
            }
            save()
            log({"stage": name, "step": step, "minutes": round(elapsed / 60, 3),
                 **{k: float(np.mean(v[-100:])) for k, v in hist.items()}})  # fmt: skip
            last = time.monotonic()
    bar.close()
    model.eval()
    return {"steps": step, "minutes": round(elapsed / 60, 2),
            **{f"final_{k}": float(np.mean(v[-100:])) for k, v in hist.items()}}  # fmt: skip
