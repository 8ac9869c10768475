#!/usr/bin/env python3
"""Benchmark what the live view costs: CPU share of one core, and view-to-screen delay.

Measured side by side in one run, headless (``run_test``), on a 120 x 40 screen:

1. an idle app with no feed (the baseline: what Textual itself costs);
2. the app fed views of a real Ledger with 50 components, every one changing every tick,
   at 10 Hz, through the trio guest feed, as ``memactor top`` and ``tui.run`` feed it;
   then the same with the chart redrawn at 4 Hz instead of its default 2 Hz (plotext is
   the costliest widget);
3. the components table alone, its rows replaced at 10 Hz: the live view's light table
   beside Textual's DataTable, which is why the view has a table of its own.

The views are built before the clock starts, so the figures are the TUI's alone. The
view-to-screen delay runs from each view's ``received_ns`` (set when the feed posts it)
to the end of the screen refresh that drew it.

4. the whole way from an event to the screen, in process (``tui.run``'s feed): a task
   emits one allocation every 0.37 s through a real reporter; the delay runs from the
   emit to the end of the first refresh that shows it. It spans the reporter's flush
   interval (50 ms), the metrics actor's sampling period (100 ms) and the drawing.

Targets: at most 15% of a core, under 250 ms.

Run: ``.venv/bin/python scripts/bench_tui.py [--seconds S] [--components N]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

import trio
from textual.app import App, ComposeResult
from textual.widgets import DataTable

import memactor
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, Snapshot
from memactor.remote import Source, ViewUpdate
from memactor.tui import Dashboard, MemactorApp, Post, pipeline_app
from memactor.tui._app import DEFAULT_CHART_HZ
from memactor.tui._model import COMPONENT_COLUMNS
from memactor.tui._table import RowTable

SIZE = (120, 40)
HZ = 10.0
WARM_S = 1.0


def build_views(components: int, count: int) -> list[Snapshot]:
    """*count* views, 100 ms apart, of a ledger whose *components* all change each tick."""
    clock_ns = [0]
    ledger = Ledger(clock=lambda: clock_ns[0])
    views = []
    for tick in range(count):
        clock_ns[0] += int(1e9 / HZ)
        events = []
        for index in range(components):
            name = f"stage{index:02d}"
            size = 4096 * (index + 1) * (1 + (tick + index) % 5)
            events.append(
                MemoryEvent(EventKind.ALLOC, name, tick, size, owner=name, timestamp_ns=clock_ns[0])
            )
            if tick % 3 and tick:
                old = 4096 * (index + 1) * (1 + (tick - 1 + index) % 5)
                events.append(
                    MemoryEvent(EventKind.FREE, name, tick - 1, old, timestamp_ns=clock_ns[0])
                )
        ledger.apply(events)
        ledger.sample()
        view = ledger.snapshot("live", blocks=False)
        views.append(view if tick == 0 else dataclasses.replace(view, series=()))
    return views


async def measure(app: MemactorApp, seconds: float) -> tuple[float, MemactorApp]:
    """CPU time over wall time while *app* runs, after a warm-up."""
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(WARM_S)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        await pilot.press("q")
    return share, app


def fed_app(views: list[Snapshot], *, chart_hz: float = DEFAULT_CHART_HZ) -> MemactorApp:
    source = Source.this_process(name="bench")

    async def feed(post: Post) -> None:
        period = 1.0 / HZ
        due = trio.current_time()
        for view in views:
            post(ViewUpdate(view, source, received_ns=time.monotonic_ns()))
            due += period
            await trio.sleep_until(due)
        await trio.sleep_forever()

    return MemactorApp(feed, chart_hz=chart_hz)


Rows = list[tuple[str, tuple[str, ...]]]


class TableApp(App[None]):
    """Only the components table, its rows replaced at 10 Hz: the live view's own light
    table, or Textual's DataTable (cleared and refilled, as re-sorted rows need)."""

    def __init__(self, frames: list[Rows], *, data_table: bool) -> None:
        super().__init__()
        self.frames = frames
        self.data_table = data_table
        self.tick = 0

    def compose(self) -> ComposeResult:
        yield DataTable() if self.data_table else RowTable(COMPONENT_COLUMNS)

    def on_mount(self) -> None:
        if self.data_table:
            self.query_one(DataTable).add_columns(*COMPONENT_COLUMNS)
        self.set_interval(1.0 / HZ, self.next_rows)

    def next_rows(self) -> None:
        rows = self.frames[self.tick % len(self.frames)]
        self.tick += 1
        if self.data_table:
            table = self.query_one(DataTable)
            table.clear()
            for key, cells in rows:
                table.add_row(*cells, key=key)
        else:
            self.query_one(RowTable).show(rows)


def table_frames(views: list[Snapshot]) -> list[Rows]:
    """The component rows the live view shows for each view, computed once up front."""
    dashboard = Dashboard()
    source = Source.this_process(name="bench")
    frames = []
    for view in views:
        dashboard.ingest(ViewUpdate(view, source))
        frames.append([("\0".join(row.key), row.cells) for row in dashboard.component_rows()])
    return frames


async def measure_table(app: TableApp, seconds: float) -> float:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(WARM_S)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def event_to_screen(samples: int) -> list[float]:
    """Milliseconds from each emitted allocation to the first refresh that shows it."""
    emitted: dict[int, int] = {}

    async def pipeline(system: memactor.MemorySystem) -> None:
        reporter = system.reporter("probe")
        for block in range(1, samples + 1):
            reporter.alloc(block, 4096)  # the n-th block: n live blocks once it shows
            emitted[block] = time.monotonic_ns()
            await trio.sleep(0.37)  # out of step with the sampling on purpose
        await trio.sleep_forever()

    app = pipeline_app(pipeline, name="bench", sample_hz=HZ)
    delays: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        shown = seen = 0
        while seen < samples:
            await pilot.pause(0.001)
            stats = app.statistics()
            latest = app.dashboard.latest
            if stats.views_shown == shown or latest is None:
                continue
            shown = stats.views_shown
            now = time.monotonic_ns()
            rows = [c for c in latest.view.components if c.component == "probe"]
            blocks = rows[0].live_blocks if rows else 0
            delays.extend((now - emitted[n]) / 1e6 for n in range(seen + 1, blocks + 1))
            seen = max(seen, blocks)
        await pilot.press("q")
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds each")
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--events", type=int, default=30, help="events timed to the screen")
    args = parser.parse_args()

    views = build_views(args.components, int((args.seconds + WARM_S + 2) * HZ))
    idle, _ = asyncio.run(measure(MemactorApp(), args.seconds))
    busy, app = asyncio.run(measure(fed_app(views), args.seconds))
    busy_4hz, _ = asyncio.run(measure(fed_app(views, chart_hz=4.0), args.seconds))
    frames = table_frames(views)
    light = asyncio.run(measure_table(TableApp(frames, data_table=False), args.seconds))
    data_table = asyncio.run(measure_table(TableApp(frames, data_table=True), args.seconds))
    stats = app.statistics()
    mean_ms = stats.total_delay_ns / max(1, stats.views_shown) / 1e6
    print(f"live view, {SIZE[0]}x{SIZE[1]} headless, {args.seconds:g} s measured each:")
    print(f"  idle app, no feed              {idle:7.1%} of a core")
    print(
        f"  {args.components} components at {HZ:g} Hz       {busy:7.1%} of a core   "
        f"{busy - idle:+7.1%} over idle (target <= 15%)"
    )
    print(f"  the same, chart at 4 Hz        {busy_4hz:7.1%} of a core (the default is 2 Hz)")
    print(
        f"  components table alone         {light:7.1%} of a core; Textual's DataTable "
        f"{data_table:.1%}: {data_table / max(light, 1e-9):.1f}x"
    )
    print(
        f"  view to screen                 mean {mean_ms:6.1f} ms, max "
        f"{stats.max_delay_ns / 1e6:6.1f} ms over {stats.views_shown} views (target < 250 ms)"
    )
    delays = sorted(asyncio.run(event_to_screen(args.events)))
    p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
    print(
        f"  event to screen, in process    mean {sum(delays) / len(delays):6.1f} ms, "
        f"p95 {p95:6.1f} ms, max {delays[-1]:6.1f} ms over {len(delays)} events "
        "(target < 250 ms)"
    )


if __name__ == "__main__":
    main()
