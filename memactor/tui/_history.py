"""The TUI's own bounded history of what the views said, and rates from counters.

A view carries the time series only sometimes (a stream sends them in the first view
after a connection), so the viewer keeps its own history: one point per view for every
component, every device and the total, in bounded deques. The series a view does carry
backfill the history where it has no points of its own. Pure and synchronous.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import takewhile

import numpy as np
import numpy.typing as npt

from ..metrics import TOTAL, SeriesView, Snapshot

Key = tuple[str, str]
"""``(component, device)``; ``("*", "*")`` is the total, ``("*", device)`` a device's."""

Point = tuple[int, int, int]
"""``(time_ns, bytes_reserved, bytes_in_use)``; time on the watched process's clock."""

TOTAL_KEY: Key = (TOTAL, TOTAL)

DEFAULT_HISTORY_POINTS = 3000
"""Five minutes of views at 10 Hz."""


def device_key(device: str) -> Key:
    """The history key of one device's totals."""
    return (TOTAL, device)


class History:
    """Bounded ``(time, reserved, in use)`` points per component, device and the total.

    Each series keeps at most ``max_points`` points; older ones fall off the front.
    """

    __slots__ = ("_arrays", "_max_points", "_series")

    def __init__(self, *, max_points: int = DEFAULT_HISTORY_POINTS) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        self._max_points = max_points
        self._series: dict[Key, deque[Point]] = {}
        self._arrays: dict[Key, npt.NDArray[np.int64]] = {}

    @property
    def max_points(self) -> int:
        return self._max_points

    def __contains__(self, key: object) -> bool:
        return key in self._series

    def keys(self) -> Iterator[Key]:
        return iter(self._series)

    def clear(self) -> None:
        """Forget every point (the watched process changed)."""
        self._series.clear()
        self._arrays.clear()

    def points(self, key: Key) -> deque[Point]:
        """The points of *key*, oldest first (empty if none); do not modify."""
        return self._series.get(key) or deque()

    def _deque(self, key: Key) -> deque[Point]:
        points = self._series.get(key)
        if points is None:
            points = self._series[key] = deque(maxlen=self._max_points)
        return points

    def add_view(self, view: Snapshot, *, backfill: bool) -> None:
        """Add one point per series from *view*; with *backfill*, first add the points of
        ``view.series`` that are newer than what is kept and older than the view."""
        now = view.monotonic_ns
        if backfill:
            self._backfill(view)
        for stats in view.components:
            self._append(
                (stats.component, stats.device), (now, stats.bytes_reserved, stats.bytes_in_use)
            )
        for device in view.devices:
            self._append(
                device_key(device.device), (now, device.bytes_reserved, device.bytes_in_use)
            )
        totals = view.totals
        self._append(TOTAL_KEY, (now, totals.bytes_reserved, totals.bytes_in_use))

    def _append(self, key: Key, point: Point) -> None:
        points = self._deque(key)
        if points and points[-1][0] >= point[0]:
            return  # a repeated or older view adds nothing
        points.append(point)

    def _backfill(self, view: Snapshot) -> None:
        only_device = view.devices[0].device if len(view.devices) == 1 else None
        for one in view.series:
            keys = [(one.component, one.device)]
            if one.component == TOTAL and only_device is not None:
                keys.append(device_key(only_device))  # one device: its total is the total
            series = one.series
            for key in keys:
                points = self._deque(key)
                after = points[-1][0] if points else None
                for time_ns, reserved, in_use in zip(
                    series.times_ns.tolist(),
                    series.bytes_reserved.tolist(),
                    series.bytes_in_use.tolist(),
                    strict=True,
                ):
                    if time_ns < view.monotonic_ns and (after is None or time_ns > after):
                        points.append((time_ns, reserved, in_use))

    def recent_in_use(self, key: Key, count: int) -> list[int]:
        """The last *count* (or fewer) in-use values of *key*, oldest first."""
        points = self.points(key)
        start = max(0, len(points) - count)
        return [points[i][2] for i in range(start, len(points))]

    def since(self, key: Key, start_ns: int) -> list[Point]:
        """The points of *key* at or after *start_ns*, oldest first."""
        points = self.points(key)
        first = len(points)
        while first > 0 and points[first - 1][0] >= start_ns:
            first -= 1
        return [points[i] for i in range(first, len(points))]

    def series_view(self, key: Key) -> SeriesView:
        """The points of *key* as a :class:`SeriesView` (for trend analysis)."""
        points = self.points(key)
        # Points only ever join at the end (and fall off the front): convert the new ones
        # and keep the rest, as the Leaks view asks for every component once a second.
        cached = self._arrays.get(key)
        known = cached[-1, 0] if cached is not None and len(cached) else None
        fresh = list(takewhile(lambda point: known is None or point[0] > known, reversed(points)))
        new = np.array(fresh[::-1], dtype=np.int64).reshape(len(fresh), 3)
        columns = new if cached is None else np.concatenate((cached, new))
        columns = columns[len(columns) - len(points) :]
        self._arrays[key] = columns
        return SeriesView(
            np.ascontiguousarray(columns[:, 0]),
            np.ascontiguousarray(columns[:, 1]),
            np.ascontiguousarray(columns[:, 2]),
        )


class RateMeter:
    """The rate of a growing counter over (at least) the last ``window_ns`` of samples.

    A counter that goes down (the watched process restarted) starts the meter over.
    """

    __slots__ = ("_samples", "_window_ns")

    def __init__(self, *, window_ns: int = 1_000_000_000) -> None:
        self._window_ns = window_ns
        self._samples: deque[tuple[int, int]] = deque()

    def add(self, time_ns: int, count: int) -> None:
        samples = self._samples
        if samples and (count < samples[-1][1] or time_ns < samples[-1][0]):
            samples.clear()
        if samples and samples[-1][0] == time_ns:
            samples[-1] = (time_ns, count)
        else:
            samples.append((time_ns, count))
        # Keep the newest sample that is at least a window old as the window's start.
        while len(samples) > 2 and time_ns - samples[1][0] >= self._window_ns:
            samples.popleft()

    def rate(self) -> float | None:
        """Counts per second over the window; ``None`` before two samples."""
        samples = self._samples
        if len(samples) < 2:
            return None
        (start_ns, start), (end_ns, end) = samples[0], samples[-1]
        return (end - start) * 1e9 / (end_ns - start_ns)

    def clear(self) -> None:
        self._samples.clear()
