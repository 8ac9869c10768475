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

And from what the metrics actor's ticks saw of each actor (``Snapshot.actors``):

- *mailbox full*: an actor's mailbox was full (at capacity, or a sender waiting) at most
  of many ticks: it is the bottleneck of the stages that send to it;
- *lookahead*: a chunk processor's results waited for their consumer most of the time
  it ran, and held memory doing so, while the consumer never needed all of them: its
  lookahead could be lowered by the fewest spare results the consumer found ready.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import format_size
from ._actors import CHUNKS, ActorSample
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
    full_ratio: float = 0.9
    """The share of ticks a mailbox must be full at to be advised on."""
    min_ticks: int = 100
    """Ticks an actor must be sampled at (a chunk processor: busy at) before advice."""
    waiting_ratio: float = 0.9
    """The share of a chunk processor's busy time results must wait for the consumer."""
    min_takes: int = 20
    """Results taken ahead (without waiting) before the spare count is trusted."""
    min_lookahead_bytes: int = 1 << 20
    """The least the waiting results must have held to be worth advice."""

    def __post_init__(self) -> None:
        for name in (
            "slack_ratio",
            "idle_ratio",
            "low_hit_ratio",
            "recent_fraction",
            "full_ratio",
            "waiting_ratio",
        ):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {value}")
        if self.min_lends < 1 or self.min_idle_bytes < 0:
            raise ValueError("min_lends must be positive and min_idle_bytes not negative")
        if self.min_ticks < 1 or self.min_takes < 1:
            raise ValueError(
                f"min_ticks and min_takes must be positive, got {self.min_ticks} "
                f"and {self.min_takes}"
            )
        if self.min_lookahead_bytes < 0:
            raise ValueError(
                f"min_lookahead_bytes must not be negative, got {self.min_lookahead_bytes}"
            )


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One change to make, why (the figures), and what it is about."""

    component: str
    """The component, or the actor for ``"mailbox_full"`` and ``"lookahead"``."""
    device: str
    """The component's device; ``""`` for advice about an actor."""
    kind: str
    """``"slack"``, ``"idle_cache"``, ``"low_hit_rate"``, ``"mailbox_full"`` or
    ``"lookahead"``."""
    evidence: str
    change: str

    def sentence(self) -> str:
        where = f"{self.component}@{self.device}" if self.device else self.component
        return f"{where}: {self.evidence}; {self.change}"

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


def _mailbox(sample: ActorSample, config: AdviceConfig) -> Recommendation | None:
    if sample.ticks < config.min_ticks or sample.full_own_ratio < config.full_ratio:
        return None  # never full, or full because the actor after it held it up
    return Recommendation(
        sample.actor,
        "",
        "mailbox_full",
        f"mailbox full in {sample.full_own_ratio:.0%} of {sample.ticks:,} ticks "
        f"(capacity {sample.mailbox_capacity:,}) while it waited on no other actor",
        "it is the stage its senders wait on, the bottleneck: add workers there or make "
        "its handling faster; raising its capacity helps only with bursts",
    )


def _lookahead(sample: ActorSample, config: AdviceConfig) -> Recommendation | None:
    if (
        sample.kind != CHUNKS
        or sample.busy_ticks < config.min_ticks
        or sample.takes_ahead < config.min_takes
        or sample.peak_waiting_bytes < max(config.min_lookahead_bytes, 1)
        or sample.results_waiting_ratio < config.waiting_ratio
        or sample.fewest_spare_results < 1
    ):
        return None
    lower = max(0, sample.lookahead - sample.fewest_spare_results)
    if lower >= sample.lookahead:
        return None
    consumer_ratio = sample.consumer_waiting_ns / sample.busy_ns
    return Recommendation(
        sample.actor,
        "",
        "lookahead",
        f"lookahead holds up to {format_size(sample.peak_waiting_bytes)} "
        f"({format_size(sample.mean_waiting_bytes)} on average over "
        f"{sample.busy_ticks:,} busy ticks) but results waited for the consumer "
        f"{sample.results_waiting_ratio:.0%} of the {sample.busy_ns / 1e9:.0f} s it ran, "
        f"and the consumer waited {consumer_ratio:.0%} of it and found at least "
        f"{sample.fewest_spare_results:,} more results ready at each of "
        f"{sample.takes_ahead:,} takes",
        f"the consumer is the slow side: lower lookahead to {lower} (from {sample.lookahead})",
    )


def recommend(snapshot: Snapshot, config: AdviceConfig | None = None) -> tuple[Recommendation, ...]:
    """Every recommendation the snapshot's numbers support: by component then kind, then
    by actor (mailbox, then lookahead); empty when none is supported. Pure: reads
    *snapshot* only."""
    config = config or AdviceConfig()
    found: list[Recommendation] = []
    for stats in snapshot.components:
        for advice in (_slack(stats, config), _idle(snapshot, stats, config), _hits(stats, config)):
            if advice is not None:
                found.append(advice)
    for sample in snapshot.actors:
        for advice in (_mailbox(sample, config), _lookahead(sample, config)):
            if advice is not None:
                found.append(advice)
    return tuple(found)
