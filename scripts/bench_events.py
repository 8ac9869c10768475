#!/usr/bin/env python3
"""Benchmark the path of a memory event: emit, batch, inbox, metrics actor, ledger.

Measured side by side in one run, each printed with its ratio:

1. end-to-end events/s from 4 reporting actors into the metrics actor, lossless and
   lossy, until the ledger has applied (or counted as dropped) every event, with the
   compiled core and in pure Python (``MEMACTOR_PURE_PYTHON=1``), each in a child
   process of its own;
2. the raw rate of sending the same batches over a bare trio memory channel from 4 tasks
   to one receiver that does nothing with them;
3. the cost of one emit call (``reporter.alloc``), compiled and pure Python, against a
   bare ``list.append`` of a prebuilt tuple, and against appending a freshly built,
   timestamped event tuple (what an emit does, less the method call); and the same as
   instructions per call under ``valgrind --tool=callgrind`` (repeatable, whatever else
   the machine does; skipped without valgrind or with ``--no-callgrind``);
4. applying the same interleaved batches from 4 reporters in emission order (the
   metrics actor's :class:`~memactor.metrics.EventOrder`) against applying them in
   arrival order (what it did before, which got peaks wrong);
5. one trio task step with the stall watch (``open_system``'s default) against without;
6. one reading of the process's own memory (what the metrics actor does at most ten
   times a second), against the 100 ms tick it happens in;
7. one emit with allocation sites off (a plain reporter), on (every allocation finds
   its site: from user code, one frame look-up and one dict look-up), and sampled (one
   in ``SAMPLE_EVERY``: a sampled-out emit is the plain one plus one C-level ``next``),
   called from user code directly and through a pool's lease; and the ledger's apply of
   the same events without and with site tags.

Run: ``.venv/bin/python scripts/bench_events.py [--events N] [--no-callgrind]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import trio
from _callgrind import available, instructions_per_call

import memactor
from memactor import Actor
from memactor._native import PURE_PYTHON_VARIABLE, load
from memactor.actors import BufferPool
from memactor.actors._process import read_process_memory
from memactor.events import SiteTable
from memactor.metrics import EventOrder, Ledger
from memactor.runtime import EventBatch, MemoryHub, MemoryReporter, SitedReporter, StallWatch
from memactor.runtime._inbox import Events, Inbox
from memactor.runtime._reporter import PyMemoryReporter

ACTORS = 4
SAMPLE_EVERY = 64
"""The sampling rate the sampled-sites figures use (``MEMACTOR_CALLSITES=64``)."""
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


def end_to_end_child(events: int) -> None:
    """Print, as one JSON line, the end-to-end figures of this process's implementation."""
    lossless_s, applied, dropped = trio.run(lambda: end_to_end(events, lossy=False))
    assert (applied, dropped) == (events, 0), (applied, dropped)
    lossy_s, lossy_applied, lossy_dropped = trio.run(lambda: end_to_end(events, lossy=True))
    assert lossy_applied + lossy_dropped == events
    print(json.dumps({"lossless_s": lossless_s, "lossy_s": lossy_s, "dropped": lossy_dropped}))


def end_to_end_in(pure_python: bool, events: int) -> dict[str, float]:
    """:func:`end_to_end_child`'s figures from a child process, compiled or pure Python."""
    env = {**os.environ, PURE_PYTHON_VARIABLE: "1" if pure_python else "0"}
    done = subprocess.run(
        [sys.executable, __file__, "--end-to-end-child", "--events", str(events)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


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


PREBUILT = (0, "pool", 1, 4096, "cpu", "pool", 0, 0, None, ())


def append_prebuilt(rounds: int) -> float:
    """Seconds for *rounds* batches of ``list.append`` of one prebuilt tuple."""
    start = time.perf_counter()
    for _ in range(rounds):
        out: list[tuple[object, ...]] = []
        append = out.append
        for _ in range(BATCH):
            append(PREBUILT)
    return time.perf_counter() - start


def emit_costs(count: int) -> tuple[float, float, float, float, float, float]:
    """Seconds per call: a prebuilt append, a built-and-stamped append, a compiled emit
    and a pure-Python emit, a compiled emit whose clock is a compiled counter (no clock
    read: what the clock costs an emit), and a bare ``time.monotonic_ns()``; run in
    turn, best of five each."""
    clock = time.monotonic_ns
    rounds = count // BATCH
    counter = load("_emit")

    def read_clock() -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            for _ in range(BATCH):
                clock()
        return time.perf_counter() - start

    def append_built() -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            out: list[tuple[object, ...]] = []
            append = out.append
            for block in range(BATCH):
                append((0, "pool", block, 4096, "cpu", "pool", clock(), 0, None, (), block))
        return time.perf_counter() - start

    runs: list[Callable[[], float]] = [
        lambda: append_prebuilt(rounds),
        append_built,
        lambda: time_emits(0, rounds),
        lambda: time_emits(0, rounds, PyMemoryReporter),
        lambda: time_emits(0, rounds, clock=counter.Counter(1) if counter else None),
        read_clock,
    ]
    best = [float("inf")] * len(runs)
    for _ in range(5):
        for index, run in enumerate(runs):
            best[index] = min(best[index], run() / (rounds * BATCH))
    return best[0], best[1], best[2], best[3], best[4], best[5]


def time_emits(
    callsites: int,
    rounds: int,
    kind: type[MemoryReporter] = MemoryReporter,
    clock: Callable[[], int] | None = None,
) -> float:
    """Seconds for *rounds* batches of ``reporter.alloc`` calls, sites as *callsites*
    says (0: a plain reporter of *kind*). The batches go to an inbox that is emptied after
    each one, as the metrics actor empties it, so that the measurement is of the emit and
    not of a backlog."""
    inbox = Inbox(1)
    if callsites:
        sited = SitedReporter("pool", inbox, batch_size=BATCH)
        sited.use_sites(SiteTable(callsites))
        reporter: MemoryReporter = sited
    else:
        reporter = kind("pool", inbox, batch_size=BATCH, clock=clock or time.monotonic_ns)
    alloc = reporter.alloc
    start = time.perf_counter()
    for _ in range(rounds):
        for block in range(BATCH):
            alloc(block, 4096)
        inbox.take_handed_on()
    return time.perf_counter() - start


CALLGRIND_KINDS = ("prebuilt", "compiled", "python")


def callgrind_child(kind: str, count: int) -> None:
    """Make *count* calls of *kind* (a prebuilt append, or a compiled or pure-Python
    ``reporter.alloc``) in batches, for :func:`emit_instructions`."""
    # Start-up's objects out of the collector's way: a full collection walks them all,
    # and where one falls differs between runs by more than an emit's instructions.
    gc.collect()
    gc.freeze()
    rounds = count // BATCH
    if kind == "prebuilt":
        append_prebuilt(rounds)
    else:
        time_emits(0, rounds, MemoryReporter if kind == "compiled" else PyMemoryReporter)


def emit_instructions(count: int) -> dict[str, float]:
    """Instructions per call of each of :data:`CALLGRIND_KINDS`."""

    def command(kind: str) -> Callable[[int], list[str]]:
        return lambda calls: [sys.executable, __file__, "--callgrind-child", kind,
                              "--events", str(calls)]  # fmt: skip

    # One run outside valgrind first, so that every module's bytecode is cached.
    subprocess.run(command("compiled")(BATCH), check=True)
    return {kind: instructions_per_call(command(kind), count) for kind in CALLGRIND_KINDS}


def site_emit_costs(count: int) -> tuple[float, float, float, float]:
    """Seconds per ``reporter.alloc`` with sites off (compiled, then pure Python), on, and
    sampled one in :data:`SAMPLE_EVERY` (the sited reporters' emits are Python, on the
    compiled fields); the four run in turn, best of seven each."""
    rounds = count // BATCH
    runs: list[Callable[[], float]] = [
        lambda: time_emits(0, rounds),
        lambda: time_emits(0, rounds, PyMemoryReporter),
        lambda: time_emits(1, rounds),
        lambda: time_emits(SAMPLE_EVERY, rounds),
    ]
    best = [float("inf")] * len(runs)
    for _ in range(7):
        for index, run in enumerate(runs):
            best[index] = min(best[index], run() / (rounds * BATCH))
    return best[0], best[1], best[2], best[3]


def pool_lease_costs(leases: int) -> tuple[float, float, float]:
    """Seconds per lease and return of a pooled buffer (a cache hit: an acquire and a
    release) with sites off, on, and sampled; each in a system of its own."""

    async def run(callsites: int) -> float:
        async with memactor.open_system(callsites=callsites) as system:
            pool = BufferPool()
            await system.spawn(pool, name="pool")
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(leases):
                    lease = pool.acquire_nowait((512,), "uint8")
                    lease.release()
                best = min(best, time.perf_counter() - start)
                await system.metrics.flush()
            return best / leases

    return trio.run(run, 0), trio.run(run, 1), trio.run(run, SAMPLE_EVERY)


def site_apply_costs(events: int) -> tuple[float, float]:
    """Seconds to apply the same alloc/free pairs without and with site tags."""
    hub_plain = MemoryHub(batch_size=BATCH, channel_size=1 << 30)
    hub_sited = MemoryHub(batch_size=BATCH, channel_size=1 << 30, callsites=1)
    runs = []
    for hub in (hub_plain, hub_sited):
        reporter = hub.reporter("pool")
        for block in range(events // 2):
            reporter.alloc(block, 4096)
            reporter.free(block, 4096)
        batches = [batch.events for batch in hub.collect().batches]

        def apply(batches: list[Events] = batches, hub: MemoryHub = hub) -> float:
            ledger = Ledger(sites=hub.sites)
            start = time.perf_counter()
            for batch in batches:
                ledger.apply(batch)
            return time.perf_counter() - start

        runs.append(apply)
    plain = sited = float("inf")
    for _ in range(3):
        plain = min(plain, runs[0]())
        sited = min(sited, runs[1]())
    return plain, sited


def interleaved_batches(events: int) -> list[Events]:
    """Batches from 4 reporters of one hub whose emits alternate, as busy actors' do:
    every batch overlaps the other reporters' in emission order."""
    hub = MemoryHub(batch_size=BATCH, channel_size=1 << 30)
    reporters = [hub.reporter(f"stage-{index}") for index in range(ACTORS)]
    for step in range(events // 2):
        reporter = reporters[step % ACTORS]
        reporter.alloc(step, 4096)
        reporter.free(step, 4096)
    return [batch.events for batch in hub.collect().batches]


def order_costs(events: int) -> tuple[float, float]:
    """Seconds to apply the same batches in arrival order, and in emission order."""
    batches = interleaved_batches(events)

    def arrival() -> float:
        ledger = Ledger()
        start = time.perf_counter()
        for batch in batches:
            ledger.apply(batch)
        return time.perf_counter() - start

    def emission() -> float:
        ledger = Ledger()
        order = EventOrder(ledger)
        start = time.perf_counter()
        # As the metrics actor does: a round takes a few batches, merges and applies.
        for first in range(0, len(batches), ACTORS):
            for batch in batches[first : first + ACTORS]:
                order.add(batch)
            order.apply_below()
        return time.perf_counter() - start

    return min(arrival() for _ in range(3)), min(emission() for _ in range(3))


def step_costs(steps: int) -> tuple[float, float]:
    """Seconds per trio task step (a bare checkpoint) without and with the stall watch."""

    async def run(watched: bool) -> float:
        if watched:
            trio.lowlevel.add_instrument(StallWatch())
        start = time.perf_counter()
        for _ in range(steps):
            await trio.lowlevel.checkpoint()
        return (time.perf_counter() - start) / steps

    off = min(trio.run(run, False) for _ in range(3))
    on = min(trio.run(run, True) for _ in range(3))
    return off, on


def process_sample_cost(readings: int = 50) -> float:
    """Seconds for one reading of the process's memory, best of *readings*."""
    best = float("inf")
    for _ in range(readings):
        start = time.perf_counter()
        read_process_memory()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--no-callgrind", dest="callgrind", action="store_false")
    parser.add_argument("--end-to-end-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-child", choices=CALLGRIND_KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    events = args.events - args.events % (ACTORS * CHUNK)

    if args.end_to_end_child:
        end_to_end_child(events)
        return
    if args.callgrind_child:
        callgrind_child(args.callgrind_child, args.events)
        return
    if load("_emit") is None:
        sys.exit("the compiled emits did not load: build them (setup.py build_ext --inplace)")

    bare_s = min(trio.run(bare_channel, events) for _ in range(3))
    compiled = end_to_end_in(False, events)
    python = end_to_end_in(True, events)
    print(f"end to end, {events:,} events from {ACTORS} actors in batches of {BATCH}:")
    print(f"  bare trio channel  {events / bare_s / 1e6:8.2f} M events/s (same batches, no work)")
    for name, figures in (("compiled", compiled), ("python", python)):
        print(
            f"  {name:<8} lossless  {events / figures['lossless_s'] / 1e6:8.2f} M events/s "
            f"(target >= 4), {bare_s / figures['lossless_s']:.3f} of the bare channel"
        )
        print(
            f"  {name:<8} lossy     {events / figures['lossy_s'] / 1e6:8.2f} M events/s "
            f"({int(figures['dropped']):,} dropped, {figures['dropped'] / events:.1%})"
        )
    print(f"  ratio  {python['lossless_s'] / compiled['lossless_s']:6.2f}x compiled over python")

    prebuilt, built, emit, python_emit, unclocked, clock_read = emit_costs(1_000_000)
    print("one emit (reporter.alloc):")
    print(f"  list.append, prebuilt tuple     {prebuilt * 1e9:7.1f} ns")
    print(f"  list.append, built + stamped    {built * 1e9:7.1f} ns")
    print(f"  reporter.alloc, compiled        {emit * 1e9:7.1f} ns")
    print(f"  reporter.alloc, pure Python     {python_emit * 1e9:7.1f} ns")
    print(f"  compiled, a Counter as clock    {unclocked * 1e9:7.1f} ns (no clock read)")
    print(f"  time.monotonic_ns() alone       {clock_read * 1e9:7.1f} ns (from Python)")
    print(f"  ratio  {emit / prebuilt:6.2f}x the prebuilt append, compiled (target <= 2)")
    print(f"  ratio  {unclocked / prebuilt:6.2f}x the prebuilt append, compiled, no clock read")
    print(f"  ratio  {python_emit / prebuilt:6.2f}x the prebuilt append, pure Python")
    print(f"  ratio  {emit / built:6.2f}x the built-and-stamped append, compiled")
    print(f"  ratio  {python_emit / emit:6.2f}x compiled, pure Python")
    if args.callgrind and available():
        counts = emit_instructions(200_000)
        print("instructions per call (callgrind, 400,000 calls told apart):")
        print(f"  list.append, prebuilt tuple     {counts['prebuilt']:7.0f}")
        for kind, label in (("compiled", "compiled"), ("python", "pure Python")):
            print(
                f"  reporter.alloc, {label:<15} {counts[kind]:7.0f}  "
                f"({counts[kind] / counts['prebuilt']:.2f}x the prebuilt append)"
            )
    elif args.callgrind:
        print("instructions per call: valgrind is not installed, skipped")

    arrival_s, emission_s = order_costs(min(events, 1_000_000))
    count = min(events, 1_000_000)
    print(f"applying {count:,} events in interleaved batches from {ACTORS} reporters:")
    print(f"  arrival order (exact only by luck)   {count / arrival_s / 1e6:8.2f} M events/s")
    print(f"  emission order (merged by seq)       {count / emission_s / 1e6:8.2f} M events/s")
    print(f"  ratio  {emission_s / arrival_s:6.2f}x the time of the arrival-order apply")

    off, on = step_costs(200_000)
    print("one trio task step (a bare checkpoint):")
    print(f"  unwatched        {off * 1e9:7.0f} ns")
    print(f"  stall watch on   {on * 1e9:7.0f} ns (+{(on - off) * 1e9:.0f} ns a step)")

    reading = process_sample_cost()
    print("one reading of the process's memory (the metrics actor's, once a tick):")
    print(f"  {reading * 1e3:7.3f} ms, {reading / 0.1:.2%} of a 100 ms tick")

    off, python_off, on, sampled = site_emit_costs(1_000_000)
    print("one emit (reporter.alloc) with allocation sites:")
    print(f"  sites off, compiled             {off * 1e9:7.1f} ns")
    print(f"  sites off, pure Python          {python_off * 1e9:7.1f} ns")
    print(f"  sites on (every allocation)     {on * 1e9:7.1f} ns")
    print(f"  sampled, one in {SAMPLE_EVERY:<3}             {sampled * 1e9:7.1f} ns")
    print(f"  ratio  {on / python_off:6.2f}x pure-Python off with sites on (target <= 1.5)")
    print(f"  ratio  {sampled / python_off:6.2f}x pure-Python off sampled (target <= 1.1)")
    print(f"  ratio  {on / off:6.2f}x compiled off with sites on")
    print(f"  ratio  {sampled / off:6.2f}x compiled off sampled")
    off, on, sampled = pool_lease_costs(20_000)
    print("one pool lease and return (an acquire and a release), called from user code:")
    print(f"  sites off                       {off * 1e9:7.0f} ns")
    print(f"  sites on                        {on * 1e9:7.0f} ns  ({on / off:.2f}x)")
    print(
        f"  sampled, one in {SAMPLE_EVERY:<3}             {sampled * 1e9:7.0f} ns  "
        f"({sampled / off:.2f}x)"
    )
    plain, sited = site_apply_costs(min(events, 1_000_000))
    count = min(events, 1_000_000)
    print(f"the ledger applying {count:,} alloc/free events:")
    print(f"  without site tags   {count / plain / 1e6:8.2f} M events/s")
    print(
        f"  with site tags      {count / sited / 1e6:8.2f} M events/s "
        f"({sited / plain:.2f}x the time)"
    )


if __name__ == "__main__":
    main()
