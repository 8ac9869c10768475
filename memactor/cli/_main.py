"""``memactor``: the command-line entry point and its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import _demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memactor",
        description="Memory-aware actors for Trio: exact, live memory accounting.",
    )
    parser.add_argument("--version", action="version", version=f"memactor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the demo pipeline and print its memory report",
        description=_demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: memactor demo --headless --seconds 30",
    )
    _demo.add_arguments(demo)
    demo.set_defaults(run=_demo.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        result: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (``memactor demo | head``): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # silences the exit-time flush
        return 0
    return result
