"""OpenTelemetry: observable instruments that read the metrics actor's latest view.

Only ``opentelemetry-api`` is needed: the instruments are registered on the
``MeterProvider`` you pass (the SDK's, or any other), and its readers call them when they
collect. Names follow the semantic conventions' style, in the shape of
``jvm.memory.used`` and ``jvm.memory.committed``: ``memactor.memory.usage`` with a
``memactor.memory.state`` attribute (``in_use`` or ``reserved``), units in UCUM
(``By``, ``{event}``) and never in the name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Final

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .._version import __version__
from ..actors import MemorySystem
from ..metrics import Snapshot
from ._views import DEFAULT_EXPORT_HZ, LatestView, SourceView, ViewSource, follow_views

COMPONENT: Final = "memactor.component"
DEVICE: Final = "memactor.device"
STATE: Final = "memactor.memory.state"
METER_NAME: Final = "memactor"

Attributes = dict[str, str]
Reading = Callable[[SourceView, Attributes], Iterable[tuple[float, Attributes]]]


def _component(stats_component: str, device: str, base: Attributes) -> Attributes:
    return {**base, COMPONENT: stats_component, DEVICE: device}


def _usage(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
    for s in source.view.components:
        where = _component(s.component, s.device, base)
        yield s.bytes_reserved, {**where, STATE: "reserved"}
        yield s.bytes_in_use, {**where, STATE: "in_use"}


def _peak(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
    for s in source.view.components:
        where = _component(s.component, s.device, base)
        yield s.peak_bytes_reserved, {**where, STATE: "reserved"}
        yield s.peak_bytes_in_use, {**where, STATE: "in_use"}


def _limit(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
    limits = dict(source.limits)
    for s in source.view.components:
        if s.component in limits:
            yield limits[s.component], _component(s.component, s.device, base)


def _per_component(field: str) -> Reading:
    def read(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
        for s in source.view.components:
            yield getattr(s, field), _component(s.component, s.device, base)

    return read


def _anomalies(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
    for s in source.view.components:
        for kind, count in s.anomalies:
            yield count, {**_component(s.component, s.device, base), "memactor.anomaly": kind}


def _per_device(field: str) -> Reading:
    def read(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
        for p in source.view.process:
            yield getattr(p, field), {**base, DEVICE: p.device}

    return read


def _transfers(index: int) -> Reading:
    def read(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
        for route in source.view.transfers:
            where = {**base, "memactor.transfer.source": route[0]}
            yield int(route[index]), {**where, "memactor.transfer.destination": route[1]}

    return read


def _timings(field: str, scale: float = 1.0) -> Reading:
    def read(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
        for timing in source.view.transfer_timings:
            where = {**base, "memactor.transfer.source": timing.src}
            yield (
                getattr(timing, field) * scale,
                {
                    **where,
                    "memactor.transfer.destination": timing.dst,
                },
            )

    return read


def _total(read_total: Callable[[Snapshot], int]) -> Reading:
    def read(source: SourceView, base: Attributes) -> Iterable[tuple[float, Attributes]]:
        yield read_total(source.view), dict(base)

    return read


# (name, kind, unit, description, reading); kind: "updown", "gauge" or "counter".
INSTRUMENTS: Final[tuple[tuple[str, str, str, str, Reading], ...]] = (
    ("memactor.memory.usage", "updown", "By",
     "Memory per component and device: reserved (held from the system) or in_use (lent "
     "out); in_use is part of reserved.", _usage),
    ("memactor.memory.peak", "gauge", "By",
     "The highest memactor.memory.usage of each component, device and state.", _peak),
    ("memactor.memory.limit", "updown", "By",
     "The most a component may reserve, where a limit is known.", _limit),
    ("memactor.memory.blocks", "updown", "{block}", "Blocks a component holds now.",
     _per_component("live_blocks")),
    ("memactor.process.memory.usage", "updown", "By",
     "What the process held on a device when last sampled (USS, else RSS, on cpu).",
     _per_device("process_bytes")),
    ("memactor.memory.unattributed", "updown", "By",
     "Process memory that no component reported: process minus reserved.",
     _per_device("unattributed_bytes")),
    ("memactor.allocations", "counter", "{allocation}", "New blocks taken from the system.",
     _per_component("allocations")),
    ("memactor.frees", "counter", "{free}", "Blocks given back to the system.",
     _per_component("frees")),
    ("memactor.pool.hits", "counter", "{hit}", "Cached blocks lent out again.",
     _per_component("acquires")),
    ("memactor.anomalies", "counter", "{event}", "Events the ledger could not apply as sent.",
     _anomalies),
    ("memactor.transfers", "counter", "{transfer}", "Copies between devices.", _transfers(2)),
    ("memactor.transfer.io", "counter", "By", "Bytes copied between devices.", _transfers(3)),
    ("memactor.transfer.duration", "counter", "s",
     "Time the timed copies between devices took.", _timings("duration_ns", 1e-9)),
    ("memactor.transfer.timed.io", "counter", "By",
     "Bytes of the timed copies: over memactor.transfer.duration, the bandwidth.",
     _timings("bytes")),
    ("memactor.events", "counter", "{event}", "Memory events the ledger took in.",
     _total(lambda v: v.totals.events_applied)),
    ("memactor.events.dropped", "counter", "{event}",
     "Memory events lost before the ledger.", _total(lambda v: v.totals.events_dropped)),
)  # fmt: skip


def _callback(
    source: ViewSource, reading: Reading
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        observations: list[Observation] = []
        for view in source.views():
            base = dict(view.labels)
            observations.extend(Observation(value, attrs) for value, attrs in reading(view, base))
        return observations

    return observe


def register_otel(source: ViewSource, meter_provider: MeterProvider) -> None:
    """Register memactor's observable instruments (see :data:`INSTRUMENTS`) on a meter
    named ``"memactor"`` of *meter_provider*; each reads *source*'s latest views when a
    reader collects, never waiting. A source's labels (``host``, ``process`` in cluster
    mode) become attributes of its observations. Instruments cannot be unregistered:
    once the source stops changing, they keep reporting its last view."""
    meter = meter_provider.get_meter(METER_NAME, __version__)
    for name, kind, unit, description, reading in INSTRUMENTS:
        callbacks = [_callback(source, reading)]
        if kind == "counter":
            meter.create_observable_counter(name, callbacks, unit, description)
        elif kind == "gauge":
            meter.create_observable_gauge(name, callbacks, unit, description)
        else:
            meter.create_observable_up_down_counter(name, callbacks, unit, description)


@asynccontextmanager
async def export_otel(
    system: MemorySystem,
    meter_provider: MeterProvider,
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    limits: Mapping[str, int | str] | None = None,
) -> AsyncIterator[LatestView]:
    """Register memactor's instruments on *meter_provider* and keep them fed from
    *system*'s metrics actor (*rate_hz* views a second) while the block runs.

    *limits* (component name to size) feed ``memactor.memory.limit``. Raises
    ``ValueError`` for a bad rate or limit. After the block (also on cancellation) the
    instruments report the last view they had.
    """
    async with follow_views(system, rate_hz=rate_hz, limits=limits) as latest:
        register_otel(latest, meter_provider)
        yield latest
