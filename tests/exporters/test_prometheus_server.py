"""A real Prometheus server scrapes a running pipeline's exporter: its numbers are the
ledger's."""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack

import trio

import memactor
from memactor.cli._pipeline_demo import run_demo_in
from memactor.cluster import open_aggregator
from memactor.exporters import serve_cluster_prometheus, serve_prometheus

from .conftest import PrometheusServer
from .test_cluster import HOST, NAMES, add_source, refreshed, settled
from .test_grafana import concrete, load_dashboard, panel_queries

SCRAPE_TIMEOUT_S = 60.0


def wait_for_scrape_after(server: PrometheusServer, moment_s: float) -> None:
    """Poll the targets API until the exporter was scraped, healthy, after *moment_s*
    (Unix seconds)."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while time.monotonic() < deadline:
        target = server.target()
        if target and target["health"] == "up" and _unix_s(target["lastScrape"]) > moment_s:
            return
        time.sleep(0.1)
    raise AssertionError(f"no healthy scrape after {moment_s}: {server.target()}")


def _unix_s(rfc3339: str) -> float:
    # "2026-12-02T16:40:01.123456789Z": seconds to the microsecond are plenty here.
    from datetime import datetime

    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(whole + "+00:00").timestamp()
    return stamp + float("0." + (fraction or "0")[:6])


def query(server: PrometheusServer, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The instant vector of *promql*, by its labels (less ``job`` and ``instance``)."""
    result = server.api("query", query=promql)["result"]
    return {
        tuple(
            sorted(
                (k, v) for k, v in r["metric"].items() if k not in ("job", "instance", "__name__")
            )
        ): float(r["value"][1])
        for r in result
    }


async def test_prometheus_scrapes_the_ledgers_numbers(prometheus_server: PrometheusServer) -> None:
    address = f"127.0.0.1:{prometheus_server.target_port}"
    async with (
        memactor.open_system() as system,
        serve_prometheus(system, address, rate_hz=20) as exporter,
    ):
        # The demo pipeline's stages stop when it returns; its pool, chunk processor
        # and GPU manager hold their memory until the system closes.
        await run_demo_in(system, items=12, threads=False)
        await system.metrics.flush()
        stats = system.ledger.statistics()
        components = system.ledger.components()
        # The exporter's view has caught up with the ledger (it lags by a view).
        while exporter.latest.view is None or exporter.latest.view.totals != stats:
            await trio.sleep(0.01)
        caught_up = time.time()
        await trio.to_thread.run_sync(wait_for_scrape_after, prometheus_server, caught_up)
        answers = {
            name: await trio.to_thread.run_sync(query, prometheus_server, name)
            for name in (
                "memactor_memory_bytes",
                "memactor_memory_peak_bytes",
                "memactor_allocations_total",
                "memactor_pool_hits_total",
                "memactor_events_total",
                "memactor_events_dropped_total",
            )
        }
    memory = answers["memactor_memory_bytes"]
    assert len(memory) == 2 * len(components)
    for c in components:
        where = (("component", c.component), ("device", c.device))
        assert memory[(*where, ("state", "reserved"))] == c.bytes_reserved
        assert memory[(*where, ("state", "in_use"))] == c.bytes_in_use
        peak = answers["memactor_memory_peak_bytes"]
        assert peak[(*where, ("state", "reserved"))] == c.peak_bytes_reserved
        assert answers["memactor_allocations_total"][where] == c.allocations
        assert answers["memactor_pool_hits_total"][where] == c.acquires
    (pool,) = [c for c in components if c.component == "pool"]
    assert pool.bytes_reserved > pool.bytes_in_use  # its cache: the two states differ
    assert pool.acquires > 0
    assert answers["memactor_events_total"][()] == stats.events_applied > 0
    assert answers["memactor_events_dropped_total"][()] == stats.events_dropped


async def test_the_dashboards_queries_run_on_prometheus(
    prometheus_server: PrometheusServer,
) -> None:
    """Every panel's query is valid PromQL to the real server, and those of memory show
    the running pipeline."""
    address = f"127.0.0.1:{prometheus_server.target_port}"
    async with (
        memactor.open_system() as system,
        serve_prometheus(system, address, rate_hz=20, owner_labels=True) as exporter,
    ):
        await run_demo_in(system, items=6, threads=False)
        await system.metrics.flush()
        stats = system.ledger.statistics()
        while exporter.latest.view is None or exporter.latest.view.totals != stats:
            await trio.sleep(0.01)
        await trio.to_thread.run_sync(wait_for_scrape_after, prometheus_server, time.time())
        await trio.to_thread.run_sync(wait_for_scrape_after, prometheus_server, time.time())
        answers = {
            expr: await trio.to_thread.run_sync(query, prometheus_server, concrete(expr))
            for expr in panel_queries(load_dashboard())
        }
    shown = {expr for expr, result in answers.items() if result}
    for metric in ("memactor_memory_bytes", "memactor_unattributed_bytes", "events_total"):
        assert any(metric in expr for expr in shown), metric


async def test_prometheus_scrapes_an_aggregator_per_host_and_process(
    prometheus_server: PrometheusServer,
) -> None:
    """In cluster mode the server sees each source's figures under its host and process
    labels, equal to that source's own ledger."""
    address = f"127.0.0.1:{prometheus_server.target_port}"
    async with (
        open_aggregator() as aggregator,
        serve_cluster_prometheus(aggregator, address, rate_hz=20) as exporter,
        AsyncExitStack() as sources,
    ):
        added = [
            await add_source(sources, aggregator, name, 10 + 10 * i) for i, name in enumerate(NAMES)
        ]
        owns = [await settled(aggregator, source) for source in added]
        await refreshed(exporter.latest)
        await trio.to_thread.run_sync(wait_for_scrape_after, prometheus_server, time.time())
        memory = await trio.to_thread.run_sync(query, prometheus_server, "memactor_memory_bytes")
        events = await trio.to_thread.run_sync(query, prometheus_server, "memactor_events_total")
    for name, own in zip(NAMES, owns, strict=True):
        source = (("host", HOST), ("process", f"{name}:{os.getpid()}"))
        mine = {labels: v for labels, v in memory.items() if set(source) <= set(labels)}
        assert len(mine) == 2 * len(own.components) > 0
        for c in own.components:
            where = (("component", c.component), ("device", c.device))
            for state, expected in (("reserved", c.bytes_reserved), ("in_use", c.bytes_in_use)):
                labels = tuple(sorted((*where, *source, ("state", state))))
                assert mine[labels] == expected
        assert events[tuple(sorted(source))] == own.totals.events_applied > 0
