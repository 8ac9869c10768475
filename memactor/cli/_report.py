"""Print the memory report of a snapshot file: totals, components, owners, devices, the
allocation sites holding the most bytes (where sites were recorded, see ``--sites``), and
the leak verdict of its time series (steady growth, not a burst).

FILE is a snapshot saved by ``Snapshot.save`` or ``memactor demo --save`` (.msgpack or
.json). The report always exits 0 when the file can be read; use ``memactor diff
--fail-on-leak`` or ``memactor check`` to fail a script. Exit 2: the file cannot be read
(missing, damaged, not a snapshot), or a bad ``--limit``; the message names the problem.

Each ``--limit COMPONENT[@DEVICE]=SIZE`` (a pool's ``max_reserved``, ``*=16GiB``
for the total of every component) is projected: when the reserved bytes' current growth reaches it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ._command import EXIT_OK
from ._output import add_output_arguments, load_snapshot, write_json, write_text

if TYPE_CHECKING:
    from ..metrics import Limit

EXAMPLE = "memactor report end.msgpack --format json"
SITES_SHOWN = 10
"""The metrics layer's default, spelled out so that ``--help`` needs no metrics (a test
keeps the two equal)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a snapshot file")
    parser.add_argument(
        "--sites",
        type=_count,
        default=SITES_SHOWN,
        metavar="N",
        help="list the N allocation sites that hold the most bytes in use, where the "
        f"snapshot recorded sites (default {SITES_SHOWN}; 0 leaves them out; JSON lists all)",
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="COMPONENT[@DEVICE]=SIZE",
        help="a cap to project growth to, e.g. 'pool=1GiB' or '*=16GiB' (repeatable)",
    )
    add_output_arguments(parser)


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of sites, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    """Print the report of ``args.file``; exit 0, or 2 if it cannot be read."""
    from ..metrics import render_snapshot, snapshot_report_json

    snapshot = load_snapshot(args.file)
    if args.format == "json":
        write_json({"file": str(args.file), **snapshot_report_json(snapshot, limits=args.limit)})
    else:
        write_text(lambda: render_snapshot(snapshot, sites=args.sites, limits=args.limit), args)
    return EXIT_OK


def _limit(text: str) -> Limit:
    from ..metrics import parse_limit

    try:
        return parse_limit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
