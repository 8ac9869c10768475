"""``memactor``: the command-line entry point and its subcommands.

Building the parser imports every command module, and nothing heavy: each command imports
trio, NumPy, Textual or rich inside its ``run`` (see :class:`~._command.Command`), so that
``memactor --help`` and ``memactor COMMAND --help`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import _check, _demo, _diff, _report, _snapshot, _top
from ._command import EXIT_OK, Command, CommandError

COMMANDS: tuple[Command, ...] = (_demo, _top, _snapshot, _report, _diff, _check)
"""Every subcommand, in the order ``memactor --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memactor",
        description="Memory-aware actors for Trio: exact, live memory accounting.",
        epilog="Run 'memactor COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"memactor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.NAME,
            help=command.HELP,
            description=(command.__doc__ or "").replace("``", ""),  # reST marks read badly
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  {command.EXAMPLE}",
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
