"""SVG snapshots of the main screens, from seeded views with fixed times.

Update with ``.venv/bin/pytest tests/tui --snapshot-update`` and look at the result.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from memactor.metrics import Limit, VerdictConfig
from memactor.remote import ConnectionLost
from memactor.tui import Dashboard, MemactorApp
from memactor.tui._filter import FilterBar

from .feeds import MIB, updates, with_sites
from .helpers import SIZE

SnapCompare = Callable[..., bool]
SMALL = (80, 24)
"""The terminal a newcomer most likely has: every view and box must fit it."""


def seeded(
    *, lost: bool = False, snapshots: bool = False, sites: bool = False
) -> Callable[[Pilot[None]], object]:
    """Post 80 seeded views (a connection lost and found at the 60th); with *snapshots*,
    take one at the 40th view and one at the end, and clear the toasts they raise; with
    *sites*, the views carry seeded site usage."""

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, MemactorApp)
        app.query_one(FilterBar).cursor_blink = False  # a blink would make the SVG differ
        stream = updates(80)
        for index, update in enumerate(stream):
            if index == 60:
                app.post(ConnectionLost("connection refused", 1.6, attempt=1))
            app.post(with_sites(update, index) if sites else update)
            if snapshots and index in (39, 79):
                await pilot.pause()
                await app.take_snapshot()
        if lost:
            app.post(ConnectionLost("connection reset by peer", 1.6, attempt=3))
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    "press",
    [(), ("2",), ("3",), ("4",), ("question_mark",), ("slash", "p", "o")],
    ids=["components", "owners", "leaks", "events", "help", "filter"],
)
def test_screens(snap_compare: SnapCompare, press: tuple[str, ...]) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(app, press=press, terminal_size=SIZE, run_before=seeded())


def test_disconnected(snap_compare: SnapCompare) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(app, terminal_size=SIZE, run_before=seeded(lost=True))


def test_waiting(snap_compare: SnapCompare) -> None:
    assert snap_compare(MemactorApp(chart_hz=None), terminal_size=SIZE)


@pytest.mark.parametrize(
    ("press", "snapshots"),
    [
        ((), False),
        (("2",), False),
        (("3",), False),
        (("4",), False),
        (("question_mark",), False),
        (("d",), True),
        (("D", "space", "down", "space"), True),
        (("slash", "p", "o"), False),
        (("slash", "p", "o", "enter"), False),
    ],
    ids=[
        "components", "owners", "leaks", "events", "help", "diff", "pick", "filter",
        "filter-kept",
    ],
)  # fmt: skip
def test_screens_at_80x24(
    snap_compare: SnapCompare, press: tuple[str, ...], snapshots: bool
) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(
        app, press=press, terminal_size=SMALL, run_before=seeded(snapshots=snapshots)
    )


def test_a_failed_feed_at_80x24_keeps_the_last_view(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await seeded()(pilot)  # type: ignore[misc]  # typed to return object; it is a coroutine
        app = pilot.app
        assert isinstance(app, MemactorApp)
        app.post_message(app.FeedEnded(ValueError("bad frame")))
        await pilot.pause()

    app = MemactorApp(chart_hz=None, watching="the pipeline")
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def test_sites_at_80x24(snap_compare: SnapCompare) -> None:
    app = MemactorApp(chart_hz=None)
    assert snap_compare(app, press=("5",), terminal_size=SMALL, run_before=seeded(sites=True))


@pytest.mark.parametrize("press", [("3",), ("3", "end")], ids=["top", "end"])
def test_leak_verdicts_at_80x24(snap_compare: SnapCompare, press: tuple[str, ...]) -> None:
    """Judged by the windows (from 4 s: the feed is 8 s long), with the pool's cap known."""
    dashboard = Dashboard(
        verdict=VerdictConfig(min_duration_s=4.0), limits=[Limit(8 * MIB, "pool", name="cap")]
    )
    app = MemactorApp(chart_hz=None, dashboard=dashboard)
    assert snap_compare(app, press=press, terminal_size=SMALL, run_before=seeded())
