"""The help screen: what each key does and what the panels show."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP_TEXT = """\
[b]memactor live view[/b]: the memory of one process, from its metrics actor.

[b]keys[/b]
  q          quit (stops an in-process pipeline cleanly)
  p          pause: freeze the display (views are still taken in and counted)
  / or f     filter components by a substring of their name (escape clears)
  v or tab   next view: components, owners, leaks, events, sites (1-5 pick one)
  s          take a snapshot (snap-1, snap-2, ...), with live blocks when the feed can
  d          diff the last two snapshots, with the leak verdict
  D          pick any two snapshots to diff (space marks, d diffs)
  w          save the latest snapshot to memactor-<label>.msgpack
  ?          this help (escape or ? closes it)

[b]panels[/b]
  header      process, uptime, in use / reserved per device, true peak,
              events per second, drops (events dropped + views missed), anomalies
  chart       in use and reserved over the last minute (total, and per device)
  components  sorted by bytes in use; hit rate = pool hits / lendings
  owners      bytes lent to each actor or task, with its peak
  leaks       a line fitted through each component's in-use history:
              GROWING when steady (R²) and long enough
  events      what changed between views: anomalies, new peaks, components
              appearing or vanishing, drops, connection, snapshots
  sites       in-use bytes by allocation site (file:line in function), largest
              first; with open_system(callsites=...) or MEMACTOR_CALLSITES
"""


class HelpScreen(ModalScreen[None]):
    """Keys and panels, over the live view; escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen Static {
        width: 1fr;
    }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP_TEXT)
