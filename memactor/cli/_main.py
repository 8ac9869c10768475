"""``memactor``: the command-line entry point and its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from .._version import __version__
from . import _aggregate, _check, _demo, _diff, _report, _snapshot, _top
from ._command import EXIT_OK, CommandError

COMMANDS: tuple[ModuleType, ...] = (_demo, _top, _snapshot, _report, _diff, _check, _aggregate)
"""Every subcommand, in the order ``memactor --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memactor",
        description="Memory-aware actors for Trio: exact, live memory accounting.",
        epilog="Run 'memactor COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"memactor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        sub = commands.add_parser(
            module.NAME,
            help=module.HELP,
            description=(module.__doc__ or "").replace("``", ""),  # reST marks read badly
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  {module.EXAMPLE}",
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``memactor`` command with *argv* (the process's arguments by default) and
    return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        result: int = args.run(args)
    except CommandError as error:
        print(f"memactor {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"memactor {args.command}: interrupted", file=sys.stderr)
        return 130
    except BaseExceptionGroup as group:
        # trio wraps an interrupt in the groups of the nurseries it crossed.
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        print(f"memactor {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``memactor report FILE | head``): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # silences the exit-time flush
        return EXIT_OK
    return result
