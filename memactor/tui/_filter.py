"""The filter bar: a substring that picks the components shown."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """Type a substring of component names; enter keeps it, escape clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter"),
    ]

    DEFAULT_CSS = """
    FilterBar {
        dock: bottom;
        margin-bottom: 1;
        display: none;
    }
    FilterBar.-open {
        display: block;
    }
    """

    class Closed(Message):
        """The user finished with the bar: *text* is the filter now ("" for none)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(
            placeholder="filter components (enter keeps, escape clears)",
            name=name,
            id=id,
            classes=classes,
        )

    def open(self) -> None:
        """Show the bar and focus it."""
        self.add_class("-open")
        self.focus()

    def _close(self) -> None:
        self.remove_class("-open")
        self.post_message(self.Closed(self.value))

    def action_clear_filter(self) -> None:
        self.value = ""
        self._close()

    async def action_submit(self) -> None:
        self._close()
