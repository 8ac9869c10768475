#!/usr/bin/env python3
"""Benchmark the path of a memory event: emit, batch, channel, metrics actor, ledger.

Measured side by side in one run, each printed with its ratio:

1. end-to-end events/s from 4 reporting actors into the metrics actor, lossless and
   lossy, until the ledger has applied (or counted as dropped) every event;
2. the raw rate of sending the same batches over a bare trio memory channel from 4 tasks
   to one receiver that does nothing with them;
3. the cost of one emit call (``reporter.alloc``) against a bare ``list.append`` of a
   prebuilt tuple, and against appending a freshly built, timestamped event tuple (what
   an emit does, less the method call).

Run: ``.venv/bin/python scripts/bench_events.py [--events N]``
"""

from __future__ import annotations

import argparse
import time

import trio

import memactor
from memactor import Actor
from memactor.runtime import EventBatch, MemoryReporter

ACTORS = 4
BATCH = 256
CHUNK = 4096
"""Events an actor emits per message: half allocations, half frees."""


class Emitter(Actor[int, None]):
    """Emits ``count`` events per message: pairs of alloc and free of 4 KiB blocks."""

    async def handle(self, count: int) -> None:
        reporter = self.reporter
        alloc, free = reporter.alloc, reporter.free
        block = reporter.next_block
        for _ in range(count // 2):
            b = block()
            alloc(b, 4096)
            free(b, 4096)


class LossyEmitter(Emitter):
    """The same, through a lossy reporter."""

    lossy_reporter = True


async def end_to_end(events: int, *, lossy: bool) -> tuple[float, int, int]:
    per_actor = events // ACTORS
    async with memactor.open_system() as system:
        refs = []
        for i in range(ACTORS):
            kind = LossyEmitter if lossy else Emitter
            refs.append(await system.spawn(kind, name=f"emitter-{i}"))
        await system.metrics.flush()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for ref in refs:
                nursery.start_soon(_drive, ref, per_actor)
        await system.metrics.flush()
        stats = await system.metrics.statistics()
        elapsed = time.perf_counter() - start
    return elapsed, stats.events_applied, stats.events_dropped


async def _drive(ref: memactor.ActorRef[int, None], count: int) -> None:
    for _ in range(count // CHUNK):
        await ref.send(CHUNK)
    await ref.ask(count % CHUNK)


async def bare_channel(events: int) -> float:
    batch = [(0, "emitter", 1, 4096, "cpu", "emitter", 0, 0, None, ())] * BATCH
    batches_per_task = events // ACTORS // BATCH
    send, receive = trio.open_memory_channel[EventBatch](64)
    received = 0

    async def produce(channel: trio.MemorySendChannel[EventBatch]) -> None:
        async with channel:
            for _ in range(batches_per_task):
                await channel.send(EventBatch(batch))

    async def consume() -> None:
        nonlocal received
        async for item in receive:
            received += len(item.events)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            for _ in range(ACTORS):
                nursery.start_soon(produce, send.clone())
    elapsed = time.perf_counter() - start
    assert received == batches_per_task * ACTORS * BATCH
    return elapsed


def emit_costs(count: int) -> tuple[float, float, float]:
    prebuilt = (0, "pool", 1, 4096, "cpu", "pool", 0, 0, None, ())
    clock = time.monotonic_ns

    rounds = count // BATCH

    def append_prebuilt() -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            out: list[tuple[object, ...]] = []
            append = out.append
            for _ in range(BATCH):
                append(prebuilt)
        return time.perf_counter() - start

    def append_built() -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            out: list[tuple[object, ...]] = []
            append = out.append
            for block in range(BATCH):
                append((0, "pool", block, 4096, "cpu", "pool", clock(), 0, None, ()))
        return time.perf_counter() - start

    def emit() -> float:
        # The batches go to a channel that is emptied after each one, as the metrics
        # actor empties it, so that the measurement is of the emit and not of a backlog.
        send, receive = trio.open_memory_channel[EventBatch](1)
        reporter = MemoryReporter("pool", send, batch_size=BATCH)
        alloc = reporter.alloc
        start = time.perf_counter()
        for _ in range(rounds):
            for block in range(BATCH):
                alloc(block, 4096)
            receive.receive_nowait()
        return time.perf_counter() - start

    runs = (append_prebuilt, append_built, emit)
    best = [min(run() for _ in range(5)) / (rounds * BATCH) for run in runs]
    return best[0], best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()
    events = args.events - args.events % (ACTORS * CHUNK)

    bare_s = min(trio.run(bare_channel, events) for _ in range(3))
    lossless_s, applied, dropped = trio.run(lambda: end_to_end(events, lossy=False))
    assert (applied, dropped) == (events, 0), (applied, dropped)
    lossy_s, lossy_applied, lossy_dropped = trio.run(lambda: end_to_end(events, lossy=True))
    assert lossy_applied + lossy_dropped == events
    print(f"end to end, {events:,} events from {ACTORS} actors in batches of {BATCH}:")
    print(f"  bare trio channel  {events / bare_s / 1e6:8.2f} M events/s (same batches, no work)")
    print(f"  lossless           {events / lossless_s / 1e6:8.2f} M events/s (target >= 1.0)")
    print(
        f"  lossy              {events / lossy_s / 1e6:8.2f} M events/s "
        f"({lossy_dropped:,} dropped, {lossy_dropped / events:.1%})"
    )
    print(f"  ratio              {bare_s / lossless_s:8.3f} of the bare channel (lossless)")

    prebuilt, built, emit = emit_costs(1_000_000)
    print("one emit (reporter.alloc):")
    print(f"  list.append, prebuilt tuple     {prebuilt * 1e9:7.1f} ns")
    print(f"  list.append, built + stamped    {built * 1e9:7.1f} ns")
    print(f"  reporter.alloc                  {emit * 1e9:7.1f} ns")
    print(f"  ratio  {emit / prebuilt:6.2f}x the prebuilt append (target <= 3)")
    print(f"  ratio  {emit / built:6.2f}x the built-and-stamped append")


if __name__ == "__main__":
    main()
