"""What the commands that reach a served program share: its address and its token."""

from __future__ import annotations

import argparse
import os
from typing import Final

from ..remote import RemoteError, find_server, parse_address
from ._command import CommandError

TOKEN_VARIABLE: Final = "MEMACTOR_TOKEN"
"""The environment variable a token is read from when ``--token`` is not given."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """ADDRESS (optional) and ``--token``."""
    parser.add_argument("address", nargs="?", metavar="ADDRESS", help="where the program serves")
    parser.add_argument("--token", help=f"the server's token (default: ${TOKEN_VARIABLE}, if set)")


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, else ``$MEMACTOR_TOKEN``, else None."""
    token: str | None = args.token or os.environ.get(TOKEN_VARIABLE) or None
    return token


def server_of(args: argparse.Namespace) -> str:
    """ADDRESS as given, else the only server running as this user; a
    :class:`CommandError` when it does not parse, or when none or several run."""
    try:
        address: str = args.address or find_server()
        parse_address(address)
    except (RemoteError, ValueError) as error:
        raise CommandError(str(error)) from None
    return address
