"""Print the memory report of a snapshot file: totals, components, owners, devices, and
the leak verdict of its time series (steady growth, not a burst).

FILE is a snapshot saved by ``Snapshot.save`` or ``memactor demo --save`` (.msgpack or
.json). The report always exits 0 when the file can be read; use ``memactor diff
--fail-on-leak`` or ``memactor check`` to fail a script. Exit 2: the file cannot be read
(missing, damaged, not a snapshot); the message names the file and the problem.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._command import EXIT_OK
from ._output import add_output_arguments, load_snapshot, write_json, write_text

EXAMPLE = "memactor report end.msgpack --format json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a snapshot file")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the report of ``args.file``; exit 0, or 2 if it cannot be read."""
    from ..metrics import render_snapshot, snapshot_report_json

    snapshot = load_snapshot(args.file)
    if args.format == "json":
        write_json({"file": str(args.file), **snapshot_report_json(snapshot)})
    else:
        write_text(lambda: render_snapshot(snapshot), args)
    return EXIT_OK
