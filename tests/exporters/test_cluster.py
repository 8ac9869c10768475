"""Cluster mode: an aggregator exports every live source's figures, labelled ``host``
and ``process``, over a real HTTP endpoint and to OpenTelemetry; a gone source leaves."""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import numpy as np
import pytest
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.samples import Sample

import memactor
from memactor.cluster import Aggregator, ClusterSource, open_aggregator, open_source
from memactor.exporters import (
    ClusterViews,
    follow_cluster,
    register_otel,
    serve_cluster_prometheus,
    source_labels,
)
from memactor.metrics import Snapshot

from .test_otel import attrs, collect, point
from .test_prometheus import samples_of, value

HOST = socket.gethostname()
NAMES = ("worker-a", "worker-b")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text: str = reply.read().decode()
        return text


async def fill(pool: memactor.BufferPool, owner: str, rounds: int) -> None:
    """Lease and return buffers of sizes that grow with *rounds*: the pool ends with a
    cache whose size tells the sources apart."""
    for i in range(rounds):
        async with pool.lease((rounds * 64 * (1 + i % 4),), np.uint8, owner=owner):
            await trio.sleep(0)


async def add_source(
    stack: AsyncExitStack, aggregator: Aggregator, name: str, rounds: int
) -> ClusterSource:
    """A system in this process with a pool that did some work, pushing to *aggregator*
    as source *name* until *stack* closes."""
    system = await stack.enter_async_context(memactor.open_system())
    pool = memactor.BufferPool(max_reserved="1 MiB")
    await system.spawn(pool, name="pool")
    await fill(pool, name, rounds)
    return await stack.enter_async_context(
        open_source(system, aggregator.address, name=name, rate_hz=50)
    )


@asynccontextmanager
async def two_sources(aggregator: Aggregator) -> AsyncIterator[list[ClusterSource]]:
    async with AsyncExitStack() as stack:
        yield [
            await add_source(stack, aggregator, name, 10 * (i + 1)) for i, name in enumerate(NAMES)
        ]


async def settled(aggregator: Aggregator, source: ClusterSource) -> Snapshot:
    """The source's own last snapshot, once the aggregator applied that update."""
    await source.update_now()
    name = source.identity.name
    await aggregator.wait_until(lambda: aggregator.source(name).seq == source.statistics().seq)
    assert source.last_snapshot is not None
    return source.last_snapshot


async def refreshed(latest: ClusterViews) -> None:
    """Return once *latest* was refreshed after this call."""
    seen = latest.updates
    while latest.updates <= seen:
        await trio.sleep(0.005)


def of_source(samples: Sequence[Sample], name: str, **labels: str) -> float:
    return value(samples, host=HOST, process=f"{name}:{os.getpid()}", **labels)


async def test_the_aggregator_exports_each_source_under_host_and_process() -> None:
    async with (
        open_aggregator() as aggregator,
        serve_cluster_prometheus(aggregator, "127.0.0.1:0", rate_hz=100) as exporter,
        AsyncExitStack() as stays,
    ):
        second = await add_source(stays, aggregator, NAMES[1], 20)
        async with AsyncExitStack() as leaves:
            first = await add_source(leaves, aggregator, NAMES[0], 10)
            owns = [await settled(aggregator, source) for source in (first, second)]
            await refreshed(exporter.latest)
            samples = samples_of(await trio.to_thread.run_sync(scrape, exporter.url))
        memory = samples["memactor_memory_bytes"]
        # Every sample names its source; the figures are that source's ledger's.
        assert {(s.labels["host"], s.labels["process"]) for s in memory} == {
            (HOST, f"{name}:{os.getpid()}") for name in NAMES
        }
        for name, own in zip(NAMES, owns, strict=True):
            for c in own.components:
                where = {"component": c.component, "device": c.device}
                got = of_source(memory, name, state="reserved", **where)
                assert got == c.bytes_reserved
                assert of_source(memory, name, state="in_use", **where) == c.bytes_in_use
                allocations = samples["memactor_allocations"]
                assert of_source(allocations, name, **where) == c.allocations
            events = samples["memactor_events"]
            assert of_source(events, name) == own.totals.events_applied > 0
        assert owns[0].totals.bytes_reserved != owns[1].totals.bytes_reserved

        # The first source left: its series went with it; the other's stay.
        await aggregator.wait_until(lambda: aggregator.source(NAMES[0]).state == "gone")
        await refreshed(exporter.latest)
        text = await trio.to_thread.run_sync(scrape, exporter.url)
        memory = samples_of(text)["memactor_memory_bytes"]
        assert {s.labels["process"] for s in memory} == {f"{NAMES[1]}:{os.getpid()}"}


async def test_open_aggregator_serves_prometheus_when_asked() -> None:
    with pytest.raises(ValueError, match=r"^bad address 'nowhere'"):
        async with open_aggregator(prometheus="nowhere"):
            pass  # pragma: no cover
    async with open_aggregator(prometheus="127.0.0.1:0") as aggregator:
        assert aggregator.prometheus_address is not None
        url = f"http://{aggregator.prometheus_address}/metrics"
        async with two_sources(aggregator) as sources:
            own = await settled(aggregator, sources[1])
            # The default refresh is once a second: wait for one after the update.
            processes: set[str] = set()
            with trio.fail_after(10):
                while f"{NAMES[1]}:{os.getpid()}" not in processes:
                    await trio.sleep(0.1)
                    text = await trio.to_thread.run_sync(scrape, url)
                    processes = {s.labels["process"] for s in samples_of(text)["memactor_events"]}
            events = samples_of(text)["memactor_events"]
            assert of_source(events, NAMES[1]) >= own.totals.events_applied
    assert aggregator.prometheus_address is not None
    with pytest.raises(OSError, match=r"[Cc]onnection refused"):  # the port is free again
        await trio.to_thread.run_sync(scrape, url)


async def test_opentelemetry_sees_each_source_as_attributes() -> None:
    reader = InMemoryMetricReader()
    async with (
        open_aggregator() as aggregator,
        follow_cluster(aggregator, rate_hz=100) as latest,
        two_sources(aggregator) as sources,
    ):
        register_otel(latest, MeterProvider(metric_readers=[reader]))
        owns = [await settled(aggregator, source) for source in sources]
        await refreshed(latest)
        metrics = collect(reader)
    usage = metrics["memactor.memory.usage"]
    for source, own in zip(sources, owns, strict=True):
        labels = dict(source_labels(aggregator.source(source.identity.name)))
        for c in own.components:
            where = attrs(c.component, c.device, **labels)
            assert point(usage, **where, **{"memactor.memory.state": "in_use"}) == c.bytes_in_use


async def test_a_bad_rate_is_named_before_anything_starts() -> None:
    async with open_aggregator() as aggregator:
        for follow in (
            follow_cluster(aggregator, rate_hz=0),
            serve_cluster_prometheus(aggregator, "127.0.0.1:0", rate_hz=float("inf")),
        ):
            with pytest.raises(ValueError, match=r"^rate_hz must be a positive number"):
                async with follow:
                    pass  # pragma: no cover
