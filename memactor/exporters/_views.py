"""Where every exporter reads from: the metrics actor's latest view, never the hot path.

A :class:`LatestView` holds the newest view (a :class:`~memactor.metrics.Snapshot`
without blocks or series) that a subscription to the metrics actor delivered; the
exporters read it when they are scraped or collected, in whatever thread asks. Building
an exposition therefore costs nothing per memory event and never waits for the metrics
actor: it turns one immutable value into text or instruments.

The exporters read views through :class:`ViewSource`, a list of ``(labels, view)`` pairs.
One process is one source with no labels. A cluster aggregator can hand the same
exporters one view per source, labelled ``host`` and ``process``: every sample then
carries its source's labels, and nothing else changes (see :mod:`._cluster`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from .._errors import MemactorError
from ..actors import MemorySystem
from ..events import parse_size
from ..metrics import Snapshot

DEFAULT_EXPORT_HZ: Final = 1.0
"""How often an exporter's view is refreshed by default: once a second, the finest
resolution anyone scrapes at. A view costs the metrics actor what changed since the last."""
RESUBSCRIBE_DELAY_S: Final = 0.1
"""The pause before subscribing again when a subscription ended or could not be made."""


@dataclass(frozen=True, slots=True)
class SourceView:
    """One source's latest view and the labels that tell it from other sources."""

    labels: tuple[tuple[str, str], ...]
    """``(name, value)`` pairs added to every sample of this source; empty for a single
    process, ``(("host", ...), ("process", ...))`` in cluster mode."""
    view: Snapshot
    limits: tuple[tuple[str, int], ...] = ()
    """``(component, bytes)``: the most each named component may reserve, where known."""


class ViewSource(Protocol):
    """What the exporters read: every source's latest view. Called from any thread; it
    must return at once, without waiting on trio."""

    def views(self) -> Sequence[SourceView]:
        """The latest view of every source; all of them carry the same label names."""
        ...


def check_rate(rate_hz: float) -> None:
    """Raise ``ValueError`` unless *rate_hz* is a positive finite number."""
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ValueError(f"rate_hz must be a positive number, got {rate_hz}")


def check_limits(limits: Mapping[str, int | str] | None) -> tuple[tuple[str, int], ...]:
    """``limits`` as sorted ``(component, bytes)`` pairs; sizes may be strings
    (``"256 MiB"``). Raises ``ValueError`` naming the component of a bad size."""
    checked: list[tuple[str, int]] = []
    for component, size in sorted((limits or {}).items()):
        try:
            size_bytes = parse_size(size)
        except (ValueError, TypeError) as error:
            raise ValueError(f"limit of component {component!r}: {error}") from None
        checked.append((component, size_bytes))
    return tuple(checked)


class LatestView:
    """The newest view of one memory system, for exporters to read from any thread.

    Fed by :func:`follow_views` (or by :meth:`set`); reading never blocks and never
    touches the ledger. Before the first view :meth:`views` is empty.
    """

    def __init__(self, *, limits: Mapping[str, int | str] | None = None) -> None:
        self._limits = check_limits(limits)
        self._current: tuple[SourceView, ...] = ()
        self.updates = 0
        """How many views were set so far."""

    def set(self, view: Snapshot) -> None:
        """Make *view* the latest (a single, atomic store: readers see old or new)."""
        self._current = (SourceView((), view, self._limits),)
        self.updates += 1

    @property
    def view(self) -> Snapshot | None:
        """The latest view, or ``None`` before the first."""
        current = self._current
        return current[0].view if current else None

    def views(self) -> Sequence[SourceView]:
        return self._current


async def each_view(
    system: MemorySystem,
    rate_hz: float,
    handle: Callable[[Snapshot], object],
    *,
    buffer: int = 1,
) -> None:
    """Call ``handle(view)`` for every view of *system* at *rate_hz* until cancelled or
    the system closes; *buffer* views may wait for it before one is skipped. A
    subscription outlives restarts of the metrics actor; should it end anyway (or not be
    made), this subscribes again after :data:`RESUBSCRIBE_DELAY_S`. Raises what *handle*
    raises."""
    while not system.closing:
        try:
            views = await system.metrics.subscribe(rate_hz, buffer=buffer, series=False)
        except MemactorError:
            await trio.sleep(RESUBSCRIBE_DELAY_S)  # it is restarting
            continue
        async with views:
            async for view in views:
                handle(view)
        await trio.sleep(RESUBSCRIBE_DELAY_S)


@asynccontextmanager
async def follow_views(
    system: MemorySystem,
    *,
    rate_hz: float = DEFAULT_EXPORT_HZ,
    limits: Mapping[str, int | str] | None = None,
    latest: LatestView | None = None,
) -> AsyncIterator[LatestView]:
    """A :class:`LatestView` of *system*, refreshed *rate_hz* times a second while the
    block runs.

    On entry it asks the metrics actor for a first view, so exporters never start empty.
    *limits* maps component names to the most they may reserve (a
    ``BufferPool(max_reserved=...)``, a ``GpuBufferManager``'s cap), exported where the
    exporter has a place for them. *latest* feeds a view made beforehand (its own limits
    then stand) instead of a new one. Raises ``ValueError`` for a bad rate or limit. On
    leaving (or cancellation) the subscription ends; the last view stays readable.
    """
    check_rate(rate_hz)
    if latest is None:
        latest = LatestView(limits=limits)
    latest.set(await system.metrics.snapshot(blocks=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(each_view, system, rate_hz, latest.set, name="memactor exporter: views")
        try:
            yield latest
        finally:
            nursery.cancel_scope.cancel()
