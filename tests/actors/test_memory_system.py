"""``memactor.open_system()`` end to end: actors report, the metrics actor accounts.

The headline properties: a million events accounted byte-exactly; nothing lost when the
system is cancelled at awkward points; lossy reporters count every drop; lossless
reporters wait instead of growing without bound.
"""

from __future__ import annotations

import collections
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
import trio.testing

import memactor
from memactor.actors import MemorySystem
from memactor.metrics import Ledger, LedgerStats
from memactor.runtime import Actor, ActorRef

KEEP_LIVE = 1000
"""Blocks each churning actor keeps alive: it frees the oldest beyond this many."""


def tasks_living() -> int:
    return trio.lowlevel.current_statistics().tasks_living


def trio_clock_ns() -> int:
    """The event clock for tests that assert ages: trio's (mock) clock, in nanoseconds."""
    return round(trio.current_time() * 1e9)


@dataclass
class Tally:
    """What one actor emitted, kept by the test to check the ledger against."""

    emitted: int = 0
    allocations: int = 0
    frees: int = 0
    bytes_allocated: int = 0
    bytes_in_use: int = 0
    peak_bytes_in_use: int = 0
    max_pending: int = 0
    live: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)


class Churn(Actor[int, None]):
    """Each message ``n``: allocate ``n`` blocks, then free the oldest beyond KEEP_LIVE."""

    def __init__(self, tally: Tally, sizes: list[int]) -> None:
        self.tally = tally
        self.sizes = sizes

    async def handle(self, message: int) -> None:
        reporter = self.reporter
        alloc, free, next_block = reporter.alloc, reporter.free, reporter.next_block
        tally, sizes, live = self.tally, self.sizes, self.tally.live
        fresh = 0
        for _ in range(message):
            block = next_block()
            size = sizes[block % len(sizes)]
            alloc(block, size)
            live.append((block, size))
            fresh += size
        tally.bytes_in_use += fresh
        tally.peak_bytes_in_use = max(tally.peak_bytes_in_use, tally.bytes_in_use)
        tally.allocations += message
        tally.bytes_allocated += fresh
        freed = 0
        while len(live) > KEEP_LIVE:
            block, size = live.popleft()
            free(block, size)
            tally.bytes_in_use -= size
            freed += 1
        tally.frees += freed
        tally.emitted += message + freed
        tally.max_pending = max(tally.max_pending, reporter.pending)


class Holder(Actor[tuple[str, int], int]):
    """Allocates (``("alloc", size)``) and frees (``("free", block)``) blocks on request."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}

    async def handle(self, message: tuple[str, int]) -> int:
        action, value = message
        if action == "alloc":
            block = self.reporter.next_block()
            self.reporter.alloc(block, value)
            self.sizes[block] = value
            return block
        self.reporter.free(value, self.sizes.pop(value))
        return value


def seeded_sizes(seed: int, count: int = 4096) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1, 1 << 20) for _ in range(count)]


# -- one actor, end to end ------------------------------------------------------------------


async def test_an_idle_actors_events_are_in_the_next_answer() -> None:
    async with memactor.open_system() as system:
        ref = await system.spawn(Holder, name="decode")
        first = await ref.ask(("alloc", 100))
        await ref.ask(("alloc", 28))
        await ref.ask(("free", first))
        assert await system.metrics.statistics() == LedgerStats(
            bytes_reserved=28,
            bytes_in_use=28,
            peak_bytes_reserved=128,
            peak_bytes_in_use=128,
            live_blocks=1,
            events_applied=3,
            events_dropped=0,
            anomalies=0,
            malformed=0,
        )
        stats = system.ledger.component("decode")
        assert (stats.allocations, stats.frees, stats.bytes_allocated) == (2, 1, 128)
        assert [(o.owner, o.bytes_in_use) for o in system.ledger.owners()] == [("decode", 28)]


async def test_snapshots_and_diffs_by_label(autojump_clock: trio.testing.MockClock) -> None:
    async with memactor.open_system(clock=trio_clock_ns) as system:
        ref = await system.spawn(Holder, name="decode")
        kept = await ref.ask(("alloc", 4096))
        short = await ref.ask(("alloc", 10))
        await trio.sleep(1)
        await ref.ask(("free", short))
        await trio.sleep(1)
        before = await system.metrics.snapshot("before")
        await trio.sleep(2)
        leaked = await ref.ask(("alloc", 512))
        await trio.sleep(3)
        after = await system.metrics.snapshot("after")
        delta = await system.metrics.diff("before", "after")
    assert before.label == "before"
    assert [(b.block, b.size, b.owner) for b in before.blocks] == [(kept, 4096, "decode")]
    assert before.age_ns(next(iter(before.blocks))) == 2_000_000_000
    assert {b.block: after.age_ns(b) for b in after.blocks} == {
        kept: 7_000_000_000,
        leaked: 3_000_000_000,
    }
    component = after.component("decode")
    assert (component.lifetimes, component.lifetime_total_ns) == (1, 1_000_000_000)
    assert (delta.before_label, delta.after_label) == ("before", "after")
    assert delta.elapsed_ns == 5_000_000_000
    assert delta.bytes_in_use_delta == 512
    assert [int(block) for block in delta.new_blocks.block] == [leaked]
    assert [(s.component, s.bytes_in_use_delta, s.new_blocks) for s in delta.suspects] == [
        ("decode", 512, 1)
    ]


async def test_every_answer_includes_what_plain_trio_code_emitted_before_it() -> None:
    async with memactor.open_system() as system:
        loader = system.reporter("loader", owner="main")
        for block in range(1, 4):
            loader.alloc(block, 100)
        assert loader.pending == 3
        stats = await system.metrics.statistics()
        assert loader.pending == 0
        assert (stats.events_applied, stats.bytes_in_use) == (3, 300)
        loader.free(1, 100)
        await system.metrics.flush()
        assert (system.ledger.events_applied, system.ledger.bytes_in_use) == (4, 200)
        assert [(o.owner, o.bytes_in_use) for o in system.ledger.owners()] == [("main", 200)]


async def test_thread_reporter_events_are_in_the_next_answer() -> None:
    async with memactor.open_system() as system:
        callbacks = system.thread_reporter("cupy.hook", device="cuda:0")

        def allocate() -> None:
            for _ in range(100):
                callbacks.alloc(callbacks.next_block(), 256)

        await trio.to_thread.run_sync(allocate)
        stats = await system.metrics.statistics()
        assert (stats.events_applied, stats.bytes_in_use) == (100, 25_600)
        assert system.ledger.component("cupy.hook", "cuda:0").live_blocks == 100


async def test_the_ledger_is_complete_after_a_normal_exit() -> None:
    async with memactor.open_system() as system:
        ref = await system.spawn(Holder, name="decode")
        ref.send_nowait(("alloc", 1))
        ref.send_nowait(("alloc", 2))
        loader = system.reporter("loader")
        loader.alloc(1, 3)
    assert (system.ledger.events_applied, system.ledger.bytes_in_use) == (3, 6)
    with pytest.raises(trio.ClosedResourceError, match=r"^reporter 'loader' is closed$"):
        loader.alloc(2, 1)


# -- the headline properties ------------------------------------------------------------------


async def churn(
    system: MemorySystem, tallies: list[Tally], messages: list[int], *, seed: int
) -> list[ActorRef[int, None]]:
    """Spawn one Churn actor per tally and feed each the same messages, concurrently."""
    refs = [
        await system.spawn(partial(Churn, tally, seeded_sizes(seed + index)), name=f"churn-{index}")
        for index, tally in enumerate(tallies)
    ]
    async with trio.open_nursery() as nursery:
        for ref in refs:

            async def feed(ref: ActorRef[int, None] = ref) -> None:
                for message in messages:
                    await ref.send(message)
                await ref.ask(0)  # handled, and the actor has gone idle: all handed on

            nursery.start_soon(feed)
    return refs


def check_books(ledger: Ledger, tallies: list[Tally]) -> None:
    for index, tally in enumerate(tallies):
        stats = ledger.component(f"churn-{index}")
        assert stats.live_blocks == len(tally.live)
        assert stats.bytes_reserved == stats.bytes_in_use == tally.bytes_in_use
        assert stats.bytes_in_use == sum(size for _, size in tally.live)
        assert stats.peak_bytes_reserved == stats.peak_bytes_in_use == tally.peak_bytes_in_use
        assert (stats.allocations, stats.frees, stats.lifetimes) == (
            tally.allocations,
            tally.frees,
            tally.frees,
        )
        assert stats.bytes_allocated == tally.bytes_allocated
        assert sum(stats.size_histogram) == tally.allocations
        assert stats.anomalies == ()
    totals = ledger.statistics()
    assert totals.events_applied == sum(tally.emitted for tally in tallies)
    assert totals.bytes_reserved == totals.bytes_in_use == sum(t.bytes_in_use for t in tallies)
    assert totals.live_blocks == sum(len(t.live) for t in tallies)
    assert (totals.events_dropped, totals.anomalies, totals.malformed) == (0, 0, 0)
    peaks = [tally.peak_bytes_in_use for tally in tallies]
    assert max(peaks) <= totals.peak_bytes_in_use <= sum(peaks)


async def test_a_million_events_from_four_actors_are_accounted_byte_exactly() -> None:
    tallies = [Tally() for _ in range(4)]
    # Per actor: 1000 allocations, then 249 messages of 500 allocations and 500 frees.
    messages = [KEEP_LIVE] + [500] * 249
    async with memactor.open_system(clock=itertools.count().__next__) as system:
        await churn(system, tallies, messages, seed=1)
        answer = await system.metrics.statistics()
        assert answer == system.ledger.statistics()
        check_books(system.ledger, tallies)
    assert [tally.emitted for tally in tallies] == [250_000] * 4
    assert answer.events_applied == 1_000_000
    assert answer.live_blocks == 4 * KEEP_LIVE
    check_books(system.ledger, tallies)


async def test_lossless_reporters_wait_in_flush_instead_of_growing() -> None:
    batch_size, allocations_per_message = 32, 200
    events_per_message = 2 * allocations_per_message  # past the first, as many frees
    tallies = [Tally() for _ in range(4)]
    messages = [KEEP_LIVE] + [allocations_per_message] * 100
    async with memactor.open_system(
        channel_size=1, batch_size=batch_size, clock=itertools.count().__next__
    ) as system:
        await churn(system, tallies, messages, seed=2)
    check_books(system.ledger, tallies)
    # The feeders keep the mailboxes from emptying, so the actors seldom go idle; but a full
    # batch that found no room makes them wait in flush before the next message, so what
    # is pending after a message is at most what it emitted plus less than a batch from
    # before, never the backlog of many messages.
    for tally in tallies:
        assert tally.max_pending < max(KEEP_LIVE, events_per_message) + batch_size


class Emitter(Actor[int, None]):
    """Allocates and frees blocks, yielding (and sometimes flushing) between emits."""

    def __init__(self, tally: Tally, seed: int, pause_s: float) -> None:
        self.tally = tally
        self.rng = random.Random(seed)
        self.pause_s = pause_s

    async def handle(self, message: int) -> None:
        rng, tally = self.rng, self.tally
        for _ in range(message):
            if tally.live and rng.random() < 0.4:
                block, size = tally.live.popleft()
                self.reporter.free(block, size)
                tally.bytes_in_use -= size
            else:
                block, size = self.reporter.next_block(), rng.randrange(1, 4096)
                self.reporter.alloc(block, size)
                tally.live.append((block, size))
                tally.bytes_in_use += size
            tally.emitted += 1
            roll = rng.random()
            if roll < 0.1:
                await self.reporter.flush()
            elif roll < 0.2:
                await trio.lowlevel.checkpoint()
            elif roll < 0.25:
                await trio.sleep(3 * self.pause_s)


Cancel = Callable[[trio.CancelScope, MemorySystem], Awaitable[None]]


async def run_until_cancelled(
    cancel: Cancel, seed: int, *, pause_s: float = 0.0001
) -> tuple[Ledger, list[Tally], int]:
    """Run emitters (three actors, one plain task) until ``cancel`` cancels the system.

    Every task pauses now and then for a multiple of ``pause_s``, so that the mock clock
    can move on. With no pause, the actors stay busy and the channel full.
    """
    tallies = [Tally() for _ in range(4)]
    plain = tallies[3]
    with trio.CancelScope() as scope:
        async with memactor.open_system(
            channel_size=1, batch_size=4, flush_interval_s=0.001, clock=itertools.count().__next__
        ) as system:
            refs = [
                await system.spawn(
                    partial(Emitter, tallies[i], seed + i, pause_s), name=f"emit-{i}"
                )
                for i in range(3)
            ]
            reporter = system.reporter("plain")
            rng = random.Random(seed)

            # Everything sleeps now and then, so that the mock clock can move on.
            async def feed(ref: ActorRef[int, None]) -> None:
                while True:
                    await ref.send(rng.randrange(1, 40))
                    await trio.sleep(pause_s * rng.randrange(3))

            async def emit_plainly() -> None:
                while True:
                    block = reporter.next_block()
                    reporter.alloc(block, 8)
                    plain.live.append((block, 8))
                    plain.emitted += 1
                    plain.bytes_in_use += 8
                    roll = rng.random()
                    if roll < 0.3:
                        await reporter.flush()
                    elif roll < 0.6:
                        await trio.lowlevel.checkpoint()
                    else:
                        await trio.sleep(pause_s)

            async with trio.open_nursery() as nursery:
                for ref in refs:
                    nursery.start_soon(feed, ref)
                nursery.start_soon(emit_plainly)
                await cancel(scope, system)
    assert scope.cancelled_caught
    return system.ledger, tallies, sum(t.emitted for t in tallies)


async def cancel_after_checkpoints(
    count: int, scope: trio.CancelScope, system: MemorySystem
) -> None:
    for _ in range(count):
        await trio.lowlevel.checkpoint()
    scope.cancel()


async def cancel_after_seconds(
    seconds: float, scope: trio.CancelScope, system: MemorySystem
) -> None:
    await trio.sleep(seconds)
    scope.cancel()


async def cancel_while_flushes_wait(
    count: int, hits: list[int], scope: trio.CancelScope, system: MemorySystem
) -> None:
    """Cancel at the ``count``-th poll that finds lossless flushes waiting for room (or
    after many polls); append to *hits* how many were waiting at the cancel."""
    for _ in range(10_000):
        await trio.lowlevel.checkpoint()
        waiting = system.memory.flushes_waiting
        if waiting:
            count -= 1
            if not count:
                hits.append(waiting)
                break
    scope.cancel()


def check_nothing_lost(ledger: Ledger, tallies: list[Tally], emitted: int) -> None:
    stats = ledger.statistics()
    assert (stats.events_applied, stats.anomalies, stats.events_dropped) == (emitted, 0, 0)
    assert stats.bytes_in_use == sum(t.bytes_in_use for t in tallies)
    assert stats.live_blocks == sum(len(t.live) for t in tallies)


async def test_cancelling_mid_emit_and_mid_flush_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = tasks_living()
    for step in range(1, 400, 21):
        cancels: list[Cancel] = [
            partial(cancel_after_checkpoints, step),
            partial(cancel_after_seconds, step * 0.0001),
        ]
        for index, cancel in enumerate(cancels):
            ledger, tallies, emitted = await run_until_cancelled(cancel, 10 * step + index)
            assert tasks_living() == before
            check_nothing_lost(ledger, tallies, emitted)


async def test_cancelling_while_lossless_flushes_wait_for_room_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = tasks_living()
    hits: list[int] = []
    for seed in range(20):
        cancel = partial(cancel_while_flushes_wait, 1 + 2 * seed, hits)
        ledger, tallies, emitted = await run_until_cancelled(cancel, 1000 + seed, pause_s=0)
        assert tasks_living() == before
        check_nothing_lost(ledger, tallies, emitted)
    assert len(hits) >= 18  # trio varies its scheduling order; nearly all find waiters


async def test_lossy_reporters_count_every_event_they_drop() -> None:
    emitted = 0
    async with memactor.open_system(channel_size=1, batch_size=16) as system:
        reporters = [system.reporter(f"lossy-{i}", lossy=True) for i in range(4)]
        rng = random.Random(5)

        async def emit(index: int) -> None:
            nonlocal emitted
            reporter = reporters[index]
            for _ in range(200):
                for _ in range(rng.randrange(1, 100)):
                    reporter.alloc(reporter.next_block(), 64)
                    emitted += 1
                if rng.random() < 0.5:
                    await reporter.flush()
                else:
                    await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for index in range(4):
                nursery.start_soon(emit, index)
        answer = await system.metrics.statistics()
        assert answer.events_dropped > 0
        assert answer.events_applied + answer.events_dropped <= emitted
    stats = system.ledger.statistics()
    assert stats.events_dropped > 0
    assert stats.events_applied + stats.events_dropped == emitted
    assert (stats.live_blocks, stats.bytes_in_use) == (
        stats.events_applied,
        64 * stats.events_applied,
    )
    assert (stats.anomalies, stats.malformed) == (0, 0)


class Leaker(Actor[int, None]):
    """Allocates one block per message and frees it only when asked for 0."""

    async def handle(self, size: int) -> None:
        reporter = self.reporter
        if size:
            reporter.alloc(reporter.next_block(), size)


async def test_block_ids_are_unique_per_component_across_reporters_and_respawns() -> None:
    async with memactor.open_system() as system:
        first = await system.spawn(Leaker, name="job")
        await first.ask(4096)  # block 1 leaks
        await first.stop()
        second = await system.spawn(Leaker, name="job")  # the name is free again
        await second.ask(100)
        plain, threads = system.reporter("job"), system.thread_reporter("job")
        plain.alloc(plain.next_block(), 10)
        threads.alloc(threads.next_block(), 1)
        await system.metrics.flush()
        job = system.ledger.component("job")
    # Four distinct blocks: nothing collided, nothing was hidden.
    assert (job.live_blocks, job.bytes_in_use, job.anomalies) == (4, 4207, ())


class SystemHolder(Actor[None, None]):
    """A system actor that holds a block while it runs and frees it as it stops."""

    async def on_start(self) -> None:
        self.reporter.alloc(1, 4096)

    async def on_stop(self) -> None:
        self.reporter.free(1, 4096)

    async def handle(self, message: None) -> None:
        return None


@pytest.mark.parametrize("cancelled", [False, True])
async def test_system_actors_report_until_they_stop(cancelled: bool) -> None:
    spec = memactor.runtime.ActorSpec(SystemHolder, name="holder")
    with trio.CancelScope() as scope:
        async with memactor.open_system(system_actors=[spec]) as system:
            await system.metrics.flush()
            assert (await system.metrics.statistics()).bytes_in_use == 4096
            if cancelled:
                scope.cancel()
                await trio.sleep_forever()
    holder = system.ledger.component("holder")
    assert (holder.allocations, holder.frees, holder.bytes_in_use) == (1, 1, 0)


async def test_with_tracking_off_reporters_report_nothing() -> None:
    async with memactor.open_system(tracking=False) as system:
        job = await system.spawn(Leaker, name="job")
        await job.ask(4096)
        assert isinstance(system.reporter("other"), memactor.runtime.NullReporter)
        worker = system.thread_reporter("worker")
        assert isinstance(worker, memactor.runtime.NullThreadReporter)
        worker.alloc(worker.next_block(), 64)  # from any thread: nothing recorded either
        await system.metrics.flush()
    assert system.ledger.statistics().events_applied == 0


class Burst(Actor[int, None]):
    """Emits *n* allocations in one go, without yielding in between."""

    lossy_reporter = True

    async def handle(self, n: int) -> None:
        for _ in range(n):
            self.reporter.alloc(self.reporter.next_block(), 1)


async def test_an_actor_can_ask_for_a_lossy_reporter() -> None:
    async with memactor.open_system(channel_size=1, batch_size=1) as system:
        burst = await system.spawn(Burst, name="burst")
        await burst.ask(10)  # one batch fits in the channel; the others find no room
        await system.metrics.flush()
        stats = system.ledger.statistics()
    assert stats.events_dropped > 0
    assert stats.events_applied + stats.events_dropped == 10


async def test_closed_reporters_last_batches_reach_the_ledger_unasked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With a one-batch channel, all but one closing reporter find no room: their last
    # batches wait beside the channel. The flush tick must apply them, not only a request.
    async with memactor.open_system(channel_size=1) as system:
        for index in range(5):
            reporter = system.reporter(f"short-lived-{index}")
            reporter.alloc(1, 100 + index)
            reporter.close()
        await trio.sleep(1.0)
        totals = system.ledger.statistics()
        assert totals.live_blocks == 5
        assert totals.bytes_in_use == sum(100 + index for index in range(5))
