"""Bounded time series of a component's reserved and in-use bytes.

A series keeps at most ``capacity`` points. When it fills, neighbouring points are merged
pairwise (keeping the later time and the larger byte counts, so no peak is lost) and from
then on every two samples make one point. A run of any length therefore keeps a bounded
memory and an evenly spaced history whose resolution halves each time it fills.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]

DEFAULT_CAPACITY = 512


@dataclass(frozen=True, slots=True, eq=False)
class SeriesView:
    """An immutable copy of a series: three equal-length ``int64`` arrays."""

    times_ns: Int64Array
    bytes_reserved: Int64Array
    bytes_in_use: Int64Array
    stride: int = 1
    """How many samples each point stands for."""

    def __len__(self) -> int:
        return len(self.times_ns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesView):
            return NotImplemented
        return (
            self.stride == other.stride
            and np.array_equal(self.times_ns, other.times_ns)
            and np.array_equal(self.bytes_reserved, other.bytes_reserved)
            and np.array_equal(self.bytes_in_use, other.bytes_in_use)
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable


class TimeSeries:
    """A growing, bounded series of ``(time, reserved, in_use)`` points.

    ``append`` is called by whoever samples (the metrics actor, at a fixed rate); it never
    allocates after the series is created.
    """

    __slots__ = (
        "_capacity",
        "_count",
        "_in_use",
        "_pending",
        "_pending_in_use",
        "_pending_reserved",
        "_reserved",
        "_stride",
        "_times",
    )

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even number of at least 2, got {capacity}")
        self._capacity = capacity
        self._times = np.zeros(capacity, dtype=np.int64)
        self._reserved = np.zeros(capacity, dtype=np.int64)
        self._in_use = np.zeros(capacity, dtype=np.int64)
        self._count = 0
        self._stride = 1
        self._pending = 0
        self._pending_reserved = 0
        self._pending_in_use = 0

    def __len__(self) -> int:
        return self._count

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def stride(self) -> int:
        return self._stride

    def append(self, time_ns: int, bytes_reserved: int, bytes_in_use: int) -> None:
        """Add one sample. With a stride above one, samples are folded (max) into a point."""
        if self._count == self._capacity:
            # Halve before this sample joins a point, so that it falls into a point of
            # the new stride and every point stands for exactly ``stride`` samples.
            self._halve()
        self._pending += 1
        if bytes_reserved > self._pending_reserved:
            self._pending_reserved = bytes_reserved
        if bytes_in_use > self._pending_in_use:
            self._pending_in_use = bytes_in_use
        if self._pending < self._stride:
            return
        index = self._count
        self._times[index] = time_ns
        self._reserved[index] = self._pending_reserved
        self._in_use[index] = self._pending_in_use
        self._count += 1
        self._pending = self._pending_reserved = self._pending_in_use = 0

    def _halve(self) -> None:
        half = self._capacity // 2
        self._times[:half] = self._times[1::2]
        self._reserved[:half] = np.maximum(self._reserved[0::2], self._reserved[1::2])
        self._in_use[:half] = np.maximum(self._in_use[0::2], self._in_use[1::2])
        self._count = half
        self._stride *= 2

    def view(self) -> SeriesView:
        """Return an immutable copy of the points so far."""
        count = self._count
        times, reserved, in_use = (
            array[:count].copy() for array in (self._times, self._reserved, self._in_use)
        )
        for array in (times, reserved, in_use):
            array.flags.writeable = False
        return SeriesView(times, reserved, in_use, self._stride)
