"""``serve_prometheus(system, address)``: a memory system's figures at ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from prometheus_client import CollectorRegistry

from ..actors import MemorySystem
from ._http import MetricsHttpServer
from ._prometheus import DEFAULT_MAX_OWNERS, MemactorCollector
from ._views import DEFAULT_EXPORT_HZ, LatestView, check_rate, follow_views


@dataclass(frozen=True, slots=True)
class PrometheusExporter:
    """A running Prometheus endpoint; see :func:`serve_prometheus`."""

    address: str
    """``HOST:PORT`` it listens on (the real port when 0 was asked for)."""
    url: str
    """``http://HOST:PORT/metrics``."""
    registry: CollectorRegistry
    """The registry served: memactor's collector only (add your own if you like)."""
    latest: LatestView


@asynccontextmanager
async def serve_prometheus(
    system: MemorySystem,
    address: str = "127.0.0.1:9464",
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    owner_labels: bool = False,
    max_owners: int = DEFAULT_MAX_OWNERS,
    limits: Mapping[str, int | str] | None = None,
) -> AsyncIterator[PrometheusExporter]:
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
    # Bound before anything starts, so that a port in use raises a plain OSError.
    server = MetricsHttpServer(registry, address)
    try:
        async with follow_views(system, rate_hz=rate_hz, latest=latest):
            yield PrometheusExporter(server.address, server.url, registry, latest)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.close)
