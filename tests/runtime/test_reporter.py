"""The memory reporter and the memory hub: batching, backpressure, drops, close."""

from __future__ import annotations

import itertools
import random
import threading
import weakref
from collections.abc import Callable, Sequence

import pytest
import trio
import trio.testing

from memactor.events import DURATION_TAG, PINNED_TAG, REQUESTED_TAG, EventKind
from memactor.runtime import (
    EventBatch,
    MemoryHub,
    MemoryReporter,
    NullReporter,
    Reporter,
    ThreadReporter,
)
from memactor.runtime._inbox import EventTuple, Inbox
from memactor.runtime._reporter import events_of

ALLOC, FREE, RESIZE, ACQUIRE, RELEASE, TRANSFER = (
    EventKind.ALLOC,
    EventKind.FREE,
    EventKind.RESIZE,
    EventKind.ACQUIRE,
    EventKind.RELEASE,
    EventKind.TRANSFER,
)


def counter_clock(start: int = 1000) -> itertools.count[int]:
    return itertools.count(start)


def make(
    capacity: int = 16, *, batch_size: int = 4, lossy: bool = False
) -> tuple[MemoryReporter, Inbox]:
    """A reporter on a fresh inbox of *capacity* batches."""
    inbox = Inbox(capacity)
    reporter = MemoryReporter(
        "pool", inbox, lossy=lossy, batch_size=batch_size, clock=counter_clock().__next__
    )
    return reporter, inbox


def received(inbox: Inbox) -> list[EventBatch]:
    """What was handed on (a waiting flush's batch included), leaving reporters alone."""
    return inbox.take_handed_on()


def allocs(reporter: MemoryReporter, blocks: range) -> list[int]:
    for block in blocks:
        reporter.alloc(block, block * 8)
    return list(blocks)


def blocks_of(events: Sequence[EventTuple]) -> list[int]:
    return [event[2] for event in events]


# -- the event tuples -------------------------------------------------------------------


async def test_each_emit_builds_its_eleven_field_event() -> None:
    inbox = Inbox(4)
    reporter = MemoryReporter(
        "decode.chunks",
        inbox,
        owner="decoder",
        device="cuda:1",
        clock=counter_clock(10).__next__,
        seq=counter_clock(100).__next__,
    )
    reporter.alloc(1, 100)
    reporter.alloc(2, 200, owner="task-7", device="cpu")
    reporter.resize(1, 100, 150)
    reporter.release(1, 150)
    reporter.acquire(1, 150)
    reporter.acquire(2, 200, owner="task-8", device="cpu")
    reporter.transfer(64, "cuda:1", "cpu")
    reporter.transfer(32, "cpu", "cuda:0", block=2)
    reporter.free(1, 150)
    reporter.free(2, 200, device="cpu")
    assert reporter.pending == 10
    assert reporter.flush_nowait()
    [batch] = received(inbox)
    component = "decode.chunks"
    assert batch == EventBatch(
        [
            (ALLOC, component, 1, 100, "cuda:1", "decoder", 10, 0, None, (), 100),
            (ALLOC, component, 2, 200, "cpu", "task-7", 11, 0, None, (), 101),
            (RESIZE, component, 1, 150, "cuda:1", "", 12, 100, None, (), 102),
            (RELEASE, component, 1, 150, "cuda:1", "", 13, 0, None, (), 103),
            (ACQUIRE, component, 1, 150, "cuda:1", "decoder", 14, 0, None, (), 104),
            (ACQUIRE, component, 2, 200, "cpu", "task-8", 15, 0, None, (), 105),
            (TRANSFER, component, 0, 64, "cuda:1", "decoder", 16, 0, "cpu", (), 106),
            (TRANSFER, component, 2, 32, "cpu", "decoder", 17, 0, "cuda:0", (), 107),
            (FREE, component, 1, 150, "cuda:1", "", 18, 0, None, (), 108),
            (FREE, component, 2, 200, "cpu", "", 19, 0, None, (), 109),
        ],
        dropped=0,
    )
    assert reporter.pending == 0


async def test_a_requested_size_travels_as_the_lends_requested_tag() -> None:
    reporter, inbox = make(batch_size=8)
    reporter.alloc(1, 131_072, requested=120_000)
    reporter.release(1, 131_072)
    reporter.acquire(1, 131_072, owner="decode", requested=100_000)
    reporter.flush_nowait()
    tags = [event[9] for event in received(inbox)[0].events]
    assert tags == [(("requested", "120000"),), (), (("requested", "100000"),)]
    thread_reporter = ThreadReporter("workers", clock=counter_clock().__next__)
    thread_reporter.alloc(1, 8192, requested=8000)
    thread_reporter.acquire(2, 8192)
    assert [event[9] for event in thread_reporter.drain()] == [(("requested", "8000"),), ()]


async def test_the_owner_defaults_to_the_component() -> None:
    reporter, inbox = make()
    assert (reporter.component, reporter.owner, reporter.device) == ("pool", "pool", "cpu")
    reporter.alloc(1, 8)
    reporter.flush_nowait()
    assert received(inbox)[0].events[0][5] == "pool"


async def test_next_block_counts_from_one_per_reporter() -> None:
    first, _inbox = make()
    second, _inbox2 = make()
    assert [first.next_block() for _ in range(3)] == [1, 2, 3]
    assert second.next_block() == 1


@pytest.mark.parametrize(
    ("component", "device", "batch_size", "match"),
    [
        ("", "cpu", 1, r"^component must be a non-empty string, got ''$"),
        ("pool", "gpu", 1, r"^device must be 'cpu' or 'cuda:N', got 'gpu'$"),
        ("pool", "cpu", 0, r"^batch_size must be at least 1, got 0$"),
    ],
)
async def test_bad_arguments_are_refused(
    component: str, device: str, batch_size: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        MemoryReporter(component, Inbox(1), device=device, batch_size=batch_size)


# -- batching and lossless backpressure --------------------------------------------------


async def test_the_first_event_of_a_batch_tells_the_inbox_where_to_look() -> None:
    reporter, inbox = make(batch_size=3)
    reporter.alloc(1, 8)
    assert received(inbox) == []
    [batch] = inbox.take_all()  # a round takes what the reporter holds
    assert blocks_of(batch.events) == [1]
    assert reporter.pending == 0
    assert inbox.take_all() == []
    reporter.alloc(2, 16)
    assert [blocks_of(b.events) for b in inbox.take_all()] == [[2]]


async def test_a_full_batch_goes_to_the_inbox_without_waiting() -> None:
    reporter, inbox = make(batch_size=3)
    allocs(reporter, range(1, 3))
    assert reporter.pending == 2
    assert received(inbox) == []
    reporter.alloc(3, 24)
    assert reporter.pending == 0
    assert [blocks_of(batch.events) for batch in received(inbox)] == [[1, 2, 3]]


async def test_flush_nowait_and_flush_of_nothing_send_nothing() -> None:
    reporter, inbox = make()
    assert reporter.flush_nowait()
    with trio.testing.assert_checkpoints():
        await reporter.flush()
    assert inbox.take_all() == []


async def test_lossless_a_full_inbox_grows_the_batch_and_flush_waits_for_room() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 3))  # fills the inbox
    allocs(reporter, range(3, 8))  # no room: the batch keeps growing
    assert (reporter.pending, reporter.dropped, reporter.backlogged) == (5, 0, True)
    flushed = trio.Event()

    async def flush() -> None:
        await reporter.flush()
        flushed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flush)
        await trio.testing.wait_all_tasks_blocked()
        assert not flushed.is_set()
        assert inbox.waiting == 1
        assert reporter.pending == 0  # waiting in the inbox
        reporter.alloc(8, 64)  # emitted while the flush waits
        first, second = received(inbox)  # taking the waiting batch lets the flush return
        await flushed.wait()
    assert blocks_of(first.events) == [1, 2]
    assert blocks_of(second.events) == [3, 4, 5, 6, 7]
    assert reporter.pending == 1
    await reporter.flush()
    assert blocks_of(events_of([first, second, *received(inbox)])) == list(range(1, 9))


async def test_lossless_a_cancelled_flush_puts_its_batch_back_in_front() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 6))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reporter.flush)
            await trio.testing.wait_all_tasks_blocked()
            allocs(reporter, range(6, 8))  # a full batch, no room: stays pending
            scope.cancel()
    assert scope.cancelled_caught
    assert inbox.waiting == 0
    assert reporter.pending == 5  # 3, 4, 5 put back before 6, 7
    assert blocks_of(events_of(received(inbox))) == [1, 2]
    allocs(reporter, range(8, 9))
    await reporter.flush()
    assert blocks_of(events_of(received(inbox))) == list(range(3, 9))
    assert reporter.pending == 0


async def test_a_round_right_after_a_flush_is_cancelled_takes_its_batch_too() -> None:
    # The cancelled flush's task has not resumed yet when the canceller emits and a round
    # runs: its batch must already be back with the reporter, or the round would apply the
    # free before the alloc it follows (an unknown block, and a leak that never was).
    hub = MemoryHub(channel_size=1, batch_size=2)
    other = hub.reporter("other")
    pool = hub.reporter("pool")
    other.alloc(other.next_block(), 8)
    other.alloc(other.next_block(), 8)  # a full batch: it fills the inbox
    pool.alloc(1, 64)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.flush)  # waits for room
            await trio.testing.wait_all_tasks_blocked()
            assert hub.flushes_waiting == 1
            scope.cancel()  # the flush's task is rescheduled, and has not run yet
            pool.free(1, 64)
            taken = hub.collect()
    pool_events = [event for event in events_of(taken.batches) if event[1] == "pool"]
    assert [(EventKind(event[0]), event[2]) for event in pool_events] == [(ALLOC, 1), (FREE, 1)]
    assert (pool.pending, hub.flushes_waiting) == (0, 0)


async def test_a_flush_cancelled_after_its_batch_was_taken_does_not_put_it_back() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 6))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reporter.flush)
            await trio.testing.wait_all_tasks_blocked()
            taken = received(inbox)  # the waiting flush's batch is taken...
            scope.cancel()  # ...before the cancellation reaches it
    assert blocks_of(events_of(taken)) == [1, 2, 3, 4, 5]
    assert (reporter.pending, inbox.take_all()) == (0, [])


async def test_lossless_many_emits_against_a_slow_receiver_lose_and_reorder_nothing() -> None:
    rng = random.Random(7)
    reporter, inbox = make(capacity=2, batch_size=5)
    got: list[EventTuple] = []
    total = 2000
    done = False

    async def consume() -> None:
        while not done:
            with trio.move_on_after(1):
                await inbox.wait_handed_on()
            for batch in received(inbox):
                assert batch.dropped == 0
                got.extend(batch.events)
            for _ in range(rng.randrange(3)):
                await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        block = 0
        while block < total:
            for _ in range(rng.randrange(1, 20)):
                block += 1
                reporter.alloc(block, 1)
            if rng.random() < 0.3:
                await reporter.flush()
            else:
                await trio.lowlevel.checkpoint()
        await reporter.flush()
        reporter.close()
        done = True
    got.extend(events_of(inbox.take_all()))
    assert blocks_of(got) == list(range(1, block + 1))


# -- lossy mode ---------------------------------------------------------------------------


async def test_lossy_drops_whole_batches_and_the_next_batch_carries_the_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reporter, inbox = make(capacity=1, batch_size=2, lossy=True)
    allocs(reporter, range(1, 3))  # handed on: fills the inbox
    allocs(reporter, range(3, 5))  # a full batch, no room: dropped
    assert (reporter.pending, reporter.dropped) == (0, 2)
    allocs(reporter, range(5, 6))
    with trio.fail_after(1):  # never waits
        await reporter.flush()
    assert (reporter.pending, reporter.dropped) == (0, 3)
    assert received(inbox) == [
        EventBatch(
            [(ALLOC, "pool", b, b * 8, "cpu", "pool", 999 + b, 0, None, (), b) for b in (1, 2)]
        )
    ]
    allocs(reporter, range(6, 8))  # room again: handed on with the count of what was lost
    [batch] = received(inbox)
    assert (blocks_of(batch.events), batch.dropped) == ([6, 7], 3)
    assert reporter.dropped == 0


async def test_lossy_a_count_alone_travels_on_flush() -> None:
    reporter, inbox = make(capacity=1, batch_size=1, lossy=True)
    allocs(reporter, range(1, 4))
    assert reporter.dropped == 2
    received(inbox)
    assert reporter.flush_nowait()
    assert received(inbox) == [EventBatch([], dropped=2)]


async def test_lossy_applied_plus_dropped_is_what_was_emitted() -> None:
    rng = random.Random(11)
    reporter, inbox = make(capacity=3, batch_size=7, lossy=True)
    delivered = dropped = emitted = 0
    for _ in range(500):
        for _ in range(rng.randrange(30)):
            emitted += 1
            reporter.alloc(emitted, 1)
        if rng.random() < 0.5:
            for batch in received(inbox):
                delivered += len(batch.events)
                dropped += batch.dropped
    reporter.close()
    for batch in inbox.take_all():
        delivered += len(batch.events)
        dropped += batch.dropped
    assert dropped > 0
    assert delivered + dropped == emitted


# -- close ------------------------------------------------------------------------------------


async def test_close_hands_on_the_last_batch_whatever_the_room() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 6))
    reporter.close()
    reporter.close()  # idempotent
    assert reporter.closed
    assert [blocks_of(batch.events) for batch in received(inbox)] == [[1, 2], [3, 4, 5]]
    assert inbox.take_all() == []


@pytest.mark.parametrize("batch_size", [1, 2, 256])
async def test_emits_after_close_raise_closed_resource(batch_size: int) -> None:
    reporter, inbox = make(batch_size=batch_size)
    reporter.close()
    emits: list[Callable[[], None]] = [
        lambda: reporter.alloc(1, 8),
        lambda: reporter.free(1, 8),
        lambda: reporter.acquire(1, 8),
        lambda: reporter.release(1, 8),
        lambda: reporter.resize(1, 8, 16),
        lambda: reporter.transfer(8, "cpu", "cuda:0"),
    ]
    for emit in emits:
        with pytest.raises(trio.ClosedResourceError, match=r"^reporter 'pool' is closed$"):
            emit()
    assert reporter.pending == 0
    assert inbox.take_all() == []


async def test_close_while_a_flush_waits_loses_nothing() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 3))  # fills the inbox
    allocs(reporter, range(3, 6))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reporter.flush)  # waits with 3, 4, 5
        await trio.testing.wait_all_tasks_blocked()
        allocs(reporter, range(6, 8))
        reporter.close()
        batches = inbox.take_all()
    assert sorted(blocks_of(events_of(batches))) == list(range(1, 8))


async def test_a_cancelled_flush_after_close_hands_everything_on() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 6))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reporter.flush)
            await trio.testing.wait_all_tasks_blocked()
            allocs(reporter, range(6, 8))
            reporter.close()
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert sorted(blocks_of(events_of(inbox.take_all()))) == list(range(1, 8))


async def test_two_flushes_at_once_lose_nothing_when_the_first_is_cancelled() -> None:
    reporter, inbox = make(capacity=1, batch_size=2)
    allocs(reporter, range(1, 5))  # 1, 2 handed on; 3, 4 pending
    first = trio.CancelScope()

    async def first_flush() -> None:
        with first:
            await reporter.flush()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first_flush)
        await trio.testing.wait_all_tasks_blocked()
        allocs(reporter, range(5, 7))
        nursery.start_soon(reporter.flush)
        await trio.testing.wait_all_tasks_blocked()
        first.cancel()  # the first flush's batch goes back to the reporter
        await trio.testing.wait_all_tasks_blocked()
        got = inbox.take_all()
    # Batches may arrive in any order: every event carries its number, and the metrics
    # actor applies them by it.
    events = sorted(events_of(got), key=lambda event: event[10])
    assert blocks_of(events) == list(range(1, 7))


# -- the thread reporter ----------------------------------------------------------------------


async def test_thread_reporter_from_worker_threads_is_lossless_and_in_order() -> None:
    reporter = ThreadReporter("workers", clock=counter_clock().__next__)
    per_thread = 5000
    started = threading.Barrier(4)

    def work(name: str) -> None:
        started.wait()
        for sequence in range(per_thread):
            reporter.alloc(reporter.next_block(), sequence, owner=name)

    async with trio.open_nursery() as nursery:
        for index in range(4):
            nursery.start_soon(trio.to_thread.run_sync, work, f"thread-{index}")
    events = reporter.drain()
    assert len(events) == 4 * per_thread
    assert sorted(event[2] for event in events) == list(range(1, 4 * per_thread + 1))
    for index in range(4):
        sizes = [event[3] for event in events if event[5] == f"thread-{index}"]
        assert sizes == list(range(per_thread))
    assert reporter.drain() == []


async def test_thread_reporter_events_and_close() -> None:
    reporter = ThreadReporter("cb", owner="lib", device="cuda:0", clock=counter_clock(5).__next__)
    reporter.alloc(1, 10)
    reporter.resize(1, 10, 20, device="cpu")
    reporter.release(1, 20)
    reporter.acquire(1, 20, owner="other")
    reporter.transfer(20, "cuda:0", "cpu")
    reporter.free(1, 20)
    assert reporter.drain() == [
        (ALLOC, "cb", 1, 10, "cuda:0", "lib", 5, 0, None, (), 1),
        (RESIZE, "cb", 1, 20, "cpu", "", 6, 10, None, (), 2),
        (RELEASE, "cb", 1, 20, "cuda:0", "", 7, 0, None, (), 3),
        (ACQUIRE, "cb", 1, 20, "cuda:0", "other", 8, 0, None, (), 4),
        (TRANSFER, "cb", 0, 20, "cuda:0", "lib", 9, 0, "cpu", (), 5),
        (FREE, "cb", 1, 20, "cuda:0", "", 10, 0, None, (), 6),
    ]
    reporter.close()
    with pytest.raises(trio.ClosedResourceError, match=r"^reporter 'cb' is closed$"):
        reporter.alloc(2, 1)


def test_thread_reporter_carries_a_copys_duration_and_an_allocations_tags() -> None:
    reporter = ThreadReporter("gpu", clock=counter_clock(5).__next__)
    reporter.alloc(1, 512, "loader", "cpu", 500, tags=((PINNED_TAG, "1"),))
    reporter.alloc(2, 64, tags=((PINNED_TAG, "1"),))
    reporter.transfer(512, "cpu", "cuda:0", 1, duration_ns=41_000)
    reporter.transfer(512, "cuda:0", "cpu", 1)
    assert reporter.drain() == [
        (ALLOC, "gpu", 1, 512, "cpu", "loader", 5, 0, None,
         ((PINNED_TAG, "1"), (REQUESTED_TAG, "500")), 1),
        (ALLOC, "gpu", 2, 64, "cpu", "gpu", 6, 0, None, ((PINNED_TAG, "1"),), 2),
        (TRANSFER, "gpu", 1, 512, "cpu", "gpu", 7, 0, "cuda:0", ((DURATION_TAG, "41000"),), 3),
        (TRANSFER, "gpu", 1, 512, "cuda:0", "gpu", 8, 0, "cpu", (), 4),
    ]  # fmt: skip


# -- the hub ----------------------------------------------------------------------------------


async def test_hub_lifecycle() -> None:
    hub = MemoryHub(clock=counter_clock().__next__, channel_size=1, batch_size=2)
    first = hub.reporter("a")
    second = hub.reporter("b", owner="someone", lossy=True, batch_size=1)
    threads = hub.thread_reporter("t")
    first.alloc(1, 1)
    first.alloc(2, 2)  # handed on: the inbox is full
    first.alloc(3, 3)
    second.alloc(1, 1)  # lossy, no room: dropped
    threads.alloc(1, 1)
    hub.forget(first)  # 3 is handed on whatever the room
    assert first.pending == 0
    hub.close()
    hub.close()  # idempotent
    assert hub.closed
    collected = hub.collect()
    assert [
        (batch.events[0][1] if batch.events else None, len(batch.events), batch.dropped)
        for batch in collected.batches
    ] == [("a", 2, 0), ("a", 1, 0), (None, 0, 1), ("t", 1, 0)]
    assert collected.watermark == 6  # after the five events' numbers
    assert hub.collect().batches == []
    with pytest.raises(trio.ClosedResourceError, match=r"^the memory hub is closed$"):
        hub.reporter("c")
    with pytest.raises(trio.ClosedResourceError, match=r"^the memory hub is closed$"):
        hub.thread_reporter("c")
    with pytest.raises(trio.ClosedResourceError):
        threads.alloc(2, 1)


def check_no_gap(hub: MemoryHub, seen: set[int], drawn: list[int]) -> None:
    """Collect once; every number below its watermark is an event in hand by now or an
    earlier watermark (each collect draws one number for its own)."""
    collected = hub.collect()
    seen.update(event[10] for batch in collected.batches for event in batch.events)
    drawn.append(collected.watermark)
    assert set(range(1, collected.watermark)) <= seen | set(drawn)


async def test_every_event_numbered_below_the_watermark_is_in_hand() -> None:
    hub = MemoryHub(channel_size=2, batch_size=3)
    reporters = [hub.reporter(f"r{index}") for index in range(3)]
    threads = hub.thread_reporter("t")
    rng = random.Random(5)
    seen: set[int] = set()
    drawn: list[int] = []
    for _ in range(200):
        for _ in range(rng.randrange(10)):
            rng.choice(reporters).alloc(1, 1)
            if rng.random() < 0.2:
                threads.alloc(1, 1)
        check_no_gap(hub, seen, drawn)
    assert len(seen) > 500


def test_a_closed_thread_reporter_is_drained_once_more_then_forgotten() -> None:
    # A program that makes a thread reporter per request and closes it must not leave
    # the hub holding (and draining, every round) every one it ever made.
    hub = MemoryHub()
    reporter = hub.thread_reporter("callback")
    reporter.alloc(reporter.next_block(), 10)
    assert len(events_of(hub.collect().batches)) == 1
    reporter.alloc(reporter.next_block(), 20)
    reporter.close()
    gone = weakref.ref(reporter)
    del reporter
    assert [event[3] for event in events_of(hub.collect().batches)] == [20]
    assert gone() is None
    assert hub.collect().batches == []


async def test_a_thread_racing_with_collect_leaves_no_gap_below_the_watermark() -> None:
    hub = MemoryHub()
    threads = hub.thread_reporter("t")
    stop = threading.Event()

    def emit() -> None:
        while not stop.is_set():
            threads.alloc(1, 1)

    seen: set[int] = set()
    drawn: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, emit)
        for _ in range(50):
            check_no_gap(hub, seen, drawn)
            await trio.sleep(0.001)
        stop.set()
    check_no_gap(hub, seen, drawn)


async def test_hub_flush_waits_for_room() -> None:
    hub = MemoryHub(channel_size=1, batch_size=2)
    reporter = hub.reporter("a")
    closed = hub.reporter("b")
    closed.close()
    allocs(reporter, range(1, 4))
    done = trio.Event()

    async def flush() -> None:
        await hub.flush()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flush)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        assert hub.flushes_waiting == 1
        batches = hub.collect().batches
    assert done.is_set()
    assert blocks_of(events_of(batches)) == [1, 2, 3]


async def test_hub_refuses_a_flush_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match=r"^flush_interval_s must be positive, got 0$"):
        MemoryHub(flush_interval_s=0)


async def test_every_reporter_is_a_reporter() -> None:
    # mypy checks that each kind satisfies the Protocol; this checks they behave alike.
    hub = MemoryHub()
    reporters: list[Reporter] = [
        hub.reporter("a"),
        NullReporter("b", Inbox(1)),
        hub.thread_reporter("c"),
    ]
    for reporter in reporters:
        block = reporter.next_block()
        reporter.alloc(block, 8)
        reporter.free(block, 8)
        reporter.close()
        if isinstance(reporter, NullReporter):
            reporter.alloc(reporter.next_block(), 8)  # reports nothing, before or after
            continue
        with pytest.raises(trio.ClosedResourceError):
            reporter.alloc(reporter.next_block(), 8)
    events = events_of(hub.collect().batches)
    assert [(event[0], event[1]) for event in events] == [
        (ALLOC, "a"),
        (FREE, "a"),
        (ALLOC, "c"),
        (FREE, "c"),
    ]
