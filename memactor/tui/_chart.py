"""The memory chart: in use and reserved over the run so far (at most a minute).

In use is a filled area and reserved a line drawn over it, so both stay visible when
they are equal (the line then lies along the area's top edge); with several devices,
each device's in use is a line of its own. The axes carry round 1-2-5 ticks in one unit
and the caption names the colours, the unit and the window.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ._model import ChartData, ChartLine
from ._ticks import byte_ticks, seconds_ticks

IN_USE_COLOR = "green"
RESERVED_COLOR = "yellow"
DEVICE_COLORS = ("cyan", "magenta", "blue", "red")
"""Per-device in-use lines, in the order of the view's devices."""
MARKER = "hd"
"""Half blocks: solid lines and areas in any terminal font (braille reads as dots)."""
X_TICK_CELLS = 14
"""About one x tick per this many columns."""


def shown(data: ChartData) -> list[tuple[int, ChartLine]]:
    """The lines drawn, with their index: a device's line is left out when it is all
    zero or the same as the total in use (the area already says it)."""
    in_use = data.lines[0].values if data.lines else ()
    return [
        (index, line)
        for index, line in enumerate(data.lines)
        if line.values and (index < 2 or (any(line.values) and line.values != in_use))
    ]


def caption(data: ChartData | None) -> Text:
    """The line above the chart: which colour is what, the unit and the window."""
    if data is None:
        return Text("memory: waiting for the first view", style="bold")
    text = Text.assemble(("memory ", "bold"))
    for index, line in shown(data):
        if line.label == "in use":
            text.append("█ in use", style=IN_USE_COLOR)
        elif line.label == "reserved":
            text.append("━ reserved", style=RESERVED_COLOR)
        else:
            colour = DEVICE_COLORS[(index - 2) % len(DEVICE_COLORS)]
            text.append(f"━ {line.label}", style=colour)
        text.append("  ")
    text.append(f"over the last {data.window_s:.0f} s", style="dim")
    return text


class MemoryChart(PlotextPlot):
    """A chart of :class:`ChartData`; redraws when :attr:`data` is set or it is resized.

    Plotext costs a few microseconds per cell per redraw, so the app keeps this widget
    near 120 x 20 cells and sets its data at most ``chart_hz`` times a second.
    """

    DEFAULT_CSS = """
    MemoryChart {
        height: 1fr;
        width: 1fr;
    }
    """

    data: reactive[ChartData | None] = reactive(None)
    """What the chart shows; ``None`` before the first view."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def render(self) -> RenderResult:
        # Ticks depend on the size drawn at: plot at render time, never at a stale size.
        self._replot()
        return super().render()

    def watch_data(self) -> None:
        self.refresh()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        data = self.data
        if data is None:
            return
        plot_rows = max(1, self.size.height - 3)  # the frame's top, the x axis, its labels
        _, _, y = byte_ticks(data.largest_bytes, max(3, plot_rows // 3))
        x = seconds_ticks(data.window_s, max(1, self.size.width // X_TICK_CELLS))
        plt.xlim(-data.window_s, 0)
        plt.ylim(0, y.top)
        plt.xticks(list(x.positions), list(x.labels))
        plt.yticks(list(y.positions), list(y.labels))
        for index, line in shown(data):
            if line.label == "in use":
                plt.plot(line.seconds, line.values, marker=MARKER, color=IN_USE_COLOR, fillx=True)
            elif line.label == "reserved":
                plt.plot(line.seconds, line.values, marker=MARKER, color=RESERVED_COLOR)
            else:
                colour = DEVICE_COLORS[(index - 2) % len(DEVICE_COLORS)]
                plt.plot(line.seconds, line.values, marker=MARKER, color=colour)


class ChartPanel(Vertical):
    """The caption over the :class:`MemoryChart`; set :attr:`data` to redraw both."""

    DEFAULT_CSS = """
    ChartPanel {
        height: 1fr;
    }
    ChartPanel > Static {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    data: reactive[ChartData | None] = reactive(None)
    """What the chart shows; ``None`` before the first view."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def compose(self) -> ComposeResult:
        yield Static(caption(None), id="chart-caption")
        yield MemoryChart(id="chart")

    def watch_data(self, data: ChartData | None) -> None:
        if self.is_mounted:
            self.query_one(Static).update(caption(data))
            self.query_one(MemoryChart).data = data
