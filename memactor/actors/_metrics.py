"""The metrics actor: the one owner of the ledger.

It applies every batch of memory events that reporters send, samples the time series at a
fixed rate, keeps named snapshots, and answers requests (statistics, snapshots, diffs,
subscriptions). Everything that shows or checks memory reads from it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import trio

from .._errors import MemactorError
from ..metrics import Ledger, LedgerStats, Snapshot, SnapshotDiff, diff
from ..runtime import Actor, EventBatch, MemoryHub

DEFAULT_SAMPLE_HZ: Final = 10.0
DEFAULT_KEEP_SNAPSHOTS: Final = 16


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
    """Ask for the ledger's totals: replies a :class:`~memactor.metrics.LedgerStats`."""


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
    """Ask every reporter to hand on its batch and apply all that was handed on."""


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


class MetricsActor(Actor[MetricsRequest, MetricsReply]):
    """Owns the ledger; consumes the hub's batches; samples at ``sample_hz``.

    The ledger lives as long as the system, across restarts of this actor. On stop,
    including a stop by cancellation, it applies every batch still in the channel and
    every batch a closing reporter could not send, synchronously, so that a lossless
    reporter's events all reach the ledger.
    """

    def __init__(
        self,
        hub: MemoryHub,
        ledger: Ledger,
        *,
        sample_hz: float = DEFAULT_SAMPLE_HZ,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    ) -> None:
        check_settings(sample_hz, keep_snapshots)
        self.hub = hub
        self.ledger = ledger
        self.sample_hz = sample_hz
        self.keep_snapshots = keep_snapshots
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._subscribers: list[_Subscriber] = []
        self._consuming = False

    async def on_start(self) -> None:
        self._consuming = True
        self.start_soon(self._consume, name="memactor metrics: consume")
        self.start_soon(self._flush_periodically, name="memactor metrics: flush")
        self.start_soon(self._sample_periodically, name="memactor metrics: sample")

    async def _consume(self) -> None:
        receive = self.hub.receive
        try:
            async for batch in receive:
                self._apply(batch)
                # Take all that is ready before yielding: one scheduling round can bring
                # many batches from fast producers, and a lossy one drops what finds no room.
                while True:
                    try:
                        batch = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    self._apply(batch)
        finally:
            self._consuming = False

    def _apply(self, batch: EventBatch) -> None:
        self.ledger.apply(batch.events)
        if batch.dropped:
            self.ledger.note_dropped(batch.dropped)

    async def _catch_up(self) -> None:
        """Wait until every batch sent so far has been applied, in order.

        The consumer task is the only receiver while it runs (a batch handed to it is
        in flight until it runs, so taking later ones here would apply them out of
        order); this yields until it has emptied the channel and waits again.
        """
        receive = self.hub.receive
        while self._consuming:
            stats = receive.statistics()
            if not stats.current_buffer_used and stats.tasks_waiting_receive:
                break
            await trio.lowlevel.checkpoint()
        # The channel is empty and the consumer holds nothing: what closing reporters
        # could not send comes next, in order.
        self.drain()

    async def _flush_periodically(self) -> None:
        # Its own task: a lossless flush may wait for room, and sampling must not.
        while True:
            await trio.sleep(self.hub.flush_interval_s)
            self.ledger.apply(self.hub.take_thread_events())
            await self.hub.flush()
            if self.hub.has_late_batches:
                # A reporter closed on a full channel: its last batch comes after all it
                # sent before, so it waits until the channel has been applied.
                await self._catch_up()

    async def _sample_periodically(self) -> None:
        period = 1.0 / self.sample_hz
        next_sample = trio.current_time() + period
        while True:
            await trio.sleep_until(next_sample)
            now = trio.current_time()
            self.ledger.sample()
            next_sample = _next_due(next_sample, period, now)
            self._publish(now)

    def _publish(self, now: float) -> None:
        due = [s for s in self._subscribers if now >= s.due]
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
                self._subscribers.remove(subscriber)

    async def on_stop(self) -> None:
        for subscriber in self._subscribers:
            subscriber.channel.close()
        self._subscribers.clear()
        self.drain()

    def drain(self) -> None:
        """Apply, without waiting, everything that reporters have emitted so far."""
        self.ledger.apply(self.hub.take_thread_events())
        for batch in self.hub.take_ready():
            self._apply(batch)

    async def handle(self, message: MetricsRequest) -> MetricsReply:
        """Answer one request. A request that cannot be answered gets a
        :class:`RequestFailed` reply; it never fails the actor."""
        try:
            return await self._answer(message)
        except (MemactorError, ValueError, TypeError) as error:
            return RequestFailed(error)

    async def _answer(self, message: MetricsRequest) -> MetricsReply:
        # Whatever reached the channel before this request counts in its answer.
        if isinstance(message, Flush):
            await self.hub.flush()
        await self._catch_up()
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
            self._snapshots.pop(request.label, None)
            self._snapshots[request.label] = snapshot
            while len(self._snapshots) > self.keep_snapshots:
                self._snapshots.popitem(last=False)
        return snapshot

    def _kept(self, label: str) -> Snapshot:
        try:
            return self._snapshots[label]
        except KeyError:
            raise UnknownSnapshotError(label, list(self._snapshots)) from None

    def _subscribe(self, request: Subscribe) -> trio.MemoryReceiveChannel[Snapshot]:
        check_rate("rate_hz", request.rate_hz)
        send, receive = trio.open_memory_channel[Snapshot](request.buffer)
        period = 1.0 / request.rate_hz
        self._subscribers.append(
            _Subscriber(send, period, trio.current_time(), series=request.series)
        )
        return receive
