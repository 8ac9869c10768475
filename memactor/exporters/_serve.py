"""``serve_prometheus(system, address)``: a memory system's figures at ``/metrics``;
``serve_cluster_prometheus(aggregator, address)``: every source's, labelled by source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio
from prometheus_client import CollectorRegistry

from ..actors import MemorySystem
from ..cluster import Aggregator
from ._cluster import ClusterViews, follow_cluster
from ._http import MetricsHttpServer
from ._prometheus import DEFAULT_MAX_OWNERS, MemactorCollector
from ._views import DEFAULT_EXPORT_HZ, LatestView, check_rate, follow_views

Views = TypeVar("Views", LatestView, ClusterViews)


@dataclass(frozen=True, slots=True)
class PrometheusExporter(Generic[Views]):
    """A running Prometheus endpoint; see :func:`serve_prometheus` (whose ``latest`` is a
    :class:`LatestView`) and :func:`serve_cluster_prometheus` (a :class:`ClusterViews`)."""

    address: str
    """``HOST:PORT`` it listens on (the real port when 0 was asked for)."""
    url: str
    """``http://HOST:PORT/metrics``."""
    registry: CollectorRegistry
    """The registry served: memactor's collector only (add your own if you like)."""
    latest: Views


@asynccontextmanager
async def serve_prometheus(
    system: MemorySystem,
    address: str = "127.0.0.1:9464",
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    owner_labels: bool = False,
    max_owners: int = DEFAULT_MAX_OWNERS,
    limits: Mapping[str, int | str] | None = None,
) -> AsyncIterator[PrometheusExporter[LatestView]]:
    """Serve *system*'s figures for Prometheus at ``http://ADDRESS/metrics`` while the
    block runs.

    *address* is ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` or ``PORT`` (no host: loopback;
    port 0: a free one, see :attr:`PrometheusExporter.address`). The figures are the
    metrics actor's latest view, refreshed *rate_hz* times a second (a scrape never
    reaches the metrics actor); *owner_labels*, *max_owners* are
    :class:`MemactorCollector`'s and *limits* :func:`follow_views`'.

    Raises ``ValueError`` for a bad address or option, before anything starts, and
    :class:`OSError` when the address cannot be bound. On leaving, also by an error or
    a cancellation, the server stops (a scrape in flight finishes) and the port is free.
    """
    check_rate(rate_hz)
    registry = CollectorRegistry(auto_describe=True)
    latest = LatestView(limits=limits)
    registry.register(MemactorCollector(latest, owner_labels=owner_labels, max_owners=max_owners))
    async with (
        _serving(registry, address) as server,
        follow_views(system, rate_hz=rate_hz, latest=latest),
    ):
        yield PrometheusExporter(server.address, server.url, registry, latest)


@asynccontextmanager
async def _serving(registry: CollectorRegistry, address: str) -> AsyncIterator[MetricsHttpServer]:
    """*registry* served at *address* while the block runs; bound on entry, before
    anything else starts, so that a port in use raises a plain ``OSError``."""
    server = MetricsHttpServer(registry, address)
    try:
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.close)


@asynccontextmanager
async def serve_cluster_prometheus(
    aggregator: Aggregator,
    address: str = "127.0.0.1:9464",
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    owner_labels: bool = False,
    max_owners: int = DEFAULT_MAX_OWNERS,
) -> AsyncIterator[PrometheusExporter[ClusterViews]]:
    """Serve *aggregator*'s sources for Prometheus at ``http://ADDRESS/metrics`` while
    the block runs: the same families as :func:`~memactor.exporters.serve_prometheus`,
    every sample labelled ``host`` and ``process`` (``NAME:PID``) of its source.

    *address*, *owner_labels* and *max_owners* are as for ``serve_prometheus`` (with
    owner labels on, each source has its own cap); *rate_hz* is how often the views are
    refreshed (:func:`follow_cluster`). Raises ``ValueError`` for a bad address or
    option and ``OSError`` when the address cannot be bound, before anything starts.
    On leaving, also by an error or a cancellation, the server stops and the port is free.
    """
    check_rate(rate_hz)
    registry = CollectorRegistry(auto_describe=True)
    latest = ClusterViews()
    registry.register(MemactorCollector(latest, owner_labels=owner_labels, max_owners=max_owners))
    async with (
        _serving(registry, address) as server,
        follow_cluster(aggregator, rate_hz=rate_hz, latest=latest),
    ):
        yield PrometheusExporter(server.address, server.url, registry, latest)
