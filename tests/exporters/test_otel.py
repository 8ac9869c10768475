"""OpenTelemetry: the SDK's in-memory reader sees memactor's instruments, values and units."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric

import memactor
from memactor.exporters import INSTRUMENTS, LatestView, export_otel, register_otel

from .helpers import seeded_ledger, view_of


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "memactor"
        for metric in scope.metrics
    }


def point(metric: Metric, **attributes: str) -> float:
    points: list[Any] = list(metric.data.data_points)  # numbers: sums and gauges only
    (found,) = [p.value for p in points if dict(p.attributes or {}) == attributes]
    return float(found)


def attrs(component: str, device: str, **more: str) -> dict[str, str]:
    return {"memactor.component": component, "memactor.device": device, **more}


def test_the_reader_sees_every_instrument_with_its_unit_and_values() -> None:
    view = view_of(seeded_ledger())
    latest = LatestView(limits={"c1": "4 MiB"})
    latest.set(view)
    reader = InMemoryMetricReader()
    register_otel(latest, MeterProvider(metric_readers=[reader]))
    metrics = collect(reader)
    assert set(metrics) == {name for name, *_ in INSTRUMENTS}
    for name, kind, unit, _, _ in INSTRUMENTS:
        assert metrics[name].unit == unit
        assert name.startswith("memactor.")
        assert name == name.lower()
        data: Any = metrics[name].data
        if kind == "counter":
            assert data.is_monotonic
        elif kind == "updown":
            assert not data.is_monotonic
    usage = metrics["memactor.memory.usage"]
    for stats in view.components:
        where = attrs(stats.component, stats.device)
        assert (
            point(usage, **where, **{"memactor.memory.state": "reserved"}) == stats.bytes_reserved
        )
        assert point(usage, **where, **{"memactor.memory.state": "in_use"}) == stats.bytes_in_use
        peak = metrics["memactor.memory.peak"]
        assert (
            point(peak, **where, **{"memactor.memory.state": "in_use"}) == stats.peak_bytes_in_use
        )
        assert point(metrics["memactor.allocations"], **where) == stats.allocations
        assert point(metrics["memactor.pool.hits"], **where) == stats.acquires
        assert point(metrics["memactor.memory.blocks"], **where) == stats.live_blocks
    c0 = view.component("c0")
    assert c0.bytes_in_use < c0.bytes_reserved
    assert point(metrics["memactor.memory.limit"], **attrs("c1", "cpu")) == 4 * 2**20
    assert len(metrics["memactor.memory.limit"].data.data_points) == 1
    (cpu,) = view.process
    unattributed = metrics["memactor.memory.unattributed"]
    assert point(unattributed, **{"memactor.device": "cpu"}) == cpu.unattributed_bytes
    process = metrics["memactor.process.memory.usage"]
    assert point(process, **{"memactor.device": "cpu"}) == cpu.process_bytes
    route: Mapping[str, str] = {
        "memactor.transfer.source": "cpu",
        "memactor.transfer.destination": "cuda:0",
    }
    assert point(metrics["memactor.transfer.io"], **route) == 8 * 2**20
    assert point(metrics["memactor.transfer.duration"], **route) == 0.004
    assert point(metrics["memactor.transfer.timed.io"], **route) == 8 * 2**20
    assert point(metrics["memactor.events"]) == view.totals.events_applied
    assert point(metrics["memactor.events.dropped"]) == 3
    anomalies = metrics["memactor.anomalies"]
    assert point(anomalies, **attrs("c0", "cpu", **{"memactor.anomaly": "unknown_block"})) == 1


async def test_export_otel_follows_a_running_system(autojump_clock: trio.abc.Clock) -> None:
    reader = InMemoryMetricReader()
    async with memactor.open_system() as system:
        reporter = system.reporter("pool", owner="decode")
        async with export_otel(system, MeterProvider(metric_readers=[reader]), rate_hz=10):
            first = collect(reader)
            assert "memactor.memory.usage" not in first  # no component yet
            assert point(first["memactor.events"]) == 0
            reporter.alloc(1, 4096)
            reporter.alloc(2, 1024)
            reporter.release(2, 1024)
            await trio.sleep(1)  # ten views later
            usage = collect(reader)["memactor.memory.usage"]
            state = "memactor.memory.state"
            assert point(usage, **attrs("pool", "cpu", **{state: "reserved"})) == 5120
            assert point(usage, **attrs("pool", "cpu", **{state: "in_use"})) == 4096
            assert system.ledger.component("pool").bytes_in_use == 4096
