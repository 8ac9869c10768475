#!/usr/bin/env python3
"""A pipeline of Ray actors on two nodes, one exact memory view of all of them.

A local two-node Ray cluster (``ray.cluster_utils.Cluster``) stands in for two hosts. A
decoder actor on one node builds frames in buffers from its pool; a transformer actor
on the other processes them in chunks with a chunk processor. Each runs a memactor
system in a trio thread (:class:`memactor.ray.RaySource`) and pushes its updates to the
named aggregator actor, which serves the merged view: run the example with
``--watch 60`` and, in another terminal, the ``memactor top`` line it prints. Run:
``.venv/bin/python scripts/examples/ray_pipeline.py`` (needs ``memactor[ray]``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import ray
from ray.cluster_utils import Cluster

import memactor
from memactor.cluster import by_host
from memactor.metrics import Snapshot
from memactor.ray import RaySource, get_aggregator

NAMESPACE = "ray-pipeline-example"
FRAME = (256, 256)
FRAMES = 6


class Stage:
    """What both stages share: a memory system that is a source of the aggregator."""

    def __init__(self, name: str) -> None:
        self.memory = RaySource(name, namespace=NAMESPACE, rate_hz=20)

    def node(self) -> str:
        node_id: str = ray.get_runtime_context().get_node_id()
        return node_id

    def finish(self) -> bytes:
        """Close the source (a last update, a bye); its own last snapshot."""
        self.memory.close()
        last = self.memory.source.last_snapshot
        assert last is not None
        return last.to_msgpack()


@ray.remote(num_cpus=0, resources={"node_a": 0.1})
class Decoder(Stage):
    def __init__(self) -> None:
        super().__init__("decoder")
        self.pool = memactor.BufferPool(max_reserved="4 MiB")
        self.memory.run(self.memory.system.spawn, self.pool, name="pool")

    def decode(self, seed: int) -> np.ndarray:
        return self.memory.run(self._decode, seed)

    async def _decode(self, seed: int) -> np.ndarray:
        async with self.pool.lease(FRAME, np.float32, owner="decode") as frame:
            frame[:] = np.random.default_rng(seed).random(FRAME, dtype=np.float32)
            return frame.copy()


@ray.remote(num_cpus=0, resources={"node_b": 0.1})
class Transformer(Stage):
    def __init__(self) -> None:
        super().__init__("transformer")
        pool = memactor.BufferPool(max_reserved="4 MiB")
        self.chunks = memactor.ChunkProcessor(np.sqrt, (64, 64), pool=pool, concurrency=2)
        self.memory.run(self.memory.system.spawn, pool, name="pool")
        self.memory.run(self.memory.system.spawn, self.chunks, name="sqrt.chunks")

    def transform(self, frame: np.ndarray) -> float:
        result = self.memory.run(self.chunks.process, frame)
        return float(result.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watch", type=float, default=0.0, help="seconds to stay up at the end")
    args = parser.parse_args()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}}
    )
    cluster.add_node(num_cpus=1, resources={"node_b": 1})
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    try:
        run(args.watch)
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]  # untyped in Ray


def run(watch_s: float) -> None:
    aggregator: Any = get_aggregator(namespace=NAMESPACE)
    _, served, token = ray.get(aggregator.addresses.remote())
    decoder: Any = Decoder.remote()  # type: ignore[attr-defined]  # made by @ray.remote
    transformer: Any = Transformer.remote()  # type: ignore[attr-defined]  # made by @ray.remote
    nodes = ray.get([decoder.node.remote(), transformer.node.remote()])
    print(f"stages on {len(set(nodes))} nodes")
    if watch_s:
        print(f"watch it live: MEMACTOR_TOKEN={token} memactor top {served}", flush=True)
    sums = [transformer.transform.remote(decoder.decode.remote(seed)) for seed in range(FRAMES)]
    print(f"frames done: {len(ray.get(sums))}")
    time.sleep(watch_s)
    # Each stage's first update reaches the aggregator on the stage's next tick: wait
    # for both before reading the live view.
    deadline = time.monotonic() + 30
    while len(_live(aggregator)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    live = Snapshot.from_msgpack(ray.get(aggregator.snapshot.remote()))
    for host in by_host(live):
        print(f"host: {host.sources} live sources on {host.device}")
    owns = ray.get([decoder.finish.remote(), transformer.finish.remote()])
    for name, own in zip(("decoder", "transformer"), owns, strict=True):
        deadline = time.monotonic() + 30
        while _source(aggregator, name)["state"] != "gone" and time.monotonic() < deadline:
            time.sleep(0.05)
        copy = ray.get(aggregator.copy_of.remote(name))
        print(f"{name}: the aggregator's copy equals its ledger: {copy == own}")
        print(f"{name}: gone ({_source(aggregator, name)['gone_how']})")
    end = Snapshot.from_msgpack(ray.get(aggregator.snapshot.remote()))
    own_peaks = [Snapshot.from_msgpack(own).totals.peak_bytes_reserved for own in owns]
    covers = end.totals.peak_bytes_reserved >= max(own_peaks)
    print(f"cluster peak reserved at least each stage's own: {covers}")
    print(f"live bytes after both left: {end.totals.bytes_reserved}")
    ray.kill(aggregator)


def _live(aggregator: Any) -> list[str]:
    """The names of the live sources whose first (full) update the aggregator holds."""
    found: list[dict[str, Any]] = ray.get(aggregator.sources.remote())
    return [s["name"] for s in found if s["state"] == "live" and s["checkpoints"]]


def _source(aggregator: Any, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = ray.get(aggregator.sources.remote())
    (source,) = [s for s in found if s["name"] == name]
    return source


if __name__ == "__main__":
    main()
