"""``affseg train MODEL ...``: train one of affseg's networks.

Each trainable model is a module ``affseg.train.<module>`` with two functions:
``add_arguments(parser)`` adds its options and ``run(args) -> int`` trains. To add one,
add it to :data:`TRAINERS` (model name on the command line -> module).
"""

from __future__ import annotations

import argparse
import importlib

#: ``affseg train MODEL`` -> the module of :mod:`affseg.train` it dispatches to.
TRAINERS: dict[str, str] = {
    "ndd": "ndd",
    "boundary": "boundary",
    "spectral": "spectral",
    "wsss": "wsss",
    "depth-sr": "depth_sr",
}


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
    for name, module_name in TRAINERS.items():
        module = importlib.import_module(f"affseg.train.{module_name}")
        doc = (module.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=doc)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
