"""JSON lines: one self-describing line per tick of the metrics actor, for CI artifacts
and plotting.

Every line is a JSON object that names its schema (``"schema": "memactor.jsonl"``) and
version, so a reader can check each line alone; sizes are bytes and times nanoseconds.
A line holds the totals, every component on every device, and the process's figures per
device. Lines are written and flushed one by one: a run that is killed leaves whole lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final, TextIO

import trio

from ..actors import MemorySystem
from ..metrics import Snapshot
from ._views import check_rate, each_view

JSONL_SCHEMA: Final = "memactor.jsonl"
JSONL_VERSION: Final = 1
"""Raised when a line's fields change meaning or go; new fields keep the version."""
DEFAULT_JSONL_HZ: Final = 10.0
"""Lines a second by default: every tick of a metrics actor at its default rate."""
VIEW_BUFFER: Final = 16
"""Views that may wait for the writer before one is skipped (and counted in ``skipped``)."""

_COMPONENT_FIELDS: Final = (
    "component",
    "device",
    "bytes_reserved",
    "bytes_in_use",
    "peak_bytes_reserved",
    "peak_bytes_in_use",
    "live_blocks",
    "allocations",
    "frees",
    "acquires",
    "bytes_allocated",
)
_TOTAL_FIELDS: Final = (
    "bytes_reserved",
    "bytes_in_use",
    "peak_bytes_reserved",
    "peak_bytes_in_use",
    "live_blocks",
    "events_applied",
    "events_dropped",
    "anomalies",
)


def jsonl_record(view: Snapshot, *, seq: int) -> dict[str, Any]:
    """The JSON-ready record of one view; *seq* counts the lines of one run from 1."""
    return {
        "schema": JSONL_SCHEMA,
        "version": JSONL_VERSION,
        "seq": seq,
        "wall_time_ns": view.wall_time_ns,
        "monotonic_ns": view.monotonic_ns,
        "totals": {name: getattr(view.totals, name) for name in _TOTAL_FIELDS},
        "components": [
            {
                **{name: getattr(stats, name) for name in _COMPONENT_FIELDS},
                "anomalies": stats.anomaly_count,
            }
            for stats in view.components
        ],
        "process": [
            {
                "device": p.device,
                "process_bytes": p.process_bytes,
                "unattributed_bytes": p.unattributed_bytes,
            }
            for p in view.process
        ],
    }


def jsonl_line(view: Snapshot, *, seq: int) -> str:
    """:func:`jsonl_record` as one line of compact JSON, newline included."""
    return json.dumps(jsonl_record(view, seq=seq), separators=(",", ":")) + "\n"


class JsonlWriter:
    """Writes a line per view to *out* (a text stream); see :func:`export_jsonl`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines = 0
        """Lines written so far."""

    def write(self, view: Snapshot) -> None:
        """Write and flush one line. Raises what writing raises (``OSError``)."""
        self.lines += 1
        self.out.write(jsonl_line(view, seq=self.lines))
        self.out.flush()

    async def follow(self, system: MemorySystem, rate_hz: float) -> None:
        """Write a line per view of *system* at *rate_hz* until cancelled or the system
        closes. Lines are written from the trio thread: a file costs microseconds; a
        pipe nobody reads would hold the pipeline up, so give it a file."""
        await each_view(system, rate_hz, self.write, buffer=VIEW_BUFFER)


@asynccontextmanager
async def export_jsonl(
    system: MemorySystem,
    target: str | os.PathLike[str] | TextIO,
    *,
    rate_hz: float = DEFAULT_JSONL_HZ,
) -> AsyncIterator[JsonlWriter]:
    """Write a JSON line per view of *system* (*rate_hz* a second) to *target* while the
    block runs.

    *target* is a path (created or truncated, closed on leaving) or an open text stream
    such as ``sys.stdout`` (flushed, left open). Raises ``ValueError`` for a bad rate and
    :class:`OSError` when the file cannot be opened, both before anything starts. On
    leaving (also on cancellation, or once the system closed) no more lines are written.
    """
    check_rate(rate_hz)
    with ExitStack() as files:
        if isinstance(target, str | os.PathLike):
            out: TextIO = files.enter_context(Path(target).open("w", encoding="utf-8"))
        else:
            out = target
        writer = JsonlWriter(out)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.follow, system, rate_hz, name="memactor exporter: jsonl")
            try:
                yield writer
            finally:
                nursery.cancel_scope.cancel()
