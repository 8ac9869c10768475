"""EventOrder: batches from many producers, applied in emission order whatever their
arrival, against a reference ledger that applies the globally ordered stream."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import EventOrder, Ledger

ALLOC, FREE, RELEASE, ACQUIRE = (
    EventKind.ALLOC,
    EventKind.FREE,
    EventKind.RELEASE,
    EventKind.ACQUIRE,
)
DEVICES = ("cpu", "cuda:0")


def program(seed: int, producers: int, length: int) -> list[MemoryEvent]:
    """A global stream of events from *producers* components (numbered 1..n in emission
    order): each allocates, lends back and frees only its own blocks, on two devices."""
    rng = random.Random(seed)
    live: list[dict[int, tuple[int, str, bool]]] = [{} for _ in range(producers)]
    next_block = [1] * producers
    events: list[MemoryEvent] = []
    for seq in range(1, length + 1):
        who = rng.randrange(producers)
        mine = live[who]
        component = f"stage-{who}"
        roll = rng.random()
        if mine and roll < 0.4:
            block = rng.choice(list(mine))
            size, device, lent = mine.pop(block)
            kind = FREE
        elif mine and roll < 0.55:
            block = rng.choice(list(mine))
            size, device, lent = mine[block]
            kind = RELEASE if lent else ACQUIRE
            mine[block] = (size, device, not lent)
        else:
            block = next_block[who]
            next_block[who] += 1
            size, device = rng.randrange(1, 1 << 16), rng.choice(DEVICES)
            mine[block] = (size, device, True)
            kind = ALLOC
        owner = f"task-{rng.randrange(3)}" if kind in (ALLOC, ACQUIRE) else ""
        events.append(
            MemoryEvent(kind, component, block, size, device, owner, timestamp_ns=seq, seq=seq)
        )
    return events


def books(ledger: Ledger) -> tuple[Any, ...]:
    return (ledger.statistics(), ledger.components(), ledger.owners(), ledger.devices())


def batches_of(stream: list[MemoryEvent], rng: random.Random) -> list[list[MemoryEvent]]:
    """Each producer's events, cut into batches of random sizes (each in order)."""
    by_producer: dict[str, list[MemoryEvent]] = {}
    for event in stream:
        by_producer.setdefault(event.component, []).append(event)
    batches: list[list[MemoryEvent]] = []
    for events in by_producer.values():
        start = 0
        while start < len(events):
            size = rng.randrange(1, 12)
            batches.append(events[start : start + size])
            start += size
    return batches


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    producers=st.integers(1, 5),
    length=st.integers(0, 300),
    arrival=st.randoms(use_true_random=False),
)
def test_any_batching_and_arrival_gives_the_books_of_the_ordered_stream(
    seed: int, producers: int, length: int, arrival: random.Random
) -> None:
    stream = program(seed, producers, length)
    reference = Ledger(clock=lambda: 0)
    reference.apply(stream)

    ledger = Ledger(clock=lambda: 0)
    order = EventOrder(ledger)
    undelivered = batches_of(stream, arrival)
    arrival.shuffle(undelivered)
    while undelivered:
        # A round: some batches arrive, in any order; the watermark is the first number
        # not yet delivered, as a producer's flush promises.
        count = arrival.randrange(len(undelivered) + 1)
        for batch in undelivered[:count]:
            order.add(batch)
        undelivered = undelivered[count:]
        watermark = min((batch[0].seq for batch in undelivered), default=math.inf)
        order.apply_below(watermark)
        assert order.events_held == sum(1 for event in stream if event.seq >= watermark) - sum(
            len(batch) for batch in undelivered
        )
    order.apply_below()
    assert order.events_held == 0
    assert books(ledger) == books(reference)


def test_arrival_order_alone_gets_the_peak_wrong_and_emission_order_right() -> None:
    # The defect this fixes: B's batch arrives before A's, whose free came first.
    a_alloc = MemoryEvent(ALLOC, "a", 1, 10_240, seq=1)
    a_free = MemoryEvent(FREE, "a", 1, 10_240, seq=2)
    b_alloc = MemoryEvent(ALLOC, "b", 1, 6_144, seq=3)
    arrival = Ledger()
    arrival.apply([b_alloc])
    arrival.apply([a_alloc, a_free])
    assert arrival.peak_bytes_in_use == 16_384

    ledger = Ledger()
    order = EventOrder(ledger)
    order.add([b_alloc])
    order.add([a_alloc, a_free])
    assert order.apply_below(4) == 3
    assert (ledger.peak_bytes_in_use, ledger.peak_bytes_reserved) == (10_240, 10_240)
    assert ledger.devices()[0].peak_bytes_in_use == 10_240
    assert order.statistics().interleaved_rounds == 0  # batches touch, not overlap


def test_overlapping_batches_are_merged_and_later_events_held() -> None:
    ledger = Ledger()
    order = EventOrder(ledger)
    order.add([MemoryEvent(ALLOC, "a", 1, 8, seq=1), MemoryEvent(FREE, "a", 1, 8, seq=4)])
    order.add([MemoryEvent(ALLOC, "b", 1, 16, seq=2), MemoryEvent(FREE, "b", 1, 16, seq=6)])
    assert order.apply_below(5) == 3  # 1, 2 and 4; 6 waits
    assert (ledger.bytes_in_use, ledger.peak_bytes_in_use) == (16, 24)
    assert order.statistics().events_held == 1
    order.add([MemoryEvent(ALLOC, "c", 1, 32, seq=5)])
    assert order.apply_below() == 2
    assert (ledger.bytes_in_use, ledger.peak_bytes_in_use) == (32, 48)
    stats = order.statistics()
    assert (stats.rounds, stats.interleaved_rounds, stats.events_held) == (2, 1, 0)


class Fragile(str):
    """A component name whose hash fails once: an error that is not the event's fault."""

    armed = True

    def __hash__(self) -> int:
        if Fragile.armed:
            Fragile.armed = False
            raise RuntimeError("planted failure")
        return str.__hash__(self)


def test_a_failure_keeps_the_events_before_it_and_holds_the_rest() -> None:
    Fragile.armed = True
    ledger = Ledger()
    order = EventOrder(ledger)
    bad = Fragile("bad")
    events = [
        MemoryEvent(ALLOC, "a", 1, 100, seq=1),
        MemoryEvent(ALLOC, "a", 2, 50, seq=2),
        MemoryEvent.unchecked(ALLOC, bad, 1, 7, "cpu", "", 0, seq=3),
        MemoryEvent(FREE, "a", 1, 100, seq=4),
    ]
    order.add(events)
    with pytest.raises(RuntimeError, match=r"^planted failure$"):
        order.apply_below()
    stats = ledger.statistics()
    assert (stats.events_applied, stats.events_dropped, stats.bytes_in_use) == (2, 1, 150)
    assert order.statistics().events_held == 1
    assert order.statistics().events_lost_in_failures == 1
    assert order.apply_below() == 1  # the rest, exactly once
    stats = ledger.statistics()
    assert (stats.events_applied, stats.events_dropped, stats.bytes_in_use) == (3, 1, 50)
    assert stats.peak_bytes_in_use == 150
