"""The Prometheus collector: the metrics actor's latest view as Prometheus metric families.

Names follow Prometheus practice: the ``memactor_`` prefix, base units (``_bytes``,
``_seconds``), ``_total`` on counters, and labels for what varies (component, device,
state). Owners are labels only when asked for, and then at most ``max_owners`` of them:
an owner per request must not become a time series per request. The collector reads a
:class:`~memactor.exporters.ViewSource` when it is collected, so a scrape costs one pass
over the view and nothing per memory event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..metrics import OwnerStats, Snapshot
from ._views import SourceView, ViewSource

DEFAULT_MAX_OWNERS: Final = 100
"""How many owners get a series of their own by default when owner labels are on."""
MAX_OWNERS_CAP: Final = 1000
"""The highest ``max_owners`` allowed: the ledger itself names at most its 1000 biggest
owners (``Ledger(owner_limit=...)``), the rest make one row."""
OTHER_OWNERS: Final = "(other owners)"
"""The owner label of the one series that sums every owner beyond the cap."""

COMPONENT: Final = ("component", "device")


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    kind: str
    """``"gauge"`` or ``"counter"`` (whose exposed name gains ``_total``)."""
    help: str
    labels: tuple[str, ...] = ()


FAMILIES: Final = (
    _Family(
        "memactor_memory_bytes",
        "gauge",
        "Bytes held per component and device: reserved (taken from the system, cached or "
        "lent) or in_use (lent out). in_use is part of reserved: do not add the states.",
        (*COMPONENT, "state"),
    ),
    _Family(
        "memactor_memory_peak_bytes",
        "gauge",
        "The highest memactor_memory_bytes of each component, device and state so far.",
        (*COMPONENT, "state"),
    ),
    _Family(
        "memactor_device_memory_peak_bytes",
        "gauge",
        "The true peak of the sum over every component on a device (not a sum of peaks).",
        ("device", "state"),
    ),
    _Family(
        "memactor_memory_limit_bytes",
        "gauge",
        "The most a component may reserve, where a limit was given to the exporter.",
        COMPONENT,
    ),
    _Family("memactor_live_blocks", "gauge", "Blocks a component holds now.", COMPONENT),
    _Family(
        "memactor_process_memory_bytes",
        "gauge",
        "What the process held on a device when last sampled (USS, else RSS, on cpu).",
        ("device",),
    ),
    _Family(
        "memactor_unattributed_bytes",
        "gauge",
        "Process memory that no component reported: process minus reserved bytes. "
        "Negative while components reserve pages the system has not handed over yet.",
        ("device",),
    ),
    _Family("memactor_allocations", "counter", "New blocks taken from the system.", COMPONENT),
    _Family("memactor_frees", "counter", "Blocks given back to the system.", COMPONENT),
    _Family(
        "memactor_pool_hits", "counter", "Cached blocks lent out again (pool hits).", COMPONENT
    ),
    _Family(
        "memactor_allocated_bytes",
        "counter",
        "Bytes ever allocated: allocation sizes plus the growth of resizes.",
        COMPONENT,
    ),
    _Family(
        "memactor_anomalies",
        "counter",
        "Events the ledger could not apply as sent (double free, unknown block, ...).",
        (*COMPONENT, "kind"),
    ),
    _Family("memactor_transfers", "counter", "Copies between devices.", ("src", "dst")),
    _Family("memactor_transfer_bytes", "counter", "Bytes copied between devices.", ("src", "dst")),
    _Family(
        "memactor_transfer_seconds",
        "counter",
        "Time the timed copies between devices took (a GPU buffer manager's copies).",
        ("src", "dst"),
    ),
    _Family(
        "memactor_transfer_timed_bytes",
        "counter",
        "Bytes of the timed copies: over memactor_transfer_seconds, the bandwidth.",
        ("src", "dst"),
    ),
    _Family("memactor_events", "counter", "Memory events the ledger took in."),
    _Family(
        "memactor_events_dropped",
        "counter",
        "Memory events lost before the ledger (a lossy reporter, a full queue).",
    ),
    _Family(
        "memactor_events_malformed",
        "counter",
        "Memory events too broken to attribute to a component.",
    ),
    _Family(
        "memactor_loop_stalls",
        "counter",
        "Times one task held the event loop longer than the stall threshold.",
    ),
    _Family(
        "memactor_view_timestamp_seconds",
        "gauge",
        "Wall-clock time (Unix seconds) of the view these figures come from.",
    ),
)
OWNER_FAMILIES: Final = (
    _Family(
        "memactor_owner_memory_bytes",
        "gauge",
        "Bytes lent to an owner (actor or task), over every component and device; the "
        f"owners beyond the cap share one series, owner={OTHER_OWNERS!r}.",
        ("owner",),
    ),
    _Family(
        "memactor_owner_memory_peak_bytes",
        "gauge",
        "The highest memactor_owner_memory_bytes of an owner; for the owners beyond the "
        "cap, the highest of theirs.",
        ("owner",),
    ),
)


def check_max_owners(max_owners: int) -> None:
    """Raise ``ValueError`` unless *max_owners* is from 1 to :data:`MAX_OWNERS_CAP`."""
    if not 1 <= max_owners <= MAX_OWNERS_CAP:
        raise ValueError(f"max_owners must be from 1 to {MAX_OWNERS_CAP}, got {max_owners}")


def cap_owners(owners: Iterable[OwnerStats], max_owners: int) -> list[OwnerStats]:
    """The *max_owners* owners holding the most bytes (then the highest peak, then by
    name), plus one :data:`OTHER_OWNERS` row with the exact sum of the rest's bytes in use
    and the highest of their peaks; sorted by owner. At most ``max_owners + 1`` rows."""
    ranked = sorted(owners, key=lambda o: (-o.bytes_in_use, -o.peak_bytes_in_use, o.owner))
    named = [o for o in ranked if o.owner != OTHER_OWNERS]
    rest = [o for o in ranked if o.owner == OTHER_OWNERS] + named[max_owners:]
    kept = sorted(named[:max_owners], key=lambda o: o.owner)
    if rest:
        kept.append(
            OwnerStats(
                OTHER_OWNERS,
                sum(o.bytes_in_use for o in rest),
                max(o.peak_bytes_in_use for o in rest),
            )
        )
    return kept


class _Builder:
    """One collection's metric families, filled source by source."""

    def __init__(self, source_labels: Sequence[str], *, owners: bool) -> None:
        self.families: dict[str, Metric] = {}
        for family in (*FAMILIES, *(OWNER_FAMILIES if owners else ())):
            kind = GaugeMetricFamily if family.kind == "gauge" else CounterMetricFamily
            labels = [*source_labels, *family.labels]
            self.families[family.name] = kind(family.name, family.help, labels=labels)

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        family = self.families[name]
        assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
        family.add_metric(list(labels), value)


def _add_view(builder: _Builder, source: SourceView, *, max_owners: int | None) -> None:
    base = [value for _, value in source.labels]
    view: Snapshot = source.view
    add = builder.add
    limits = dict(source.limits)
    for stats in view.components:
        where = [*base, stats.component, stats.device]
        add("memactor_memory_bytes", [*where, "reserved"], stats.bytes_reserved)
        add("memactor_memory_bytes", [*where, "in_use"], stats.bytes_in_use)
        add("memactor_memory_peak_bytes", [*where, "reserved"], stats.peak_bytes_reserved)
        add("memactor_memory_peak_bytes", [*where, "in_use"], stats.peak_bytes_in_use)
        add("memactor_live_blocks", where, stats.live_blocks)
        add("memactor_allocations", where, stats.allocations)
        add("memactor_frees", where, stats.frees)
        add("memactor_pool_hits", where, stats.acquires)
        add("memactor_allocated_bytes", where, stats.bytes_allocated)
        for kind, count in stats.anomalies:
            add("memactor_anomalies", [*where, kind], count)
        limit = limits.get(stats.component)
        if limit is not None:
            add("memactor_memory_limit_bytes", where, limit)
    for device in view.devices:
        where = [*base, device.device]
        add("memactor_device_memory_peak_bytes", [*where, "reserved"], device.peak_bytes_reserved)
        add("memactor_device_memory_peak_bytes", [*where, "in_use"], device.peak_bytes_in_use)
    for process in view.process:
        add("memactor_process_memory_bytes", [*base, process.device], process.process_bytes)
        add("memactor_unattributed_bytes", [*base, process.device], process.unattributed_bytes)
    for src, dst, transfers, transferred in view.transfers:
        add("memactor_transfers", [*base, src, dst], transfers)
        add("memactor_transfer_bytes", [*base, src, dst], transferred)
    for timing in view.transfer_timings:
        where = [*base, timing.src, timing.dst]
        add("memactor_transfer_seconds", where, timing.duration_ns / 1e9)
        add("memactor_transfer_timed_bytes", where, timing.bytes)
    totals = view.totals
    add("memactor_events", base, totals.events_applied)
    add("memactor_events_dropped", base, totals.events_dropped)
    add("memactor_events_malformed", base, totals.malformed)
    add("memactor_loop_stalls", base, totals.loop_stalls)
    add("memactor_view_timestamp_seconds", base, view.wall_time_ns / 1e9)
    if max_owners is not None:
        for owner in cap_owners(view.owners, max_owners):
            add("memactor_owner_memory_bytes", [*base, owner.owner], owner.bytes_in_use)
            add("memactor_owner_memory_peak_bytes", [*base, owner.owner], owner.peak_bytes_in_use)


class MemactorCollector(Collector):
    """A Prometheus collector of memactor's figures, read from *source* when collected.

    Register it on a ``prometheus_client.CollectorRegistry`` (or let
    :func:`serve_prometheus` do it). With *owner_labels* false (the default) no series
    names an owner; with it true, ``memactor_owner_memory_bytes{owner}`` names the
    *max_owners* owners holding the most bytes and sums the rest under
    ``owner="(other owners)"``, so a run with any number of owners exports at most
    ``max_owners + 1`` owner series. Each source's labels (none for one process;
    ``host`` and ``process`` for a cluster) come first on every sample.

    Raises ``ValueError`` for a *max_owners* outside 1 to :data:`MAX_OWNERS_CAP`.
    Collecting reads the source's latest views and never waits; before any view it
    gives families without samples.
    """

    def __init__(
        self,
        source: ViewSource,
        *,
        owner_labels: bool = False,
        max_owners: int = DEFAULT_MAX_OWNERS,
    ) -> None:
        check_max_owners(max_owners)
        self.source = source
        self.owner_labels = owner_labels
        self.max_owners = max_owners

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets a registry check names without a view."""
        return iter(_Builder((), owners=self.owner_labels).families.values())

    def collect(self) -> Iterator[Metric]:
        """Every family, with one sample per figure of every source's latest view."""
        views = self.source.views()
        names = [name for name, _ in views[0].labels] if views else []
        for source in views:
            if [name for name, _ in source.labels] != names:
                raise ValueError(
                    f"every source must carry the labels {names}, one has {source.labels}"
                )
        builder = _Builder(names, owners=self.owner_labels)
        owners = self.max_owners if self.owner_labels else None
        for source in views:
            _add_view(builder, source, max_owners=owners)
        return iter(builder.families.values())
