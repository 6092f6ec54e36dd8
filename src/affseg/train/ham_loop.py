"""The one training loop of the HAM depth trainers (super-resolution and completion).

:func:`train_loop` is shared by :func:`affseg.train.depth_sr.train` and
:func:`affseg.train.depth_completion.train`: Adam with the curvature's own parameter group
(:func:`~affseg.models.ham.curvature_adam`), a cosine schedule, one batch per step, the
loss, progress lines and the loss history. The task-specific parts are functions: the
batch of a step (input synthesis or sparse sampling), the model's forward call and the
loss. :func:`seeded` is their common set-up (threads, seeds, crop generator),
:func:`augment` their shared data augmentation and :func:`save_weights` writes what
:func:`affseg.methods.depth_sr.load_model` reads back.

Example
-------
>>> import torch
>>> from affseg.models.ham import HAMAffinity
>>> from affseg.train.ham_loop import train_loop
>>> class Toy(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.affinity = HAMAffinity("hyperbolic")
...         self.scale = torch.nn.Parameter(torch.ones(()))
...     def forward(self, x):
...         return self.scale * x
>>> result = train_loop(
...     Toy(),
...     lambda step: ((torch.ones(2),), torch.full((2,), 3.0)),
...     lambda pred, target: ((pred - target) ** 2).mean(),
...     steps=3,
...     lr=0.1,
...     log_every=0,
... )
>>> len(result.losses), result.losses[0]
(3, 4.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.data.io import atomic_write
from affseg.models.ham import HAMAffinity, curvature_adam
from affseg.runtime import torch_threads

#: A step's batch: the model's positional inputs and the target.
Batch = tuple[Sequence[Any], torch.Tensor]


@contextmanager
def seeded(seed: int, threads: int) -> Iterator[torch.Generator]:
    """Run the body with ``threads`` torch threads and torch's global seed set to ``seed``;
    yields a generator seeded with ``seed`` for the crops and augmentations.

    The global seed is set before the caller builds its model, so that the initial
    weights depend on ``seed`` only.

    Parameters
    ----------
    seed : int
    threads : int
        At least 1 thread is used.

    Examples
    --------
    >>> with seeded(0, 1) as gen:
    ...     a = torch.rand(1, generator=gen)
    >>> with seeded(0, 1) as gen:
    ...     bool(torch.rand(1, generator=gen) == a)
    True
    """
    with torch_threads(max(1, int(threads))):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def augment(
    gt: torch.Tensor, rgb: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, 90-degree rotation and colour-channel permutation of aligned crops.

    Parameters
    ----------
    gt : Tensor, shape (B, 1, S, S) or (S, S)
    rgb : Tensor, shape (B, 3, S, S) or (3, S, S)
    generator : torch.Generator

    Returns
    -------
    (Tensor, Tensor)
        The same shapes; one transform for the whole batch (depth super-resolution draws
        it per batch, depth completion per crop).

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
        rgb = rgb[..., torch.randperm(3, generator=generator), :, :]
    return gt.contiguous(), rgb.contiguous()


@dataclass
class LoopResult:
    """What :func:`train_loop` hands back: the loss of every step and the start time.

    Examples
    --------
    >>> r = LoopResult([4.0, 2.0, 1.0])
    >>> r.final_loss(2)
    1.5
    """

    #: The loss of every step, in order.
    losses: list[float]
    #: ``time.time()`` when the first step started.
    started: float = field(default_factory=time.time)

    def final_loss(self, window: int) -> float:
        """Mean loss of the last ``window`` steps.

        Examples
        --------
        >>> LoopResult([3.0, 1.0]).final_loss(100)
        2.0
        """
        return float(np.mean(self.losses[-window:]))

    def seconds(self) -> float:
        """Seconds since the first step, rounded to 0.1.

        Examples
        --------
        >>> LoopResult([], started=time.time()).seconds() < 60
        True
        """
        return round(time.time() - self.started, 1)


def train_loop(
    model: torch.nn.Module,
    make_batch: Callable[[int], Batch],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    c_lr_mult: float = 1.0,
    forward: Callable[..., torch.Tensor] | None = None,
    log_every: int = 50,
    loss_format: str = ".4f",
) -> LoopResult:
    """Train ``model`` (which holds a :class:`~affseg.models.ham.HAMAffinity` as
    ``model.affinity``) for ``steps`` steps.

    Each step draws ``inputs, target = make_batch(step)``, computes
    ``loss_fn(forward(*inputs), target)`` and takes one Adam step (the curvature at
    ``lr * c_lr_mult``, :func:`~affseg.models.ham.curvature_adam`) under a cosine schedule
    over ``steps``. Every ``log_every`` steps (0: never) it prints the mean loss of those
    steps, the curvature and the time so far.

    Parameters
    ----------
    model : torch.nn.Module
    make_batch : callable
        ``step -> (inputs, target)``: the model's positional inputs and the target.
    loss_fn : callable
        ``(prediction, target) -> scalar Tensor``.
    steps : int
    lr : float
    c_lr_mult : float
        The curvature's learning rate as a multiple of ``lr``.
    forward : callable, optional
        Called as ``forward(*inputs)`` instead of ``model(*inputs)`` (other arguments of
        the forward call).
    log_every : int
    loss_format : str
        Format spec of the logged loss.

    Returns
    -------
    LoopResult

    Examples
    --------
    >>> from affseg.models.ham import HAMAffinity
    >>> class Toy(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.affinity = HAMAffinity("euclidean")
    ...         self.w = torch.nn.Parameter(torch.zeros(()))
    ...     def forward(self, x):
    ...         return self.w + x
    >>> r = train_loop(
    ...     Toy(), lambda s: ((torch.zeros(1),), torch.ones(1)),
    ...     lambda p, t: ((p - t) ** 2).mean(), steps=2, lr=0.5, log_every=2,
    ... )  # doctest: +ELLIPSIS
    step 2/2 loss 0.6250 c 0.1000 ...s
    """
    affinity = model.affinity
    if not isinstance(affinity, HAMAffinity):
        raise TypeError(f"model.affinity must be a HAMAffinity, got {type(affinity).__name__}")
    call = model if forward is None else forward
    opt = curvature_adam(model, affinity, lr, c_lr_mult)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    result = LoopResult([])
    losses = result.losses
    for step in range(steps):
        inputs, target = make_batch(step)
        loss = loss_fn(call(*inputs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(
                f"step {step + 1}/{steps} loss {np.mean(losses[-log_every:]):{loss_format}} "
                f"c {float(affinity.curvature.detach()):.4f} "
                f"{time.time() - result.started:.0f}s",
                flush=True,
            )
    return result


def save_weights(out: Path, model: torch.nn.Module, record: dict) -> Path:
    """Write a trained depth model (its config, state dict and training record; plain
    tensors and containers, read back with ``weights_only=True``) to ``out`` atomically.

    Examples
    --------
    >>> import tempfile
    >>> from affseg.models.depth_sr_fast import FastDepthSR
    >>> p = save_weights(Path(tempfile.mkdtemp()) / "w.pt", FastDepthSR(), {"steps": 0})
    >>> sorted(torch.load(p, weights_only=True))
    ['config', 'record', 'state_dict']
    """
    payload = {"config": model.config(), "state_dict": model.state_dict(), "record": record}
    return atomic_write(out, lambda p: torch.save(payload, p))
