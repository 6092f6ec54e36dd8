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

#: Modules of ``affseg.cli`` that define subcommands, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "segment",
    "semantic",
    "eval",
    "train",
    "depth_sr",
    "depth_complete",
    "similarity",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="affseg",
        description="Image segmentation with learned pixel affinities.",
    )
    parser.add_argument("--version", action="version", version=f"affseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"affseg.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``affseg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
