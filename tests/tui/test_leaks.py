"""The Leaks view: the verdicts of ``memactor report``, judged from the viewer's history."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets import Static

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, Limit, Verdict, VerdictConfig, leak_report
from memactor.tui import Dashboard, MemactorApp
from memactor.tui._leaks import NO_AGES, VERDICT_STYLES, leak_panel

from .feeds import KIB, MIB, FakeClock, Pipeline, updates
from .helpers import drive

EARLY = VerdictConfig(min_duration_s=4.0)
"""The seeded feed is 8 s long: judge it by the windows rather than call it too early."""


def text_of(renderable: RenderableType, width: int = 78) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return [line.rstrip() for line in capture.get().splitlines()]


def test_the_view_judges_as_memactor_report_does() -> None:
    pipeline = Pipeline()
    dashboard = Dashboard(verdict=EARLY)
    for _ in range(80):
        dashboard.ingest(pipeline.advance())
    report = dashboard.leak_report()
    assert report is not None
    # The ledger's own view, with its own series: the same verdicts, word for word.
    direct = leak_report(pipeline.ledger.snapshot("live", blocks=False), verdict=EARLY)
    assert [(v.component, v.verdict, v.reason) for v in report.verdicts] == [
        (v.component, v.verdict, v.reason) for v in direct.verdicts
    ]
    assert [(v.component, v.verdict) for v in report.verdicts] == [
        ("enrich", Verdict.LEAK),
        ("decode.chunks", Verdict.OK),
        ("gpu", Verdict.OK),
        ("pool", Verdict.OK),
    ]
    # A view has no block ages: the verdict says so instead of calling blocks fresh.
    assert report.verdicts[3].reason == "pool: no consistent growth; block ages not in this view"


def test_the_report_is_judged_at_most_once_a_second_of_view_time() -> None:
    pipeline = Pipeline()
    dashboard = Dashboard()
    assert dashboard.leak_report() is None
    for _ in range(20):
        dashboard.ingest(pipeline.advance())
    first = dashboard.leak_report()
    for _ in range(9):  # 0.9 s later: the same report
        dashboard.ingest(pipeline.advance())
        assert dashboard.leak_report() is first
    dashboard.ingest(pipeline.advance())
    assert dashboard.leak_report() is not first


def test_the_panel_says_the_verdicts_then_what_the_data_supports() -> None:
    dashboard = Dashboard(
        verdict=EARLY,
        limits=lambda: [
            Limit(8 * MIB, "pool", name="cap"),
            Limit(2 * MIB, "enrich", measure="in_use", name="budget"),
        ],
    )
    for update in updates(80):
        dashboard.ingest(update)
    lines = text_of(leak_panel(dashboard.leak_report(), dashboard.view, dashboard.history_s()))
    assert lines[0] == "leaks: 1 of 4 components flagged, judged over 8 s of views"
    assert " ".join(lines[1:3]) == NO_AGES
    assert (
        lines[3] == "LEAK      enrich: the in-use floor rose in each of 4 windows, +960 KiB over 8"
    )
    body = "\n".join(lines)
    assert "projections\n· pool on cpu: 4 MiB reserved of its 8 MiB cap: does not grow" in body
    assert "· enrich on cpu: 1.2 MiB in use of its 2 MiB budget: reaches it in about 5 s" in body
    # A view knows the cached bytes, not the blocks that hold them: no "in 0 blocks".
    assert "fragmentation\n· pool on cpu: cache 3 MiB of 4 MiB reserved" in body
    assert "recommendations\n· pool@cpu: 3 MiB of its 4 MiB reserved was never lent" in body
    assert all(len(line) <= 78 for line in lines)
    # The filter picks components; the pool's sections go with it.
    picked = "\n".join(
        text_of(leak_panel(dashboard.leak_report(), dashboard.view, dashboard.history_s(), "ENR"))
    )
    assert picked.startswith("leaks: 1 of 1 components flagged")
    assert "pool" not in picked
    assert "budget" in picked


def test_a_quiet_view_shows_no_empty_sections() -> None:
    dashboard = Dashboard()
    pipeline = Pipeline(leak=False)
    for _ in range(5):
        dashboard.ingest(pipeline.advance())
    view = dataclasses.replace(pipeline.ledger.snapshot("x"), series=())
    lines = text_of(leak_panel(leak_report(view), view, 0.5))
    assert lines[0] == "leaks: none of 3 components flagged, judged over 0 s of views"
    assert NO_AGES.split()[0] not in lines[1]  # a snapshot with blocks: ages are known
    assert not any(line in ("projections", "recommendations") for line in lines)
    assert text_of(leak_panel(None, None, 0.0)) == ["no view yet"]


def test_owner_verdicts_nest_under_their_component() -> None:
    # Blocks that live 0.1 s, and one every second that the owner "leaky" never frees.
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    for tick in range(400):
        clock.now_ns += 100_000_000
        events = [
            MemoryEvent(EventKind.ALLOC, "cache", tick, 4 * KIB, "cpu", "worker", clock.now_ns)
        ]
        if tick:
            events.append(
                MemoryEvent(EventKind.FREE, "cache", tick - 1, 4 * KIB, "cpu", "", clock.now_ns)
            )
        if tick % 10 == 5:
            events.append(
                MemoryEvent(
                    EventKind.ALLOC, "cache", 10_000 + tick, KIB, "cpu", "leaky", clock.now_ns
                )
            )
        ledger.apply(events)
        ledger.sample()
    snapshot = ledger.snapshot("x")
    report = leak_report(snapshot)
    (verdict,) = report.verdicts
    assert verdict.owners
    assert verdict.owners[0].owner == "leaky"
    lines = text_of(leak_panel(report, snapshot, 40.0))
    word = verdict.owners[0].verdict.name
    owner_line = next(line for line in lines if line.startswith(f"  {word} "))
    assert owner_line.split()[:2] == [word, "leaky"]
    assert lines.index(owner_line) > 1  # under its component's line


def test_verdict_words_are_coloured_in_the_app() -> None:
    assert VERDICT_STYLES == {
        Verdict.LEAK: "bold red",
        Verdict.SUSPECT: "yellow",
        Verdict.PLATEAU: "cyan",
        Verdict.OK: "green",
    }
    app = MemactorApp(chart_hz=None, dashboard=Dashboard(verdict=EARLY))

    async def script(pilot: Pilot[None]) -> None:
        for update in updates(80):
            app.post(update)
        await pilot.press("3")
        await pilot.pause()
        body = app.query_one("#leaks-body", Static)
        lines = body.render_lines(body.region.reset_offset)
        leak = next(s for line in lines for s in line if s.text.strip() == "LEAK")
        ok = next(s for line in lines for s in line if s.text.strip() == "OK")
        assert leak.style is not None
        assert leak.style.bold
        assert leak.style.color is not None
        assert ok.style is not None
        assert ok.style.color is not None
        assert not ok.style.bold
        # Textual maps the ANSI colours to its theme's: red and green stay apart.
        assert leak.style.color != ok.style.color

    drive(app, script)
