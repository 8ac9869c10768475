"""Compare two snapshot files: what changed per component, which components appeared or
vanished, and which are suspected of leaking.

A suspect is a component whose in-use bytes grew by more than the tolerance, including
one that appeared holding memory. Reserved bytes alone never make a suspect: a pool that
caches its buffers does not leak. With ``--trend``, the time series of AFTER are judged
too: the leak verdict of each component (floors that rise in every window, blocks held
far past their component's typical lifetime, owners that leave blocks behind; see
``memactor.metrics.judge_leaks``), and a LEAK or SUSPECT counts as a leak as well.

Exit 0: no suspect, or no ``--fail-on-leak``. Exit 1: ``--fail-on-leak`` and a leak is
suspected. Exit 2: bad usage or a file that cannot be read (the message names it).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ._command import EXIT_FOUND, EXIT_OK
from ._output import add_output_arguments, load_snapshot, size_argument, write_json, write_text

EXAMPLE = "memactor diff warm.msgpack end.msgpack --tolerance 1MiB --fail-on-leak"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", type=Path, metavar="BEFORE", help="the earlier snapshot file")
    parser.add_argument("after", type=Path, metavar="AFTER", help="the later snapshot file")
    parser.add_argument(
        "--tolerance",
        type=size_argument,
        default=0,
        metavar="SIZE",
        help="in-use growth per component that is forgiven, e.g. '64 KiB' (default: 0)",
    )
    parser.add_argument(
        "--fail-on-leak", action="store_true", help="exit 1 when a leak is suspected"
    )
    parser.add_argument(
        "--trend",
        action="store_true",
        help="also judge AFTER's leak verdicts; a LEAK or SUSPECT counts as a leak",
    )
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the diff; exit 1 if ``--fail-on-leak`` and a leak is suspected, else 0."""
    from ..metrics import (
        diff,
        diff_report_json,
        find_growth,
        judge_leaks,
        render_diff,
        render_trend_verdict,
        render_verdicts,
    )

    before = load_snapshot(args.before)
    after = load_snapshot(args.after)
    result = diff(before, after, tolerance_bytes=args.tolerance)
    trends = find_growth(after) if args.trend else ()
    verdicts = judge_leaks(after) if args.trend else ()
    leaked = result.leaked or any(v.flagged for v in verdicts)
    if args.format == "json":
        report: dict[str, Any] = {"before_file": str(args.before), "after_file": str(args.after)}
        report.update(diff_report_json(result))
        if args.trend:
            report["trends"] = [dataclasses.asdict(t) for t in trends]
            report["verdicts"] = [v.to_dict() for v in verdicts]
        report["leak_suspected"] = leaked
        write_json(report)
    else:

        def text() -> str:
            titles = _titles(args, before.label, after.label)
            shown = render_diff(result, titles=titles)
            if args.trend:
                shown += "\n" + render_trend_verdict(trends) + "\n"
                shown += "\n".join(render_verdicts(verdicts)) + "\n"
            return shown

        write_text(text, args)
    return EXIT_FOUND if args.fail_on_leak and leaked else EXIT_OK


def _titles(
    args: argparse.Namespace, before_label: str, after_label: str
) -> tuple[str, str] | None:
    """The file names, when the labels cannot tell the two snapshots apart (both ``end``,
    say); else None, for the labels."""
    if before_label != after_label:
        return None
    return str(args.before), str(args.after)
