"""The diff screen: two snapshots compared, with the leak verdict, laid out to the width.

Prose wraps between words and the table of changed components is a Rich table that
narrows its columns (wrapping a header over two rows before cutting anything), so the
box reads at 80 columns as well as at 200.
"""

from __future__ import annotations

import io
from typing import ClassVar

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..events import format_size
from ..metrics import Change, Snapshot, SnapshotDiff, diff, find_growth, render_trend_verdict


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _changes(result: SnapshotDiff) -> RenderableType:
    changed = [d for d in result.components if d.change is not Change.UNCHANGED]
    unchanged = len(result.components) - len(changed)
    if not changed:
        return Text(f"no component changed ({_count(unchanged, 'component')} unchanged)")
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    names = [(d.component, d.device, d.change.value) for d in changed]
    for column, title in enumerate(("component", "device", "change")):
        longest = max(len(title), *(len(cells[column]) for cells in names))
        table.add_column(title, overflow="fold", min_width=min(longest, 24))
    for title in (
        "in use\nbefore",
        "in use\nafter",
        "in use\ndelta",
        "reserved\ndelta",
        "blocks\ndelta",
    ):
        table.add_column(title, justify="right", no_wrap=True)
    for d in changed:
        table.add_row(
            d.component,
            d.device,
            d.change.value,
            format_size(d.bytes_in_use_before),
            format_size(d.bytes_in_use_after),
            format_size(d.bytes_in_use_delta, signed=True),
            format_size(d.bytes_reserved_delta, signed=True),
            f"{d.live_blocks_delta:+,}",
        )
    if not unchanged:
        return table
    return Group(table, Text(f"{_count(unchanged, 'component')} unchanged", style="dim"))


def diff_report(before: Snapshot, after: Snapshot) -> Group:
    """``diff(before, after)`` for the screen: the totals, the changed components, the
    suspects, memory outside memactor, then the trend verdict over *after*'s series."""
    result = diff(before, after)
    parts: list[RenderableType] = [
        Text.assemble(
            (f'"{result.before_label}" -> "{result.after_label}"', "bold"),
            f" over {result.elapsed_ns / 1e9:.1f} s: in use "
            f"{format_size(result.bytes_in_use_delta, signed=True)}, reserved "
            f"{format_size(result.bytes_reserved_delta, signed=True)}, "
            f"{_count(len(result.new_blocks), 'new live block')}",
        ),
        Text(),
        _changes(result),
        Text(),
    ]
    if result.suspects:
        parts.append(
            Text(f"LEAK SUSPECTED in {_count(len(result.suspects), 'component')}", "bold red")
        )
        for s in result.suspects:
            parts.append(
                Text(
                    f"  {s.component}@{s.device}: {s.reason}, "
                    f"{format_size(s.bytes_in_use_delta, signed=True)} in use; "
                    f"{_count(s.new_blocks, 'new block')} lent out ({format_size(s.new_bytes)})"
                )
            )
    else:
        parts.append(Text("no leak suspected: no component's memory in use grew", "green"))
    for u in result.unattributed:
        parts.append(
            Text(
                f"unattributed on {u.device} (outside memactor): "
                f"{format_size(u.unattributed_bytes_before, signed=True)} -> "
                f"{format_size(u.unattributed_bytes_after, signed=True)}; the process "
                f"{format_size(u.process_bytes_delta, signed=True)}"
            )
        )
    if not (len(before.blocks) or len(after.blocks)):
        parts += [
            Text(),
            Text(
                "these snapshots were taken from views, without live blocks: "
                "new blocks cannot be listed",
                style="dim",
            ),
        ]
    if after.series:
        parts += [Text(), Text(render_trend_verdict(find_growth(after)), no_wrap=True)]
    return Group(*parts)


def diff_text(before: Snapshot, after: Snapshot, *, width: int = 80) -> str:
    """:func:`diff_report` as plain text, laid out for *width* columns."""
    out = io.StringIO()
    Console(width=width, no_color=True, file=out).print(diff_report(before, after))
    return out.getvalue()


class DiffScreen(ModalScreen[None]):
    """The report of ``diff(before, after)``; escape, q or d closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "dismiss", "Close"),
    ]

    DEFAULT_CSS = """
    DiffScreen {
        align: center middle;
    }
    DiffScreen > VerticalScroll {
        width: 100%;
        max-width: 110;
        height: auto;
        max-height: 100%;
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
        """The report as plain text at 80 columns (what the screen shows, uncoloured)."""
        self._renderable = diff_report(before, after)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._renderable)
