"""``memactor top``: being built."""

from __future__ import annotations

import argparse

from ._command import CommandError

NAME = "top"
HELP = "(being built)"
EXAMPLE = "memactor top --help"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace) -> int:
    raise CommandError("this command is being built")
