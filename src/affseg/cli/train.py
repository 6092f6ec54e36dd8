"""``affseg train MODEL ...``: train one of affseg's networks.

Each trainable model is a module ``affseg.train.<module>`` with two functions:
``add_arguments(parser)`` adds its options and ``run(args) -> int`` trains. To add one,
add it to :data:`TRAINERS` (model name on the command line -> module, one line of help).
A trainer's module (and torch) is imported only when that model is named, so ``affseg
train --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
from functools import partial

from affseg.cli import SUBCOMMANDS

#: ``affseg train MODEL`` -> (module of :mod:`affseg.train`, one line of help).
TRAINERS: dict[str, tuple[str, str]] = {
    "ndd": ("ndd", "Train spec-diff-net (neural diffusion distance) on BSDS500."),
    "boundary": (
        "boundary",
        "Train the boundary head (learned BSDS boundaries on the frozen backbone) for ndd.",
    ),
    "spectral": (
        "spectral",
        "Train the deep spectral clustering embedding head with the exact spectral loss.",
    ),
    "wsss": (
        "wsss",
        "Train semantic segmentation on your classes: NDD-guided WSSS, CAM baseline, supervised.",
    ),
    "depth-sr": ("depth_sr", "Train guided depth super-resolution (HAM v2 / naive twin)."),
    "depth-complete": (
        "depth_completion",
        "Train depth completion from sparse samples (HAM / naive twin).",
    ),
    "refine": (
        "refine",
        "Train the HAM refinement (or its naive twin) of an `affseg train wsss` run's scores.",
    ),
}


def add_trainer_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """Give the parser of ``affseg train NAME`` its options (once) and its ``func``.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_trainer_arguments(p, "depth-sr")
    >>> p.parse_args(["--out", "w.pt"]).geometry
    'hyperbolic'
    """
    if getattr(p, "_affseg_trainer", False):
        return
    module = importlib.import_module(f"affseg.train.{TRAINERS[name][0]}")
    module.add_arguments(p)
    p.set_defaults(func=module.run)
    p._affseg_trainer = True  # type: ignore[attr-defined]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``affseg train`` and one sub-command per trainer."""
    parser = subparsers.add_parser(
        "train",
        help=SUBCOMMANDS["train"][1],
        description="Train one of affseg's networks.",
    )

    from affseg.cli.lazy import add_lazy_subparsers

    builders = {
        name: (text, partial(add_trainer_arguments, name=name))
        for name, (_, text) in TRAINERS.items()
    }
    add_lazy_subparsers(parser, "model", builders)
