"""What ``report``, ``diff`` and ``check`` share: reading snapshot files, sizes, and output.

A file that cannot be read becomes a :class:`CommandError` naming the file and the
problem (exit 2, no traceback). Text goes out through rich: plain, with tables as wide as
their cells, when stdout is not a terminal, so a log or a ``grep`` sees stable lines; on a
terminal the tables fit its width and the verdicts and table headers are coloured, unless
``NO_COLOR`` is set or ``--color never`` is given. ``FORCE_COLOR`` (or ``--color
always``) colours output to a file or a pipe too. JSON keeps every byte count exact.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..events import parse_size
from ._command import CommandError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ..metrics import Snapshot

_HIGHLIGHTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"LEAK SUSPECTED|OVER BUDGET|\bOVER$", re.M), "bold red"),
    (re.compile(r"no leak suspected|no steady growth|within budget|\bok$", re.M), "green"),
    # A table's header: the line above the rule of dashes.
    (re.compile(r"^.*\S.*(?=\n[- ]*-[- ]*$)", re.M), "bold"),
)


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
        help="colour the verdicts: auto (default) colours on a terminal unless NO_COLOR is "
        "set, and also a file or a pipe if FORCE_COLOR is",
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


def console_for(choice: str, stream: TextIO) -> Console:
    """A rich console writing to *stream* for ``--color`` *choice*: ``auto`` leaves it to
    rich (colour on a terminal; ``NO_COLOR`` turns colours off, ``FORCE_COLOR`` on, also
    for a pipe), ``always`` and ``never`` override both variables."""
    from rich.console import Console

    if choice == "never":
        return Console(file=stream, color_system=None, force_terminal=False, soft_wrap=True)
    if choice == "always":  # also where TERM=dumb would turn rich's colours off
        return Console(
            file=stream,
            force_terminal=True,
            no_color=False,
            color_system="standard",
            soft_wrap=True,
        )
    return Console(file=stream, soft_wrap=True)


def highlighted(text: str) -> Text:
    """*text* with styles: bad verdicts bold red, good ones green, table headers bold."""
    from rich.text import Text

    styled = Text(text)
    for pattern, style in _HIGHLIGHTS:
        styled.highlight_regex(pattern, style=style)
    return styled


def write_text(render: Callable[[], str], args: argparse.Namespace) -> None:
    """Print the text *render* returns to stdout, coloured if ``args.color`` says so for
    this stdout; tables in it fit the terminal when stdout is one."""
    from ..metrics import table_width

    out = sys.stdout
    console = console_for(args.color, out)
    isatty = getattr(out, "isatty", None)
    with table_width(console.width if isatty and isatty() else None):
        text = render()
    console.print(highlighted(text), end="", markup=False, emoji=False, highlight=False)


def write_json(data: dict[str, Any]) -> None:
    """Print *data* to stdout as indented JSON (strict: no NaN or infinity)."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
