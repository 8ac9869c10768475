"""The longest stall of trio's loop, as a task that asks to wake every 0.5 ms sees it:
shared by ``bench_gpu_copies.py`` and ``gpu_summary.py``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

WAKE_S = 0.0005


class LoopStall:
    """How late the watching task woke at worst (seconds), once its block has ended."""

    longest_s = 0.0


@asynccontextmanager
async def watch_loop() -> AsyncIterator[LoopStall]:
    """Watch trio's loop for the length of the ``async with`` block: a task sleeps
    :data:`WAKE_S` again and again and keeps its worst lateness in the answer."""
    stall = LoopStall()

    async def watch() -> None:
        while True:
            start = time.perf_counter()
            await trio.sleep(WAKE_S)
            stall.longest_s = max(stall.longest_s, time.perf_counter() - start - WAKE_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(0.01)  # a first wake-up before the work starts
        yield stall
        nursery.cancel_scope.cancel()
