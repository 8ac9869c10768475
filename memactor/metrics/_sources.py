"""The sources of a merged snapshot: which processes an aggregator heard from, and how
each stands (live or gone, gaps, checkpoints, its own totals and true peaks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import format_size

LIVE = "live"
GONE = "gone"


@dataclass(frozen=True, slots=True)
class SourceStats:
    """One source (one process's memory system) as an aggregator last knew it.

    Its components, owners and live blocks appear in a merged snapshot under names that
    start with :attr:`prefix` (``"worker@node1:4242/"``) while it is live; once gone
    they leave the live rows and totals and only this row remains.
    """

    name: str
    host: str
    pid: int
    started_wall_ns: int
    prefix: str
    """What its component and owner names start with in a merged snapshot."""
    state: str
    """``"live"`` or ``"gone"``."""
    seq: int
    """The sequence number of the last update applied."""
    updates: int
    """Updates applied, checkpoints included."""
    gaps: int
    """Missing sequence numbers seen (each healed by a checkpoint)."""
    checkpoints: int
    """Full updates applied: the first one and one per gap."""
    bytes_reserved: int
    bytes_in_use: int
    peak_bytes_reserved: int
    """The source's own true peak: exact, as its ledger keeps it."""
    peak_bytes_in_use: int
    live_blocks: int
    events_applied: int
    gone_wall_ns: int = 0
    """When it went (``time.time_ns()`` at the aggregator); 0 while live."""
    gone_how: str = ""
    """How it went: ``"closed"``, ``"connection lost"``, ``"missed heartbeats"``,
    ``"actor died"`` ...; "" while live."""
    address: str = ""
    """Where the source itself is served, if it is ("" when it only pushes updates)."""


def render_sources(sources: Sequence[SourceStats]) -> list[str]:
    """Report lines of a merged snapshot's sources: one a source, live or gone."""
    lines = []
    for s in sources:
        state = s.state if s.state == LIVE else f"gone ({s.gone_how})"
        gaps = f", {s.gaps} gaps healed" if s.gaps else ""
        lines.append(
            f"source {s.prefix.rstrip('/')}: {state}, {format_size(s.bytes_reserved)} reserved "
            f"(own peak {format_size(s.peak_bytes_reserved)}), update {s.seq}{gaps}"
        )
    return lines
