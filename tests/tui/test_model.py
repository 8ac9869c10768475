"""The TUI's pure aggregation: history, rates, notable events and the rows it shows."""

from __future__ import annotations

import dataclasses

import pytest

from memactor.events import DURATION_TAG, EventKind, MemoryEvent, format_size
from memactor.metrics import TOTAL
from memactor.remote import ConnectionLost, Source, ViewUpdate
from memactor.tui import Dashboard, FeedNote
from memactor.tui._history import TOTAL_KEY, History, RateMeter, device_key
from memactor.tui._model import (
    COMPONENT_COLUMNS,
    chart_unit,
    format_uptime,
    sparkline,
)
from memactor.tui._notable import EventTail, derive_events
from memactor.tui._ticks import byte_ticks, nice_step, seconds_ticks

from .feeds import KIB, MIB, SOURCE, STEP_NS, Pipeline, updates


def test_history_backfills_from_the_first_view_then_accumulates() -> None:
    pipeline = Pipeline()
    for _ in range(5):
        pipeline.clock.now_ns += STEP_NS
        pipeline.step()
    history = History()
    first = pipeline.view()  # five samples in its series, the last at the view's time
    history.add_view(first, backfill=True)
    # Four samples older than the view, then the view's own point.
    assert len(history.points(TOTAL_KEY)) == 5
    assert len(history.points(("enrich", "cpu"))) == 5
    assert history.points(TOTAL_KEY)[-1][0] == first.monotonic_ns
    # Views without series add one point each, and a repeated view adds nothing.
    pipeline.clock.now_ns += STEP_NS
    pipeline.step()
    second = pipeline.view(series=False)
    history.add_view(second, backfill=False)
    history.add_view(second, backfill=False)
    assert len(history.points(TOTAL_KEY)) == 6
    assert history.recent_in_use(("enrich", "cpu"), 3) == [64 * KIB, 80 * KIB, 96 * KIB]
    assert [p[0] for p in history.since(TOTAL_KEY, second.monotonic_ns - STEP_NS)] == [
        second.monotonic_ns - STEP_NS,
        second.monotonic_ns,
    ]
    # Two devices: each device's own history starts with the views.
    assert len(history.points(device_key("cuda:0"))) == 2
    series = history.series_view(("enrich", "cpu"))
    assert series.bytes_in_use.tolist()[-1] == 96 * KIB


def test_series_views_follow_the_history_as_points_come_and_fall_off() -> None:
    history = History(max_points=5)
    pipeline = Pipeline()
    key = ("enrich", "cpu")

    def expected() -> list[list[int]]:
        return [list(point) for point in history.points(key)]

    for count in (1, 2, 3, 9):  # the last runs past max_points: the oldest fall off
        for _ in range(count):
            pipeline.advance()
            history.add_view(pipeline.view(series=False), backfill=False)
        series = history.series_view(key)
        got = [
            list(row)
            for row in zip(
                series.times_ns.tolist(),
                series.bytes_reserved.tolist(),
                series.bytes_in_use.tolist(),
                strict=True,
            )
        ]
        assert got == expected()
    assert len(history.series_view(key)) == 5
    history.clear()
    assert len(history.series_view(key)) == 0
    pipeline.advance()
    history.add_view(pipeline.view(series=False), backfill=False)
    assert len(history.series_view(key)) == 1


def test_history_is_bounded() -> None:
    history = History(max_points=4)
    for update in updates(10):
        history.add_view(update.view, backfill=False)
    assert [p[0] for p in history.points(TOTAL_KEY)] == [
        update.view.monotonic_ns for update in updates(10)[-4:]
    ]
    with pytest.raises(ValueError, match=r"^max_points must be at least 2"):
        History(max_points=1)


def test_rate_meter_spans_a_window_and_restarts_when_a_counter_goes_back() -> None:
    meter = RateMeter(window_ns=1_000_000_000)
    assert meter.rate() is None
    for tick in range(30):
        meter.add(tick * STEP_NS, tick * 50)
    assert meter.rate() == pytest.approx(500.0)
    meter.add(30 * STEP_NS, 3)  # a new process: its counter started over
    assert meter.rate() is None


def test_derive_events_names_what_changed() -> None:
    pipeline = Pipeline(leak=False)
    pipeline.clock.now_ns += STEP_NS
    pipeline.step()
    before = pipeline.view()
    assert derive_events(None, before) == []
    pipeline.leak = True
    for _ in range(30):
        pipeline.clock.now_ns += STEP_NS
        pipeline.step()
    after = dataclasses.replace(
        pipeline.view(),
        totals=dataclasses.replace(pipeline.view().totals, events_dropped=7),
        components=tuple(c for c in pipeline.view().components if c.component != "gpu"),
    )
    assert derive_events(before, after, missed=2) == [
        ("appeared", "enrich@cpu appeared (480 KiB in use)"),
        ("vanished", "gpu@cuda:0 vanished"),
        ("anomaly", "decode.chunks@cpu: +1 double_free (now 1)"),
        ("drops", "7 events dropped upstream"),
        ("drops", "2 views missed (the viewer fell behind)"),
    ]


def test_event_tail_folds_a_climbing_peak_into_one_line() -> None:
    tail = EventTail(kept=3)
    tail.add(1, "peak", "new true peak: 1 MiB in use")
    tail.add(2, "peak", "new true peak: 2 MiB in use")
    assert [e.text for e in tail] == ["new true peak: 2 MiB in use"]
    for n in range(4):
        tail.add(3 + n, "note", f"note {n}")
    assert [e.text for e in reversed(tail)] == ["note 3", "note 2", "note 1"]


def test_dashboard_rows_and_header() -> None:
    dashboard = Dashboard()
    for update in updates(80):
        dashboard.ingest(update)
    first, second, third = dashboard.header_lines()
    assert first == "connected · demo-pipeline (pid 4242 on testhost) · up 0:00:09"
    assert second == (
        "in use / reserved: cpu 2.3 MiB / 5.3 MiB · cuda:0 0 B / 0 B · true peak 4 MiB / 5.8 MiB"
    )
    assert third == "70 events/s · drops 0 · anomalies 1"
    rows = dashboard.component_rows()
    assert [row.key for row in rows] == [
        ("enrich", "cpu"),
        ("pool", "cpu"),
        ("decode.chunks", "cpu"),
        ("gpu", "cuda:0"),
    ]
    assert rows[1].cells[:8] == (
        "pool", "cpu", "4 MiB", "1 MiB", "4 MiB", "4", "95.2%", "0/s",
    )  # fmt: skip
    assert rows[0].cells[8] == "▆▆▆▆▇▇▇▇▇▇▇▇▇▇▇█"
    assert [row.key for row in dashboard.component_rows("PO")] == [("pool", "cpu")]
    assert dashboard.owner_rows()[0] == ("enrich", "1.2 MiB", "1.2 MiB")
    assert dashboard.event_rows() == (
        ("0:00:04", "anomaly", "decode.chunks@cpu: +1 double_free (now 1)"),
    )
    chart = dashboard.chart()
    assert chart is not None
    assert chart.unit == "MiB"
    assert [line.label for line in chart.lines] == [
        "in use", "reserved", "cpu in use", "cuda:0 in use",
    ]  # fmt: skip
    assert chart.lines[1].values[-1] == 5.3125
    assert chart.largest_bytes == 5_816_320  # reserved at its highest in the window
    # The run is 8 s long: the window fits it (the first view backfilled 0.1 s).
    assert chart.window_s == pytest.approx(7.9)
    assert chart.lines[0].seconds[0] == pytest.approx(-7.9)


def test_dashboard_follows_the_connection_and_a_new_source() -> None:
    dashboard = Dashboard()
    assert dashboard.header_lines() == ("waiting for the first view", "", "")
    stream = updates(3)
    dashboard.ingest(stream[0])
    dashboard.ingest(ConnectionLost("connection refused", 1.6, attempt=3))
    assert dashboard.connection.describe() == (
        "disconnected: connection refused, retrying in 1.6 s (attempt 3)"
    )
    dashboard.ingest(stream[1])
    dashboard.ingest(FeedNote("hello"))
    assert [row[1:] for row in dashboard.event_rows()] == [
        ("note", "hello"),
        ("connection", "connection restored"),
        ("connection", "connection lost: connection refused"),
    ]
    # Another process: the history starts over from its views.
    other = Source("other", 1, "h", SOURCE.started_wall_ns)
    dashboard.ingest(ViewUpdate(stream[2].view, other))
    assert len(dashboard.history.points(TOTAL_KEY)) == 1
    dashboard.finish(RuntimeError("boom"))
    assert dashboard.connection.describe() == "failed: RuntimeError: boom; q quits"
    assert dashboard.event_rows()[0][1:] == ("connection", "stopped by RuntimeError: boom")


def test_formatting_helpers() -> None:
    assert format_uptime(3_723_900_000_000) == "1:02:03"
    assert format_uptime(-5) == "0:00:00"
    assert sparkline([0, 1, 2, 4]) == " ▂▄█"
    assert sparkline([0, 0]) == "  "
    assert chart_unit(MIB - 1) == ("KiB", KIB)
    assert chart_unit(0) == ("B", 1)
    assert TOTAL == "*"


def test_the_header_and_table_show_memory_outside_memactor_when_sampled() -> None:
    pipeline = Pipeline()
    for _ in range(3):
        pipeline.advance()
    pipeline.ledger.note_process("cpu", 40 * MIB, rss_bytes=48 * MIB, uss_bytes=40 * MIB)
    dashboard = Dashboard()
    dashboard.ingest(ViewUpdate(pipeline.view(), SOURCE, received_ns=pipeline.clock.now_ns))
    reserved = pipeline.ledger.devices()[0].bytes_reserved
    third = dashboard.header_parts()[2]
    outside = format_size(40 * MIB - pipeline.ledger.devices()[0].bytes_reserved, signed=True)
    assert third[0] == f"cpu process 40 MiB, unattributed {outside}"
    rows = dashboard.component_rows()
    assert rows[-1].key == ("(unattributed)", "cpu")
    assert rows[-1].cells[2] == format_size(40 * MIB - reserved, signed=True)
    assert len(rows[-1].cells) == len(COMPONENT_COLUMNS)
    assert dashboard.component_rows("pool")[-1].key != ("(unattributed)", "cpu")


def test_the_header_shows_each_device_and_each_directions_copy_bandwidth() -> None:
    pipeline = Pipeline()
    pipeline.advance()
    timed = {DURATION_TAG: "10000000"}  # 10 ms
    pipeline.ledger.apply(
        [
            MemoryEvent(EventKind.ALLOC, "gpu0", 1, 64 * MIB, device="cuda:0", owner="up"),
            MemoryEvent(EventKind.ALLOC, "gpu1", 1, 32 * MIB, device="cuda:1", owner="up"),
            MemoryEvent(EventKind.TRANSFER, "gpu", 0, 64 * MIB, dst_device="cuda:0", tags=timed),
            MemoryEvent(
                EventKind.TRANSFER,
                "gpu",
                0,
                32 * MIB,
                device="cuda:0",
                dst_device="cpu",
                tags=timed,
            ),
            MemoryEvent(EventKind.TRANSFER, "gpu", 0, MIB, device="cuda:0", dst_device="cuda:1"),
        ]
    )
    dashboard = Dashboard()
    dashboard.ingest(ViewUpdate(pipeline.view(), SOURCE, received_ns=pipeline.clock.now_ns))
    second = dashboard.header_parts()[1]
    devices = pipeline.ledger.devices()
    assert [d.device for d in devices] == ["cpu", "cuda:0", "cuda:1"]
    for d in devices[1:]:  # each device its own figures, beside the first's
        assert (
            f"{d.device} {format_size(d.bytes_in_use)} / {format_size(d.bytes_reserved)}" in second
        )
    assert "cuda:1 32 MiB / 32 MiB" in second
    keys = {row.key for row in dashboard.component_rows()}
    assert {("gpu0", "cuda:0"), ("gpu1", "cuda:1")} <= keys
    third = dashboard.header_parts()[2]
    assert "cpu->cuda:0 6.2 GiB/s" in third
    assert "cuda:0->cpu 3.1 GiB/s" in third
    assert not any(part.startswith("cuda:0->cuda:1") for part in third)  # never timed


def test_events_per_second_is_smoothed_over_five_seconds() -> None:
    # Batches land in bursts: 1,000 events in one view, none in the next four.
    dashboard = Dashboard()
    pipeline = Pipeline()
    rates = []
    for tick in range(100):
        update = pipeline.advance()
        view = update.view
        burst = (tick // 5 + 1) * 1000 if tick % 5 == 4 else (tick // 5) * 1000
        totals = dataclasses.replace(view.totals, events_applied=burst)
        dashboard.ingest(dataclasses.replace(update, view=dataclasses.replace(view, totals=totals)))
        rates.append(dashboard.events_per_s())
    settled = [rate for rate in rates[60:] if rate is not None]
    assert min(settled) == pytest.approx(2000, rel=0.15)
    assert max(settled) == pytest.approx(2000, rel=0.15)


def test_the_chart_window_fits_the_run_until_a_minute_has_passed() -> None:
    dashboard = Dashboard()
    stream = updates(700)
    dashboard.ingest(stream[0])
    first = dashboard.chart()
    assert first is not None
    assert first.window_s == 1.0  # at least a second
    for update in stream[1:300]:
        dashboard.ingest(update)
    thirty = dashboard.chart()
    assert thirty is not None
    assert thirty.window_s == pytest.approx(29.9)
    for update in stream[300:]:
        dashboard.ingest(update)
    later = dashboard.chart()
    assert later is not None
    assert later.window_s == 60.0
    assert later.lines[0].seconds[0] >= -60.0


def test_ticks_are_round_1_2_5_steps_with_units() -> None:
    assert nice_step(464, 4) == 200
    assert nice_step(3.62, 3) == 2
    assert nice_step(7.9, 4) == 2
    assert nice_step(60, 4) == 20
    unit, scale, ticks = byte_ticks(464 * KIB, 4)
    assert (unit, scale) == ("KiB", KIB)
    assert ticks.labels == ("0", "200 KiB", "400 KiB", "600 KiB")
    assert ticks.top == 600
    _, _, ticks = byte_ticks(3.62 * MIB, 3)
    assert ticks.labels == ("0", "2 MiB", "4 MiB")
    _, _, ticks = byte_ticks(1.5 * MIB, 3)
    assert ticks.labels == ("0", "0.5 MiB", "1 MiB", "1.5 MiB")
    assert byte_ticks(0, 3)[2].labels == ("0", "1 B")
    assert seconds_ticks(60, 5).labels == ("-60 s", "-40 s", "-20 s", "now")
    assert seconds_ticks(7.9, 4).labels == ("-6 s", "-4 s", "-2 s", "now")
    assert seconds_ticks(7.9, 4).positions[0] == -6
    with pytest.raises(ValueError, match=r"^nice_step needs span > 0"):
        nice_step(0, 3)
