"""The help screen: what each key does and what the panels show."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP_TEXT = """\
[b]memactor live view[/b]: one process's memory, from its metrics actor.

[b]keys[/b]
  q         quit (an in-process pipeline stops cleanly)
  p         pause: freeze the screen (views are still counted)
  / or f    filter components by name; enter keeps, escape clears
  v or tab  next view (1-5: components, owners, leaks, events, sites)
  s         take a snapshot (snap-1, snap-2, ...)
  d         diff the last two snapshots, with the leak verdict
  D         diff any two (space marks two, d diffs them)
  w         save the latest snapshot to memactor-<label>.msgpack
  ?         this help (escape closes it)

[b]panels[/b]
  header      who is watched; in use / reserved per device and the
              true peak; events/s (over 5 s), drops, anomalies
  chart       in use (area) and reserved (line), the last minute
  components  by bytes in use; hit rate = pool hits / lendings;
              narrow terminals leave out allocs/s, hit rate, blocks
  owners      bytes lent to each actor or task, and its peak
  leaks       the verdict of memactor report, once a second:
              [b red]LEAK[/]     grows steadily (the floor rises in every window)
              [yellow]SUSPECT[/]  grows unevenly, or steadily on a short run
              [cyan]PLATEAU[/]  grew, then stopped (a cache warming, a pool
                       filling to its cap)
              [green]OK[/]       no consistent growth (or too early to judge)
              then projections to known caps, fragmentation and
              recommendations, where the data supports any;
              views carry no block ages: held-but-dead blocks
              show in memactor report of a saved snapshot
  events      what changed: anomalies, new peaks, components that
              appear or vanish, drops, connection, snapshots
  sites       in-use bytes by allocation site (file:line in function);
              with open_system(callsites=...) or MEMACTOR_CALLSITES;
              narrow terminals leave out blocks, then device
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
        width: 100%;
        max-width: 80;
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
