"""The diff screen: two snapshots compared, with the leak verdict."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..metrics import Snapshot, diff, find_growth, render_diff, render_trend_verdict


def diff_text(before: Snapshot, after: Snapshot) -> str:
    """:func:`render_diff` of the two, then the trend verdict over *after*'s series."""
    parts = [render_diff(diff(before, after))]
    if not (len(before.blocks) or len(after.blocks)):
        parts.append(
            "(these snapshots were taken from views, without live blocks: "
            "new blocks cannot be listed)\n"
        )
    if after.series:
        parts.append(render_trend_verdict(find_growth(after)) + "\n")
    return "\n".join(parts)


class DiffScreen(ModalScreen[None]):
    """The text report of ``diff(before, after)``; escape or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "dismiss", "Close"),
    ]

    DEFAULT_CSS = """
    DiffScreen {
        align: center middle;
    }
    DiffScreen > VerticalScroll {
        width: 95%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(
        self,
        before: Snapshot,
        after: Snapshot,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.report = diff_text(before, after)
        """The report shown."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(self.report, no_wrap=True))
