"""Even, rounded chart ticks: steps of 1, 2 or 5 times a power of ten, with units.

A y axis reads at a glance when its labels are round numbers in one unit (``0``,
``200 KiB``, ``400 KiB``), and an x axis when its labels are whole seconds ago. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))


@dataclass(frozen=True, slots=True)
class Ticks:
    """Tick positions (in the axis's own values) and their labels, low to high."""

    positions: tuple[float, ...]
    labels: tuple[str, ...]
    top: float
    """Where the axis ends: the last tick, at or past the largest value."""


def nice_step(span: float, count: int) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten that covers *span* in at most
    *count* steps (*span* > 0, *count* >= 1)."""
    if span <= 0 or count < 1:
        raise ValueError(f"nice_step needs span > 0 and count >= 1, got {span!r}, {count!r}")
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        step = factor * power
        if step * count >= span * (1 - 1e-9):
            return step
    return 10.0 * power  # pragma: no cover - the loop always returns


def binary_unit(largest: float) -> tuple[str, int]:
    """The largest binary unit that *largest* bytes come to at least one of."""
    chosen = _UNITS[0]
    for unit in _UNITS:
        if largest >= unit[1]:
            chosen = unit
    return chosen


def _number(value: float) -> str:
    return f"{value:,.10g}"


def byte_ticks(largest_bytes: float, count: int) -> tuple[str, int, Ticks]:
    """At most *count* + 1 ticks from 0 up to at least *largest_bytes*, in the binary
    unit it comes to (``"KiB"``), on 1-2-5 steps: ``(unit, scale, ticks)`` where the
    ticks' positions are in that unit."""
    unit, scale = binary_unit(largest_bytes)
    largest = largest_bytes / scale
    if largest <= 0:
        return unit, scale, Ticks((0.0, 1.0), ("0", f"1 {unit}"), 1.0)
    step = nice_step(largest, max(1, count))
    steps = max(1, math.ceil(largest / step - 1e-9))
    positions = tuple(round(i * step, 10) for i in range(steps + 1))
    labels = tuple("0" if p == 0 else f"{_number(p)} {unit}" for p in positions)
    return unit, scale, Ticks(positions, labels, positions[-1])


def seconds_ticks(window_s: float, count: int) -> Ticks:
    """At most *count* + 1 ticks from ``-window_s`` to 0 (``"now"``) on 1-2-5 steps of
    seconds, labelled ``"-30 s"``; ``top`` is 0."""
    if window_s <= 0:
        return Ticks((0.0,), ("now",), 0.0)
    step = nice_step(window_s, max(1, count))
    steps = math.floor(window_s / step + 1e-9)
    positions = tuple(round(-i * step, 10) for i in range(steps, -1, -1))
    labels = tuple("now" if p == 0 else f"{_number(p)} s" for p in positions)
    return Ticks(positions, labels, 0.0)
