"""The header: who is watched, since when, how its memory stands, and what the view does.

Each of its lines is made of parts (``"cpu: 2 MiB in use / 4 MiB reserved"``); a line
too long for the terminal breaks between parts onto the next row, so that no figure is
ever cut: at 80 columns the header takes four or five rows instead of three.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

SEPARATOR = " · "
INDENT = "  "
"""Where a broken line goes on: indented under its start."""

Parts = tuple[str, ...]


def flow(parts: Parts, width: int) -> list[str]:
    """*parts* joined by :data:`SEPARATOR` into rows of at most *width* cells, broken
    between parts; a part longer than a row is left whole (the widget ends it with "…")."""
    rows: list[str] = []
    row = ""
    for part in parts:
        if not row:
            row = (INDENT if rows else "") + part
        elif cell_len(row) + len(SEPARATOR) + cell_len(part) <= width:
            row += SEPARATOR + part
        else:
            rows.append(row)
            row = INDENT + part
    if row or not rows:
        rows.append(row)
    return rows


class MemoryHeader(Widget):
    """Lines of facts from the latest view (see :meth:`Dashboard.header_parts`), the
    state of the view (paused, a filter) and the connection's state in colour."""

    DEFAULT_CSS = """
    MemoryHeader {
        height: auto;
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

    parts: reactive[tuple[Parts, ...]] = reactive(((), (), ()), layout=True)
    """The lines to show, each as its parts."""

    paused: reactive[bool] = reactive(False, layout=True)
    """Whether the display is frozen (said first)."""

    filter_text: reactive[str] = reactive("", layout=True)
    """The component filter in force ("" for none; said in the first line)."""

    state: reactive[str] = reactive("waiting")
    """The connection state; ``disconnected`` and ``failed`` colour the header."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines as one string each (parts joined), as a wide terminal shows them."""
        return tuple(SEPARATOR.join(parts) for parts in self._all_parts())

    def watch_paused(self, paused: bool) -> None:
        self.set_class(paused, "-paused")

    def watch_state(self, state: str) -> None:
        self.set_class(state == "disconnected", "-disconnected")
        self.set_class(state == "failed", "-failed")

    def _all_parts(self) -> tuple[Parts, ...]:
        lines = list(self.parts) or [()]
        extra: Parts = ()
        if self.paused:
            extra += ("PAUSED (p resumes)",)
        if self.filter_text:
            extra += (f'filter "{self.filter_text}" (escape clears)',)
        lines[0] = extra + lines[0]
        return tuple(lines)

    def _rows(self, width: int) -> list[tuple[str, bool]]:
        rows: list[tuple[str, bool]] = []
        for number, parts in enumerate(self._all_parts()):
            rows += [(row, number == 0) for row in flow(parts, max(1, width))]
        return rows

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._rows(width))

    def render(self) -> RenderResult:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (row, bold) in enumerate(self._rows(self.content_size.width)):
            if index:
                text.append("\n")
            text.append(row, style="bold" if bold else "")
        return text
