"""Projections: when does the current growth reach a known limit?

A limit is a pool's ``max_reserved``, a device's total, or a budget given to ``check``
or a marker: a number the snapshot does not hold, so it is passed in (:class:`Limit`).
The model is a least-squares line through the most recent part of the series (the last
``recent_fraction`` of it), with the slope's standard error; the time to the limit is
``(limit - now) / slope``, and its range uses the slope plus and minus two standard
errors (about 95% under the line model with independent noise). When the slope is not
clearly above zero (``slope - 2 SE <= 0``), the series is said not to grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..events import format_size
from ._series import SeriesView
from ._snapshot import TOTAL, Snapshot

Measure = Literal["reserved", "in_use"]


@dataclass(frozen=True, slots=True)
class Limit:
    """A known limit on one component's bytes on one device, or (``component=None``) on
    the total of every component on every device (the ledger keeps no per-device total
    series: on a one-GPU process, name the GPU's components one by one or use the total)."""

    bytes: int
    component: str | None = None
    """``None``: the total of every component (*device* is then not read)."""
    device: str = "cpu"
    measure: Measure = "reserved"
    """Which bytes the limit caps: ``"reserved"`` (a pool's cap, a device's total) or
    ``"in_use"`` (a budget on what is lent out)."""
    name: str = "limit"
    """What to call it in the sentence: ``"cap"``, ``"budget"``, ``"device total"``."""

    def __post_init__(self) -> None:
        if self.bytes <= 0:
            raise ValueError(f"a limit must be positive, got {self.bytes} bytes")
        if self.measure not in ("reserved", "in_use"):
            raise ValueError(f"measure must be 'reserved' or 'in_use', not {self.measure!r}")


@dataclass(frozen=True, slots=True)
class Projection:
    """When the growth of one series reaches its limit, with the model's uncertainty."""

    limit: Limit
    current_bytes: int
    slope_bytes_per_s: float
    slope_stderr_bytes_per_s: float
    window_s: float
    """The span of the series the line was fitted through."""
    points: int
    seconds_to_limit: float | None
    """``None`` when it does not grow (or is already at the limit: 0.0)."""
    earliest_s: float | None
    latest_s: float | None
    """``None`` (with a known :attr:`earliest_s`): not bounded, the slope may be zero."""
    sentence: str

    @property
    def grows(self) -> bool:
        return self.seconds_to_limit is not None

    def to_dict(self) -> dict[str, object]:
        return {
            "component": self.limit.component,
            "device": self.limit.device,
            "measure": self.limit.measure,
            "limit_name": self.limit.name,
            "limit_bytes": self.limit.bytes,
            "current_bytes": self.current_bytes,
            "slope_bytes_per_s": self.slope_bytes_per_s,
            "slope_stderr_bytes_per_s": self.slope_stderr_bytes_per_s,
            "window_s": self.window_s,
            "points": self.points,
            "seconds_to_limit": self.seconds_to_limit,
            "earliest_s": self.earliest_s,
            "latest_s": self.latest_s,
            "model": "least-squares line over the recent series; range: slope ± 2 SE",
            "sentence": self.sentence,
        }


def duration_words(seconds: float) -> str:
    """``"45 s"``, ``"4 min"``, ``"2.5 h"``, ``"3 days"``."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _fit(
    series: SeriesView, values: npt.NDArray[np.int64], recent_fraction: float
) -> tuple[float, float, float, int]:
    times = series.times_ns.astype(np.float64) / 1e9
    start = times[-1] - recent_fraction * (times[-1] - times[0])
    keep = times >= start
    t, y = times[keep], values[keep].astype(np.float64)
    n = len(t)
    if n < 3 or t[-1] <= t[0]:
        return 0.0, math.inf, float(t[-1] - t[0]) if n else 0.0, n
    centred = t - t.mean()
    sxx = float(centred @ centred)
    slope = float(centred @ (y - y.mean())) / sxx
    residual = y - y.mean() - slope * centred
    stderr = math.sqrt(float(residual @ residual) / (n - 2) / sxx)
    return slope, stderr, float(t[-1] - t[0]), n


def project(
    snapshot: Snapshot, limits: tuple[Limit, ...] | list[Limit], *, recent_fraction: float = 0.5
) -> tuple[Projection, ...]:
    """Project each of *limits* over *snapshot*'s series, in the order given.

    The current bytes are the snapshot's own (exact); the slope comes from the series. A
    limit whose component has no series in *snapshot* is left out.
    Raises :class:`ValueError` for a *recent_fraction* outside ``(0, 1]``.
    """
    if not 0.0 < recent_fraction <= 1.0:
        raise ValueError(f"recent_fraction must be within (0, 1], got {recent_fraction}")
    found = []
    for limit in limits:
        wanted = (TOTAL, TOTAL) if limit.component is None else (limit.component, limit.device)
        series = next(
            (s.series for s in snapshot.series if (s.component, s.device) == wanted), None
        )
        if series is None or len(series) == 0:
            continue
        values = series.bytes_reserved if limit.measure == "reserved" else series.bytes_in_use
        found.append(_project(limit, series, values, _now(snapshot, limit), recent_fraction))
    return tuple(found)


def _now(snapshot: Snapshot, limit: Limit) -> int:
    """The exact bytes the limit caps when the snapshot was taken (the series' last
    sample may be older)."""
    if limit.component is None:
        totals = snapshot.totals
        return totals.bytes_reserved if limit.measure == "reserved" else totals.bytes_in_use
    stats = snapshot.component(limit.component, limit.device)
    return stats.bytes_reserved if limit.measure == "reserved" else stats.bytes_in_use


def _project(
    limit: Limit,
    series: SeriesView,
    values: npt.NDArray[np.int64],
    current: int,
    recent_fraction: float,
) -> Projection:
    slope, stderr, window, points = _fit(series, values, recent_fraction)
    what = "everything" if limit.component is None else f"{limit.component} on {limit.device}"
    measure = "reserved" if limit.measure == "reserved" else "in use"
    head = (
        f"{what}: {format_size(current)} {measure} of its {format_size(limit.bytes)} {limit.name}"
    )
    model = f"line fit over the last {window:.0f} s, {points} points"
    if current >= limit.bytes:
        return Projection(
            limit, current, slope, stderr, window, points, 0.0, 0.0, 0.0,
            f"{head}: at or over it now",
        )  # fmt: skip
    if not math.isfinite(stderr) or slope - 2 * stderr <= 0:
        spread = "" if not math.isfinite(stderr) else f" ± {format_size(round(2 * stderr))}/s"
        return Projection(
            limit, current, slope, stderr, window, points, None, None, None,
            f"{head}: does not grow ({format_size(round(slope), signed=True)}/s{spread}, "
            f"{model})",
        )  # fmt: skip
    left = limit.bytes - current
    eta = left / slope
    earliest = left / (slope + 2 * stderr)
    latest = left / (slope - 2 * stderr)
    return Projection(
        limit, current, slope, stderr, window, points, eta, earliest, latest,
        f"{head}: reaches it in about {duration_words(eta)} at "
        f"{format_size(round(slope), signed=True)}/s ({model}; 95% range "
        f"{duration_words(earliest)} to {duration_words(latest)})",
    )  # fmt: skip
