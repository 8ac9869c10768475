"""A seeded ledger with every kind of figure the exporters export."""

from __future__ import annotations

import random

from memactor.events import DURATION_TAG, EventKind, MemoryEvent
from memactor.metrics import Ledger, Snapshot

MIB = 2**20


def seeded_ledger(*, components: int = 3, owners: int = 4, seed: int = 7) -> Ledger:
    """Components ``c0 ...`` on cpu (and ``gpu`` on cuda:0) with allocations, frees, pool
    hits, a timed transfer, an anomaly, a drop and a process sample; deterministic."""
    rng = random.Random(seed)
    ledger = Ledger(clock=lambda: 1)  # every figure the same in every run
    events: list[MemoryEvent] = []
    block = 0
    for c in range(components):
        name = f"c{c}"
        sizes = [rng.randrange(1, MIB) for _ in range(3)]
        for size in sizes:
            block += 1
            owner = f"owner{rng.randrange(owners)}"
            events.append(MemoryEvent(EventKind.ALLOC, name, block, size, owner=owner))
        events.append(MemoryEvent(EventKind.RELEASE, name, block, sizes[2]))
        events.append(MemoryEvent(EventKind.ACQUIRE, name, block, sizes[2], owner="owner0"))
        events.append(MemoryEvent(EventKind.FREE, name, block - 1, sizes[1]))
    first = events[0]
    events.append(MemoryEvent(EventKind.RELEASE, first.component, first.block, first.size))
    events.append(MemoryEvent(EventKind.ALLOC, "gpu", 1, 8 * MIB, device="cuda:0", owner="upload"))
    events.append(
        MemoryEvent(
            EventKind.TRANSFER,
            "gpu",
            1,
            8 * MIB,
            device="cpu",
            dst_device="cuda:0",
            tags={DURATION_TAG: "4000000"},  # 8 MiB in 4 ms
        )
    )
    events.append(MemoryEvent(EventKind.FREE, "c0", 10**6, 64))  # an unknown block
    ledger.apply(events)
    ledger.note_dropped(3)
    ledger.note_process("cpu", 40 * MIB, rss_bytes=50 * MIB, uss_bytes=40 * MIB)
    return ledger


def view_of(ledger: Ledger) -> Snapshot:
    """What a subscription delivers: no blocks, no series."""
    return ledger.snapshot("live", blocks=False, series=False)
