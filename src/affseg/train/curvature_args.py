"""Command-line options for the learned curvature of the HAM trainers (``--curvature``...)."""

from __future__ import annotations

import argparse
import math

from affseg.errors import InputError


def add_curvature_arguments(parser: argparse.ArgumentParser, note: str = "") -> None:
    """Add ``--curvature``, ``--c-param`` and ``--c-lr-mult`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    note : str
        Appended to every help text (e.g. ``" (training)"``).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_curvature_arguments(p)
    >>> a = p.parse_args(["--curvature", "0.5"])
    >>> a.curvature, a.c_param, a.c_lr_mult
    (0.5, 'softplus', 1.0)
    """
    parser.add_argument(
        "--curvature", type=float, default=0.1, help=f"initial ball curvature{note}"
    )
    parser.add_argument(
        "--c-param",
        choices=("softplus", "log"),
        default="softplus",
        help=f"parametrisation of the learned curvature{note}",
    )
    parser.add_argument(
        "--c-lr-mult", type=float, default=1.0, help=f"curvature learning rate / --lr{note}"
    )


def check_curvature_arguments(args: argparse.Namespace) -> None:
    """Refuse a non-positive ``--curvature`` or a negative ``--c-lr-mult`` in one line.

    Examples
    --------
    >>> check_curvature_arguments(argparse.Namespace(curvature=0.0, c_lr_mult=1.0))
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: --curvature must be a positive number, got 0.0
    """
    if not (math.isfinite(args.curvature) and args.curvature > 0):
        raise InputError(f"--curvature must be a positive number, got {args.curvature}")
    if not (math.isfinite(args.c_lr_mult) and args.c_lr_mult >= 0):
        raise InputError(f"--c-lr-mult must be a non-negative number, got {args.c_lr_mult}")
