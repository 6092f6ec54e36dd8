"""``affseg info WEIGHTS``: what a semantic-segmentation weights file is and was trained on.

Prints the self-description stored in a weights file of ``affseg train wsss`` (or a
shipped one): method and variant, the K classes with their colours (index = the value in
``<stem>.classes.png``), the ignore index of the training masks, the inference rule
(class filter, fusion), the spec-diff-net it is pinned to (sha256), the training data
(layout, split, image count, content fingerprint) and its val scores. Files written
before the metadata existed (the shipped MSRC-21 models) are described from the MSRC-21
constants. The hierarchy's files (``affseg train ndd`` / ``affseg train boundary``
weights) print their training record: data, splits, starting weights, command, scores.
Example::

    affseg info runs/wsss/mine/weights.pt
    affseg info wsss_msrc21.pt --json          # a shipped file, as JSON
    affseg info runs/ndd/spec_diff_net.pt      # a spec-diff-net: its training record
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

    record = _hierarchy_record(args.weights)
    if record is not None:
        kind, meta = record
        if args.json:
            print(json.dumps({"kind": kind, **meta}, indent=2))
        else:
            print(f"{args.weights}: {kind}")
            for key, value in meta.items():
                print(f"  {key}: {value}")
        return 0
    meta = load_weights(args.weights, check_ndd=False)["meta"]
    if args.json:
        print(json.dumps(meta, indent=2))
    else:
        print(f"{args.weights}")
        print(describe_weights(meta))
    return 0


def _hierarchy_record(path: Path) -> tuple[str, dict] | None:
    """(kind, training record) of a spec-diff-net or boundary-head file; None otherwise."""
    import torch

    from affseg.models.spec_diff_net import default_weights_path

    p = path if path.is_file() else default_weights_path().parent / path.name
    if not p.is_file():
        return None
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file: load_weights names the problem
        return None
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), dict):
        return None
    if "n_eig" in blob["config"] and "state_dict" in blob:
        return "spec-diff-net (affseg train ndd)", {**blob.get("record", {})}
    if set(blob["config"]) == {"width"} and "state" in blob:
        return "boundary head (affseg train boundary)", {**blob.get("meta", {})}
    return None
