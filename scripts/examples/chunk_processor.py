#!/usr/bin/env python3
"""Chunk processor tracking: working memory per chunk, attributed to the processor.

A 1024 x 1024 float32 array (4 MiB) is processed in 256 x 256 chunks (16 chunks of
256 KiB), two at a time, on buffers from a pool, twice. The first pass allocates the
working buffers; the second reuses them. Run:
``.venv/bin/python scripts/examples/chunk_processor.py``
"""

from __future__ import annotations

import numpy as np
import trio

import memactor
from memactor import format_size


def brighten(chunk: np.ndarray) -> np.ndarray:
    return np.clip(chunk * 1.5, 0.0, 1.0)


async def main() -> None:
    image = np.random.default_rng(7).random((1024, 1024), dtype=np.float32)
    async with memactor.open_system() as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        processor = memactor.ChunkProcessor(brighten, (256, 256), pool=pool, concurrency=2)
        await system.spawn(processor, name="brighten.chunks")
        for _ in range(2):
            result = await processor.process(image)
        assert np.array_equal(result, brighten(image))
        stats = processor.statistics()
        await system.metrics.flush()
        (owner,) = [o for o in system.ledger.owners() if o.owner == "brighten.chunks"]
        print(f"chunks done: {stats.chunks_done}")
        print(f"bytes processed: {stats.bytes_processed} ({format_size(stats.bytes_processed)})")
        # Two chunks in flight, each with an input and a result buffer, and up to two
        # finished results waiting their turn: at most 6 x 256 KiB, whatever the timing.
        print(f"peak working memory: {stats.peak_working_bytes} bytes")
        print(f"the ledger's peak for brighten.chunks: {owner.peak_bytes_in_use} bytes")
        print(f"in use now: {system.ledger.component('pool').bytes_in_use} bytes")
        print(f"reuse ratio: {stats.reuse_ratio:.2f}")


if __name__ == "__main__":
    trio.run(main)
