"""``memactor``: the command-line entry point and its subcommands.

``memactor --help`` imports no command module, ``memactor COMMAND ...`` only the one
chosen, and that one imports trio, NumPy, Textual or rich inside its ``run`` (see
:mod:`memactor.cli._command`), so that help answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._version import __version__
from ._command import EXIT_OK, Command, CommandError

COMMANDS: tuple[Command, ...] = (
    Command(
        "demo",
        "run the demo pipeline and show its memory live (or print its report)",
        "memactor.cli._demo",
    ),
    Command(
        "top", "watch a running program's memory live, from another terminal", "memactor.cli._top"
    ),
    Command(
        "snapshot",
        "save a snapshot of a running program's memory to a file",
        "memactor.cli._snapshot",
    ),
    Command(
        "report",
        "print the memory report of a snapshot file (text or JSON)",
        "memactor.cli._report",
    ),
    Command(
        "diff",
        "compare two snapshot files and name leak suspects (exit 1 with --fail-on-leak)",
        "memactor.cli._diff",
    ),
    Command(
        "check",
        "check the peaks of a snapshot file against budgets (exit 1 when one is exceeded)",
        "memactor.cli._check",
    ),
    Command(
        "aggregate",
        "merge several programs' memory into one served view (a cluster's)",
        "memactor.cli._aggregate",
    ),
)
"""Every subcommand, in the order ``memactor --help`` lists them."""

if TYPE_CHECKING:  # each module is checked against the protocol; none is imported here
    from . import _aggregate, _check, _demo, _diff, _report, _snapshot, _top
    from ._command import CommandModule

    _MODULES: tuple[CommandModule, ...] = (
        _demo,
        _top,
        _snapshot,
        _report,
        _diff,
        _check,
        _aggregate,
    )


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The ``memactor`` parser: every command by name and help line, and the *chosen*
    one's arguments (its module is imported; no other is)."""
    parser = argparse.ArgumentParser(
        prog="memactor",
        description="Memory-aware actors for Trio: exact, live memory accounting.",
        epilog="Run 'memactor COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"memactor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        if chosen != command.NAME:
            commands.add_parser(command.NAME, help=command.HELP)
            continue
        sub = commands.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.description.replace("``", ""),  # reST marks read badly
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  {command.EXAMPLE}",
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first word that is not an option (the
    only option before a command, ``--version``, takes no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``memactor`` command with *argv* (the process's arguments by default) and
    return its exit status."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(_chosen(words))
    args = parser.parse_args(words)
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
