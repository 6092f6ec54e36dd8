"""The ``affseg`` command line.

Each subcommand lives in its own module of this package with two functions:
``add_parser(subparsers)`` registers it (and sets ``func`` on its parser), and the
function set as ``func`` takes the parsed ``argparse.Namespace`` and returns an exit code.
User errors (:class:`~affseg.errors.AffsegError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from affseg import __version__
from affseg.errors import AffsegError

#: Subcommands in the order ``--help`` lists them: name -> (module of ``affseg.cli``, one
#: line of help). Only the module of the subcommand being run is imported (it may import
#: torch); ``affseg --help`` imports none.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "segment": ("segment", "segment images and write label maps, overlays, boundaries and UCMs"),
    "semantic": (
        "semantic",
        "semantic segmentation (shipped: the 21 MSRC-21 classes; class map + overlay)",
    ),
    "eval": ("eval", "BSDS500 region benchmark of a method or of saved UCMs / label maps"),
    "train": ("train", "train a model (e.g. spec-diff-net: affseg train ndd)"),
    "depth-sr": ("depth_sr", "guided depth super-resolution (HAM)"),
    "depth-complete": ("depth_complete", "depth completion from sparse samples (HAM)"),
    "similarity": ("similarity", "figure of diffusion-similarity maps of pixels"),
    "serve": ("serve", "local web viewer of hierarchies and diffusion similarity"),
    "info": ("info", "describe a semantic weights file: classes, colours, method, data, scores"),
}
#: The modules, in ``--help`` order (kept for scripts that list them).
SUBCOMMAND_MODULES: tuple[str, ...] = tuple(m for m, _ in SUBCOMMANDS.values())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser.

    Parameters
    ----------
    only : str, optional
        Register only this subcommand fully (importing its module); the others get a
        placeholder with their one line of help. ``""``: placeholders only (``affseg
        --help``). Default: every subcommand fully.

    Examples
    --------
    >>> p = build_parser(only="")
    >>> sorted(p._subparsers._group_actions[0].choices)[:3]
    ['depth-complete', 'depth-sr', 'eval']
    """
    parser = argparse.ArgumentParser(
        prog="affseg",
        description="Image segmentation with learned pixel affinities.",
    )
    parser.add_argument("--version", action="version", version=f"affseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, text) in SUBCOMMANDS.items():
        if only is None or only == name:
            importlib.import_module(f"affseg.cli.{module}").add_parser(sub)
        else:
            sub.add_parser(name, help=text, description=text, add_help=False)
    return parser


def _chosen(argv: Sequence[str]) -> str:
    """The subcommand named in ``argv`` (its first word that is not an option), else ""."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in SUBCOMMANDS else ""
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``affseg`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_chosen(words))
    args = parser.parse_args(words)
    try:
        return int(args.func(args) or 0)
    except AffsegError as exc:
        print(f"affseg: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output, full disk, ...: one line, not a traceback
        print(f"affseg: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        from affseg.memory import is_out_of_memory, out_of_memory_message

        if not is_out_of_memory(exc):  # only torch's allocation failure, not other bugs
            raise
        # torch reports a failed allocation as RuntimeError ("DefaultCPUAllocator: can't
        # allocate memory ..."): one line, naming an option only where the command has it
        hint = (
            "try a smaller --working-side or a smaller image"
            if hasattr(args, "working_side")
            else "try a smaller image"
        )
        print(f"affseg: error: {out_of_memory_message(exc, hint)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("affseg: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split())
    return text or (type(exc).__name__ if isinstance(exc, BaseException) else "")


def _os_error(exc: OSError) -> str:
    """``OSError`` as one line: what failed, on which path."""
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if paths:
        return _one_line(f"{what}: {' -> '.join(map(str, paths))}")
    return _one_line(f"{what}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
