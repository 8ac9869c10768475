"""``memactor demo``: a real pipeline's memory, accounted live and judged at the end.

A source produces frames; ``decode`` processes each one chunk by chunk on pooled
buffers (``decode.chunks`` and ``pool``); ``upload`` copies it to the GPU and back
(``gpu``: the host backend on a machine without one); ``enrich`` keeps a small header per
frame for a while; ``sink`` folds each frame into a checksum. With ``--leak``, ``enrich`` keeps one
header in ten for ever, and both leak verdicts (steady growth over time, and the diff of a
snapshot after warm-up against one at the end) name it. The demo prints the snapshot
report and the diff.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import trio

from ..metrics import render_diff, render_snapshot
from ._pipeline_demo import run_pipeline_demo

NAME = "demo"
HELP = "run the demo pipeline and show its memory live (or print its report)"
EXAMPLE = "memactor demo --headless --seconds 30 --leak"

MAX_SECONDS = 3600.0
"""The longest run the demo accepts: an hour."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--headless",
        action="store_true",
        help="print the report (today the demo always does; the live view comes later)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="how long to run (default: 10)")
    parser.add_argument(
        "--items", type=int, default=None, help="how many frames to run (instead of a time)"
    )
    parser.add_argument("--leak", action="store_true", help="make the enrich stage leak")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="also save the final snapshot to FILE"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo pipeline and print its report; exit 0 (a leak is the point, not a
    failure), 2 on bad arguments."""
    seconds, items = args.seconds, args.items
    if seconds is None and items is None:
        seconds = 10.0
    if seconds is not None and not (0 < seconds <= MAX_SECONDS and math.isfinite(seconds)):
        print(
            f"memactor demo: --seconds must be above 0 and at most {MAX_SECONDS:g}, "
            f"got {seconds:g}",
            file=sys.stderr,
        )
        return 2
    if items is not None and items < 1:
        print(f"memactor demo: --items must be at least 1, got {items}", file=sys.stderr)
        return 2
    what = f"{items:,} frames" if items is not None else f"{seconds:g} s"
    print(f"memactor demo: running the pipeline for {what}{' with a leak' if args.leak else ''}")
    result = trio.run(
        lambda: run_pipeline_demo(items=items, seconds=seconds, leak=args.leak, seed=args.seed)
    )
    out = sys.stdout
    out.write(f"{result.frames:,} frames in {result.elapsed_s:.1f} s\n\n")
    out.write(render_snapshot(result.end))
    out.write("\n")
    out.write(render_diff(result.change))
    if args.save:
        path = result.end.save(args.save)
        out.write(f"\nsnapshot saved to {path}\n")
    return 0
