"""The snapshot picker: mark any two of the snapshots taken, and diff them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static

from ..events import format_size
from ..metrics import Snapshot


def describe(snapshot: Snapshot, first: Snapshot) -> str:
    """One line: the label, when (after the first snapshot), in use and live blocks."""
    after_s = (snapshot.monotonic_ns - first.monotonic_ns) / 1e9
    blocks = f"{len(snapshot.blocks):,} live blocks" if len(snapshot.blocks) else "no blocks"
    return (
        f"{snapshot.label or '(no label)':<10} +{after_s:7.1f} s  "
        f"{format_size(snapshot.totals.bytes_in_use):>10} in use  {blocks}"
    )


class PickSnapshots(ModalScreen[tuple[int, int] | None]):
    """Lists the snapshots, oldest first; space marks, ``d`` diffs the two marked (the
    older one is *before*), escape closes. Dismissed with the two indices, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "diff", "Diff the two marked"),
        Binding("escape,q", "dismiss(None)", "Close"),
    ]

    DEFAULT_CSS = """
    PickSnapshots {
        align: center middle;
    }
    PickSnapshots > Vertical {
        width: 80%;
        height: auto;
        max-height: 80%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    PickSnapshots SelectionList {
        height: auto;
        max-height: 20;
    }
    """

    def __init__(
        self,
        snapshots: Sequence[Snapshot],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.snapshots = tuple(snapshots)
        """The snapshots offered, oldest first."""

    def compose(self) -> ComposeResult:
        first = self.snapshots[0]
        with Vertical():
            yield Static("mark two snapshots with space, then d to diff them; escape closes")
            yield SelectionList[int](
                *[(describe(s, first), index) for index, s in enumerate(self.snapshots)]
            )

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_diff(self) -> None:
        marked = sorted(self.query_one(SelectionList).selected)
        if len(marked) != 2:
            self.notify(f"mark exactly two snapshots (marked: {len(marked)})", severity="warning")
            return
        self.dismiss((marked[0], marked[1]))
