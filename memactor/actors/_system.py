"""``memactor.open_system()``: an actor system with its metrics actor and ledger.

This is the system most programs open. It is the runtime's :class:`ActorSystem` plus
what memory accounting needs: the :class:`~memactor.metrics.Ledger`, the metrics actor
that feeds it, and :attr:`MemorySystem.metrics`, a client for asking it things.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final

import trio

from ..metrics import Ledger, LedgerStats, Snapshot, SnapshotDiff
from ..runtime import (
    DEFAULT_BACKOFF,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHANNEL_SIZE,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_STALL_THRESHOLD_S,
    DEFAULT_WITHIN_S,
    ActorRef,
    ActorSpec,
    ActorSystem,
    Backoff,
    MemoryHub,
    MemoryReporter,
    Restart,
    StallWatch,
    Strategy,
    ThreadReporter,
    run_system,
)
from ._metrics import (
    DEFAULT_KEEP_SNAPSHOTS,
    DEFAULT_SAMPLE_HZ,
    DiffSnapshots,
    Flush,
    GetStatistics,
    MetricsActor,
    MetricsReply,
    MetricsRequest,
    MetricsState,
    RequestFailed,
    Subscribe,
    TakeSnapshot,
    check_settings,
)

METRICS_NAME: Final = "metrics"
"""The metrics actor's name in every memory system."""


class Metrics:
    """Asks the metrics actor; every method is one ``ask`` with an optional timeout.

    Every answer is a consistent cut: before answering, the metrics actor takes every
    event emitted before the request, from every reporter of the system (held in a
    batch, handed on, or queued by a worker thread), and applies them in emission order.
    So whoever asks, and whenever, the answer includes every event emitted before the
    call. A request that cannot be answered raises its own error
    (:class:`UnknownSnapshotError`, ``ValueError``) and leaves the metrics actor as it
    was. Otherwise raises what :meth:`ActorRef.ask` raises; once the system is closed the
    metrics actor is gone and :class:`~memactor.runtime.ActorNotFoundError` is raised
    (read ``system.ledger``).
    """

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    @property
    def ref(self) -> ActorRef[MetricsRequest, MetricsReply]:
        """The metrics actor's ref."""
        return self._system.lookup(METRICS_NAME)

    async def _ask(self, request: MetricsRequest, timeout: float | None) -> Any:
        reply = await self.ref.ask(request, timeout=timeout)
        if isinstance(reply, RequestFailed):
            raise reply.error
        return reply

    async def statistics(self, *, timeout: float | None = None) -> LedgerStats:
        """The ledger's totals, including every event emitted before the call."""
        result: LedgerStats = await self._ask(GetStatistics(), timeout)
        return result

    async def snapshot(
        self, label: str = "", *, blocks: bool = True, timeout: float | None = None
    ) -> Snapshot:
        """A snapshot including every event emitted before the call; kept under *label*
        (if any) for :meth:`diff`, across restarts of the metrics actor."""
        result: Snapshot = await self._ask(TakeSnapshot(label, blocks), timeout)
        return result

    async def diff(
        self,
        before: str,
        after: str,
        *,
        tolerance_bytes: int = 0,
        timeout: float | None = None,
    ) -> SnapshotDiff:
        """The diff of two snapshots taken by label (each a consistent cut when it was
        taken); an unknown label fails the ask with :class:`UnknownSnapshotError`."""
        result: SnapshotDiff = await self._ask(
            DiffSnapshots(before, after, tolerance_bytes), timeout
        )
        return result

    async def subscribe(
        self, rate_hz: float = DEFAULT_SAMPLE_HZ, *, buffer: int = 1, series: bool = True
    ) -> trio.MemoryReceiveChannel[Snapshot]:
        """A channel of views (snapshots without blocks) at *rate_hz*; with *series* false
        the views leave the time series out too. See :class:`Subscribe`."""
        result: trio.MemoryReceiveChannel[Snapshot] = await self._ask(
            Subscribe(rate_hz, buffer, series), None
        )
        return result

    async def flush(self, *, timeout: float | None = None) -> None:
        """Apply every event emitted before the call (a round of the metrics actor)."""
        await self._ask(Flush(), timeout)


class MemorySystem(ActorSystem):
    """An actor system with memory accounting; made by :func:`open_system`."""

    def __init__(self, nursery: trio.Nursery, *, ledger: Ledger, **options: Any) -> None:
        super().__init__(nursery, **options)
        self.ledger = ledger
        """The ledger itself: read it synchronously, during or after the run."""
        self.metrics = Metrics(self)
        """Ask the metrics actor for statistics, snapshots, diffs and subscriptions."""
        self.prometheus_address: str | None = None
        """``HOST:PORT`` of the Prometheus endpoint ``open_system(prometheus=...)`` serves
        (the real port when 0 was asked for); ``None`` without one."""

    def reporter(
        self,
        component: str,
        *,
        owner: str | None = None,
        device: str = "cpu",
        lossy: bool = False,
    ) -> MemoryReporter:
        """A reporter for plain trio code in this system (not an actor); see
        :meth:`MemoryHub.reporter`. Flushed on the system's interval, closed with it."""
        return self.memory.reporter(component, owner=owner, device=device, lossy=lossy)

    def thread_reporter(
        self, component: str, *, owner: str | None = None, device: str = "cpu"
    ) -> ThreadReporter:
        """A reporter for other threads and callbacks; see :meth:`MemoryHub.thread_reporter`."""
        return self.memory.thread_reporter(component, owner=owner, device=device)


def open_system(
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    within_s: float = DEFAULT_WITHIN_S,
    restart_backoff: Backoff = DEFAULT_BACKOFF,
    sample_hz: float = DEFAULT_SAMPLE_HZ,
    keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
    clock: Callable[[], int] = time.monotonic_ns,
    batch_size: int = DEFAULT_BATCH_SIZE,
    channel_size: int = DEFAULT_CHANNEL_SIZE,
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    tracking: bool = True,
    stall_threshold_s: float | None = DEFAULT_STALL_THRESHOLD_S,
    system_actors: Iterable[ActorSpec[Any, Any]] = (),
    prometheus: str | None = None,
) -> AbstractAsyncContextManager[MemorySystem]:
    """Open an actor system whose actors' memory is accounted by a metrics actor.

    ``async with memactor.open_system() as system:`` starts the metrics actor (named
    ``"metrics"``) first and stops it last, after every user actor has stopped and handed
    on its last events: ``system.ledger`` is complete when the block is left, even when
    it is left by an error or a cancellation.

    ``sample_hz`` is the rate of the time series and ``keep_snapshots`` how many labelled
    snapshots the metrics actor keeps for diffs. ``clock`` stamps every event and every
    sample (nanoseconds). ``batch_size``, ``channel_size`` and ``flush_interval_s`` tune the
    reporters; ``tracking=False`` makes every actor reporter a no-op (to measure what
    tracking costs, or to switch it off in production). The other options, and the
    shutdown and error behaviour, are those of :func:`memactor.runtime.open_system`.

    ``prometheus="HOST:PORT"`` also serves the system's figures for Prometheus while it
    runs (:func:`memactor.exporters.serve_prometheus` with its defaults; the address it
    listens on is ``system.prometheus_address``). It needs the ``prometheus`` extra:
    ``ImportError`` says so, and a malformed address raises ``ValueError``, at the call.
    """
    check_settings(sample_hz, keep_snapshots)  # now, not when the system first starts it
    serve: Serve | None = None
    if prometheus is not None:
        serve = _prometheus_serving(prometheus)
    ledger = Ledger(clock=clock)
    hub = MemoryHub(
        clock=clock,
        channel_size=channel_size,
        batch_size=batch_size,
        flush_interval_s=flush_interval_s,
        tracking=tracking,
    )
    watch = None if stall_threshold_s is None else StallWatch(stall_threshold_s)
    state = MetricsState(hub, ledger, keep_snapshots=keep_snapshots, stall_watch=watch)
    metrics = ActorSpec(
        lambda: MetricsActor(state, sample_hz=sample_hz),
        name=METRICS_NAME,
        restart=Restart.PERMANENT,
        drains_memory=True,
    )

    def make(nursery: trio.Nursery) -> MemorySystem:
        return MemorySystem(
            nursery,
            ledger=ledger,
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            restart_backoff=restart_backoff,
            memory=hub,
            stall_watch=watch,
        )

    return _finishing_metrics(run_system(make, [metrics, *system_actors]), state, serve)


Serve = Callable[[MemorySystem], AbstractAsyncContextManager[str]]
"""Runs an exporter of a system while its block runs; yields the address it serves on."""


def _prometheus_serving(address: str) -> Serve:
    # The one reach past this layer: exporters are an edge (layer 8), loaded only when
    # asked for by name, so that a program without the extra never imports them.
    from ..exporters import parse_listen_address, serve_prometheus

    parse_listen_address(address)

    @asynccontextmanager
    async def serving(system: MemorySystem) -> AsyncIterator[str]:
        async with serve_prometheus(system, address) as exporter:
            yield exporter.address

    return serving


@asynccontextmanager
async def _finishing_metrics(
    running: AbstractAsyncContextManager[MemorySystem],
    state: MetricsState,
    serve: Serve | None = None,
) -> AsyncIterator[MemorySystem]:
    """*running*, then the metrics actor's last round and the end of its subscriptions,
    in case its last stop did not run them: a metrics actor that failed and waited out
    its restart backoff when the system closed is never started again. After a last stop
    that ran, this finds nothing to apply and no subscription left."""
    try:
        async with running as system:
            if serve is None:
                yield system
            else:
                async with serve(system) as address:
                    system.prometheus_address = address
                    yield system
    finally:
        state.finish()
