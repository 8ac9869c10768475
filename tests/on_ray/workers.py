"""Ray actors for the Ray tests: each runs a memactor system with a pool and a chunk
processor (see ``tests.cluster.workers``) as a source of the aggregator actor."""

from __future__ import annotations

import os

import ray
from cluster.workers import run_pipeline, start_pipeline

from memactor.ray import RaySource


@ray.remote(num_cpus=0)
class Worker:
    def __init__(self, name: str, namespace: str) -> None:
        self.memory = RaySource(name, namespace=namespace, rate_hz=20)
        self.pool, self.processor = self.memory.run(start_pipeline, self.memory.system)

    def pid(self) -> int:
        return os.getpid()

    def work(self, seed: int, rounds: int) -> int:
        self.memory.run(run_pipeline, self.pool, self.processor, seed, rounds)
        return self.memory.run(self.memory.source.update_now)

    def lose_an_update(self, seed: int) -> int:
        """Lose one update, change the ledger, and send the next: a gap."""
        self.memory.source.lose_next()
        self.memory.run(self.memory.source.update_now)
        return self.work(seed, 1)

    def finish(self) -> bytes:
        """Close the source (a last update, a bye); the last snapshot sent."""
        self.memory.close()
        last = self.memory.source.last_snapshot
        assert last is not None
        return last.to_msgpack()


@ray.remote(num_cpus=0)
def task(name: str, namespace: str, seed: int) -> bytes:
    """A Ray task with a memory system of its own for its run; its last snapshot sent."""
    with RaySource(name, namespace=namespace, rate_hz=20) as memory:
        pool, processor = memory.run(start_pipeline, memory.system)
        memory.run(run_pipeline, pool, processor, seed, 2)
    last = memory.source.last_snapshot
    assert last is not None
    return last.to_msgpack()


@ray.remote(num_cpus=0)
class AsyncWorker:
    """An async actor: memactor's trio thread beside Ray's asyncio loop."""

    async def run(self, name: str, namespace: str, seed: int) -> bytes:
        with RaySource(name, namespace=namespace, rate_hz=20) as memory:
            pool, processor = await memory.arun(start_pipeline, memory.system)
            await memory.arun(run_pipeline, pool, processor, seed, 2)
        last = memory.source.last_snapshot
        assert last is not None
        return last.to_msgpack()
