"""Trend analysis: is a component's in-use memory growing steadily?

A least-squares line through the in-use series gives a slope in bytes per second and a
goodness of fit (R²). Growth is flagged only when the series is long enough (points and
duration), the slope is steep enough and the fit is good (steady, not a burst). A burst
that comes back fits a line badly, so it is not flagged; a pool that fills its cache does
not grow in use at all. The net growth (last point less first) is reported beside the
verdict, not used for it: one noisy end point should not decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._series import SeriesView
from ._snapshot import PROCESS, Snapshot


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """Thresholds for :func:`analyze_trend`; the defaults suit a 10 Hz sampler."""

    min_points: int = 8
    min_duration_s: float = 5.0
    min_slope_bytes_per_s: float = 1.0
    min_r_squared: float = 0.8

    def __post_init__(self) -> None:
        if self.min_points < 3:
            raise ValueError(f"min_points must be at least 3, got {self.min_points}")
        if not 0.0 <= self.min_r_squared <= 1.0:
            raise ValueError(f"min_r_squared must be within [0, 1], got {self.min_r_squared}")
        if self.min_duration_s < 0 or self.min_slope_bytes_per_s < 0:
            raise ValueError("min_duration_s and min_slope_bytes_per_s must not be negative")


@dataclass(frozen=True, slots=True)
class Trend:
    """The fitted line through one in-use series and the verdict on it."""

    component: str
    device: str
    points: int
    duration_s: float
    slope_bytes_per_s: float
    r_squared: float
    net_growth_bytes: int
    growing: bool
    """True when the growth is steady by every threshold of the config."""
    reason: str
    """Why it is or is not flagged, in words."""


def analyze_trend(
    series: SeriesView,
    *,
    component: str = "*",
    device: str = "*",
    config: TrendConfig | None = None,
) -> Trend:
    """Fit the in-use series of *series* and say whether it grows steadily."""
    config = config or TrendConfig()
    points = len(series)
    if points < 2:
        return Trend(
            component,
            device,
            points,
            0.0,
            0.0,
            0.0,
            0,
            False,
            f"too few points ({points} < {config.min_points})",
        )
    times = (series.times_ns - series.times_ns[0]).astype(np.float64) / 1e9
    in_use = series.bytes_in_use.astype(np.float64)
    duration = float(times[-1])
    net = int(series.bytes_in_use[-1] - series.bytes_in_use[0])
    time_mean = times.mean()
    centred_t = times - time_mean
    variance_t = float(centred_t @ centred_t)
    centred_y = in_use - in_use.mean()
    total = float(centred_y @ centred_y)
    if variance_t == 0.0:
        slope, r_squared = 0.0, 0.0
    else:
        slope = float(centred_t @ centred_y) / variance_t
        residual = centred_y - slope * centred_t
        r_squared = 1.0 - float(residual @ residual) / total if total > 0 else 1.0
    if points < config.min_points:
        verdict, reason = False, f"too few points ({points} < {config.min_points})"
    elif duration < config.min_duration_s:
        verdict, reason = False, f"too short ({duration:.1f} s < {config.min_duration_s:g} s)"
    elif slope < config.min_slope_bytes_per_s:
        verdict, reason = False, "no growth"
    elif r_squared < config.min_r_squared:
        verdict, reason = (
            False,
            f"growth is not steady (R² {r_squared:.2f} < {config.min_r_squared:g})",
        )
    else:
        verdict, reason = True, "steady growth"
    return Trend(component, device, points, duration, slope, r_squared, net, verdict, reason)


def find_growth(snapshot: Snapshot, config: TrendConfig | None = None) -> tuple[Trend, ...]:
    """Analyze every component series of *snapshot*; sorted by name.

    The total's series is left out, and so are the components that never held a byte
    (a component and device that only copied data).
    """
    held = {(c.component, c.device) for c in snapshot.components if c.peak_bytes_reserved}
    return tuple(
        analyze_trend(s.series, component=s.component, device=s.device, config=config)
        for s in sorted(snapshot.series, key=lambda s: (s.component, s.device))
        if (s.component, s.device) in held
    )


def find_unattributed_growth(
    snapshot: Snapshot, config: TrendConfig | None = None
) -> tuple[Trend, ...]:
    """Analyze each device's unattributed series (the in-use column of its
    :data:`PROCESS` series): memory outside memactor's books that grows steadily.

    Empty when the process was never sampled or the snapshot has no series.
    """
    return tuple(
        analyze_trend(s.series, component=PROCESS, device=s.device, config=config)
        for s in sorted(snapshot.process_series, key=lambda s: s.device)
    )
