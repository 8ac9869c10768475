"""The header: who is watched, since when, how its memory stands, and the feed's state."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget


class MemoryHeader(Widget):
    """Three lines of facts from the latest view (see :meth:`Dashboard.header_lines`)."""

    DEFAULT_CSS = """
    MemoryHeader {
        height: 3;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        background: $panel;
        color: $foreground;
    }
    MemoryHeader.-disconnected, MemoryHeader.-failed {
        background: $error 40%;
    }
    MemoryHeader.-paused {
        background: $warning 30%;
    }
    """

    lines: reactive[tuple[str, str, str]] = reactive(("", "", ""))
    """The three lines to show."""

    paused: reactive[bool] = reactive(False)
    """Whether the display is frozen (shown in the first line)."""

    state: reactive[str] = reactive("waiting")
    """The connection state; ``disconnected`` and ``failed`` colour the header."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def watch_paused(self, paused: bool) -> None:
        self.set_class(paused, "-paused")

    def watch_state(self, state: str) -> None:
        self.set_class(state == "disconnected", "-disconnected")
        self.set_class(state == "failed", "-failed")

    def render(self) -> RenderResult:
        first, second, third = self.lines
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.paused:
            text.append("PAUSED (p resumes) · ", style="bold")
        text.append(first, style="bold")
        text.append("\n" + second + "\n" + third)
        return text
