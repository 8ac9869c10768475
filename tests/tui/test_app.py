"""The app driven by Pilot: fake feeds post the very items production posts.

pytest-trio runs in trio mode, so each test is a plain function around ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import trio
from rich.cells import cell_len
from textual.pilot import Pilot

from memactor.metrics import Snapshot
from memactor.remote import ConnectionLost
from memactor.tui import FeedNote, MemactorApp, Post
from memactor.tui._diff_screen import DiffScreen
from memactor.tui._header import MemoryHeader, flow
from memactor.tui._help import HelpScreen
from memactor.tui._pick_screen import PickSnapshots
from memactor.tui._table import RowTable

from .feeds import Pipeline, updates
from .helpers import drive, wait_for


def table(app: MemactorApp, view: str) -> RowTable:
    return app.query_one(f"#{view}-table", RowTable)


def test_views_fill_the_tables_and_keys_switch_pause_and_filter(tmp_path: Path) -> None:
    app = MemactorApp(chart_hz=None, save_dir=tmp_path)
    stream = updates(40)

    async def script(pilot: Pilot[None]) -> None:
        for update in stream[:30]:
            app.post(update)
        await pilot.pause()
        assert table(app, "components").row_keys == (
            "pool\0cpu", "enrich\0cpu", "decode.chunks\0cpu", "gpu\0cuda:0",
        )  # fmt: skip
        await pilot.press("p")
        for update in stream[30:]:
            app.post(update)
        await pilot.pause()
        assert app.dashboard.views_received == 40
        assert app.statistics().views_shown == 30
        shown = table(app, "components").get_row("enrich\0cpu")
        assert shown[3] == "480 KiB"  # frozen at the 30th view
        await pilot.press("p")
        await pilot.pause()
        assert table(app, "components").get_row("enrich\0cpu")[3] == "640 KiB"
        await pilot.press("slash", "d", "e", "c")
        assert table(app, "components").row_keys == ("decode.chunks\0cpu",)  # as typed
        header = app.query_one(MemoryHeader)
        assert "filter" not in header.lines[0]  # the bar shows it while typing
        await pilot.press("enter")
        assert app.filter_text == "dec"
        assert header.lines[0].startswith('filter "dec" (escape clears) · memactor · connected')
        await pilot.press("escape")  # on the view itself, the bar closed
        assert app.filter_text == ""
        assert "filter" not in header.lines[0]
        assert len(table(app, "components").row_keys) == 4
        await pilot.press("f", "p", "escape")  # escape in the bar clears it too
        assert app.filter_text == ""
        await pilot.press("v")
        assert table(app, "owners").row_keys[0] == "decode"
        await pilot.press("tab", "tab", "1")
        assert app.query_one("#views").active == "components"  # type: ignore[attr-defined]  # a TabbedContent
        await pilot.press("4")
        assert table(app, "events").row_count == 1

    drive(app, script)


def test_snapshots_diff_and_save_from_views(tmp_path: Path) -> None:
    app = MemactorApp(chart_hz=None, save_dir=tmp_path)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert not app.snapshots  # nothing to take yet
        stream = updates(60)
        for update in stream[:10]:
            app.post(update)
        await pilot.pause()
        await pilot.press("d")
        assert not isinstance(app.screen, DiffScreen)  # one snapshot is not enough
        await pilot.press("s")
        await app.workers.wait_for_complete()
        for update in stream[10:]:
            app.post(update)
        await pilot.pause()
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert [s.label for s in app.snapshots] == ["snap-1", "snap-2"]
        await pilot.press("d")
        assert isinstance(app.screen, DiffScreen)
        assert "enrich" in app.screen.report
        assert "LEAK SUSPECTED" in app.screen.report
        await pilot.press("escape", "w")
        saved = tmp_path / "memactor-snap-2.msgpack"
        assert Snapshot.load(saved) == app.snapshots[-1]
        await pilot.press("w")  # again: a second file, the first one kept
        assert Snapshot.load(tmp_path / "memactor-snap-2-2.msgpack") == app.snapshots[-1]
        assert Snapshot.load(saved) == app.snapshots[-1]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    drive(app, script)


class FakeActions:
    """Snapshots with live blocks from the fake pipeline's ledger."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def take_snapshot(self, label: str) -> Snapshot:
        await trio.sleep(0)  # a real trio checkpoint: this runs in the feed's trio run
        return self.pipeline.ledger.snapshot(label)


def test_a_trio_feed_runs_as_a_guest_with_actions_and_ends_finished(tmp_path: Path) -> None:
    pipeline = Pipeline()
    release = trio.Event()
    cancelled: list[bool] = []

    async def feed(post: Post) -> None:
        try:
            for _ in range(20):
                post(pipeline.advance())
                await trio.sleep(0)
            post(ConnectionLost("connection reset", 0.5, attempt=2))
            post(pipeline.advance())
            await release.wait()
            post(FeedNote("all done"))
        except trio.Cancelled:
            cancelled.append(True)
            raise

    app = MemactorApp(feed, actions=FakeActions(pipeline), chart_hz=None, save_dir=tmp_path)

    async def script(pilot: Pilot[None]) -> None:
        while app.dashboard.views_received < 21:
            await pilot.pause(0.01)
        await pilot.press("w")  # no snapshot yet: takes one, then saves it
        await app.workers.wait_for_complete()
        snapshot = Snapshot.load(tmp_path / "memactor-snap-1.msgpack")
        assert len(snapshot.blocks) > 0
        assert [row[1:] for row in app.dashboard.event_rows()[:3]] == [
            ("snapshot", f"saved snap-1 to {tmp_path / 'memactor-snap-1.msgpack'}"),
            ("snapshot", "snapshot snap-1 taken with live blocks"),
            ("connection", "connection restored"),
        ]
        release.set()
        while app.dashboard.connection.state != "finished":
            await pilot.pause(0.01)
        assert app.dashboard.event_rows()[1][1:] == ("note", "all done")
        await pilot.press("s")  # the feed is gone: from the latest view
        await app.workers.wait_for_complete()
        assert len(app.snapshots[-1].blocks) == 0
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0
    assert cancelled == []


def test_quitting_cancels_the_feed_and_waits_for_it() -> None:
    finished: list[str] = []

    async def feed(post: Post) -> None:
        pipeline = Pipeline()
        try:
            while True:
                post(pipeline.advance())
                await trio.sleep(0.01)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.05)  # closing takes a while; quitting waits for it
            finished.append("closed")

    app = MemactorApp(feed, chart_hz=None)

    async def script(pilot: Pilot[None]) -> None:
        while app.dashboard.views_received < 3:
            await pilot.pause(0.01)
        await pilot.press("q")
        assert finished == ["closed"]

    drive(app, script)
    assert app.return_code == 0


def test_a_failing_feed_keeps_the_last_view_and_quits_with_1() -> None:
    async def feed(post: Post) -> None:
        post(updates(1)[0])
        await trio.sleep(0)
        raise RuntimeError("the stream broke for good")

    app = MemactorApp(feed, chart_hz=None)

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.feed_error is not None)
        await pilot.pause()
        assert app.return_code is None
        assert table(app, "components").row_count == 4
        assert app.query_one(MemoryHeader).state == "failed"
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 1
    assert isinstance(app.feed_error, RuntimeError)
    assert str(app.feed_error) == "the stream broke for good"


def test_any_two_snapshots_can_be_diffed() -> None:
    app = MemactorApp(chart_hz=None)

    async def script(pilot: Pilot[None]) -> None:
        stream = updates(60)
        for start in (0, 20, 40):
            for update in stream[start : start + 20]:
                app.post(update)
            await pilot.pause()
            await pilot.press("s")
            await app.workers.wait_for_complete()
        assert [s.label for s in app.snapshots] == ["snap-1", "snap-2", "snap-3"]
        await pilot.press("D")
        assert isinstance(app.screen, PickSnapshots)
        await pilot.press("space", "d")  # one marked is not enough
        assert isinstance(app.screen, PickSnapshots)
        await pilot.press("down", "down", "space", "d")  # snap-1 and snap-3
        assert isinstance(app.screen, DiffScreen)
        assert '"snap-1" -> "snap-3"' in app.screen.report
        await pilot.press("escape", "D", "escape")
        assert not isinstance(app.screen, PickSnapshots | DiffScreen)

    drive(app, script)


def test_at_80_columns_tables_leave_out_columns_and_the_header_breaks_between_parts() -> None:
    app = MemactorApp(chart_hz=None)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            for update in updates(80):
                app.post(update)
            await pilot.pause()
            components = table(app, "components")
            assert components.shown_columns == (
                "component", "device", "reserved", "in use", "peak in use", "blocks",
                "last 16 views",
            )  # fmt: skip
            assert components.size.height >= 6  # a title row and at least five rows
            assert components.get_row("pool\0cpu")[6] == "95.2%"  # left out, still kept
            await pilot.press("3")
            await pilot.pause()
            leaks = app.query_one("#leaks-body")
            assert leaks.size.width <= 80  # the sentences wrap, nothing is cut
            assert leaks.virtual_size.width <= 80
            header = app.query_one(MemoryHeader)
            # Two devices and the true peak take 87 columns: the line breaks once.
            assert header.size.height == 4
            assert all(cell_len(row) <= 78 for row, _ in header._rows(78))
            await pilot.resize_terminal(60, 24)
            await pilot.pause()
            assert header.size.height == 5  # another line broke, none was cut
            assert all(cell_len(row) <= 58 for row, _ in header._rows(58))

    asyncio.run(main())


def test_flow_breaks_between_parts_and_indents_what_follows() -> None:
    assert flow(("aaaa", "bbbb", "cc"), 11) == ["aaaa · bbbb", "  cc"]
    assert flow(("aaaa", "bbbb", "cc"), 10) == ["aaaa", "  bbbb", "  cc"]
    assert flow(("a" * 20,), 10) == ["a" * 20]  # too long for any row: left whole
    assert flow((), 10) == [""]
