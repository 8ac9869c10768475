"""Notable events, derived by comparing one view with the one before it.

A view says what *is*; the events tail says what *changed*: a new anomaly (with its
kind), a component appearing or vanishing, a new true peak, dropped events or missed
views. Connection changes, snapshots and notes from the feed join the same tail. Pure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..events import format_size
from ..metrics import Snapshot

NotableKind = Literal[
    "anomaly", "appeared", "vanished", "peak", "drops", "connection", "snapshot", "note"
]

DEFAULT_EVENTS_KEPT = 200


@dataclass(frozen=True, slots=True)
class NotableEvent:
    """One line of the events tail."""

    uptime_ns: int | None
    """The watched process's uptime when it was seen; ``None`` before any view."""
    kind: NotableKind
    text: str


def derive_events(
    before: Snapshot | None, after: Snapshot, *, missed: int = 0
) -> list[tuple[NotableKind, str]]:
    """What changed from *before* to *after* (``before`` None: the first view)."""
    found: list[tuple[NotableKind, str]] = []
    old = {(c.component, c.device): c for c in before.components} if before else {}
    new = {(c.component, c.device): c for c in after.components}
    if before is not None:
        for key in sorted(new.keys() - old.keys()):
            stats = new[key]
            found.append(
                (
                    "appeared",
                    f"{key[0]}@{key[1]} appeared ({format_size(stats.bytes_in_use)} in use)",
                )
            )
        for key in sorted(old.keys() - new.keys()):
            found.append(("vanished", f"{key[0]}@{key[1]} vanished"))
    for key in sorted(new):
        was = dict(old[key].anomalies) if key in old else {}
        for kind, count in new[key].anomalies:
            grew = count - was.get(kind, 0)
            if grew > 0:
                found.append(("anomaly", f"{key[0]}@{key[1]}: {grew:+,} {kind} (now {count:,})"))
    if before is not None:
        peak = after.totals.peak_bytes_in_use
        if peak > before.totals.peak_bytes_in_use:
            found.append(("peak", f"new true peak: {format_size(peak)} in use"))
        dropped = after.totals.events_dropped - before.totals.events_dropped
        if dropped > 0:
            found.append(("drops", f"{dropped:,} events dropped upstream"))
    if missed:
        found.append(("drops", f"{missed:,} views missed (the viewer fell behind)"))
    return found


class EventTail:
    """A bounded tail of notable events, newest last.

    A new peak that follows another replaces it (a steady climb is one line that keeps
    its latest value, not one line per view).
    """

    __slots__ = ("_events",)

    def __init__(self, *, kept: int = DEFAULT_EVENTS_KEPT) -> None:
        self._events: deque[NotableEvent] = deque(maxlen=kept)

    def add(self, uptime_ns: int | None, kind: NotableKind, text: str) -> None:
        events = self._events
        if kind == "peak" and events and events[-1].kind == "peak":
            events.pop()
        events.append(NotableEvent(uptime_ns, kind, text))

    def __iter__(self) -> Iterator[NotableEvent]:
        return iter(self._events)

    def __reversed__(self) -> Iterator[NotableEvent]:
        return reversed(self._events)

    def __len__(self) -> int:
        return len(self._events)
