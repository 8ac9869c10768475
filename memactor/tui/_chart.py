"""The memory chart: in use and reserved over the last minute, total and per device."""

from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from ._model import ChartData


class MemoryChart(PlotextPlot):
    """A line chart of :class:`ChartData`; redraws when :attr:`data` is set.

    Plotext costs a few microseconds per cell per redraw, so the app keeps this widget
    near 120 x 20 cells and sets its data at most ``chart_hz`` times a second.
    """

    DEFAULT_CSS = """
    MemoryChart {
        height: 14;
        width: 1fr;
    }
    """

    data: reactive[ChartData | None] = reactive(None)
    """What the chart shows; ``None`` before the first view."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)

    def on_mount(self) -> None:
        self._replot()

    def watch_data(self) -> None:
        self._replot()
        self.refresh()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        data = self.data
        if data is None:
            plt.title("memory: waiting for the first view")
            return
        plt.title(f"memory ({data.unit}) over the last {data.window_s:g} s")
        plt.xlim(-data.window_s, 0)
        for line in data.lines:
            if line.values:
                plt.plot(line.seconds, line.values, label=line.label, marker="braille")
        plt.xlabel("seconds ago")
