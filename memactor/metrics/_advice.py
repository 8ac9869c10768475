"""Recommendations from the ledger's own numbers only, each with the figures behind it.

A recommendation is made only where the snapshot holds the evidence for it, and only
past a threshold with enough events behind it; otherwise none is shown. What a snapshot
can support:

- *slack high*: a component lent far more than was asked for (its size classes are too
  coarse for the requests), from the lends that carried a requested size;
- *cache idle*: a pool kept bytes cached that were not lent at any sample of the recent
  series (trim it, or lower its cap to what was used);
- *hit rate low*: a pool missed most lendings while it also freed blocks back to the
  system (its cache is too small to keep what it needs again).

Advice on a chunk processor's lookahead or an actor's mailbox needs those actors'
statistics, which a snapshot does not hold; none is given here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import format_size
from ._snapshot import Snapshot
from ._stats import ComponentStats


@dataclass(frozen=True, slots=True)
class AdviceConfig:
    """Thresholds for :func:`recommend`."""

    slack_ratio: float = 0.25
    min_lends: int = 100
    idle_ratio: float = 0.25
    min_idle_bytes: int = 1 << 20
    recent_fraction: float = 0.5
    low_hit_ratio: float = 0.5

    def __post_init__(self) -> None:
        for name in ("slack_ratio", "idle_ratio", "low_hit_ratio", "recent_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {value}")
        if self.min_lends < 1 or self.min_idle_bytes < 0:
            raise ValueError("min_lends must be positive and min_idle_bytes not negative")


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One change to make, why (the figures), and what it is about."""

    component: str
    device: str
    kind: str
    """``"slack"``, ``"idle_cache"`` or ``"low_hit_rate"``."""
    evidence: str
    change: str

    def sentence(self) -> str:
        return f"{self.component}@{self.device}: {self.evidence}; {self.change}"

    def to_dict(self) -> dict[str, str]:
        return {
            "component": self.component,
            "device": self.device,
            "kind": self.kind,
            "evidence": self.evidence,
            "change": self.change,
        }


def _slack(stats: ComponentStats, config: AdviceConfig) -> Recommendation | None:
    if stats.requested_lends < config.min_lends or stats.slack_ratio < config.slack_ratio:
        return None
    return Recommendation(
        stats.component,
        stats.device,
        "slack",
        f"{stats.slack_ratio:.0%} of lent bytes were slack "
        f"({format_size(stats.bytes_lent - stats.requested_bytes_lent)} of "
        f"{format_size(stats.bytes_lent)} over {stats.requested_lends:,} lends)",
        "its size classes are too coarse for these requests: request sizes that fit "
        "its classes, or give it finer ones",
    )


def _idle(snapshot: Snapshot, stats: ComponentStats, config: AdviceConfig) -> Recommendation | None:
    if not stats.bytes_cached or stats.acquires == 0:
        return None  # not a pool that reuses blocks, or nothing cached
    series = next(
        (
            s.series
            for s in snapshot.series
            if (s.component, s.device) == (stats.component, stats.device)
        ),
        None,
    )
    if series is None or len(series) < 3:
        return None
    times = series.times_ns
    start = times[-1] - config.recent_fraction * (times[-1] - times[0])
    recent = times >= start
    used = int(np.max(series.bytes_in_use[recent]))
    held = int(np.min(series.bytes_reserved[recent]))
    idle = held - used
    if idle < max(config.min_idle_bytes, 1) or idle < config.idle_ratio * held:
        return None
    window_s = float(times[-1] - start) / 1e9
    return Recommendation(
        stats.component,
        stats.device,
        "idle_cache",
        f"{format_size(idle)} of its {format_size(held)} reserved was never lent over "
        f"the last {window_s:.0f} s (in use peaked at {format_size(used)} at the "
        f"{len(np.flatnonzero(recent)):,} samples)",
        f"trim its cache (pool.trim()) or lower max_reserved or max_cached toward "
        f"{format_size(used)}",
    )


def _hits(stats: ComponentStats, config: AdviceConfig) -> Recommendation | None:
    lendings = stats.acquires + stats.allocations
    if lendings < config.min_lends or stats.frees == 0 or stats.acquires == 0:
        return None  # only a pool that reuses and evicts has a cache too small
    if stats.hit_ratio >= config.low_hit_ratio:
        return None
    return Recommendation(
        stats.component,
        stats.device,
        "low_hit_rate",
        f"{stats.hit_ratio:.0%} of {lendings:,} lendings were cache hits while it freed "
        f"{stats.frees:,} blocks back to the system",
        "its cache is too small to keep what is asked for again: raise max_cached "
        "(or max_reserved)",
    )


def recommend(snapshot: Snapshot, config: AdviceConfig | None = None) -> tuple[Recommendation, ...]:
    """Every recommendation the snapshot's numbers support, by component then kind;
    empty when none is supported. Pure: reads *snapshot* only."""
    config = config or AdviceConfig()
    found: list[Recommendation] = []
    for stats in snapshot.components:
        for advice in (_slack(stats, config), _idle(snapshot, stats, config), _hits(stats, config)):
            if advice is not None:
                found.append(advice)
    return tuple(found)
