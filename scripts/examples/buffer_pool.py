#!/usr/bin/env python3
"""Buffer pool tracking: what a pool reserves, what it lends, and to whom.

Two workers lease 1 MiB float32 buffers from a pool, four rounds each. The first round
misses (the pool allocates), later rounds hit its cache. At the end nothing is lent and
the pool still reserves what it caches: not a leak. Run:
``.venv/bin/python scripts/examples/buffer_pool.py``
"""

from __future__ import annotations

import numpy as np
import trio

import memactor
from memactor import format_size

SHAPE = (512, 512)  # float32: 1 MiB
ROUNDS = 4


async def work(pool: memactor.BufferPool, name: str) -> None:
    for _ in range(ROUNDS):
        async with pool.lease(SHAPE, np.float32, owner=name) as buffer:
            buffer.fill(1.0)
            await trio.sleep(0.01)


async def main() -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool(max_reserved="8 MiB")
        await system.spawn(pool, name="pool")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(work, pool, "worker-a")
            nursery.start_soon(work, pool, "worker-b")
        await system.metrics.flush()
        books = system.ledger.component("pool")
        stats = pool.statistics()
        print(f"hits: {stats.hits}, misses: {stats.misses}")
        print(f"reserved: {books.bytes_reserved} bytes ({format_size(books.bytes_reserved)})")
        print(f"in use:   {books.bytes_in_use} bytes")
        print(f"peak in use: {books.peak_bytes_in_use} bytes")
        for owner in system.ledger.owners():
            print(f"owner {owner.owner}: peak {format_size(owner.peak_bytes_in_use)}")
        print(
            f"cached blocks: {stats.cached_blocks}, the ledger's live blocks: {books.live_blocks}"
        )


if __name__ == "__main__":
    trio.run(main)
