#!/usr/bin/env python3
"""Benchmark the metrics core: apply rate, memory per live block, 1M-block snapshot round trip.

Everything is measured side by side in one run and printed with its ratio:

1. events/s applied by ``Ledger.apply`` in batches of 256 (a realistic pool churn: allocs,
   releases, acquires, frees across 4 components and 16 owners) against a bare
   ``list.append`` of the same tuples;
2. bytes of Python memory per live block in the ledger, measured with ``tracemalloc``;
3. seconds to snapshot, save, load and diff 1,000,000 live blocks (msgpack).

Run: ``.venv/bin/python scripts/bench_ledger.py [--events N] [--blocks N]``
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, Snapshot, diff

BATCH = 256


def churn_events(count: int, seed: int = 7) -> list[list[MemoryEvent]]:
    """Batches of a pool-like stream, as reporters send them: each batch comes from one
    component. Lend, return, re-lend from cache, trim; a steady live set."""
    rng = random.Random(seed)
    components = ["pool", "decode.chunks", "encode.chunks", "gpu"]
    owners = [f"worker-{i}" for i in range(16)]
    next_block = dict.fromkeys(components, 0)
    lent: dict[str, list[tuple[int, int]]] = {c: [] for c in components}
    cached: dict[str, list[tuple[int, int]]] = {c: [] for c in components}
    batches: list[list[MemoryEvent]] = []
    ts = 0
    made = 0
    make = MemoryEvent.unchecked
    while made < count:
        component = rng.choice(components)
        batch: list[MemoryEvent] = []
        for _ in range(min(BATCH, count - made)):
            ts += 1000
            roll = rng.random()
            if roll < 0.35 or not lent[component]:
                if cached[component] and rng.random() < 0.8:
                    block, size = cached[component].pop()
                    kind = EventKind.ACQUIRE
                else:
                    next_block[component] += 1
                    block, size = next_block[component], 4096 * rng.randint(1, 64)
                    kind = EventKind.ALLOC
                lent[component].append((block, size))
                owner = rng.choice(owners)
                batch.append(make(kind, component, block, size, "cpu", owner, ts))
            else:
                stack = lent[component]
                block, size = stack.pop(rng.randrange(len(stack)))
                if roll < 0.85:
                    cached[component].append((block, size))
                    batch.append(make(EventKind.RELEASE, component, block, size, "cpu", "", ts))
                else:
                    batch.append(make(EventKind.FREE, component, block, size, "cpu", "", ts))
        made += len(batch)
        batches.append(batch)
    return batches


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def bench_apply(event_count: int) -> None:
    batches = churn_events(event_count)
    events = [event for batch in batches for event in batch]

    def append_run() -> float:
        out: list[MemoryEvent] = []
        append = out.append
        start = time.perf_counter()
        for batch in batches:
            for event in batch:
                append(event)
        return time.perf_counter() - start

    def bare_loop_run() -> float:
        # The least any per-event Python loop can do: unpack the event, dispatch on kind.
        start = time.perf_counter()
        for batch in batches:
            for event in batch:
                kind, *_ = event
                if kind == 4 or kind == 3 or kind == 0 or kind == 1:
                    pass
        return time.perf_counter() - start

    def ledger_run() -> float:
        ledger = Ledger()
        start = time.perf_counter()
        for batch in batches:
            ledger.apply(batch)
        elapsed = time.perf_counter() - start
        assert ledger.statistics().anomalies == 0
        return elapsed

    append_s = best_of(5, append_run)
    bare_s = best_of(5, bare_loop_run)
    ledger_s = best_of(5, ledger_run)
    print(f"apply, {len(events):,} events in batches of {BATCH}:")
    print(f"  list.append      {len(events) / append_s / 1e6:8.2f} M events/s")
    print(f"  bare loop        {len(events) / bare_s / 1e6:8.2f} M events/s (unpack + dispatch)")
    print(f"  Ledger.apply     {len(events) / ledger_s / 1e6:8.2f} M events/s")
    print(f"  ratio            {append_s / ledger_s:8.3f} of list.append (target >= 0.167)")
    print(f"  ratio            {bare_s / ledger_s:8.3f} of the bare loop")


def fill(ledger: Ledger, blocks: int) -> None:
    make = MemoryEvent.unchecked
    for start in range(0, blocks, 4096):
        ledger.apply(
            make(
                EventKind.ALLOC,
                "pool",
                block,
                4096 + 64 * (block % 97),
                "cpu",
                f"worker-{block % 16}",
                1_000_000 + block,
            )
            for block in range(start, min(blocks, start + 4096))
        )


def bench_memory(blocks: int) -> None:
    gc.collect()
    tracemalloc.start()
    ledger = Ledger()
    fill(ledger, 1)
    base, _ = tracemalloc.get_traced_memory()
    fill(ledger, blocks)
    gc.collect()
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory, {blocks:,} live blocks:")
    print(f"  ledger           {(used - base) / blocks:8.1f} bytes per live block (target <= 200)")


def bench_round_trip(blocks: int) -> None:
    ledger = Ledger(clock=lambda: 5_000_000_000)
    fill(ledger, blocks)
    before = ledger.snapshot("before")
    ledger.apply(
        MemoryEvent.unchecked(EventKind.ALLOC, "leaky", block, 1024, "cpu", "worker", 2 * 10**9)
        for block in range(1000)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "after.msgpack"
        start = time.perf_counter()
        after = ledger.snapshot("after")
        snap_s = time.perf_counter() - start
        start = time.perf_counter()
        after.save(path)
        save_s = time.perf_counter() - start
        size = path.stat().st_size
        start = time.perf_counter()
        loaded = Snapshot.load(path)
        load_s = time.perf_counter() - start
    start = time.perf_counter()
    result = diff(before, loaded)
    diff_s = time.perf_counter() - start
    assert [s.component for s in result.suspects] == ["leaky"]
    total = snap_s + save_s + load_s + diff_s
    print(f"round trip, {blocks:,} live blocks ({size / 2**20:.1f} MiB msgpack file):")
    print(
        f"  snapshot {snap_s:6.2f} s   save {save_s:6.2f} s   load {load_s:6.2f} s   "
        f"diff {diff_s:6.2f} s"
    )
    print(f"  total    {total:6.2f} s (target < 5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=1_000_000)
    args = parser.parse_args()
    bench_apply(args.events)
    bench_memory(args.blocks)
    bench_round_trip(args.blocks)


if __name__ == "__main__":
    main()
