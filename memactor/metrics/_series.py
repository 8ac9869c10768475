"""Bounded time series of a component's reserved and in-use bytes.

A series keeps at most ``capacity`` points. When it fills, neighbouring points are merged
pairwise (keeping the later time and the larger byte counts, so no peak is lost) and from
then on every two samples make one point. A run of any length therefore keeps a bounded
memory and an evenly spaced history whose resolution halves each time it fills.

The ledger does not append to every component's series on every tick: a component whose
bytes did not change is caught up later, in one :meth:`TimeSeries.extend` over the sample
times it missed (kept by :class:`SampleTimes`), which gives the very points that one
``append`` per tick would have given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]

DEFAULT_CAPACITY = 512

_FIRST_STORAGE = 16
"""Points a new series has room for; storage grows fourfold up to its capacity."""


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

    ``append`` is called by whoever samples (the metrics actor, at a fixed rate). Storage
    starts small and grows up to ``capacity`` points, so a short series stays small; a
    full one never allocates again.
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
        room = min(capacity, _FIRST_STORAGE)
        self._times = np.zeros(room, dtype=np.int64)
        self._reserved = np.zeros(room, dtype=np.int64)
        self._in_use = np.zeros(room, dtype=np.int64)
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
        if self._pending == self._stride:
            self._put(time_ns)

    def extend(self, times_ns: Int64Array, bytes_reserved: int, bytes_in_use: int) -> None:
        """Add one sample at each of *times_ns*, all with the same byte counts.

        The result is exactly that of calling :meth:`append` once per time, at a cost of
        a few array operations per halving instead of one call per sample.
        """
        start, end = 0, len(times_ns)
        while start < end:
            if self._count == self._capacity:
                self._halve()
            stride = self._stride
            if self._pending or end - start < stride:
                # Fill the point that has begun (or begin one) a sample group at a time.
                taken = min(stride - self._pending, end - start)
                start += taken
                self._pending += taken
                self._pending_reserved = max(self._pending_reserved, bytes_reserved)
                self._pending_in_use = max(self._pending_in_use, bytes_in_use)
                if self._pending == stride:
                    self._put(int(times_ns[start - 1]))
                continue
            # Whole points of equal bytes, up to a full series.
            points = min(self._capacity - self._count, (end - start) // stride)
            index = self._count
            if index + points > len(self._times):
                self._grow(index + points)
            stop = start + points * stride
            self._times[index : index + points] = times_ns[start + stride - 1 : stop : stride]
            self._reserved[index : index + points] = bytes_reserved
            self._in_use[index : index + points] = bytes_in_use
            self._count += points
            start = stop

    def extend_then_append(
        self,
        times_ns: Int64Array,
        bytes_reserved: int,
        bytes_in_use: int,
        time_ns: int,
        new_reserved: int,
        new_in_use: int,
    ) -> None:
        """``extend(times_ns, bytes_reserved, bytes_in_use)``, then ``append(time_ns,
        new_reserved, new_in_use)``: how the ledger samples a component that changed.

        While every sample is a point of its own (a stride of one) and the storage has
        room, this writes the points straight into it, at a third of the two calls' cost.
        """
        index = self._count
        stop = index + len(times_ns)
        if self._stride != 1 or stop >= len(self._times):
            self.extend(times_ns, bytes_reserved, bytes_in_use)
            self.append(time_ns, new_reserved, new_in_use)
            return
        # A stride of one has no pending samples, and the storage never outgrows the
        # capacity, so no halving falls within these points.
        times, reserved, in_use = self._times, self._reserved, self._in_use
        times[index:stop] = times_ns
        times[stop] = time_ns
        reserved[index:stop] = bytes_reserved
        reserved[stop] = new_reserved
        in_use[index:stop] = bytes_in_use
        in_use[stop] = new_in_use
        self._count = stop + 1

    def _put(self, time_ns: int) -> None:
        """Write the pending point, complete now, at *time_ns*."""
        index = self._count
        if index == len(self._times):
            self._grow(index + 1)
        self._times[index] = time_ns
        self._reserved[index] = self._pending_reserved
        self._in_use[index] = self._pending_in_use
        self._count += 1
        self._pending = self._pending_reserved = self._pending_in_use = 0

    def _grow(self, needed: int) -> None:
        room = min(self._capacity, max(needed, 4 * len(self._times)))
        self._times = _grown(self._times, room)
        self._reserved = _grown(self._reserved, room)
        self._in_use = _grown(self._in_use, room)

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


def _grown(array: Int64Array, room: int) -> Int64Array:
    new = np.zeros(room, dtype=np.int64)
    new[: len(array)] = array
    return new


class SampleTimes:
    """The times of the latest ``window`` samples, by sample number (0, 1, 2, ...).

    The ledger keeps one, so that a series that skipped some samples can be caught up
    with their times later; whoever reads from it must do so within ``window`` samples.
    """

    __slots__ = ("_times", "count")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._times = np.zeros(window, dtype=np.int64)
        self.count = 0
        """Samples recorded so far; the next one gets this number."""

    @property
    def window(self) -> int:
        return len(self._times)

    def append(self, time_ns: int) -> None:
        self._times[self.count % len(self._times)] = time_ns
        self.count += 1

    def between(self, first: int, stop: int) -> Int64Array:
        """The times of samples ``first`` up to (not including) ``stop``: a view that the
        next :meth:`append` may overwrite, to be read at once.

        Raises :class:`IndexError` for samples not taken yet or already forgotten.
        """
        window = len(self._times)
        if not (max(0, self.count - window) <= first <= stop <= self.count):
            raise IndexError(f"samples {first}..{stop} are not within the last {window}")
        start = first % window
        if start + (stop - first) <= window:
            return self._times[start : start + stop - first]
        return np.concatenate(
            (self._times[start:], self._times[: (stop - first) - (window - start)])
        )
