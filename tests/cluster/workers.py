"""Worker processes for the multi-process tests: each runs its own memory system with a
buffer pool and a chunk processor and is a source of the aggregator in the test."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trio

import memactor
from memactor.cluster import open_source
from memactor.remote import open_server


async def start_pipeline(
    system: memactor.MemorySystem,
) -> tuple[memactor.BufferPool, memactor.ChunkProcessor]:
    """A pool and a chunk processor on it, spawned in *system*."""
    pool = memactor.BufferPool(max_reserved="8 MiB")
    await system.spawn(pool, name="pool")
    processor = memactor.ChunkProcessor(np.sqrt, (64, 64), pool=pool, concurrency=2)
    await system.spawn(processor, name="sqrt.chunks")
    return pool, processor


async def run_pipeline(
    pool: memactor.BufferPool, processor: memactor.ChunkProcessor, seed: int, rounds: int
) -> None:
    """Process seeded images; then lease three buffers and keep them lent."""
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        await processor.process(rng.random((256, 256), dtype=np.float32))
    held = [pool.lease((1000 + seed,), np.uint8, owner=f"holder-{seed}") for _ in range(3)]
    for lease in held:
        await lease.__aenter__()


async def pipeline(system: memactor.MemorySystem, seed: int, rounds: int) -> None:
    """A pool and a chunk processor working on seeded images; some buffers stay lent."""
    await run_pipeline(*await start_pipeline(system), seed, rounds)


async def push(address: str, name: str, seed: int, out: str, hold: bool) -> None:
    """Be a source of *address*; write the last snapshot sent to *out* (or, with *hold*,
    write "ready" there and wait to be killed)."""
    async with memactor.open_system() as system:
        async with open_source(system, address, name=name, rate_hz=20) as source:
            await pipeline(system, seed, rounds=3)
            if hold:
                await source.update_now()
                Path(out).write_text("ready")
                await trio.sleep_forever()
        assert source.last_snapshot is not None
        Path(out).write_bytes(source.last_snapshot.to_msgpack())


async def serve(address: str, seed: int, ready: str) -> None:
    """Serve a system at *address*, its pipeline run once; wait to be killed."""
    async with memactor.open_system() as system:
        await pipeline(system, seed, rounds=2)
        async with open_server(system, address, name=f"served-{seed}"):
            Path(ready).write_text("ready")
            await trio.sleep_forever()


def push_worker(address: str, name: str, seed: int, out: str, hold: bool) -> None:
    trio.run(push, address, name, seed, out, hold)


if __name__ == "__main__":
    trio.run(serve, sys.argv[1], int(sys.argv[2]), sys.argv[3])
