"""Exact in event time: peaks that do not depend on which batch reaches the metrics actor
first, and a metrics actor whose failure loses nothing silently."""

from __future__ import annotations

import random

import numpy as np
import pytest
import trio
import trio.testing

import memactor
from memactor import Actor
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger
from memactor.runtime import ActorFailedError

KiB, MiB = 1 << 10, 1 << 20


async def test_a_free_flushed_late_does_not_raise_the_peak() -> None:
    async with memactor.open_system() as system:
        b = system.reporter("b")  # created first: flushed first by any sweep
        a = system.reporter("a")
        a.alloc(1, 10 * KiB)
        await a.flush()
        a.free(1, 10 * KiB)  # stays in a's batch...
        b.alloc(1, 6 * KiB)
        await b.flush()  # ...while b's batch is handed on first
        stats = await system.metrics.statistics()
        [device] = system.ledger.devices()
    assert (stats.peak_bytes_in_use, stats.peak_bytes_reserved) == (10 * KiB, 10 * KiB)
    assert (device.peak_bytes_in_use, device.peak_bytes_reserved) == (10 * KiB, 10 * KiB)
    assert stats.bytes_in_use == 6 * KiB


class Allocator(Actor[int, int]):
    """Allocates the bytes it is sent; replies with the block."""

    async def handle(self, size: int) -> int:
        block = self.reporter.next_block()
        self.reporter.alloc(block, size)
        return block


async def test_a_released_lease_then_an_allocation_elsewhere_peaks_once() -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        worker = await system.spawn(Allocator, name="worker")
        async with pool.lease((MiB,), np.uint8):
            pass
        assert pool.statistics().bytes_in_use == 0
        await worker.ask(MiB)
        snapshot = await system.metrics.snapshot("end")
    assert snapshot.totals.peak_bytes_in_use == MiB
    assert snapshot.totals.bytes_in_use == MiB
    assert snapshot.totals.peak_bytes_reserved == 2 * MiB  # the pool keeps its block cached


async def test_random_programs_over_many_reporters_peak_as_they_ran() -> None:
    for seed in range(25):
        rng = random.Random(seed)
        reference = Ledger()
        async with memactor.open_system() as system:
            count = rng.randrange(2, 6)
            reporters = [system.reporter(f"r{index}", owner="main") for index in range(count)]
            live: list[list[tuple[int, int]]] = [[] for _ in reporters]
            for _ in range(rng.randrange(50, 200)):
                index = rng.randrange(count)
                reporter, mine = reporters[index], live[index]
                if mine and rng.random() < 0.45:
                    block, size = mine.pop(rng.randrange(len(mine)))
                    reporter.free(block, size)
                    event = MemoryEvent(EventKind.FREE, reporter.component, block, size)
                else:
                    block, size = reporter.next_block(), rng.randrange(1, 1 << 20)
                    mine.append((block, size))
                    reporter.alloc(block, size)
                    event = MemoryEvent(
                        EventKind.ALLOC, reporter.component, block, size, owner="main"
                    )
                reference.apply([event])  # program order is event order: one task
                if rng.random() < 0.05:
                    await reporters[rng.randrange(count)].flush()  # some flush early
            stats = await system.metrics.statistics()
        assert stats.peak_bytes_in_use == reference.peak_bytes_in_use, seed
        assert stats.peak_bytes_reserved == reference.peak_bytes_reserved, seed
        assert system.ledger.devices() == reference.devices(), seed
        assert system.ledger.owners() == reference.owners(), seed
        got = [(c.component, c.peak_bytes_in_use) for c in system.ledger.components()]
        assert got == [(c.component, c.peak_bytes_in_use) for c in reference.components()]


class Fragile(str):
    """A component name whose hash fails once: a fault planted in the metrics actor's
    ledger work, which is no event's fault."""

    armed = True

    def __hash__(self) -> int:
        if Fragile.armed:
            Fragile.armed = False
            raise RuntimeError("planted failure")
        return str.__hash__(self)


async def test_a_metrics_actor_failing_mid_round_loses_nothing_silently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    Fragile.armed = False
    async with memactor.open_system(sample_hz=10) as system:
        views = await system.metrics.subscribe(10, series=False)
        good = system.reporter("good")
        good.alloc(1, 100)
        await system.metrics.snapshot("before")
        bad = system.reporter(Fragile("bad"))
        Fragile.armed = True  # the ledger's first look at this name fails
        good.alloc(2, 200)
        bad.alloc(1, 7)  # the round fails on this one
        good.alloc(3, 300)
        bad.alloc(2, 9)
        await trio.sleep(1)  # a periodic round fails; the supervisor restarts the actor
        metrics = system.metrics.ref
        assert metrics.statistics().restarts == 1
        stats = await system.metrics.statistics()
        # 5 emitted: 4 applied once each, the one the round failed on counted as dropped.
        assert (stats.events_applied, stats.events_dropped) == (4, 1)
        assert stats.bytes_in_use == 100 + 200 + 300 + 9
        await system.metrics.snapshot("after")
        delta = await system.metrics.diff("before", "after")  # labels survived
        assert delta.bytes_in_use_delta == 200 + 300 + 9
        with trio.fail_after(1):
            view = await views.receive()  # the subscription survived too
        assert view.totals.events_dropped == 1


async def test_a_system_closed_while_its_metrics_actor_waits_to_restart_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The metrics actor fails and the block is left during its restart backoff: it is
    # never restarted, so its last stop's round never runs. The events it held must still
    # reach the ledger, and its viewers must see their channel end.
    Fragile.armed = False
    async with memactor.open_system() as system:
        views = await system.metrics.subscribe(10, series=False)
        good = system.reporter("good")
        bad = system.reporter(Fragile("bad"))
        good.alloc(1, 100)
        Fragile.armed = True
        bad.alloc(1, 7)  # the round fails on this one
        good.alloc(2, 200)  # held for a round after it
        with pytest.raises(ActorFailedError):
            await system.metrics.flush()
        await trio.testing.wait_all_tasks_blocked()  # the supervisor waits out its backoff
        assert system.metrics.ref.statistics().restarts == 0
    stats = system.ledger.statistics()
    assert (stats.events_applied, stats.events_dropped) == (2, 1)
    assert stats.bytes_in_use == 300
    with trio.fail_after(1):
        async for _ in views:
            pass  # ends: the channel was closed


async def test_a_block_a_thread_allocates_and_trio_code_frees_is_no_anomaly() -> None:
    # No periodic round comes between (both every 10 s): the statistics' round is the
    # first to see the thread's allocations, together with the frees that follow them.
    async with memactor.open_system(flush_interval_s=10, sample_hz=0.1) as system:
        worker = system.thread_reporter("cache")
        main = system.reporter("cache")  # the same component: block ids are shared
        blocks: list[int] = []

        def allocate() -> None:
            for _ in range(100):
                block = worker.next_block()
                worker.alloc(block, 64)
                blocks.append(block)

        await trio.to_thread.run_sync(allocate)
        for block in blocks:  # freed before any round took the thread's queue
            main.free(block, 64)
        stats = await system.metrics.statistics()
    assert (stats.events_applied, stats.anomalies, stats.bytes_in_use) == (200, 0, 0)
    assert stats.peak_bytes_in_use == 100 * 64
