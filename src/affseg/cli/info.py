"""``affseg info WEIGHTS``: what a semantic-segmentation weights file is and was trained on.

Prints the self-description stored in a weights file of ``affseg train wsss`` (or a
shipped one): method and variant, the K classes with their colours (index = the value in
``<stem>.classes.png``), the ignore index of the training masks, the inference rule
(class filter, fusion), the spec-diff-net it is pinned to (sha256), the training data
(layout, split, image count, content fingerprint) and its val scores. Files written
before the metadata existed (the shipped MSRC-21 models) are described from the MSRC-21
constants. Example::

    affseg info runs/wsss/mine/weights.pt
    affseg info wsss_msrc21.pt --json          # a shipped file, as JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from affseg.cli import SUBCOMMANDS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``affseg info`` (imports no torch: the file is read when the command runs).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_parser(p.add_subparsers())
    ArgumentParser(prog='... info', ...)
    """
    p = subparsers.add_parser(
        "info",
        help=SUBCOMMANDS["info"][1],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "weights",
        type=Path,
        metavar="WEIGHTS",
        help="a weights file of `affseg train wsss` (or a shipped file name, e.g. wsss_msrc21.pt)",
    )
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the metadata of ``args.weights``; returns 0.

    Examples
    --------
    >>> from affseg.cli import main
    >>> main(["info", "wsss_msrc21.pt"])          # doctest: +SKIP
    0
    """
    from affseg.methods.wsss import describe_weights, load_weights

    meta = load_weights(args.weights, check_ndd=False)["meta"]
    if args.json:
        print(json.dumps(meta, indent=2))
    else:
        print(f"{args.weights}")
        print(describe_weights(meta))
    return 0
