"""Print the memory report of a snapshot file: totals, components, owners, devices, and
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

from ..metrics import Limit, parse_limit, render_snapshot, snapshot_report_json
from ._command import EXIT_OK
from ._output import add_output_arguments, load_snapshot, write_json, write_text

NAME = "report"
HELP = "print the memory report of a snapshot file (text or JSON)"
EXAMPLE = "memactor report end.msgpack --format json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a snapshot file")
    parser.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="COMPONENT[@DEVICE]=SIZE",
        help="a cap to project growth to, e.g. 'pool=1GiB' or '*=16GiB' (repeatable)",
    )
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the report of ``args.file``; exit 0, or 2 if it cannot be read."""
    snapshot = load_snapshot(args.file)
    if args.format == "json":
        write_json({"file": str(args.file), **snapshot_report_json(snapshot, limits=args.limit)})
    else:
        write_text(render_snapshot(snapshot, limits=args.limit), args)
    return EXIT_OK


def _limit(text: str) -> Limit:
    try:
        return parse_limit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
