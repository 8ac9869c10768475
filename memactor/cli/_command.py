"""What every ``memactor`` subcommand shares: the :class:`Command` protocol, exit codes and
the one error that carries one.

A subcommand is a module (:class:`CommandModule`): ``EXAMPLE``, a docstring (its
description), ``add_arguments(parser)`` and ``run(args) -> int``; :data:`COMMANDS` in
``_main`` names it and gives its one line of help, so that ``memactor --help`` imports no
command module and ``memactor COMMAND ...`` only the one chosen. A command module imports
only the standard library and light parts of memactor at its top: trio, NumPy, Textual
and rich load inside ``run`` (and the functions it calls).

A command raises :class:`CommandError` for anything the user must fix;
:func:`memactor.cli.main` prints the message, prefixed with the command's name, to stderr
and exits with its code.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Final, Protocol, cast

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


class CommandModule(Protocol):
    """What a command's module defines (type checkers check a module against a protocol);
    its docstring is the description under ``memactor NAME --help``."""

    @property
    def EXAMPLE(self) -> str:
        """One command line, shown under the command's ``--help``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to its *parser*; imports nothing heavy."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the command; return its exit code or raise :class:`CommandError`."""


class Command:
    """One ``memactor`` subcommand: its name and help line, known without importing it, and
    its module (:class:`CommandModule`), imported on first use of anything else."""

    __slots__ = ("HELP", "NAME", "_module", "_path")

    def __init__(self, name: str, help: str, module: str) -> None:
        self.NAME: Final = name
        """The word after ``memactor``."""
        self.HELP: Final = help
        """One line for ``memactor --help``."""
        self._path = module
        self._module: CommandModule | None = None

    def __repr__(self) -> str:
        return f"<memactor command {self.NAME!r} in {self._path}>"

    @property
    def module(self) -> CommandModule:
        """The command's module, imported on first use."""
        if self._module is None:
            self._module = cast(CommandModule, importlib.import_module(self._path))
        return self._module

    @property
    def EXAMPLE(self) -> str:
        """One command line, shown under the command's ``--help``."""
        return self.module.EXAMPLE

    @property
    def description(self) -> str:
        """The module's docstring, shown under the command's ``--help``."""
        return getattr(self.module, "__doc__", None) or ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to *parser*."""
        self.module.add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; its exit code."""
        return self.module.run(args)
