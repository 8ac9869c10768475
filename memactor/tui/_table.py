"""A light read-only table of string rows, drawn line by line (only the visible ones).

A :class:`~textual.widgets.DataTable` measures and renders every cell through Rich: with
fifty re-sorted rows at 10 Hz it took 47% of a core where this table took 6%
(``scripts/bench_tui.py``). Rows here are plain strings laid out in columns, and only the
lines on screen are drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

GAP = "  "


class RowTable(ScrollView, can_focus=True):
    """Rows of strings under a fixed header; columns named in *right* (``"234"``) are
    right-aligned. Fill it with :meth:`show`; scroll with the arrow and page keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"row-table--header", "row-table--odd"}

    DEFAULT_CSS = """
    RowTable {
        height: 1fr;
        background: $surface;
    }
    RowTable > .row-table--header {
        text-style: bold;
        color: $accent;
    }
    RowTable > .row-table--odd {
        background: $boost;
    }
    """

    rows: reactive[tuple[tuple[str, tuple[str, ...]], ...]] = reactive((), layout=False)
    """``(key, cells)`` pairs, in the order shown."""

    def __init__(
        self,
        columns: Sequence[str],
        *,
        right: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = tuple(columns)
        """The column titles."""
        self._right = {index for index in range(len(columns)) if str(index) in right}
        self._widths = [cell_len(title) for title in self.columns]
        self._lines: list[str] = []
        self._header = ""
        self._by_key: dict[str, tuple[str, ...]] = {}

    @property
    def row_keys(self) -> tuple[str, ...]:
        """The keys of the rows shown, in order."""
        return tuple(key for key, _ in self.rows)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def get_row(self, key: str) -> tuple[str, ...]:
        """The cells of the row *key*; :class:`KeyError` if none."""
        return self._by_key[key]

    def show(self, rows: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """Show *rows*: ``(key, cells)`` pairs, in order."""
        self.rows = tuple(rows)

    def watch_rows(self, rows: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        widths = [cell_len(title) for title in self.columns]
        for _, cells in rows:
            for index, cell in enumerate(cells):
                length = cell_len(cell)
                if length > widths[index]:
                    widths[index] = length
        self._widths = widths
        self._header = self._layout(self.columns)
        self._lines = [self._layout(cells) for _, cells in rows]
        self._by_key = dict(rows)
        self.virtual_size = Size(sum(widths) + len(GAP) * len(widths), len(rows) + 1)
        self.refresh()

    def _layout(self, cells: Sequence[str]) -> str:
        parts = []
        for index, (cell, width) in enumerate(zip(cells, self._widths, strict=True)):
            pad = " " * (width - cell_len(cell))
            parts.append(pad + cell if index in self._right else cell + pad)
        return " " + GAP.join(parts)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            text, style = self._header, self.get_component_rich_style("row-table--header")
        else:
            index = scroll_y + y - 1
            if index >= len(self._lines):
                return Strip.blank(width, self.rich_style)
            text = self._lines[index]
            style = self.rich_style
            if index % 2:
                style += self.get_component_rich_style("row-table--odd")
        strip = Strip([Segment(text, style)], cell_len(text))
        return strip.crop_extend(scroll_x, scroll_x + width, style)
