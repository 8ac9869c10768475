"""What every ``memactor`` subcommand shares: exit codes and the one error that carries one.

A subcommand is a module with ``NAME``, ``HELP`` (one line), ``EXAMPLE``, a docstring (its
description), ``add_arguments(parser)`` and ``run(args) -> int``. It raises
:class:`CommandError` for anything the user must fix; :func:`memactor.cli.main` prints
the message, prefixed with the command's name, to stderr and exits with its code.
"""

from __future__ import annotations

from typing import Final

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
