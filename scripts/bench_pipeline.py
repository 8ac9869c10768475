#!/usr/bin/env python3
"""Benchmark what memory tracking costs a real pipeline, and what a pool hit saves.

Measured side by side in one run, each printed with its ratio:

1. the demo pipeline's wall time for the same frames with tracking on, with tracking off
   (every reporter a no-op), and with tracking off under the standard library's
   ``tracemalloc`` (the common alternative), best of several runs each;
2. the cost of a pool hit for a 64 MiB buffer against a fresh ``np.empty`` of 64 MiB plus
   its first touch (writing every page), which is what a miss costs the pipeline.

Run: ``.venv/bin/python scripts/bench_pipeline.py [--items N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import trio

import memactor
from memactor.cli._pipeline_demo import run_pipeline_demo

BIG = 64 * 2**20


def pipeline_seconds(items: int, *, tracking: bool, trace: bool = False) -> float:
    if trace:
        tracemalloc.start()
    try:
        start = time.perf_counter()
        run = trio.run(lambda: run_pipeline_demo(items=items, tracking=tracking))
        elapsed = time.perf_counter() - start
    finally:
        if trace:
            tracemalloc.stop()
    assert run.frames == items
    return elapsed


async def pool_hit_seconds(rounds: int) -> float:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        async with pool.lease((BIG,), np.uint8) as warm:
            warm[::4096] = 1  # the first touch, once
        start = time.perf_counter()
        for _ in range(rounds):
            async with pool.lease((BIG,), np.uint8) as buffer:
                buffer[0] = 1
        return (time.perf_counter() - start) / rounds


def fresh_seconds(rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        buffer = np.empty(BIG, dtype=np.uint8)
        buffer[::4096] = 1  # touch every page: the cost a fresh buffer pays on first use
        del buffer
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=400, help="frames per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind")
    args = parser.parse_args()

    pipeline_seconds(20, tracking=True)  # warm imports and caches
    on, off, traced = [], [], []
    for _ in range(args.repeats):  # interleaved, so drifts hit each kind alike
        on.append(pipeline_seconds(args.items, tracking=True))
        off.append(pipeline_seconds(args.items, tracking=False))
        traced.append(pipeline_seconds(args.items, tracking=False, trace=True))
    best_on, best_off, best_traced = min(on), min(off), min(traced)
    print(f"demo pipeline, {args.items} frames, best of {args.repeats}:")
    print(f"  tracking off          {best_off:7.3f} s")
    print(
        f"  tracking on           {best_on:7.3f} s   {best_on / best_off - 1:+7.1%} (target <= +5%)"
    )
    print(f"  tracemalloc           {best_traced:7.3f} s   {best_traced / best_off - 1:+7.1%}")

    rounds = 20
    hit = trio.run(pool_hit_seconds, 200)
    fresh = fresh_seconds(rounds)
    print("one 64 MiB buffer:")
    print(f"  fresh np.empty + first touch  {fresh * 1e3:9.3f} ms")
    print(f"  pool hit                      {hit * 1e3:9.3f} ms")
    print(f"  ratio                         {fresh / hit:9.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
