"""A Batch of records applies as the event tuples it holds: the same books, to the byte.

The compiled emits write events as records into a ``memactor._native._emit.Batch``, and
the compiled ledger reads those records in place (``memactor/_native/_records.h``),
taking the common events (lends, returns, allocations and frees that are what they say)
straight from their C fields and every other one the way of its tuple. Here the same
random streams as the ledger's differential tests (every anomaly, every malformed field)
go to one ledger as Batches and to another as lists of the same events: after every
batch both must say the same thing. The reporters' own batches are checked too.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings

from memactor.metrics import Ledger
from memactor.runtime import MemoryHub

from .test_ledger_differential import books, make_ledger, steps

emit: Any = pytest.importorskip("memactor._native._emit", reason="the extension is not built")


def as_batch(events: list[Any]) -> Any:
    """The events in a Batch, as a reporter would hold them (tuples become records)."""
    batch = emit.Batch()
    for event in events:
        batch.append(tuple(event) if isinstance(event, list | tuple) else event)
    return batch


@settings(max_examples=100)  # the differential tests run the reference 300 times
@given(steps)
def test_a_batch_of_records_gives_the_books_its_tuples_give(
    steps: list[tuple[list[Any], int | None]],
) -> None:
    records, records_clock = make_ledger()
    tuples, tuples_clock = make_ledger()
    for events, advance in steps:
        batch = as_batch(events)
        assert len(batch) == len(events)
        raised: list[str | None] = []
        for ledger, given_events in ((records, batch), (tuples, events)):
            try:
                assert ledger.apply(given_events) == len(events)
            except MemoryError:
                raised.append("MemoryError")
            else:
                raised.append(None)
        assert raised[0] == raised[1]
        if advance is not None:
            for ledger, clock in ((records, records_clock), (tuples, tuples_clock)):
                clock.now_ns += advance
                ledger.sample()
        assert books(records) == books(tuples)


def test_the_reporters_batches_apply_as_their_events() -> None:
    """A churn of lends, returns, allocations, frees and resizes through real reporters
    (owners past the owner table's names among them), applied as the reporters' batches
    and as lists of the same events, in the same order."""
    rng = random.Random(11)
    hub = MemoryHub(clock=iter(range(10**6, 10**9, 7)).__next__)
    reporters = [hub.reporter(name) for name in ("pool", "decode", "gpu")]
    live: list[tuple[Any, int, int, bool]] = []
    for _ in range(5_000):
        reporter = rng.choice(reporters)
        roll = rng.random()
        if roll < 0.4 or not live:
            block = reporter.next_block()
            size = rng.choice([0, 64, 4096, 1 << 20])
            reporter.alloc(block, size, owner=f"worker-{rng.randrange(40)}")
            live.append((reporter, block, size, True))
            continue
        reporter, block, size, lent = live.pop(rng.randrange(len(live)))
        if roll < 0.6:
            reporter.free(block, size)
        elif roll < 0.8 and lent:
            reporter.release(block, size)
            live.append((reporter, block, size, False))
        elif roll < 0.9 and not lent:
            reporter.acquire(block, size, owner=f"worker-{rng.randrange(40)}")
            live.append((reporter, block, size, True))
        else:
            reporter.resize(block, size, size * 2)
            live.append((reporter, block, size * 2, lent))
    batches = [batch.events for batch in hub.collect().batches]
    as_records, as_tuples = Ledger(owner_limit=16), Ledger(owner_limit=16)
    for events in batches:
        apply_both_ways = (as_records.apply(events), as_tuples.apply(list(events)))
        assert apply_both_ways == (len(events), len(events))
    assert books(as_records) == books(as_tuples)
    assert as_records.statistics().anomalies == 0
