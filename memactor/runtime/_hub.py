"""The memory hub: where every reporter's events meet on their way to the metrics actor.

The hub owns the inbox of event batches, the one counter that numbers every event its
reporters emit, the registry of reporters, and the queues of thread reporters. The
metrics actor takes from it with :meth:`MemoryHub.collect`; the actor system owns it and
closes it just before the metrics actor stops.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple

import trio

from ..events import SiteTable, check_callsites
from ._inbox import EventBatch, Inbox
from ._reporter import (
    DEFAULT_BATCH_SIZE,
    MemoryReporter,
    NullReporter,
    NullThreadReporter,
    ThreadReporter,
    new_numbering,
)
from ._sited import SitedReporter

DEFAULT_CHANNEL_SIZE: Final = 64
"""Batches that may wait for the metrics actor before lossless reporters wait too."""

DEFAULT_FLUSH_INTERVAL_S: Final = 0.05


class Collected(NamedTuple):
    """What one :meth:`MemoryHub.collect` took: a consistent cut of the events."""

    batches: list[EventBatch]
    """Every batch handed on or held since the last collect, each in emission order."""
    watermark: int
    """Every event numbered below this was emitted before the cut and is in
    :attr:`batches` or an earlier collect; events numbered above it (thread reporters
    racing with the cut) may be in :attr:`batches` too, and later ones follow."""


class MemoryHub:
    """Makes reporters and gathers their batches; one per actor system.

    ``callsites`` (``True`` or ``1``: every allocation; ``N``: one in ``N``; ``0`` or
    ``False``: none) makes reporters that tag allocations with their site, interned in
    :attr:`sites`; ``ValueError`` for anything else.

    After :meth:`close`, making a reporter raises ``trio.ClosedResourceError``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        channel_size: int = DEFAULT_CHANNEL_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        tracking: bool = True,
        callsites: bool | int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if channel_size < 1:
            raise ValueError(f"channel_size must be at least 1, got {channel_size}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self.clock = clock
        """Stamps every event; the metrics actor's ledger reads the same clock."""
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.tracking = tracking
        """False: every reporter made is a :class:`NullReporter` or, for other threads, a
        :class:`NullThreadReporter` (tracking off)."""
        every = check_callsites(callsites)
        self.sites = SiteTable(every) if every else None
        """The table of allocation sites reporters record into; ``None`` with sites off."""
        self._inbox = Inbox(channel_size)
        # An insertion-ordered set: an actor's reporter is forgotten when the actor
        # finishes, in O(1) however many actors come and go.
        self._reporters: dict[MemoryReporter, None] = {}
        self._thread_reporters: list[ThreadReporter] = []
        # One block counter per component, shared by all its reporters: a respawned
        # actor, or a thread reporter beside an actor's, never reuses a live block's id.
        self._block_counters: dict[str, Iterator[int]] = {}
        # One numbering of every event any reporter of this hub emits: the order in which
        # they happened, which the metrics actor applies them in.
        # Compiled emits read a compiled numbering without making an int.
        self._seq = new_numbering()
        self._closed = False

    def _blocks_of(self, component: str) -> Iterator[int]:
        counter = self._block_counters.get(component)
        if counter is None:
            counter = self._block_counters[component] = itertools.count(1)
        return counter

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the memory hub is closed")

    def reporter(
        self,
        component: str,
        *,
        owner: str | None = None,
        device: str = "cpu",
        lossy: bool = False,
        batch_size: int | None = None,
    ) -> MemoryReporter:
        """A new reporter for *component*, flushed on the hub's interval and closed with it.

        For code running in the system's trio thread; see :meth:`thread_reporter` for
        other threads.
        """
        self._check_open()
        sites = self.sites
        kind = (
            NullReporter
            if not self.tracking
            else MemoryReporter
            if sites is None
            else SitedReporter
        )
        reporter = kind(
            component,
            self._inbox,
            owner=owner,
            device=device,
            lossy=lossy,
            batch_size=batch_size or self.batch_size,
            clock=self.clock,
            blocks=self._blocks_of(component),
            seq=self._seq,
        )
        if isinstance(reporter, SitedReporter) and sites is not None:
            reporter.use_sites(sites)
        self._reporters[reporter] = None
        return reporter

    def thread_reporter(
        self, component: str, *, owner: str | None = None, device: str = "cpu"
    ) -> ThreadReporter:
        """A reporter whose emits are safe from any thread; its events travel on the
        hub's interval. Lossless and never blocking."""
        self._check_open()
        reporter = (ThreadReporter if self.tracking else NullThreadReporter)(
            component,
            owner=owner,
            device=device,
            clock=self.clock,
            blocks=self._blocks_of(component),
            seq=self._seq,
            sites=self.sites if self.tracking else None,
        )
        self._thread_reporters.append(reporter)
        return reporter

    def forget(self, reporter: MemoryReporter) -> None:
        """Close *reporter* (its last batch is handed on) and stop tracking it."""
        reporter.close()
        self._reporters.pop(reporter, None)

    async def flush(self) -> None:
        """Hand on every reporter's batch, waiting for room for lossless ones."""
        for reporter in list(self._reporters):
            await reporter.flush()

    def collect(self) -> Collected:
        """Take, without waiting, every event emitted so far: a consistent cut.

        First draws the watermark from the numbering, then takes every batch handed on,
        every batch whose flush waits for room (those flushes return), what every trio
        reporter still holds, and every thread reporter's queue. Since trio reporters run
        in this thread, all their events below the watermark are in hand; a thread
        reporter numbers and queues an event under the lock this takes, so all of its
        events below the watermark are in hand too. A thread reporter found closed is
        drained one last time and forgotten.
        """
        watermark = self._seq()
        batches = self._inbox.take_all()
        if self._thread_reporters:
            still_open = []
            for reporter in self._thread_reporters:
                # Read before the drain: once closed, nothing more can be queued.
                closed = reporter.closed
                events = reporter.drain()
                if events:
                    batches.append(EventBatch(events))
                if not closed:
                    still_open.append(reporter)
            self._thread_reporters = still_open
        return Collected(batches, watermark)

    async def wait_handed_on(self) -> None:
        """Wait until a reporter hands on a batch (or a flush waits for room) since the
        last :meth:`collect`; the metrics actor's cue for an early round."""
        await self._inbox.wait_handed_on()

    @property
    def flushes_waiting(self) -> int:
        """Lossless flushes waiting now for room in the inbox (the backpressure at work)."""
        return self._inbox.waiting

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: no reporter will emit again."""
        return self._closed

    def close(self) -> None:
        """Close every reporter (their last batches wait for the next collect). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for reporter in self._reporters:
            reporter.close()
        self._reporters.clear()
        for thread_reporter in self._thread_reporters:
            thread_reporter.close()
