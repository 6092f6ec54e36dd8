"""``affseg train MODEL ...``: train one of affseg's networks.

Each trainable model is a module ``affseg.train.<name>`` with two functions:
``add_arguments(parser)`` adds its options and ``run(args) -> int`` trains. To add one,
append its name to :data:`TRAINERS`.
"""

from __future__ import annotations

import argparse
import importlib

#: Names of the modules of :mod:`affseg.train` that ``affseg train`` dispatches to.
TRAINERS: tuple[str, ...] = ("ndd", "boundary", "spectral", "wsss")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``affseg train`` and one sub-command per trainer."""
    from affseg.cli import SUBCOMMANDS

    parser = subparsers.add_parser(
        "train",
        help=SUBCOMMANDS["train"][1],
        description="Train one of affseg's networks.",
    )
    sub = parser.add_subparsers(dest="model", metavar="MODEL")
    sub.required = True
    for name in TRAINERS:
        module = importlib.import_module(f"affseg.train.{name}")
        doc = (module.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=doc)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
