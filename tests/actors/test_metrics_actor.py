"""The metrics actor: requests, restarts, subscriptions, sampling, anomalies, bounds."""

from __future__ import annotations

import itertools
import math

import pytest
import trio
import trio.testing

import memactor
import memactor.runtime
from memactor.actors import (
    METRICS_NAME,
    Flush,
    MetricsActor,
    MetricsState,
    RequestFailed,
    UnknownSnapshotError,
)
from memactor.actors._metrics import MetricsReply, MetricsRequest
from memactor.metrics import TOTAL, Ledger, Snapshot
from memactor.runtime import NO_BACKOFF, ActorFailedError, ActorRef, ActorSpec, MemoryHub


def trio_clock_ns() -> int:
    return round(trio.current_time() * 1e9)


async def test_an_unknown_label_fails_the_ask_and_nothing_else() -> None:
    async with memactor.open_system() as system:
        loader = system.reporter("loader")
        loader.alloc(1, 100)
        await system.metrics.flush()
        await system.metrics.snapshot("before")
        with pytest.raises(UnknownSnapshotError) as info:
            await system.metrics.diff("before", "nope")
        error = info.value
        assert isinstance(error, KeyError)
        assert str(error) == "no snapshot labelled 'nope' (kept: 'before')"
        assert error.label == "nope"
        # The metrics actor goes on: no restart, and its snapshots are still there.
        assert system.metrics.ref.statistics().restarts == 0
        assert (await system.metrics.diff("before", "before")).suspects == ()
        loader.alloc(2, 50)
        await system.metrics.flush()
        stats = await system.metrics.statistics()
        assert (stats.events_applied, stats.bytes_in_use) == (2, 150)
    assert system.ledger.statistics() == stats


async def test_a_message_outside_the_protocol_is_answered_not_fatal() -> None:
    async with memactor.open_system() as system:
        ref: ActorRef[object, object] = system.metrics.ref  # type: ignore[assignment]  # to send a bad one
        reply = await ref.ask("hello")
        assert isinstance(reply, RequestFailed)
        assert str(reply.error) == "the metrics actor does not understand 'hello'"
        assert system.metrics.ref.statistics().restarts == 0


class Fragile(MetricsActor):
    """A metrics actor that crashes on the message "crash" (a bug, say)."""

    async def handle(self, message: MetricsRequest) -> MetricsReply:
        if message == "crash":  # type: ignore[comparison-overlap]  # outside the protocol
            raise RuntimeError("crash")
        return await super().handle(message)


async def test_a_restarted_metrics_actor_keeps_the_ledger() -> None:
    ledger = Ledger()
    hub = MemoryHub()
    state = MetricsState(hub, ledger, keep_snapshots=4)
    spec = ActorSpec(lambda: Fragile(state), name="metrics", drains_memory=True)
    async with memactor.runtime.open_system(
        restart_backoff=NO_BACKOFF, memory=hub, system_actors=[spec]
    ) as system:
        metrics: ActorRef[object, object] = system.lookup("metrics")
        loader = hub.reporter("loader")
        loader.alloc(1, 100)
        await loader.flush()
        with pytest.raises(ActorFailedError):
            await metrics.ask("crash")
        await trio.testing.wait_all_tasks_blocked()
        assert metrics.statistics().restarts == 1
        loader.alloc(2, 50)
        await loader.flush()
        await metrics.ask(Flush())
    assert ledger.statistics().bytes_in_use == 150
    assert ledger.statistics().events_applied == 2


async def test_kept_snapshots_are_bounded_and_the_oldest_go_first() -> None:
    async with memactor.open_system(keep_snapshots=2) as system:
        for label in ("a", "b", "c"):
            await system.metrics.snapshot(label)
        await system.metrics.snapshot()  # unlabelled: not kept
        assert (await system.metrics.diff("b", "c")).components == ()
        with pytest.raises(UnknownSnapshotError) as info:
            await system.metrics.diff("a", "c")
    assert str(info.value) == "no snapshot labelled 'a' (kept: 'b', 'c')"


async def test_a_reporter_closed_while_the_channel_is_full_is_in_the_next_answer() -> None:
    async with memactor.open_system(channel_size=1, batch_size=2) as system:
        loader = system.reporter("loader")
        for block in range(1, 6):  # 1 and 2 fill the channel; 3, 4, 5 find no room
            loader.alloc(block, 10)
        loader.close()  # without waiting: the rest goes straight to the metrics actor
        stats = await system.metrics.statistics()
        assert (stats.events_applied, stats.bytes_in_use) == (5, 50)


async def test_bad_events_are_counted_and_the_metrics_actor_keeps_running() -> None:
    async with memactor.open_system() as system:
        bad = system.reporter("bad")
        bad.alloc(1, -5)  # a negative size
        bad.free(99, 10)  # a block never allocated
        bad.alloc(1, 10)
        bad.free(1, 10)
        bad.free(1, 10)  # twice
        bad.alloc(2, 10, owner=7)  # type: ignore[arg-type]  # a malformed event
        good = system.reporter("good")
        good.alloc(1, 64)
        await system.metrics.flush()
        stats = await system.metrics.statistics()
        assert (stats.events_applied, stats.anomalies, stats.malformed) == (7, 3, 1)
        assert (stats.bytes_in_use, stats.live_blocks) == (64, 1)
        assert system.ledger.component("bad").anomalies == (
            ("bad_size", 1),
            ("double_free", 1),
            ("unknown_block", 1),
        )
        assert system.metrics.ref.statistics().restarts == 0


async def test_the_series_are_sampled_at_sample_hz(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memactor.open_system(sample_hz=20, clock=trio_clock_ns) as system:
        loader = system.reporter("loader")
        loader.alloc(1, 1000)
        await system.metrics.flush()
        await trio.sleep(10.01)
        snapshot = await system.metrics.snapshot(blocks=False)
    series = {(s.component, s.device): s.series for s in snapshot.series}
    assert set(series) == {("loader", "cpu"), (TOTAL, "*")}
    for one in series.values():
        assert len(one) == 200
        assert one.stride == 1
        assert one.times_ns[0] == 50_000_000
        assert set(one.bytes_in_use.tolist()) == {1000}
        steps = set((one.times_ns[1:] - one.times_ns[:-1]).tolist())
        assert all(abs(step - 50_000_000) <= 1 for step in steps)


async def collect_views(
    views: trio.MemoryReceiveChannel[Snapshot], into: list[tuple[float, Snapshot]]
) -> None:
    async with views:
        async for view in views:
            into.append((trio.current_time(), view))


async def test_subscribers_get_views_at_their_rate(autojump_clock: trio.testing.MockClock) -> None:
    seconds = 10
    async with memactor.open_system(sample_hz=10, clock=trio_clock_ns) as system:
        loader = system.reporter("loader")
        got: dict[float, list[tuple[float, Snapshot]]] = {2.0: [], 5.0: [], 50.0: []}
        async with trio.open_nursery() as nursery:
            for rate_hz, views in got.items():
                channel = await system.metrics.subscribe(rate_hz)
                nursery.start_soon(collect_views, channel, views)
            for block in range(1, seconds + 1):
                loader.alloc(block, 10)
                await trio.sleep(1)
            nursery.cancel_scope.cancel()
    for rate_hz, views in got.items():
        # A view goes out at a sample, so no faster than sample_hz, one per period.
        expected = min(rate_hz, 10) * seconds
        assert expected <= len(views) <= expected + 1, rate_hz
        for _, view in views:
            assert len(view.blocks) == 0
            assert view.label == "live"
        assert views[-1][1].totals.bytes_in_use == 10 * seconds
        times = [time for time, _ in views]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # Within one sample period of the subscription's own period.
        assert min(gaps) >= 1 / min(rate_hz, 10) - 0.1 - 1e-6


async def test_a_slow_viewer_misses_views_and_slows_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memactor.open_system(sample_hz=10) as system:
        slow = await system.metrics.subscribe(10, buffer=2)
        fast: list[tuple[float, Snapshot]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect_views, await system.metrics.subscribe(10), fast)
            await trio.sleep(5.01)
            nursery.cancel_scope.cancel()
        assert 50 <= len(fast) <= 51
        assert slow.statistics().current_buffer_used == 2  # the first two; the rest skipped
        first = slow.receive_nowait()
        assert first.monotonic_ns <= slow.receive_nowait().monotonic_ns
        await slow.aclose()  # ends that subscription
        await trio.sleep(1)
        assert system.metrics.ref.statistics().restarts == 0
    assert len(system.ledger.series()) == 60


async def test_a_subscriber_may_leave_the_series_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memactor.open_system(sample_hz=10) as system:
        system.reporter("loader").alloc(1, 10)
        lean = await system.metrics.subscribe(10, series=False)
        full = await system.metrics.subscribe(10)
        await trio.sleep(0.55)
        async with lean, full:
            lean_view, full_view = lean.receive_nowait(), full.receive_nowait()
        assert lean_view.series == ()
        assert TOTAL in {s.component for s in full_view.series}
        assert lean_view.totals == full_view.totals
        assert lean_view.totals.bytes_in_use == 10


async def test_a_subscription_rate_must_be_positive() -> None:
    async with memactor.open_system() as system:
        with pytest.raises(ValueError, match=r"^rate_hz must be a positive number, got 0$"):
            await system.metrics.subscribe(0)
        assert system.metrics.ref.statistics().restarts == 0


@pytest.mark.parametrize("sample_hz", [0, -1, math.inf, math.nan])
async def test_sample_hz_must_be_a_positive_number(sample_hz: float) -> None:
    with pytest.raises(ValueError, match=r"^sample_hz must be a positive number, got "):
        MetricsActor(MetricsState(MemoryHub(), Ledger(), keep_snapshots=4), sample_hz=sample_hz)


async def test_the_metrics_actor_is_the_system_actor_named_metrics() -> None:
    async with memactor.open_system() as system:
        assert METRICS_NAME == "metrics"
        assert system.lookup("metrics") == system.metrics.ref
        assert [ref.name for ref in system.refs()] == ["metrics"]


async def test_the_metrics_actors_own_memory_stays_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 100,000 samples: one per tick (the flush interval is longer than a sample period).
    async with memactor.open_system(
        sample_hz=1000, flush_interval_s=10, keep_snapshots=4, clock=trio_clock_ns
    ) as system:
        reporters = [system.reporter(f"component-{index}") for index in range(3)]
        for index, reporter in enumerate(reporters):
            reporter.alloc(1, 1 << (10 + index))
        await system.metrics.flush()
        for label in range(20):
            await system.metrics.snapshot(str(label))
        await trio.sleep(100.0005)
        snapshot = await system.metrics.snapshot(blocks=False)
        with pytest.raises(UnknownSnapshotError) as info:
            await system.metrics.diff("0", "19")
    assert str(info.value) == "no snapshot labelled '0' (kept: '16', '17', '18', '19')"
    assert len(snapshot.series) == 4
    for one in snapshot.series:
        series = one.series
        assert len(series) <= 512
        # Every point stands for ``stride`` samples; 100,000 samples were taken.
        assert series.stride == 256
        assert len(series) * series.stride <= 100_000 < (len(series) + 1) * series.stride
