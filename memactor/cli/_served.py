"""What the commands that reach a served program share: its address and its token.

A token is a secret: pass it in a file (``--token-file``) or in ``$MEMACTOR_TOKEN``, which
other users cannot read, rather than with ``--token``, which every local user can see in
``ps``. No message quotes a token.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from ._command import CommandError

TOKEN_VARIABLE: Final = "MEMACTOR_TOKEN"
"""The environment variable a token is read from when ``--token`` is not given."""


MAX_TOKEN_FILE_BYTES: Final = 4096
"""The largest token file read: a token is a line, not a document."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """ADDRESS (optional) and the token options (see :func:`add_token_arguments`)."""
    parser.add_argument("address", nargs="?", metavar="ADDRESS", help="where the program serves")
    add_token_arguments(parser, "the server's token")


def add_token_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--token-file PATH`` and ``--token`` (one or the other), described as *what*."""
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help=f"read {what} from the first line of PATH (default: ${TOKEN_VARIABLE}, if set)",
    )
    tokens.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"{what}; other local users can read it with ps: prefer --token-file "
        f"or ${TOKEN_VARIABLE}",
    )


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, else the first line of ``--token-file``, else ``$MEMACTOR_TOKEN``,
    else None. A :class:`CommandError` when the file cannot be read or holds no token;
    its message names the file, never what the file holds."""
    if args.token:
        token: str = args.token
        return token
    if args.token_file is not None:
        return _read_token_file(args.token_file)
    return os.environ.get(TOKEN_VARIABLE) or None


def _read_token_file(path: Path) -> str:
    try:
        # Bounded: /dev/zero cannot grow us. A FIFO (``--token-file <(pass show x)``) is
        # read until its writer closes it, as any reader of a pipe would.
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as error:
        raise CommandError(f"cannot read the token file {path}: {error.strerror}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise CommandError(
            f"the token file {path} is over {MAX_TOKEN_FILE_BYTES} bytes; "
            "it should hold the token on one line"
        )
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CommandError(f"the token file {path} is not UTF-8 text") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise CommandError(f"the token file {path} holds no token on its first line")
    return token


def server_of(args: argparse.Namespace) -> str:
    """ADDRESS as given, else the only server running as this user; a
    :class:`CommandError` when it does not parse, or when none or several run."""
    from ..remote import RemoteError, find_server, parse_address

    try:
        address: str = args.address or find_server()
        parse_address(address)
    except (RemoteError, ValueError) as error:
        raise CommandError(str(error)) from None
    return address
