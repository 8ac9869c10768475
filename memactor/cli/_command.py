"""What every ``memactor`` subcommand shares: the :class:`Command` protocol, exit codes and
the one error that carries one.

A subcommand is a module that satisfies :class:`Command`: ``NAME``, ``HELP`` (one line),
``EXAMPLE``, a docstring (its description), ``add_arguments(parser)`` and
``run(args) -> int``. It raises :class:`CommandError` for anything the user must fix;
:func:`memactor.cli.main` prints the message, prefixed with the command's name, to stderr
and exits with its code.

A command module imports only the standard library and light parts of memactor at its
top: ``memactor --help`` imports every command module, so trio, NumPy, Textual and rich
load inside ``run`` (and the functions it calls), for the one command that runs.
"""

from __future__ import annotations

import argparse
from typing import Final, Protocol

from .._errors import MemactorError

EXIT_OK: Final = 0
"""All is well: no leak, no budget exceeded."""
EXIT_FOUND: Final = 1
"""The check ran and found a problem: a leak suspect, an exceeded budget."""
EXIT_USAGE: Final = 2
"""Bad usage or an unreadable input: the message names the file and the problem."""


class CommandError(MemactorError):
    """A problem the user must fix, with the exit code it maps to (2 unless told)."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Command(Protocol):
    """One ``memactor`` subcommand; its module is the implementation (type checkers check
    a module against a protocol), and the module's docstring is the description under
    ``memactor NAME --help``."""

    @property
    def NAME(self) -> str:
        """The word after ``memactor``."""

    @property
    def HELP(self) -> str:
        """One line for ``memactor --help``."""

    @property
    def EXAMPLE(self) -> str:
        """One command line, shown under the command's ``--help``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to its *parser*; imports nothing heavy."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the command; return its exit code or raise :class:`CommandError`."""
