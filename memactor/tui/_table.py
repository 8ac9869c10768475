"""A light read-only table of string rows, drawn line by line (only the visible ones).

A :class:`~textual.widgets.DataTable` measures and renders every cell through Rich: with
fifty re-sorted rows at 10 Hz it took 47% of a core where this table took 6%
(``scripts/bench_tui.py``). Rows here are plain strings laid out in columns, and only the
lines on screen are drawn. A table narrower than its columns leaves out the columns it
was told to drop first, so that the ones that matter fit an 80-column terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

GAP = "  "


Mark = str
"""How a cell is coloured: ``"bad"``, ``"warn"``, ``"good"`` or ``"dim"``."""
MARKS = ("bad", "warn", "good", "dim")


class RowTable(ScrollView, can_focus=True):
    """Rows of strings under a fixed header; columns named in *right* (``"234"``) are
    right-aligned. Fill it with :meth:`show`; scroll with the arrow and page keys.

    When the columns are wider than the table, those in *hide_first* (column indices,
    first to go first) are left out until the rest fit or none are left to drop.
    *marks* colours cells: ``{column: {cell text: mark}}`` (see :data:`MARKS`).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-table--header",
        "row-table--odd",
        *(f"row-table--{mark}" for mark in MARKS),
    }

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
    RowTable > .row-table--bad {
        color: $text-error;
        text-style: bold;
    }
    RowTable > .row-table--warn {
        color: $text-warning;
    }
    RowTable > .row-table--good {
        color: $text-success;
    }
    RowTable > .row-table--dim {
        color: $text-muted;
    }
    """

    rows: reactive[tuple[tuple[str, tuple[str, ...]], ...]] = reactive((), layout=False)
    """``(key, cells)`` pairs, in the order shown."""

    def __init__(
        self,
        columns: Sequence[str],
        *,
        right: str = "",
        hide_first: Sequence[int] = (),
        marks: Mapping[int, Mapping[str, Mark]] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = tuple(columns)
        """The column titles."""
        self._right = {index for index in range(len(columns)) if str(index) in right}
        self._hide_first = tuple(hide_first)
        self._marks = {column: dict(by_text) for column, by_text in (marks or {}).items()}
        self._widths = [cell_len(title) for title in self.columns]
        self._shown: list[int] = list(range(len(self.columns)))
        self._lines: list[list[tuple[str, Mark | None]]] = []
        self._header: list[tuple[str, Mark | None]] = []
        self._by_key: dict[str, tuple[str, ...]] = {}
        self._laid_out_for = -1

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """The titles of the columns on screen now (narrow tables leave some out)."""
        return tuple(self.columns[index] for index in self._shown)

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
        self._by_key = dict(rows)
        self._lay_out()

    def on_resize(self) -> None:
        if self.size.width != self._laid_out_for:
            self._lay_out()

    def _lay_out(self) -> None:
        width = self.size.width
        self._laid_out_for = width
        shown = list(range(len(self.columns)))
        hide = list(self._hide_first)
        while hide and width and self._needed(shown) > width:
            shown.remove(hide.pop(0))
        self._shown = shown
        self._header = [(text, None) for text, _ in self._layout(self.columns)]
        self._lines = [self._layout(cells) for _, cells in self.rows]
        self.virtual_size = Size(self._needed(shown), len(self.rows) + 1)
        self.refresh()

    def _needed(self, shown: Sequence[int]) -> int:
        return 1 + sum(self._widths[index] for index in shown) + len(GAP) * (len(shown) - 1)

    def _layout(self, cells: Sequence[str]) -> list[tuple[str, Mark | None]]:
        pieces: list[tuple[str, Mark | None]] = [(" ", None)]
        for position, index in enumerate(self._shown):
            cell, width = cells[index], self._widths[index]
            pad = " " * (width - cell_len(cell))
            if position:
                pieces.append((GAP, None))
            mark = self._marks.get(index, {}).get(cell)
            if index in self._right:
                pieces += [(pad, None), (cell, mark)]
            else:
                pieces += [(cell, mark), (pad, None)]
        return pieces

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            pieces, style = self._header, self.get_component_rich_style("row-table--header")
        else:
            index = scroll_y + y - 1
            if index >= len(self._lines):
                return Strip.blank(width, self.rich_style)
            pieces = self._lines[index]
            style = self.rich_style
            if index % 2:
                style += self.get_component_rich_style("row-table--odd")
        segments = [
            Segment(text, style + self.get_component_rich_style(f"row-table--{mark}", partial=True))
            if mark
            else Segment(text, style)
            for text, mark in pieces
        ]
        strip = Strip(segments, sum(cell_len(text) for text, _ in pieces))
        return strip.crop_extend(scroll_x, scroll_x + width, style)
