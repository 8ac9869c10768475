"""The metrics actor: the one owner of the ledger.

It applies the memory events that reporters emit, in the order they were emitted,
samples the time series, the process's own memory and every actor's mailbox (and chunk
processor's lookahead, see :mod:`._sampling`) at a fixed rate, keeps named
snapshots, and answers requests (statistics, snapshots, diffs, subscriptions).
Everything that shows or checks memory reads from it.

Its work is done in *rounds*: a round takes every event emitted so far from the hub (a
consistent cut, :meth:`MemoryHub.collect`) and applies them in emission order. A round
runs when a reporter hands on a batch, every flush interval, before every sample, and
before every answer, so every view, statistic and snapshot includes every event emitted
before it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import trio

from .._errors import MemactorError
from ..metrics import EventOrder, Ledger, LedgerStats, Snapshot, SnapshotDiff, diff
from ..runtime import Actor, ActorSystem, MemoryHub, StallWatch
from ._process import note_process_memory
from ._sampling import ActorBook, figures_of

DEFAULT_SAMPLE_HZ: Final = 10.0
DEFAULT_KEEP_SNAPSHOTS: Final = 16
PROCESS_SAMPLE_INTERVAL_NS: Final = 100_000_000
"""The least real time between two samples of the process's memory (0.1 s: every tick
at the default rate). A sample costs up to a millisecond, so a faster tick, or a test's
jumping clock, samples the process less often than the ledger."""


class UnknownSnapshotError(MemactorError, KeyError):
    """A diff named a snapshot the metrics actor does not keep (never taken, or evicted)."""

    def __init__(self, label: str, known: list[str]) -> None:
        self.label = label
        names = ", ".join(repr(k) for k in known) or "none"
        super().__init__(f"no snapshot labelled {label!r} (kept: {names})")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class GetStatistics:
    """Ask an actor for its statistics: the metrics actor replies the ledger's totals (a
    :class:`~memactor.metrics.LedgerStats`), a :class:`~memactor.actors.BufferPool` its
    :class:`~memactor.actors.PoolStatistics`, a :class:`~memactor.actors.GpuBufferManager`
    its :class:`~memactor.actors.GpuStatistics`."""


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Ask for a :class:`~memactor.metrics.Snapshot`, kept under *label* for diffs."""

    label: str = ""
    blocks: bool = True
    """Include every live block (costly for millions; views leave them out)."""


@dataclass(frozen=True, slots=True)
class DiffSnapshots:
    """Ask for the :class:`~memactor.metrics.SnapshotDiff` of two kept snapshots."""

    before: str
    after: str
    tolerance_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask for a channel of views (snapshots without blocks) at *rate_hz*.

    A viewer that falls behind misses views instead of slowing anyone: each view is sent
    without waiting, and one that finds the channel full is skipped. Closing the receive
    end ends the subscription.
    """

    rate_hz: float = DEFAULT_SAMPLE_HZ
    buffer: int = 1
    series: bool = True
    """Include the time series in every view; a viewer that keeps its own history from
    one full view (:meth:`Metrics.snapshot` with ``blocks=False``) sets it false."""


@dataclass(frozen=True, slots=True)
class Flush:
    """Ask for a round: apply every event emitted before the request."""


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """The reply to a request the metrics actor could not answer (an unknown label, a bad
    rate); the actor goes on, its snapshots and subscriptions intact.
    :class:`~memactor.actors.Metrics` raises :attr:`error` in the asker."""

    error: Exception


MetricsRequest = GetStatistics | TakeSnapshot | DiffSnapshots | Subscribe | Flush
MetricsReply = (
    LedgerStats
    | Snapshot
    | SnapshotDiff
    | trio.MemoryReceiveChannel[Snapshot]
    | RequestFailed
    | None
)


def check_rate(name: str, rate_hz: float) -> None:
    """Raise ``ValueError`` naming *name* unless *rate_hz* is a positive finite number."""
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ValueError(f"{name} must be a positive number, got {rate_hz}")


def check_settings(sample_hz: float, keep_snapshots: int) -> None:
    """Raise ``ValueError`` for a metrics actor setting it cannot run with."""
    check_rate("sample_hz", sample_hz)
    if keep_snapshots < 1:
        raise ValueError(f"keep_snapshots must be at least 1, got {keep_snapshots}")


def _next_due(due: float, period: float, now: float) -> float:
    """The first tick after *now* on the grid ``due + k * period``: late ticks are
    skipped, not bunched up."""
    return due + period * max(1, math.floor((now - due) / period) + 1)


@dataclass(slots=True)
class _Subscriber:
    channel: trio.MemorySendChannel[Snapshot]
    period_s: float
    due: float
    series: bool = True
    skipped: int = 0


class MetricsState:
    """What outlives any one metrics actor incarnation, as the ledger does: the events
    held for ordering, the labelled snapshots and the subscriptions.

    A metrics actor that fails and is restarted finds them as they were: held events are
    applied exactly once, ``diff`` still knows every label, and viewers keep their
    channels. For the runtime's use (:func:`memactor.open_system` makes one).
    """

    def __init__(
        self,
        hub: MemoryHub,
        ledger: Ledger,
        *,
        keep_snapshots: int,
        stall_watch: StallWatch | None = None,
    ) -> None:
        self.hub = hub
        self.ledger = ledger
        self.stall_watch = stall_watch
        self.keep_snapshots = keep_snapshots
        self.order = EventOrder(ledger)
        self.snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self.subscribers: list[_Subscriber] = []
        self.process_sampled_ns: int | None = None
        self.actor_book = ActorBook()
        ledger.note_actors(self.actor_book.samples)

    def sample_process(self, min_interval_ns: int) -> None:
        """Note the process's memory in the ledger, unless it was noted less than
        *min_interval_ns* ago on the real clock.

        A read costs about half a millisecond (``/proc/self/smaps_rollup`` walks the
        process's mappings); the real clock keeps a test's jumping clock, which ticks
        thousands of times a second, from paying it on every tick.
        """
        now = time.monotonic_ns()
        last = self.process_sampled_ns
        if last is not None and now - last < min_interval_ns:
            return
        self.process_sampled_ns = now
        note_process_memory(self.ledger)

    def sample_actors(self, system: ActorSystem) -> None:
        """Add a tick of each of *system*'s running actors (their mailboxes; a chunk
        processor's lookahead) to the book, which the ledger's snapshots read."""
        held_up = system.waiting_for_room()
        self.actor_book.tick((figures_of(a) for a in system.running_actors()), held_up)

    def round(self, *, last: bool = False) -> None:
        """Take every event emitted so far and apply them in emission order.

        With *last* (the system is closing and no reporter can emit again) nothing is
        held back. Raises what the ledger raises (see :class:`EventOrder`).
        """
        collected = self.hub.collect()
        order = self.order
        ledger = self.ledger
        if self.stall_watch is not None:
            for stall in self.stall_watch.take():
                ledger.note_stall(stall.task, stall.duration_ns)
        for batch in collected.batches:
            order.add(batch.events)
            if batch.dropped:
                ledger.note_dropped(batch.dropped)
        order.apply_below(math.inf if last else collected.watermark)

    def finish(self) -> None:
        """The last round (no reporter can emit again), then the end of every
        subscription, even if the round fails; idempotent: a second call finds nothing
        to apply and no subscription left."""
        try:
            self.round(last=True)
        finally:
            for subscriber in self.subscribers:
                subscriber.channel.close()
            self.subscribers.clear()


class MetricsActor(Actor[MetricsRequest, MetricsReply]):
    """Owns the ledger; applies events in rounds; samples at ``sample_hz``.

    The ledger and the :class:`MetricsState` live as long as the system, across restarts
    of this actor. On its last stop (the system closing, the reporters closed) it runs a
    last round, so every event any reporter emitted reaches the ledger, then ends the
    subscriptions. After a failure it ends nothing: the next incarnation goes on.
    """

    def __init__(self, state: MetricsState, *, sample_hz: float = DEFAULT_SAMPLE_HZ) -> None:
        check_settings(sample_hz, state.keep_snapshots)
        self.state = state
        self.hub = state.hub
        self.ledger = state.ledger
        self.sample_hz = sample_hz

    async def on_start(self) -> None:
        self.start_soon(self._round_when_handed_on, name="memactor metrics: rounds")
        self.start_soon(self._round_periodically, name="memactor metrics: flush")
        self.start_soon(self._sample_periodically, name="memactor metrics: sample")

    async def _round_when_handed_on(self) -> None:
        # A reporter handed on a batch (full, or its owner went idle) or waits for room:
        # apply it now, which also makes room.
        while True:
            await self.hub.wait_handed_on()
            self.state.round()

    async def _round_periodically(self) -> None:
        # Takes what reporters hold and thread reporters queued, so that nothing waits
        # longer than the flush interval.
        while True:
            await trio.sleep(self.hub.flush_interval_s)
            self.state.round()

    async def _sample_periodically(self) -> None:
        period = 1.0 / self.sample_hz
        next_sample = trio.current_time() + period
        while True:
            await trio.sleep_until(next_sample)
            now = trio.current_time()
            self.state.round()
            self.state.sample_process(PROCESS_SAMPLE_INTERVAL_NS)
            self.state.sample_actors(self.system)
            self.ledger.sample()
            next_sample = _next_due(next_sample, period, now)
            self._publish(now)

    def _publish(self, now: float) -> None:
        subscribers = self.state.subscribers
        due = [s for s in subscribers if now >= s.due]
        if not due:
            return
        views: dict[bool, Snapshot] = {}
        for subscriber in due:
            subscriber.due = _next_due(subscriber.due, subscriber.period_s, now)
            view = views.get(subscriber.series)
            if view is None:
                view = self.ledger.snapshot("live", blocks=False, series=subscriber.series)
                views[subscriber.series] = view
            try:
                subscriber.channel.send_nowait(view)
            except trio.WouldBlock:
                subscriber.skipped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                subscribers.remove(subscriber)

    async def on_stop(self) -> None:
        if self.hub.closed:
            self.state.finish()
        # Otherwise a failure or a restart: the next incarnation goes on with the state.

    async def handle(self, message: MetricsRequest) -> MetricsReply:
        """Answer one request. A request that cannot be answered gets a
        :class:`RequestFailed` reply; it never fails the actor."""
        try:
            return await self._answer(message)
        except (MemactorError, ValueError, TypeError) as error:
            return RequestFailed(error)

    async def _answer(self, message: MetricsRequest) -> MetricsReply:
        # A consistent cut: every event emitted before this request counts in its answer.
        self.state.round()
        if isinstance(message, Flush):
            return None
        if isinstance(message, GetStatistics):
            return self.ledger.statistics()
        if isinstance(message, TakeSnapshot):
            return self._take(message)
        if isinstance(message, DiffSnapshots):
            return diff(
                self._kept(message.before),
                self._kept(message.after),
                tolerance_bytes=message.tolerance_bytes,
            )
        if isinstance(message, Subscribe):
            return self._subscribe(message)
        raise TypeError(f"the metrics actor does not understand {message!r}")

    def _take(self, request: TakeSnapshot) -> Snapshot:
        snapshot = self.ledger.snapshot(request.label, blocks=request.blocks)
        if request.label:
            kept = self.state.snapshots
            kept.pop(request.label, None)
            kept[request.label] = snapshot
            while len(kept) > self.state.keep_snapshots:
                kept.popitem(last=False)
        return snapshot

    def _kept(self, label: str) -> Snapshot:
        try:
            return self.state.snapshots[label]
        except KeyError:
            raise UnknownSnapshotError(label, list(self.state.snapshots)) from None

    def _subscribe(self, request: Subscribe) -> trio.MemoryReceiveChannel[Snapshot]:
        check_rate("rate_hz", request.rate_hz)
        send, receive = trio.open_memory_channel[Snapshot](request.buffer)
        period = 1.0 / request.rate_hz
        self.state.subscribers.append(
            _Subscriber(send, period, trio.current_time(), series=request.series)
        )
        return receive
