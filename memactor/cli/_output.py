"""What ``report``, ``diff`` and ``check`` share: reading snapshot files, sizes, and output.

A file that cannot be read becomes a :class:`CommandError` naming the file and the
problem (exit 2, no traceback). Text goes out plain when stdout is not a terminal, so a
log or a ``grep`` sees stable lines; on a terminal the verdicts are coloured, unless
``NO_COLOR`` is set or ``--color never`` is given. JSON keeps every byte count exact.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..events import parse_size
from ._command import CommandError

if TYPE_CHECKING:
    from ..metrics import Snapshot

_RED, _GREEN, _BOLD = "1;31", "32", "1"
_HIGHLIGHTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"LEAK SUSPECTED|OVER BUDGET|\bOVER$", re.M), _RED),
    (re.compile(r"no leak suspected|no steady growth|within budget|\bok$", re.M), _GREEN),
)
_RULE = re.compile(r"^[- ]*-[- ]*$")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--format text|json`` and ``--color auto|always|never`` to *parser*."""
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text tables for people (default) or JSON with exact byte counts",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the verdicts: auto (default) colours on a terminal unless NO_COLOR is set",
    )


def size_argument(text: str) -> int:
    """An ``argparse`` type: a size such as ``4096``, ``64 MiB`` or ``1.5GB``, in bytes."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def load_snapshot(path: Path) -> Snapshot:
    """Read the snapshot at *path*; a :class:`CommandError` naming it if that fails."""
    from ..codec import CodecError
    from ..metrics import Snapshot

    try:
        return Snapshot.load(path)
    except CodecError as error:
        # CodecError names the file already.
        raise CommandError(f"cannot read a snapshot from {error}") from None
    except FileNotFoundError:
        raise CommandError(f"cannot read a snapshot from {path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"cannot read a snapshot from {path}: it is a directory") from None
    except PermissionError:
        raise CommandError(f"cannot read a snapshot from {path}: permission denied") from None
    except UnicodeDecodeError:
        raise CommandError(
            f"cannot read a snapshot from {path}: it looks like JSON but is not UTF-8 text"
        ) from None
    except OSError as error:
        raise CommandError(
            f"cannot read a snapshot from {path}: {error.strerror or error}"
        ) from None


def wants_color(choice: str, stream: TextIO) -> bool:
    """Whether to colour output to *stream* for ``--color`` *choice*."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def highlight(text: str) -> str:
    """*text* with ANSI colours: verdicts red or green, table headers bold."""
    for pattern, style in _HIGHLIGHTS:
        text = pattern.sub(_painter(style), text)
    lines = text.split("\n")
    for index in range(len(lines) - 1):
        if lines[index] and _RULE.match(lines[index + 1]):
            lines[index] = f"\x1b[{_BOLD}m{lines[index]}\x1b[0m"
    return "\n".join(lines)


def _painter(style: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"\x1b[{style}m{match.group(0)}\x1b[0m"


def write_text(text: str, args: argparse.Namespace) -> None:
    """Print *text* to stdout, coloured if ``args.color`` says so for this stdout."""
    out = sys.stdout
    out.write(highlight(text) if wants_color(args.color, out) else text)


def write_json(data: dict[str, Any]) -> None:
    """Print *data* to stdout as indented JSON (strict: no NaN or infinity)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
