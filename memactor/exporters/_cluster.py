"""Cluster mode: an aggregator's sources as the exporters' views, labelled by source.

:func:`follow_cluster` keeps a :class:`ClusterViews` (a
:class:`~memactor.exporters.ViewSource`) of one :class:`~memactor.exporters.SourceView`
per live source of a :class:`~memactor.cluster.Aggregator`: the aggregator's exact copy
of that source's ledger, labelled ``host`` (the source's host) and ``process``
(``NAME:PID``). Every exporter that reads a view source (the Prometheus collector, the
OpenTelemetry instruments) then gives each figure once per source, the source's labels
first. A source that is gone leaves the views at the next refresh, so its series leave
the live gauges (Prometheus marks them stale); its history stays in the aggregator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import trio

from ..cluster import Aggregator
from ..metrics import SourceStats
from ._views import DEFAULT_EXPORT_HZ, SourceView, check_rate

SOURCE_LABELS: Final = ("host", "process")
"""The labels that tell one source's figures from another's, in cluster mode."""


def source_labels(stats: SourceStats) -> tuple[tuple[str, str], ...]:
    """``(("host", HOST), ("process", "NAME:PID"))`` for the source *stats* describes."""
    host, process = SOURCE_LABELS
    return ((host, stats.host), (process, f"{stats.name}:{stats.pid}"))


class ClusterViews:
    """The latest view of every live source of an aggregator, for exporters to read
    from any thread. Fed by :func:`follow_cluster` (or :meth:`set`); reading never
    blocks and never touches the aggregator. Empty until the first refresh and while no
    source is live."""

    def __init__(self) -> None:
        self._current: tuple[SourceView, ...] = ()
        self.updates = 0
        """How many refreshes were made so far."""

    def set(self, aggregator: Aggregator) -> None:
        """Take the views of *aggregator*'s live sources now (from its trio thread) and
        make them the latest in one store: readers see the old set or the new one."""
        self._current = tuple(
            SourceView(source_labels(stats), view) for stats, view in aggregator.live_views()
        )
        self.updates += 1

    def views(self) -> Sequence[SourceView]:
        return self._current


@asynccontextmanager
async def follow_cluster(
    aggregator: Aggregator,
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    latest: ClusterViews | None = None,
) -> AsyncIterator[ClusterViews]:
    """A :class:`ClusterViews` of *aggregator*'s live sources, refreshed *rate_hz* times
    a second while the block runs (the first refresh is made on entry).

    *latest* feeds views made beforehand instead of new ones. Raises ``ValueError`` for
    a bad rate. Each refresh builds one view per live source
    from the aggregator's copies (no blocks): it costs the aggregator that, never a
    scrape. On leaving (or cancellation) refreshing stops; the last views stay readable.
    """
    check_rate(rate_hz)
    if latest is None:
        latest = ClusterViews()
    views = latest
    views.set(aggregator)

    async def refresh() -> None:
        while True:
            await trio.sleep(1 / rate_hz)
            views.set(aggregator)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refresh, name="memactor exporter: cluster views")
        try:
            yield views
        finally:
            nursery.cancel_scope.cancel()
