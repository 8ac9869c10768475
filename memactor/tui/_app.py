"""The live view: a Textual app that redraws from what its feed posts, and nothing else.

The app runs its feed (a trio async function) as a trio guest on Textual's asyncio loop
through :mod:`._bridge`; every item the feed posts becomes one
:class:`MemactorApp.FeedReceived` message, taken in by a :class:`Dashboard` (pure
aggregation) and drawn by the widgets. Without a feed, tests and demos call
:meth:`MemactorApp.post` with the very items a feed would post.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from ..metrics import LeakReport, Snapshot
from ..remote import RemoteError, ViewUpdate
from ._actions import FeedActions
from ._bridge import FeedFunction, FeedItem, TrioGuest
from ._chart import ChartPanel
from ._diff_screen import DiffScreen
from ._filter import FilterBar
from ._header import MemoryHeader
from ._help import HelpScreen
from ._leaks import leak_panel
from ._model import (
    COMPONENT_COLUMNS,
    COMPONENT_HIDE_FIRST,
    OWNER_COLUMNS,
    Connection,
    Dashboard,
)
from ._pick_screen import PickSnapshots
from ._sites import SITE_COLUMNS, SITE_HIDE_FIRST, site_rows
from ._table import RowTable

VIEWS = ("components", "owners", "leaks", "events", "sites")
SNAPSHOTS_KEPT = 16
DEFAULT_CHART_HZ = 2.0
"""How often the chart redraws at most: it spans a minute, and plotext is the costliest
widget: with 50 components at 10 Hz the view took 8.8% of a core at 2 Hz and 11.1% at
4 Hz (``scripts/bench_tui.py``)."""


@dataclass(frozen=True, slots=True)
class DisplayStatistics:
    """How the app keeps up with its feed (a fresh value per call)."""

    views_received: int
    views_shown: int
    """Views drawn and on screen (views taken in while paused are not drawn)."""
    last_delay_ns: int
    """From the last shown view's ``received_ns`` to the end of the refresh that drew it."""
    max_delay_ns: int
    total_delay_ns: int
    """Sum over every shown view: ``total_delay_ns / views_shown`` is the mean."""


class MemactorApp(App[None]):
    """The live view of one process's memory; see the README's "Live view".

    *feed* is a trio async function ``feed(post)`` that calls ``post(item)`` for every
    :class:`~memactor.remote.ViewUpdate`, :class:`~memactor.remote.ConnectionLost` or
    :class:`FeedNote`; the app starts it on mount as a trio guest run. When the feed
    returns, the header says "finished" and the last view stays until quit. When it
    raises, the last view stays too, the header turns red and names the error (kept in
    :attr:`feed_error`), and quitting exits with ``return_code`` 1 and prints the
    traceback once the view has left the screen; a :class:`~memactor.remote.RemoteError`
    (a refused token, a foreign version) has nothing to show and exits at once, in one
    line. *watching* names what is watched in that last line (``"the pipeline"``).
    Quitting cancels the feed and waits until its trio run has finished.

    *actions* (optional) answer requests such as a snapshot, in the feed's run; without
    them a snapshot is the latest view (no live blocks). Snapshots save into *save_dir*
    (default: the current directory). The chart redraws at most *chart_hz* times a
    second (``None``: on every view).
    """

    CSS_PATH = "_app.tcss"
    TITLE = "memactor"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("p", "pause", "Pause"),
        Binding("slash", "filter", "Filter"),
        Binding("f", "filter", "Filter", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("v", "next_view", "View"),
        Binding("tab", "next_view", "View", show=False, priority=True),
        Binding("1", "view('components')", "Components", show=False),
        Binding("2", "view('owners')", "Owners", show=False),
        Binding("3", "view('leaks')", "Leaks", show=False),
        Binding("4", "view('events')", "Events", show=False),
        Binding("5", "view('sites')", "Sites", show=False),
        Binding("s", "snapshot", "Snap"),
        Binding("d", "diff", "Diff"),
        Binding("D", "pick_diff", "Diff any two", show=False),
        Binding("w", "save", "Save"),
        Binding("question_mark", "help", "Help"),
    ]

    paused: reactive[bool] = reactive(False)
    """Whether the display is frozen; views are still taken in and counted."""

    filter_text: reactive[str] = reactive("")
    """The substring that picks the components shown ("" shows all)."""

    class FeedReceived(Message):
        """The feed posted *item*."""

        def __init__(self, item: FeedItem) -> None:
            super().__init__()
            self.item = item

    class FeedEnded(Message):
        """The feed returned (*error* None) or raised *error*."""

        def __init__(self, error: BaseException | None) -> None:
            super().__init__()
            self.error = error

    def __init__(
        self,
        feed: FeedFunction | None = None,
        *,
        actions: FeedActions | None = None,
        title: str | None = None,
        save_dir: str | Path | None = None,
        chart_hz: float | None = DEFAULT_CHART_HZ,
        dashboard: Dashboard | None = None,
        watching: str = "the watched program",
    ) -> None:
        super().__init__()
        if title:
            self.title = title
        self.dashboard = dashboard or Dashboard()
        """Everything taken in from the feed."""
        self.snapshots: deque[Snapshot] = deque(maxlen=SNAPSHOTS_KEPT)
        """Snapshots taken with ``s``, newest last."""
        self.feed_error: BaseException | None = None
        """What the feed raised, if it did."""
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.watching = watching
        """What is watched, in words for the last line after a failure."""
        self._actions = actions
        self._guest = TrioGuest(feed, self.post, self._feed_done) if feed else None
        self._chart_period_s = 1.0 / chart_hz if chart_hz else 0.0
        self._chart_at = -1e9
        self._chart_pending = False
        self._snapshot_count = 0
        self._quitting = False
        self._shown = 0
        self._last_delay = self._max_delay = self._total_delay = 0
        self._leaks_shown: tuple[LeakReport | None, str] | None = None

    # -- the feed ----------------------------------------------------------------------

    def post(self, item: FeedItem) -> None:
        """Hand the app one feed item (what a feed's ``post`` does); call it on the app's
        thread: from the feed's trio run, a test or a demo."""
        self.post_message(self.FeedReceived(item))

    def _feed_done(self, error: BaseException | None) -> None:
        if error is not None:
            self.feed_error = error
        self.post_message(self.FeedEnded(error))

    def statistics(self) -> DisplayStatistics:
        """How many views came and were shown, and how long they took to reach the screen."""
        return DisplayStatistics(
            self.dashboard.views_received,
            self._shown,
            self._last_delay,
            self._max_delay,
            self._total_delay,
        )

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield MemoryHeader(id="header")
        yield ChartPanel(id="chart-panel")
        with TabbedContent(initial="components", id="views"):
            with TabPane("Components", id="components"):
                yield RowTable(
                    COMPONENT_COLUMNS,
                    right="234567",
                    hide_first=COMPONENT_HIDE_FIRST,
                    id="components-table",
                )
            with TabPane("Owners", id="owners"):
                yield RowTable(OWNER_COLUMNS, right="12", id="owners-table")
            with TabPane("Leaks", id="leaks"), VerticalScroll(id="leaks-table"):
                yield Static(id="leaks-body")
            with TabPane("Events", id="events"):
                yield RowTable(("uptime", "kind", "what"), id="events-table")
            with TabPane("Sites", id="sites"):
                yield RowTable(
                    SITE_COLUMNS, right="23", hide_first=SITE_HIDE_FIRST, id="sites-table"
                )
        yield FilterBar(id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self._show()
        if self._guest is not None:
            self._guest.start()

    async def on_unmount(self) -> None:
        if self._guest is not None:
            await self._guest.stop()

    # -- drawing -----------------------------------------------------------------------

    def on_memactor_app_feed_received(self, message: FeedReceived) -> None:
        item = message.item
        self.dashboard.ingest(item)
        if self.paused:
            return
        self._show()
        if isinstance(item, ViewUpdate):
            self.call_after_refresh(self._drawn, item.received_ns)

    def on_memactor_app_feed_ended(self, message: FeedEnded) -> None:
        error = message.error
        self.dashboard.finish(error)
        self._show()
        if error is None or self._quitting:
            return
        if isinstance(error, RemoteError):
            self.exit(return_code=1, message=self._error_report(error))
        else:
            # The last view stays on screen with the error; q exits with 1.
            self.notify(
                f"{self.watching} failed: {type(error).__name__}: {error}; q quits",
                title="stopped",
                severity="error",
                timeout=3600,
            )

    def _error_report(self, error: BaseException) -> Text:
        if isinstance(error, RemoteError):
            # A refused token or a foreign version: the message says all there is.
            return Text(f"memactor: {error}", style="red")
        lines = traceback.format_exception(error)
        summary = f"memactor: {self.watching} failed: {type(error).__name__}: {error}"
        return Text("".join(lines) + summary, style="red")

    def _drawn(self, received_ns: int) -> None:
        delay = time.monotonic_ns() - received_ns
        self._shown += 1
        self._last_delay = delay
        self._max_delay = max(self._max_delay, delay)
        self._total_delay += delay

    def _show(self) -> None:
        """Draw the header, the chart (at most ``chart_hz``) and the visible view."""
        dashboard = self.dashboard
        header = self.query_one(MemoryHeader)
        first, second, third = dashboard.header_parts()
        header.parts = ((self.title, *first) if self.title else first, second, third)
        header.state = dashboard.connection.state
        self._update_chart()
        self._show_view(self.query_one(TabbedContent).active or VIEWS[0])

    def _update_chart(self) -> None:
        now = time.monotonic()
        wait = self._chart_at + self._chart_period_s - now
        if wait > 0:
            if not self._chart_pending:
                self._chart_pending = True
                self.set_timer(wait, self._chart_due)
            return
        self._chart_at = now
        self.query_one(ChartPanel).data = self.dashboard.chart()

    def _chart_due(self) -> None:
        self._chart_pending = False
        if not self.paused:
            self._update_chart()

    def _show_view(self, view: str) -> None:
        dashboard = self.dashboard
        if view == "leaks":
            self._show_leaks()
            return
        table = self.query_one(f"#{view}-table", RowTable)
        if view == "components":
            table.show(
                [("\0".join(r.key), r.cells) for r in dashboard.component_rows(self.filter_text)]
            )
        elif view == "owners":
            table.show([(cells[0], cells) for cells in dashboard.owner_rows()])
        elif view == "sites":
            table.show(site_rows(dashboard.view, self.filter_text))
        else:
            rows = dashboard.event_rows()
            table.show([(str(len(rows) - i), cells) for i, cells in enumerate(rows)])

    def _show_leaks(self) -> None:
        """Redraw the Leaks view when the report (judged at most once a second) or the
        filter changed."""
        dashboard = self.dashboard
        report = dashboard.leak_report()
        shown = self._leaks_shown
        if shown is not None and shown[0] is report and shown[1] == self.filter_text:
            return
        self._leaks_shown = (report, self.filter_text)
        self.query_one("#leaks-body", Static).update(
            leak_panel(report, dashboard.view, dashboard.history_s(), self.filter_text)
        )

    def watch_paused(self, paused: bool) -> None:
        self.query_one(MemoryHeader).paused = paused
        if not paused:
            self._show()

    def watch_filter_text(self, text: str) -> None:
        if not self.query_one(FilterBar).has_class("-open"):
            self.query_one(MemoryHeader).filter_text = text  # kept (or cleared) with the bar closed
        self._show()

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        view = message.pane.id or VIEWS[0]
        self._show_view(view)
        self.query_one(f"#{view}-table", Widget).focus()

    def on_input_changed(self, message: Input.Changed) -> None:
        if isinstance(message.input, FilterBar):
            self.filter_text = message.value

    def on_filter_bar_closed(self, message: FilterBar.Closed) -> None:
        self.filter_text = message.text
        # While typing, the bar shows the text; once kept, the header says it.
        self.query_one(MemoryHeader).filter_text = message.text
        self.query_one(f"#{self.query_one(TabbedContent).active}-table", Widget).focus()

    # -- actions -----------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop the feed (waiting until its trio run has finished), then exit."""
        self._quitting = True
        if self._guest is not None and self._guest.running:
            self.dashboard.connection = Connection("stopping")
            self._show()
            await self._guest.stop()
        error = self.feed_error
        if error is not None:
            self.exit(return_code=1, message=self._error_report(error))
        else:
            self.exit()

    def action_pause(self) -> None:
        self.paused = not self.paused

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.value = self.filter_text
        bar.open()

    def action_clear_filter(self) -> None:
        """Show every component again (escape, outside the filter bar)."""
        self.filter_text = ""

    def action_next_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        index = VIEWS.index(tabs.active) if tabs.active in VIEWS else -1
        tabs.active = VIEWS[(index + 1) % len(VIEWS)]

    def action_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_snapshot(self) -> None:
        self._take_snapshot()

    @work(group="snapshots", exclusive=False)
    async def _take_snapshot(self, *, save: bool = False) -> None:
        snapshot = await self.take_snapshot()
        if snapshot is not None and save:
            self._save(snapshot)

    async def take_snapshot(self) -> Snapshot | None:
        """Take a snapshot labelled ``snap-N``: from the actions when the feed has them
        (with live blocks), else from the latest view. Keeps it, notes it, returns it;
        ``None`` when there is nothing to take yet or the request failed (said so)."""
        self._snapshot_count += 1
        label = f"snap-{self._snapshot_count}"
        actions, guest = self._actions, self._guest
        snapshot: Snapshot | None = None
        how = "with live blocks"
        if actions is not None and guest is not None and guest.running:
            try:
                snapshot = await guest.call(lambda: actions.take_snapshot(label))
            except Exception as error:
                self.notify(f"snapshot {label} failed: {error}", severity="error")
                self._snapshot_count -= 1
                return None
        else:
            view = self.dashboard.view
            if view is None:
                self.notify("no view yet: nothing to take a snapshot of", severity="warning")
                self._snapshot_count -= 1
                return None
            snapshot = dataclasses.replace(view, label=label)
            how = "from the latest view (no live blocks)"
        self.snapshots.append(snapshot)
        self.dashboard.note("snapshot", f"snapshot {label} taken {how}")
        self.notify(f"snapshot {label} taken {how}")
        if not self.paused:
            self._show()
        return snapshot

    def action_diff(self) -> None:
        if len(self.snapshots) < 2:
            self.notify("take two snapshots first (s)", severity="warning")
            return
        self.push_screen(DiffScreen(self.snapshots[-2], self.snapshots[-1]))

    def action_pick_diff(self) -> None:
        """Offer every snapshot kept; diff the two the user marks."""
        if len(self.snapshots) < 2:
            self.notify("take two snapshots first (s)", severity="warning")
            return
        snapshots = list(self.snapshots)

        def chosen(pair: tuple[int, int] | None) -> None:
            if pair is not None:
                self.push_screen(DiffScreen(snapshots[pair[0]], snapshots[pair[1]]))

        self.push_screen(PickSnapshots(snapshots), chosen)

    def action_save(self) -> None:
        if self.snapshots:
            self._save(self.snapshots[-1])
        else:
            self._take_snapshot(save=True)

    def _save(self, snapshot: Snapshot) -> None:
        directory = self.save_dir or Path.cwd()
        stem = f"memactor-{snapshot.label or 'snapshot'}"
        path = directory / f"{stem}.msgpack"
        copy = 1
        while path.exists():  # an earlier session's file: never overwritten
            copy += 1
            path = directory / f"{stem}-{copy}.msgpack"
        try:
            saved = snapshot.save(path)
        except OSError as error:
            self.notify(f"could not save {snapshot.label}: {error}", severity="error")
            return
        self.dashboard.note("snapshot", f"saved {snapshot.label} to {saved}")
        self.notify(f"saved {snapshot.label} to {saved}")
        if not self.paused:
            self._show()
