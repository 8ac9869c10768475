"""Event order: batches from many producers, applied to the ledger in the order the events
happened, whichever batch arrived first.

Every event carries its number in its process's order of emission (``seq``, the last
field). Each producer's batch is already in that order, so putting a round's batches in
order is a merge of sorted runs: a concatenation when the runs do not overlap (the common
case), a sort of the runs otherwise, which Python's sort does in about a pass per run.

Where the compiled emits load, reporters' runs are ``Batch``es of compact records, and
``memactor._native._emit.merge`` puts them in order without making a tuple (lists, a
thread reporter's, are made records on the way): the same order, the same count of
interleaved rounds. A run whose numbers are not all ints within int64 (only odd
hand-made events have such) takes the Python path.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from .._native import load
from ..events import MemoryEvent
from ._ledger import Ledger

_compiled = load("_emit")

Event = Sequence[Any]

SEQ_FIELD = MemoryEvent._fields.index("seq")
"""Where an event tuple keeps its number (the last of its eleven fields)."""

_seq_of = itemgetter(SEQ_FIELD)


def _first_seq(run: Sequence[Event]) -> int:
    seq: int = run[0][SEQ_FIELD]
    return seq


@dataclass(frozen=True, slots=True)
class OrderStatistics:
    """A snapshot of an :class:`EventOrder`'s counters; it does not change."""

    rounds: int
    """Calls of :meth:`EventOrder.apply_below` that had events to look at."""
    interleaved_rounds: int
    """Rounds whose batches overlapped in time, so that their events had to be merged."""
    events_held: int
    """Events waiting now for a later round (numbered at or above the last watermark)."""
    events_lost_in_failures: int
    """Events the ledger failed on (each counted in its ``events_dropped`` too)."""


class EventOrder:
    """Holds batches of events until they can be applied in emission order.

    :meth:`add` takes a batch (in emission order, as every reporter's is);
    :meth:`apply_below` applies every held event numbered below a watermark, in order of
    their numbers, and keeps the rest for a later round. The caller promises that every
    event numbered below the watermark has been added by then.

    It lives as long as the ledger, outside any metrics actor incarnation. If the ledger
    fails on an event (an error that is not the event's fault: a bug, memory), the events
    before it are in the ledger, the one it failed on is counted as dropped, and the rest
    stay held: the next :meth:`apply_below`, by a restarted metrics actor, applies them
    exactly once. Not thread-safe.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._runs: list[Sequence[Event]] = []
        self._rounds = 0
        self._interleaved = 0
        self._lost = 0

    def add(self, events: Sequence[Event]) -> None:
        """Hold *events*, a batch in emission order, for the next :meth:`apply_below`."""
        if events:
            self._runs.append(events)

    @property
    def events_held(self) -> int:
        """Events added and not applied yet."""
        return sum(len(run) for run in self._runs)

    def apply_below(self, watermark: float = math.inf) -> int:
        """Apply, in emission order, every held event numbered below *watermark*.

        Returns how many were applied. Events numbered at or above it stay held. If the
        ledger raises, see the class docstring; the error goes on to the caller.
        """
        if not self._runs:
            return 0
        self._rounds += 1
        events = self._in_order(self._runs)
        if _seq_of(events[-1]) < watermark:
            cut = len(events)
            ready = events
        else:
            cut = bisect_left(events, watermark, key=_seq_of)
            ready = events[:cut]
        # Until the ledger has taken them, the events stay here: a failure keeps them.
        self._runs = [events]
        ledger = self._ledger
        before = ledger.events_applied
        try:
            ledger.apply(ready)
        except BaseException:
            taken = ledger.events_applied - before
            ledger.note_dropped(1)
            self._lost += 1
            self._keep(events, taken + 1)
            raise
        self._keep(events, cut)
        return cut

    def _keep(self, events: Sequence[Event], start: int) -> None:
        self._runs = [events[start:]] if start < len(events) else []

    def _in_order(self, runs: list[Sequence[Event]]) -> Sequence[Event]:
        if len(runs) == 1:
            return runs[0]
        if _compiled is not None:
            merged_runs: tuple[Sequence[Event], bool] | None = _compiled.merge(runs)
            if merged_runs is not None:
                events, interleaved = merged_runs
                self._interleaved += interleaved
                return events
        runs.sort(key=_first_seq)
        last = -1
        for run in runs:
            if _first_seq(run) <= last:
                break
            last = _seq_of(run[-1])
        else:
            return list(chain.from_iterable(runs))
        self._interleaved += 1
        merged = list(chain.from_iterable(runs))
        merged.sort(key=_seq_of)
        return merged

    def statistics(self) -> OrderStatistics:
        """Return the counters as a fresh frozen value."""
        return OrderStatistics(
            rounds=self._rounds,
            interleaved_rounds=self._interleaved,
            events_held=self.events_held,
            events_lost_in_failures=self._lost,
        )
