"""Leak verdicts: one word and one sentence per component and per owner, from exact data.

Four kinds of evidence are combined, each read from a snapshot alone:

- *floor growth, window by window*: the in-use series is cut into equal windows of time
  and the lowest point (the floor) of each is taken. A sawtooth's floor stays put; a
  leak under it lifts the floor in every window. Growth counts only when it is
  consistent: every window's floor is above the last one's by a fair share of the total
  rise (CPython's regression runner calls a leak only if every repeated run leaks).
- *staleness*: a block still lent out long after its component's blocks usually die:
  older than ``stale_multiple`` times the mean lifetime of the blocks the component
  freed and ``longest_multiple`` times the longest any of them lived. Ages and
  lifetimes are exact (the ledger sees every lend and free). Blocks born during the
  run's start-up (the first ``startup_fraction`` of the series) are buffers set up once,
  not leaks, and are never stale.
- *owners*: stale blocks are grouped by owner; an owner whose stale blocks were born in
  every window of the run leaks steadily, even when its component's total hides it.
- *change points*: the single step that best splits the in-use series, reported in the
  sentence when it is large against the noise on either side.

Staleness needs the live blocks' ages: a view (a snapshot taken without blocks, as the
live view judges) has none, and its verdicts say ``block ages not in this view`` where a
component holds blocks, rather than call them fresh.

Before ``min_duration_s`` of samples, only the line fit of :func:`analyze_trend` is read
(steady growth is SUSPECT): too early, a cache filling looks like a leak to the windows
and a block held longer than any freed so far looks stale.

The vocabulary (:class:`Verdict`): ``LEAK`` (grows steadily, or an owner leaves stale
blocks throughout the run), ``SUSPECT`` (stale blocks: held but dead, not growing
now; growth in every window but uneven; steady growth on a short series), ``PLATEAU``
(grew, then stopped: a cache warming up, a pool filling to its cap) and ``OK``. A LEAK
or a SUSPECT is *flagged*.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..events import format_size
from ._blocks import LiveBlocks
from ._snapshot import Snapshot
from ._stats import ComponentStats, histogram_bucket_bounds
from ._trend import TrendConfig, analyze_trend

Int64Array = npt.NDArray[np.int64]


class Verdict(enum.Enum):
    """The one word of a leak verdict; see the module docstring."""

    LEAK = "leak"
    SUSPECT = "suspect"
    PLATEAU = "plateau"
    OK = "ok"

    @property
    def flagged(self) -> bool:
        """True for ``LEAK`` and ``SUSPECT``: what a check fails on."""
        return self in (Verdict.LEAK, Verdict.SUSPECT)


@dataclass(frozen=True, slots=True)
class VerdictConfig:
    """Thresholds for :func:`judge_leaks`; the defaults suit runs of a minute or more."""

    min_duration_s: float = 20.0
    """A series shorter than this is not judged: early on, a cache filling looks like a
    leak and a block held longer than any freed so far looks stale."""
    windows: int = 4
    """How many equal windows of time the series is cut into (2 or more)."""
    min_points_per_window: int = 3
    min_growth_bytes: int = 4096
    """Floor growth up to this (or up to one typical block), over the whole series, is
    not growth."""
    min_share: float = 0.25
    """Every window's floor must rise by at least this share of an equal split of the
    total rise (0.25: a quarter of its share), or the growth is not consistent."""
    stale_multiple: float = 10.0
    longest_multiple: float = 2.0
    min_lifetimes: int = 10
    """Freed blocks a component needs before its typical lifetime means anything."""
    min_stale_blocks: int = 3
    startup_fraction: float = 0.1
    step_sigmas: float = 4.0
    """A change point is reported when its step exceeds this many standard deviations
    of the series on either side of it."""

    def __post_init__(self) -> None:
        if self.windows < 2:
            raise ValueError(f"windows must be at least 2, got {self.windows}")
        if self.min_points_per_window < 1 or self.min_stale_blocks < 1:
            raise ValueError("min_points_per_window and min_stale_blocks must be at least 1")
        if self.stale_multiple <= 1.0 or self.longest_multiple < 1.0:
            raise ValueError(
                "stale_multiple must exceed 1 and longest_multiple must be at least 1, got "
                f"{self.stale_multiple} and {self.longest_multiple}"
            )
        if not 0.0 <= self.startup_fraction < 1.0 or not 0.0 <= self.min_share <= 1.0:
            raise ValueError("startup_fraction must be within [0, 1) and min_share within [0, 1]")
        if self.min_duration_s < 0:
            raise ValueError(f"min_duration_s must not be negative, got {self.min_duration_s}")
        if self.min_growth_bytes < 0 or self.min_lifetimes < 1 or self.step_sigmas <= 0:
            raise ValueError(
                "min_growth_bytes must not be negative, min_lifetimes and step_sigmas "
                "must be positive"
            )


@dataclass(frozen=True, slots=True)
class LeakVerdict:
    """The verdict on one component on one device, or on one owner inside it."""

    component: str
    device: str
    owner: str | None
    """``None`` for the component's own verdict."""
    verdict: Verdict
    reason: str
    """One sentence, with the numbers."""
    bytes_in_use: int
    stale_blocks: int = 0
    stale_bytes: int = 0
    typical_lifetime_ns: int = 0
    """The mean lifetime of the blocks the component freed (0: too few to say)."""
    floor_rise_bytes: int = 0
    """The last window's floor less the first one's."""
    windows_rising: int = 0
    windows: int = 0
    """How many windows the series had (0: too short to cut)."""
    step_bytes: int = 0
    """The change point's step (0: none stood out)."""
    step_at_s: float = 0.0
    """When the step happened, in seconds from the start of the series."""
    slope_bytes_per_s: float = 0.0
    r_squared: float = 0.0
    owners: tuple[LeakVerdict, ...] = ()
    """The verdicts on the owners of stale blocks, worst first (component verdicts only)."""

    @property
    def flagged(self) -> bool:
        return self.verdict.flagged

    def to_dict(self) -> dict[str, object]:
        """Every field under its name, the verdict as its word, owners nested (JSON-ready)."""
        return {
            **{
                name: getattr(self, name)
                for name in self.__dataclass_fields__
                if name not in ("verdict", "owners")
            },
            "verdict": self.verdict.value,
            "flagged": self.flagged,
            "owners": [o.to_dict() for o in self.owners],
        }


@dataclass(frozen=True, slots=True)
class _Floors:
    windows: int
    rising: int
    rise_bytes: int
    consistent: bool
    uneven: bool
    """Every window rose by a block or more, but not each by a fair share."""


def _floors(
    times: Int64Array, in_use: Int64Array, block_bytes: int, config: VerdictConfig
) -> _Floors | None:
    """The window floors of a series, or ``None`` when it is too short to cut. A rise
    counts when it is at least *block_bytes* (one typical block: less is the noise of a
    component that lends and frees) and a fair share of the total."""
    if len(times) < config.windows * config.min_points_per_window or times[-1] <= times[0]:
        return None
    edges = np.linspace(times[0], times[-1], config.windows + 1)
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, config.windows - 1)
    counts = np.bincount(index, minlength=config.windows)
    if int(counts.min()) < config.min_points_per_window:
        return None
    floors = np.full(config.windows, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(floors, index, in_use)
    rises = np.diff(floors)
    total = int(floors[-1] - floors[0])
    share = max(config.min_share * total / (config.windows - 1), block_bytes)
    grown = total > max(config.min_growth_bytes, block_bytes, 1)
    consistent = grown and bool(np.all(rises >= share))
    uneven = grown and not consistent and bool(np.all(rises >= max(block_bytes, 1)))
    return _Floors(config.windows, int(np.sum(rises > 0)), total, consistent, uneven)


def _change_point(times: Int64Array, in_use: Int64Array, sigmas: float) -> tuple[int, float]:
    """The step (bytes, seconds from the start) of the split that best separates the
    series into two flat parts, or ``(0, 0.0)`` when no step stands out of the noise."""
    n = len(in_use)
    if n < 10:
        return 0, 0.0
    values = in_use.astype(np.float64)
    cumulative = np.cumsum(values)
    squares = np.cumsum(values * values)
    low, high = max(2, n // 10), n - max(2, n // 10)
    split = np.arange(low, high)
    left_mean = cumulative[split - 1] / split
    right_mean = (cumulative[-1] - cumulative[split - 1]) / (n - split)
    gain = split * (n - split) / n * (right_mean - left_mean) ** 2
    best = int(np.argmax(gain))
    k = int(split[best])
    left_var = squares[k - 1] / k - left_mean[best] ** 2
    right_var = (squares[-1] - squares[k - 1]) / (n - k) - right_mean[best] ** 2
    noise = float(np.sqrt(max(left_var, right_var, 0.0)))
    step = float(right_mean[best] - left_mean[best])
    if abs(step) <= sigmas * noise or step == 0.0:
        return 0, 0.0
    return round(step), float(times[k] - times[0]) / 1e9


def _typical_lifetime(stats: ComponentStats, config: VerdictConfig) -> tuple[int, int]:
    """The mean lifetime and the age beyond which a lent block is stale (0, 0: unknown)."""
    if stats.lifetimes < config.min_lifetimes or stats.lifetime_total_ns <= 0:
        return 0, 0
    mean = round(stats.lifetime_mean_ns)
    threshold = max(
        config.stale_multiple * stats.lifetime_mean_ns,
        config.longest_multiple * stats.lifetime_max_ns,
    )
    return mean, round(threshold)


def _typical_block(stats: ComponentStats) -> int:
    """The smallest size of the power-of-two bucket that holds the median allocation."""
    counts = np.asarray(stats.size_histogram, dtype=np.int64)
    total = int(counts.sum())
    if not total:
        return 0
    bucket = int(np.searchsorted(np.cumsum(counts), (total + 1) // 2))
    return histogram_bucket_bounds(bucket)[0]


def _seconds(ns: float) -> str:
    s = ns / 1e9
    return f"{s:.3g} s" if s < 10 else f"{s:.0f} s"


def _owner_verdicts(
    stats: ComponentStats,
    blocks: LiveBlocks,
    rows: npt.NDArray[np.bool_],
    ages: Int64Array,
    born: Int64Array,
    edges: npt.NDArray[np.float64] | None,
    typical_ns: int,
    config: VerdictConfig,
) -> tuple[LeakVerdict, ...]:
    owners = blocks.owner[rows]
    sizes = blocks.size[rows]
    verdicts = []
    for owner in np.unique(owners).tolist():
        mine = owners == owner
        count, total = int(mine.sum()), int(sizes[mine].sum())
        if count < config.min_stale_blocks:
            continue
        name = blocks.owners[owner]
        oldest = int(ages[mine].max())
        windows = 0
        if edges is not None:
            index = np.searchsorted(edges, born[mine], side="right") - 1
            windows = len(set(np.clip(index, 0, len(edges) - 2).tolist()))
        throughout = edges is not None and windows == len(edges) - 1
        what = (
            f"{name or '(none)'} in {stats.component}: {count:,} blocks, {format_size(total)}, "
            f"older than {config.stale_multiple:g}x the typical {_seconds(typical_ns)} "
            f"lifetime (the oldest {_seconds(oldest)})"
        )
        if throughout:
            reason = f"{what}, left behind in every one of {windows} windows of the run"
        else:
            reason = f"{what}: held but dead"
        verdicts.append(
            LeakVerdict(
                stats.component,
                stats.device,
                name,
                Verdict.LEAK if throughout else Verdict.SUSPECT,
                reason,
                total,
                count,
                total,
                typical_ns,
                windows=windows,
            )
        )
    return tuple(sorted(verdicts, key=lambda v: (v.verdict is not Verdict.LEAK, -v.stale_bytes)))


def _judge_component(
    snapshot: Snapshot, stats: ComponentStats, config: VerdictConfig, trend: TrendConfig
) -> LeakVerdict:
    name = f"{stats.component}@{stats.device}" if stats.device != "cpu" else stats.component
    series = next(
        (
            s.series
            for s in snapshot.series
            if s.component == stats.component and s.device == stats.device
        ),
        None,
    )
    times = series.times_ns if series is not None else np.zeros(0, dtype=np.int64)
    in_use = series.bytes_in_use if series is not None else np.zeros(0, dtype=np.int64)
    floors = _floors(times, in_use, _typical_block(stats), config)
    step, step_at = _change_point(times, in_use, config.step_sigmas)
    fit = analyze_trend(series, config=trend) if series is not None and len(series) else None
    duration_s = float(times[-1] - times[0]) / 1e9 if len(times) else 0.0
    if duration_s < config.min_duration_s and fit is not None and fit.growing:
        return LeakVerdict(
            stats.component,
            stats.device,
            None,
            Verdict.SUSPECT,
            f"{name}: grows steadily by the line fit, "
            f"{format_size(round(fit.slope_bytes_per_s), signed=True)}/s with R² "
            f"{fit.r_squared:.3f} over {duration_s:.1f} s (too early for the window test, "
            f"from {config.min_duration_s:g} s)",
            stats.bytes_in_use,
            slope_bytes_per_s=fit.slope_bytes_per_s,
            r_squared=fit.r_squared,
        )
    if duration_s < config.min_duration_s:
        return LeakVerdict(
            stats.component,
            stats.device,
            None,
            Verdict.OK,
            f"{name}: too early to judge ({duration_s:.0f} s of samples, "
            f"judged from {config.min_duration_s:g} s)",
            stats.bytes_in_use,
        )
    edges = None
    startup_ns = None
    if len(times) >= 2 and times[-1] > times[0]:
        span = int(times[-1] - times[0])
        startup_ns = int(times[0]) + round(config.startup_fraction * span)
        edges = np.linspace(startup_ns, int(times[-1]), config.windows + 1)
    blocks = snapshot.blocks
    rows = blocks.rows_of(stats.component, stats.device) & blocks.in_use
    typical_ns, stale_after_ns = _typical_lifetime(stats, config)
    # A view (a snapshot taken without blocks) has no ages to judge staleness by.
    unaged = stats.live_blocks > 0 and not rows.any()
    if unaged:
        stale_after_ns = 0
    owners: tuple[LeakVerdict, ...] = ()
    stale_blocks = stale_bytes = 0
    if stale_after_ns:
        born = blocks.allocated_ns
        ages = snapshot.monotonic_ns - born
        stale = rows & (ages > stale_after_ns)
        if startup_ns is not None:
            stale &= born > startup_ns
        stale_blocks, stale_bytes = int(stale.sum()), int(blocks.size[stale].sum())
        if stale_blocks >= config.min_stale_blocks:
            owners = _owner_verdicts(
                stats, blocks, stale, ages[stale], born[stale], edges, typical_ns, config
            )
        else:
            stale_blocks = stale_bytes = 0
    slope = fit.slope_bytes_per_s if fit else 0.0
    stepped = (
        f"; it stepped {format_size(step, signed=True)} at {step_at:.0f} s" if step > 0 else ""
    )
    rose = (
        f"{name}: the in-use floor rose in each of {floors.windows} windows"
        if floors is not None
        else ""
    )
    grew = f"{format_size(floors.rise_bytes if floors else 0, signed=True)} over {duration_s:.0f} s"
    if floors is not None and floors.consistent:
        verdict = Verdict.LEAK
        reason = f"{rose}, {grew} ({format_size(round(slope), signed=True)}/s)"
    elif any(o.verdict is Verdict.LEAK for o in owners):
        verdict, reason = Verdict.LEAK, owners[0].reason
    elif floors is not None and floors.uneven:
        verdict, reason = Verdict.SUSPECT, f"{rose}, but unevenly, {grew}{stepped}"
    elif owners:
        verdict = Verdict.SUSPECT
        reason = (
            f"{name}: {stale_blocks:,} blocks, {format_size(stale_bytes)}, older than "
            f"{config.stale_multiple:g}x the typical {_seconds(typical_ns)} lifetime and "
            f"held but dead{stepped}"
        )
    elif floors is not None and floors.rise_bytes > max(config.min_growth_bytes, 1):
        verdict = Verdict.PLATEAU
        reason = (
            f"{name}: grew {format_size(floors.rise_bytes, signed=True)}, but its floor "
            f"rose in only {floors.rising} of {floors.windows - 1} steps between "
            f"windows{stepped}: "
            "a cache warming up or a pool filling, not steady growth"
        )
    elif floors is None and unaged:
        verdict = Verdict.OK
        reason = f"{name}: too few samples to judge growth; block ages not in this view"
    elif floors is None and not stale_after_ns:
        verdict = Verdict.OK
        reason = f"{name}: too few samples to judge growth, and no freed blocks to age"
    else:
        verdict = Verdict.OK
        held = f", no block stale ({typical_ns / 1e9:.3g} s typical)" if stale_after_ns else ""
        if unaged:
            held = "; block ages not in this view"
        reason = f"{name}: no consistent growth{held}"
    return LeakVerdict(
        stats.component,
        stats.device,
        None,
        verdict,
        reason,
        stats.bytes_in_use,
        stale_blocks,
        stale_bytes,
        typical_ns,
        floors.rise_bytes if floors else 0,
        floors.rising if floors else 0,
        floors.windows if floors else 0,
        step,
        step_at,
        slope,
        fit.r_squared if fit else 0.0,
        owners,
    )


def judge_leaks(
    snapshot: Snapshot,
    config: VerdictConfig | None = None,
    *,
    trend: TrendConfig | None = None,
) -> tuple[LeakVerdict, ...]:
    """The leak verdict of every component of *snapshot* that ever held memory, worst
    first (LEAK, SUSPECT, PLATEAU, OK), then by name. *trend* sets the line fit whose
    slope and R² each verdict reports. Pure: reads *snapshot* only."""
    config = config or VerdictConfig()
    trend = trend or TrendConfig()
    order = list(Verdict)
    verdicts = [
        _judge_component(snapshot, stats, config, trend)
        for stats in snapshot.components
        if stats.peak_bytes_reserved
    ]
    return tuple(sorted(verdicts, key=lambda v: (order.index(v.verdict), v.component, v.device)))
