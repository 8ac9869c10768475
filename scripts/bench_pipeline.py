#!/usr/bin/env python3
"""Benchmark what memory tracking costs a real pipeline, and what a pool hit saves.

Measured side by side in one run, each printed with its ratio:

1. the demo pipeline's wall time for the same frames with tracking on, with tracking off
   (every reporter a no-op), and with tracking off under the standard library's
   ``tracemalloc`` (the common alternative), best of several runs each;
2. a 3-stage trio message pipeline whose middle stage allocates and frees one buffer per
   message (the hot path at its purest: a message costs a few mailbox hops and two
   emits), the same way, with the compiled core and in pure Python
   (``MEMACTOR_PURE_PYTHON=1``), each in a child process of its own; beside tracking,
   the same pipeline untracked under ``tracemalloc`` and under memray (its ``Tracker``,
   Python allocations only, writing to a scratch file) where memray is installed;
3. the cost of a pool hit for a 64 MiB buffer against a fresh ``np.empty`` of 64 MiB plus
   its first touch (writing every page), which is what a miss costs the pipeline.

Run: ``.venv/bin/python scripts/bench_pipeline.py [--items N] [--messages N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import trio

import memactor
from memactor._native import PURE_PYTHON_VARIABLE
from memactor.actors import Stage, open_pipeline
from memactor.cli._pipeline_demo import run_pipeline_demo

BIG = 64 * 2**20
MEMRAY = importlib.util.find_spec("memray") is not None
"""memray (``pip install memray``) is measured beside tracemalloc where it is installed."""


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


BUFFER_BYTES = 4096


class Work(Stage[int, int]):
    """The middle stage: one working buffer per message, allocated and freed."""

    async def process(self, item: int) -> int:
        reporter = self.reporter
        block = reporter.next_block()
        reporter.alloc(block, BUFFER_BYTES)
        reporter.free(block, BUFFER_BYTES)
        return item


def _parse(item: int) -> int:
    return item


def _sink(item: int) -> None:
    return None


async def message_pipeline(messages: int, tracking: bool) -> None:
    async with memactor.open_system(tracking=tracking) as system:
        pipeline = await open_pipeline(system, ("parse", _parse), ("work", Work()), ("sink", _sink))
        await pipeline.feed(range(messages))
        await pipeline.close()
        if tracking:
            await system.metrics.flush()
            stats = await system.metrics.statistics()
            assert stats.events_applied >= 2 * messages, stats.events_applied


def message_seconds(messages: int, *, tracking: bool, trace: str = "") -> float:
    """Seconds for the message pipeline; *trace*: ``"tracemalloc"`` or ``"memray"`` (its
    Python allocator tracked, into a file that is thrown away) runs it under that tool."""
    with contextlib.ExitStack() as stack:
        if trace == "tracemalloc":
            tracemalloc.start()
            stack.callback(tracemalloc.stop)
        elif trace == "memray":
            # An optional extra (`pip install 'memactor[bench]'`), untyped where absent.
            memray = importlib.import_module("memray")
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            stack.enter_context(memray.Tracker(Path(folder) / "run.bin"))
        start = time.perf_counter()
        trio.run(message_pipeline, messages, tracking)
        return time.perf_counter() - start


def message_child(messages: int, repeats: int) -> None:
    """Print, as one JSON line, this process's best times of the message pipeline with
    tracking off, on, and off under tracemalloc (interleaved, so drifts hit each alike)."""
    message_seconds(messages // 10, tracking=True)  # warm imports and caches
    times: dict[str, list[float]] = {"off": [], "on": [], "tracemalloc": []}
    if MEMRAY:
        times["memray"] = []
    for _ in range(repeats):
        times["on"].append(message_seconds(messages, tracking=True))
        times["off"].append(message_seconds(messages, tracking=False))
        times["tracemalloc"].append(message_seconds(messages, tracking=False, trace="tracemalloc"))
        if MEMRAY:
            times["memray"].append(message_seconds(messages, tracking=False, trace="memray"))
    print(json.dumps({kind: min(runs) for kind, runs in times.items()}))


def message_figures(pure_python: bool, messages: int, repeats: int) -> dict[str, float]:
    """:func:`message_child`'s figures from a child process, compiled or pure Python."""
    env = {**os.environ, PURE_PYTHON_VARIABLE: "1" if pure_python else "0"}
    done = subprocess.run(
        [sys.executable, __file__, "--message-child", "--messages", str(messages),
         "--repeats", str(repeats)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


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
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind")
    parser.add_argument("--message-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.message_child:
        message_child(args.messages, args.repeats)
        return

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

    figures = {
        name: message_figures(name == "python", args.messages, args.repeats)
        for name in ("compiled", "python")
    }
    print(
        f"3-stage message pipeline, {args.messages:,} messages, one allocation and free "
        f"each, best of {args.repeats}:"
    )
    for name, best in figures.items():
        off_s = best["off"]
        print(f"  {name:<8} tracking off    {off_s:7.3f} s")
        print(
            f"  {name:<8} tracking on     {best['on']:7.3f} s   {best['on'] / off_s:6.3f}x "
            f"(target <= 1.03)"
        )
        for tool in ("tracemalloc", "memray"):
            if tool in best:
                print(f"  {name:<8} {tool:<15} {best[tool]:7.3f} s   {best[tool] / off_s:6.3f}x")
    if not MEMRAY:
        print("  memray: not installed here, not measured (pip install memray)")

    rounds = 20
    hit = trio.run(pool_hit_seconds, 200)
    fresh = fresh_seconds(rounds)
    print("one 64 MiB buffer:")
    print(f"  fresh np.empty + first touch  {fresh * 1e3:9.3f} ms")
    print(f"  pool hit                      {hit * 1e3:9.3f} ms")
    print(f"  ratio                         {fresh / hit:9.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
