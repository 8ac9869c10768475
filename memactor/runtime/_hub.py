"""The memory hub: where every reporter's events meet on their way to the metrics actor.

The hub owns the one trio memory channel of event batches (each reporter sends on its
own clone), the registry of reporters that the interval flusher visits, the queues of
thread reporters, and the batches that closing reporters could not send. The metrics
actor consumes from it; the actor system owns it and closes it last.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Final

import trio

from ._reporter import (
    DEFAULT_BATCH_SIZE,
    EventBatch,
    MemoryReporter,
    NullReporter,
    ThreadReporter,
)

DEFAULT_CHANNEL_SIZE: Final = 64
"""Batches that may wait for the metrics actor before lossless reporters wait too."""

DEFAULT_FLUSH_INTERVAL_S: Final = 0.05


class MemoryHub:
    """Makes reporters and gathers their batches; one per actor system.

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
        """False: every reporter made is a :class:`NullReporter` (tracking off)."""
        send, receive = trio.open_memory_channel[EventBatch](channel_size)
        self._send = send
        self.receive = receive
        """The metrics actor's end of the channel."""
        self._reporters: list[MemoryReporter] = []
        self._thread_reporters: list[ThreadReporter] = []
        self._late: list[EventBatch] = []
        # One block counter per component, shared by all its reporters: a respawned
        # actor, or a thread reporter beside an actor's, never reuses a live block's id.
        self._block_counters: dict[str, Iterator[int]] = {}
        # One numbering of every event any reporter of this hub emits: the order in which
        # they happened, which the metrics actor applies them in.
        self._seq = itertools.count(1).__next__
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
        kind = MemoryReporter if self.tracking else NullReporter
        reporter = kind(
            component,
            self._send.clone(),
            owner=owner,
            device=device,
            lossy=lossy,
            batch_size=batch_size or self.batch_size,
            clock=self.clock,
            on_close=self._late.append,
            blocks=self._blocks_of(component),
            seq=self._seq,
        )
        self._reporters.append(reporter)
        return reporter

    def thread_reporter(
        self, component: str, *, owner: str | None = None, device: str = "cpu"
    ) -> ThreadReporter:
        """A reporter whose emits are safe from any thread; its events travel on the
        hub's interval. Lossless and never blocking."""
        self._check_open()
        reporter = ThreadReporter(
            component,
            owner=owner,
            device=device,
            clock=self.clock,
            blocks=self._blocks_of(component),
            seq=self._seq,
        )
        self._thread_reporters.append(reporter)
        return reporter

    def forget(self, reporter: MemoryReporter) -> None:
        """Close *reporter* and stop flushing it (its actor stopped for good)."""
        reporter.close()
        if reporter in self._reporters:
            self._reporters.remove(reporter)

    async def flush(self) -> None:
        """Flush every reporter once: waits for room for lossless ones."""
        for reporter in list(self._reporters):
            try:
                await reporter.flush()
            except trio.ClosedResourceError:
                # Closed by its owner (forget() may have removed it while we waited).
                self.forget(reporter)

    def take_thread_events(self) -> list[tuple[object, ...]]:
        """Every event queued by thread reporters, reporter by reporter, oldest first."""
        events: list[tuple[object, ...]] = []
        for reporter in self._thread_reporters:
            events.extend(reporter.drain())
        return events

    @property
    def has_late_batches(self) -> bool:
        """Whether closed reporters left batches the channel had no room for."""
        return bool(self._late)

    def take_ready(self) -> list[EventBatch]:
        """Without waiting: every batch in the channel, then those closing reporters could
        not send. The metrics actor's last call, so nothing is lost on shutdown."""
        ready: list[EventBatch] = []
        while True:
            try:
                ready.append(self.receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        ready.extend(self._late)
        self._late.clear()
        return ready

    def close(self) -> None:
        """Close every reporter (their last batches stay ready to take) and the channel."""
        if self._closed:
            return
        self._closed = True
        for reporter in self._reporters:
            reporter.close()
        self._reporters.clear()
        for thread_reporter in self._thread_reporters:
            thread_reporter.close()
        self._send.close()
