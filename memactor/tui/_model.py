"""What the TUI shows, computed from the feed: pure aggregation, no Textual.

:class:`Dashboard` takes every feed item in order and answers what each panel shows:
the header's facts, the chart's lines, the component and owner rows, the leak report
(:func:`memactor.metrics.leak_report` of the latest view over the viewer's history), the
tail of notable events. The widgets only lay these out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..events import format_size
from ..metrics import (
    TOTAL,
    ComponentSeries,
    LeakReport,
    Limit,
    Snapshot,
    TrendConfig,
    VerdictConfig,
    leak_report,
)
from ..remote import ConnectionLost, Source, ViewUpdate
from ._bridge import FeedItem, FeedNote
from ._history import DEFAULT_HISTORY_POINTS, TOTAL_KEY, History, Key, RateMeter, device_key
from ._notable import DEFAULT_EVENTS_KEPT, EventTail, derive_events
from ._ticks import binary_unit

SPARK_POINTS = 16
SPARK_BARS = "▁▂▃▄▅▆▇█"
LEAK_REFRESH_NS = 1_000_000_000
UNATTRIBUTED = "(unattributed)"
"""The component table's row name for memory the process holds that nobody reported."""
CHART_WINDOW_NS = 60_000_000_000
"""The chart's widest window; until a run is that long, the window is the run so far."""
CHART_MIN_WINDOW_NS = 1_000_000_000
RATE_WINDOW_NS = 5_000_000_000
"""Rates (events/s, allocs/s) are counted over the last five seconds of views, so that
bursty batches do not make them jump from view to view."""

Limits = Sequence[Limit] | Callable[[], Sequence[Limit]]
"""The known limits the Leaks view projects growth to: fixed, or asked for at each
judgement (a pool's cap may change as pools come and go)."""

ConnectionState = Literal["waiting", "connected", "disconnected", "finished", "failed", "stopping"]


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the feed stands, in words for the header."""

    state: ConnectionState
    detail: str = ""

    def describe(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


@dataclass(frozen=True, slots=True)
class ComponentRow:
    """One line of the component table (strings ready to show; ``key`` identifies it)."""

    key: Key
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChartLine:
    label: str
    seconds: tuple[float, ...]
    """Seconds before the latest view (zero or negative)."""
    values: tuple[float, ...]
    """In :attr:`ChartData.unit`."""


@dataclass(frozen=True, slots=True)
class ChartData:
    """The chart's lines over the last ``window_s`` seconds, in one binary unit."""

    unit: str
    window_s: float
    """The run so far, until it reaches the widest window (a minute)."""
    lines: tuple[ChartLine, ...]
    largest_bytes: int = 0
    """The largest value of any line, in bytes (for the axis's ticks)."""


COMPONENT_COLUMNS = (
    "component", "device", "reserved", "in use", "peak in use", "blocks",
    "hit rate", "allocs/s", "last 16 views",
)  # fmt: skip
COMPONENT_HIDE_FIRST = (7, 6, 5, 4)
"""Columns a narrow table leaves out, first to last: allocs/s, hit rate, blocks, peak."""
OWNER_COLUMNS = ("owner", "in use", "peak in use")


def format_uptime(ns: int) -> str:
    """``"0:01:23"``: hours, minutes, seconds (whole seconds, rounded down)."""
    seconds = max(0, ns) // 1_000_000_000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_rate(per_s: float | None, what: str = "") -> str:
    """``"1,234/s"`` or ``"1,234 events/s"``, rounded to a whole number; ``"-"`` if unknown."""
    unit = f" {what}/s" if what else "/s"
    return "-" if per_s is None else f"{per_s:,.0f}{unit}"


def sparkline(values: list[int]) -> str:
    """Bars scaled from zero to the largest of *values* (all blank when all are zero)."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    last = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[(v * last) // top] if v > 0 else " " for v in values)


def chart_unit(largest: int) -> tuple[str, int]:
    """The largest binary unit that *largest* bytes come to at least one of."""
    return binary_unit(largest)


def matches(component: str, text: str) -> bool:
    """Whether the filter *text* (a case-insensitive substring; "" is all) picks *component*."""
    return not text or text.casefold() in component.casefold()


class Dashboard:
    """Everything the TUI knows, built from the feed items in order."""

    def __init__(
        self,
        *,
        history_points: int = DEFAULT_HISTORY_POINTS,
        events_kept: int = DEFAULT_EVENTS_KEPT,
        trend: TrendConfig | None = None,
        verdict: VerdictConfig | None = None,
        limits: Limits = (),
    ) -> None:
        self.history = History(max_points=history_points)
        self.events = EventTail(kept=events_kept)
        self.trend = trend or TrendConfig()
        """The line fit whose slope and R² each leak verdict reports."""
        self.verdict = verdict or VerdictConfig()
        """The thresholds of the leak verdicts (see :func:`memactor.metrics.judge_leaks`)."""
        self.limits = limits
        """The known limits (a pool's ``max_reserved``) the Leaks view projects to."""
        self.latest: ViewUpdate | None = None
        self.connection = Connection("waiting", "no view yet")
        self.views_received = 0
        self.views_missed = 0
        self._events_rate = RateMeter(window_ns=RATE_WINDOW_NS)
        self._alloc_rates: dict[Key, RateMeter] = {}
        self._gap = True
        self._report: LeakReport | None = None
        self._report_at: int | None = None

    # -- taking items ------------------------------------------------------------------

    @property
    def source(self) -> Source | None:
        return self.latest.source if self.latest else None

    @property
    def view(self) -> Snapshot | None:
        return self.latest.view if self.latest else None

    def uptime_ns(self) -> int | None:
        """The watched process's uptime at the latest view (from view times only)."""
        latest = self.latest
        if latest is None:
            return None
        return latest.view.wall_time_ns - latest.source.started_wall_ns

    def note(self, kind: Literal["snapshot", "note", "connection"], text: str) -> None:
        """Add a line of the viewer's own to the events tail."""
        self.events.add(self.uptime_ns(), kind, text)

    def ingest(self, item: FeedItem) -> None:
        """Take one feed item."""
        if isinstance(item, ViewUpdate):
            self._take_view(item)
        elif isinstance(item, ConnectionLost):
            if self.connection.state != "disconnected":
                self.note("connection", f"connection lost: {item.reason}")
            self.connection = Connection(
                "disconnected",
                f"{item.reason}, retrying in {item.retry_in_s:.1f} s (attempt {item.attempt})",
            )
            self._gap = True
        elif isinstance(item, FeedNote):
            self.note("note", item.text)
        else:  # pragma: no cover - the type says it cannot happen
            raise TypeError(f"not a feed item: {item!r}")

    def finish(self, error: BaseException | None) -> None:
        """The feed ended, by returning (*error* None) or by raising *error*."""
        if error is None:
            self.connection = Connection("finished", "no more views; q quits")
            self.note("connection", "no more views: the last one stays on screen")
        else:
            self.connection = Connection("failed", f"{type(error).__name__}: {error}; q quits")
            self.note("connection", f"stopped by {type(error).__name__}: {error}")

    def _take_view(self, update: ViewUpdate) -> None:
        previous = self.latest
        view = update.view
        changed_source = previous is not None and previous.source != update.source
        if changed_source:
            self.history.clear()
            self._events_rate.clear()
            self._alloc_rates.clear()
            self._report_at = None
        before = None if previous is None or changed_source else previous.view
        self.latest = update
        self.views_received += 1
        self.views_missed += update.missed
        if self.connection.state == "disconnected":
            self.note("connection", "connection restored")
        self.connection = Connection("connected")
        self.history.add_view(view, backfill=self._gap or changed_source)
        self._gap = False
        now = view.monotonic_ns
        self._events_rate.add(now, view.totals.events_applied)
        for stats in view.components:
            key = (stats.component, stats.device)
            meter = self._alloc_rates.get(key)
            if meter is None:
                meter = self._alloc_rates[key] = RateMeter(window_ns=RATE_WINDOW_NS)
            meter.add(now, stats.allocations)
        uptime = self.uptime_ns()
        for kind, text in derive_events(before, view, missed=update.missed):
            self.events.add(uptime, kind, text)

    # -- what the panels show ----------------------------------------------------------

    def events_per_s(self) -> float | None:
        return self._events_rate.rate()

    def header_lines(self) -> tuple[str, str, str]:
        """The header's three lines: who and how, memory per device, counters (each the
        :meth:`header_parts` of its line joined by ``" · "``)."""
        first, second, third = self.header_parts()
        return (" · ".join(first), " · ".join(second), " · ".join(third))

    def header_parts(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """The header's three lines as parts: a narrow header breaks a line between
        parts, never inside one."""
        latest = self.latest
        if latest is None:
            # Until a view comes, only a connection problem is news ("cannot connect ...").
            trouble = self.connection.state != "waiting"
            return (
                ("waiting for the first view",),
                (self.connection.describe(),) if trouble else (),
                (),
            )
        source, view, totals = latest.source, latest.view, latest.view.totals
        where = f"pid {source.pid} on {source.host}"
        if source.address:
            where += f" at {source.address}"
        uptime = format_uptime(self.uptime_ns() or 0)
        first = (self.connection.describe(), f"{source.name} ({where})", f"up {uptime}")
        held = [
            f"{d.device} {format_size(d.bytes_in_use)} / {format_size(d.bytes_reserved)}"
            for d in view.devices
        ]
        second = (
            f"in use / reserved: {held[0]}" if held else "no memory held yet",
            *held[1:],
            f"true peak {format_size(totals.peak_bytes_in_use)} / "
            f"{format_size(totals.peak_bytes_reserved)}",
        )
        # Process figures only where the process was sampled (a feed may carry none).
        third = [
            f"{p.device} process {format_size(p.process_bytes)}, "
            f"unattributed {format_size(p.unattributed_bytes, signed=True)}"
            for p in view.process
        ]
        # Each direction's copy bandwidth, where copies were timed (a GPU buffer manager's).
        third += [
            f"{t.src}->{t.dst} {format_size(round(t.bytes_per_s))}/s"
            for t in view.transfer_timings
            if t.bytes_per_s is not None
        ]
        drops = totals.events_dropped + self.views_missed
        third += [
            format_rate(self.events_per_s(), "events"),
            f"drops {drops:,} ({totals.events_dropped:,} events, {self.views_missed:,} views)"
            if drops
            else "drops 0",
            f"anomalies {totals.anomalies:,}",
        ]
        if totals.loop_stalls:
            task = totals.longest_stall_task.rsplit(".", 1)[-1]
            third.append(
                f"stalls {totals.loop_stalls:,} (longest {totals.longest_stall_ns / 1e9:.2f} s"
                f" in {task})"
            )
        return (first, second, tuple(third))

    def component_rows(self, text: str = "") -> tuple[ComponentRow, ...]:
        """Components that held memory or saw anomalies, biggest in use first; then, per
        device where the process was sampled, an ``"(unattributed)"`` row whose reserved
        cell is the memory outside memactor (process minus reported reserved)."""
        view = self.view
        if view is None:
            return ()
        chosen = [
            c
            for c in view.components
            if (c.peak_bytes_reserved or c.anomalies) and matches(c.component, text)
        ]
        chosen.sort(key=lambda c: (-c.bytes_in_use, -c.bytes_reserved, c.component, c.device))
        rows = []
        for c in chosen:
            key = (c.component, c.device)
            # A hit rate means something only for a component that caches (a pool).
            lendings = c.acquires + c.allocations if c.releases or c.acquires else 0
            meter = self._alloc_rates.get(key)
            cells = (
                c.component,
                c.device,
                format_size(c.bytes_reserved),
                format_size(c.bytes_in_use),
                format_size(c.peak_bytes_in_use),
                f"{c.live_blocks:,}",
                f"{c.acquires / lendings:.1%}" if lendings else "-",
                format_rate(meter.rate() if meter else None),
                sparkline(self.history.recent_in_use(key, SPARK_POINTS)),
            )
            rows.append(ComponentRow(key, cells))
        if matches(UNATTRIBUTED, text):
            rows += [
                ComponentRow(
                    (UNATTRIBUTED, p.device),
                    (UNATTRIBUTED, p.device, format_size(p.unattributed_bytes, signed=True))
                    + ("-",) * (len(COMPONENT_COLUMNS) - 4)
                    + ("",),
                )
                for p in view.process
            ]
        return tuple(rows)

    def owner_rows(self) -> tuple[tuple[str, ...], ...]:
        """Owners by bytes in use, then by peak."""
        view = self.view
        if view is None:
            return ()
        owners = sorted(view.owners, key=lambda o: (-o.bytes_in_use, -o.peak_bytes_in_use, o.owner))
        return tuple(
            (o.owner or "(none)", format_size(o.bytes_in_use), format_size(o.peak_bytes_in_use))
            for o in owners
        )

    def history_s(self) -> float:
        """The span of the total's history, in seconds (what the leak verdicts judge)."""
        points = self.history.points(TOTAL_KEY)
        return (points[-1][0] - points[0][0]) / 1e9 if len(points) > 1 else 0.0

    def leak_report(self) -> LeakReport | None:
        """The leak report (verdicts, projections to :attr:`limits`, fragmentation,
        recommendations) of the latest view, its series the viewer's own history; judged
        at most once a second of view time (the verdicts cut every series into windows)."""
        view = self.view
        if view is None:
            return None
        now = view.monotonic_ns
        if self._report_at is not None and 0 <= now - self._report_at < LEAK_REFRESH_NS:
            return self._report
        history = self.history
        series = tuple(
            ComponentSeries(component, device, history.series_view((component, device)))
            for component, device in sorted(history.keys())
            if (component == TOTAL) == (device == TOTAL)  # components and the total
        )
        limits = self.limits() if callable(self.limits) else self.limits
        self._report = leak_report(
            dataclasses.replace(view, series=series),
            limits,
            verdict=self.verdict,
            trend=self.trend,
        )
        self._report_at = now
        return self._report

    def event_rows(self) -> tuple[tuple[str, str, str], ...]:
        """The events tail, newest first: ``(uptime, kind, text)``."""
        return tuple(
            (
                format_uptime(e.uptime_ns) if e.uptime_ns is not None else "-:--:--",
                e.kind,
                e.text,
            )
            for e in reversed(self.events)
        )

    def chart(self, *, window_ns: int = CHART_WINDOW_NS) -> ChartData | None:
        """In use and reserved, total and per device, over the run so far or the last
        *window_ns*, whichever is shorter (at least a second)."""
        view = self.view
        if view is None:
            return None
        now = view.monotonic_ns
        total = self.history.points(TOTAL_KEY)
        span = now - total[0][0] if total else 0
        window_ns = min(window_ns, max(span, CHART_MIN_WINDOW_NS))
        start = now - window_ns
        wanted: list[tuple[str, Key, int]] = [
            ("in use", TOTAL_KEY, 2),
            ("reserved", TOTAL_KEY, 1),
        ]
        if len(view.devices) > 1:
            wanted += [(f"{d.device} in use", device_key(d.device), 2) for d in view.devices]
        picked = [(label, self.history.since(key, start), column) for label, key, column in wanted]
        largest = max((p[column] for _, points, column in picked for p in points), default=0)
        unit, scale = chart_unit(largest)
        lines = tuple(
            ChartLine(
                label,
                tuple((p[0] - now) / 1e9 for p in points),
                tuple(p[column] / scale for p in points),
            )
            for label, points, column in picked
        )
        return ChartData(unit, window_ns / 1e9, lines, largest)
