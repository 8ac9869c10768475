#!/usr/bin/env python3
"""Measure what the metrics actor's tick pays to sample the actors, beside the ledger's
own sample in the same run.

A memory system runs ``--actors`` idle actors (pipeline stages with full and empty
mailboxes, a stage held up sending) and a chunk processor in the middle of a stream,
and a ledger with ``--components`` components that each changed since the last sample.
Timed side by side, interleaved, ``--repeat`` times: the actor tick
(``ActorBook.tick`` over ``figures_of`` every running actor, with
``ActorSystem.waiting_for_room``, then the frozen samples a snapshot reads) and
``Ledger.sample``. Printed: the median of each, their
ratio, and the share of one core the actor tick takes at the default 10 Hz.

Run: ``PYTHONPATH=. .venv/bin/python scripts/bench_actor_sampling.py [--actors 200]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import trio
import trio.testing

import memactor
from memactor.actors import BufferPool, ChunkProcessor, open_pipeline
from memactor.actors._sampling import ActorBook, figures_of
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger


async def main(actors: int, components: int, repeat: int) -> None:
    async with memactor.open_system() as system:
        pool = BufferPool()
        await system.spawn(pool, name="pool")

        release = trio.Event()

        async def slow(item: int) -> int:
            await release.wait()
            return item

        for n in range(actors // 2):
            # Half the stages block (their mailboxes fill), half stay idle.
            await open_pipeline(system, (f"a{n}", lambda x: x), (f"b{n}", slow))
        proc = ChunkProcessor(lambda c: c, (1024,), pool=pool, concurrency=2, lookahead=4)
        await system.spawn(proc, name="chunks")
        for n in range(actors // 4):
            system.lookup(f"a{n}").send_nowait(0)
            for _ in range(5):
                with contextlib.suppress(trio.WouldBlock):
                    system.lookup(f"b{n}").send_nowait(0)
        await trio.testing.wait_all_tasks_blocked()
        ledger = Ledger()  # a ledger of its own: the system's is the metrics actor's
        book = ActorBook()
        stream = proc.stream(np.zeros(1 << 20))
        async with contextlib.aclosing(stream):
            await stream.__anext__()  # a stream in flight, results waiting
            await trio.testing.wait_all_tasks_blocked()
            block = 0
            tick_ns: list[int] = []
            sample_ns: list[int] = []
            running = system.running_actors()
            for _ in range(repeat):
                events = []
                for c in range(components):
                    block += 1
                    events.append(
                        MemoryEvent(EventKind.ALLOC, f"c{c}", block=block, size=64, owner="o")
                    )
                ledger.apply(events)
                start = time.perf_counter_ns()
                ledger.sample()
                middle = time.perf_counter_ns()
                book.tick((figures_of(a) for a in running), system.waiting_for_room())
                book.samples()  # what a snapshot asks for, once per tick at most
                end = time.perf_counter_ns()
                sample_ns.append(middle - start)
                tick_ns.append(end - middle)
        release.set()
        samples = book.samples()
        print(f"actors running: {len(running)}, sampled: {len(samples)}")
        print(f"full at the last tick: {sum(s.ticks_full == repeat for s in samples)}")
        tick, sample = statistics.median(tick_ns), statistics.median(sample_ns)
        print(f"actor tick:    {tick / 1e3:8.1f} us (median of {repeat})")
        print(f"ledger.sample: {sample / 1e3:8.1f} us ({components} components changed)")
        print(f"ratio actor tick / ledger.sample: {tick / sample:.2f}")
        print(f"actor tick at 10 Hz: {tick * 10 / 1e9:.4%} of one core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    trio.run(main, args.actors, args.components, args.repeat)
