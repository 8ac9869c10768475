"""The metrics actor's tick over the actors: mailbox fullness and chunk processors'
lookahead, accumulated per actor into :class:`~memactor.metrics.ActorSample` values.

A tick reads each running actor's ``statistics()`` (a few attribute reads per actor),
never anything on an actor's hot path. A full mailbox is one holding its capacity, or
with a sender waiting for room. A chunk processor's time figures are its own exact
counters; the tick adds the bytes its waiting results held, for their mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable
from typing import Any, Protocol, runtime_checkable

from ..metrics import ActorSample
from ..metrics._actors import ACTOR, CHUNKS
from ..runtime import Actor, ActorStatistics

_NS = 1_000_000_000


@runtime_checkable
class ChunkFigures(Protocol):
    """What the tick reads of a :class:`~memactor.actors.ChunkStatistics` (a protocol:
    ``_chunks`` imports the metrics actor, which imports this module)."""

    @property
    def actor(self) -> ActorStatistics: ...
    @property
    def lookahead(self) -> int: ...
    @property
    def waiting_bytes(self) -> int: ...
    @property
    def peak_waiting_bytes(self) -> int: ...
    @property
    def busy_s(self) -> float: ...
    @property
    def results_waiting_s(self) -> float: ...
    @property
    def consumer_waiting_s(self) -> float: ...
    @property
    def chunks_done(self) -> int: ...
    @property
    def takes_ahead(self) -> int: ...
    @property
    def fewest_spare_results(self) -> int: ...


def figures_of(actor: Actor[Any, Any]) -> ActorStatistics | ChunkFigures:
    """What a tick reads of *actor*: a chunk processor's statistics (they hold its
    mailbox's), else its mailbox's alone. Another actor's own ``statistics()`` is never
    called: it may cost (a GPU manager's asks the device)."""
    if getattr(actor, "reports_lookahead", False):
        stats: object = actor.statistics()
        if isinstance(stats, ChunkFigures):
            return stats
    return actor.ref.statistics()


class ActorBook:
    """The accumulated samples of every actor seen, by name; it outlives a restart of
    the metrics actor (it lives in its ``MetricsState``). An actor that stopped keeps
    its last sample: the evidence of a run stays in its final snapshot."""

    def __init__(self) -> None:
        self._samples: dict[str, ActorSample] = {}

    def tick(
        self,
        statistics: Iterable[ActorStatistics | ChunkFigures],
        held_up: Container[str] = frozenset(),
    ) -> None:
        """Add one tick of each actor's *statistics*; *held_up* names the actors that
        wait now for room in another's mailbox."""
        for stats in statistics:
            actor = stats.actor if isinstance(stats, ChunkFigures) else stats
            full = actor.mailbox_depth >= actor.mailbox_capacity or actor.senders_waiting > 0
            old = self._samples.get(actor.name)
            sample = ActorSample(
                actor=actor.name,
                kind=ACTOR,
                mailbox_capacity=actor.mailbox_capacity,
                ticks=(old.ticks if old else 0) + 1,
                ticks_full=(old.ticks_full if old else 0) + full,
                ticks_full_held_up=(old.ticks_full_held_up if old else 0)
                + (full and actor.name in held_up),
                peak_mailbox_depth=actor.mailbox_peak_depth,
            )
            if isinstance(stats, ChunkFigures):
                sample = _chunk_tick(sample, old, stats)
            self._samples[actor.name] = sample

    def samples(self) -> tuple[ActorSample, ...]:
        """Every actor's sample so far, by name."""
        return tuple(self._samples[name] for name in sorted(self._samples))


def _chunk_tick(sample: ActorSample, old: ActorSample | None, stats: ChunkFigures) -> ActorSample:
    busy_ns = round(stats.busy_s * _NS)
    busy = busy_ns > (old.busy_ns if old else 0)  # a call ran since the last tick
    return dataclasses.replace(
        sample,
        kind=CHUNKS,
        lookahead=stats.lookahead,
        busy_ticks=(old.busy_ticks if old else 0) + busy,
        waiting_bytes_sampled=(old.waiting_bytes_sampled if old else 0)
        + (stats.waiting_bytes if busy else 0),
        peak_waiting_bytes=stats.peak_waiting_bytes,
        busy_ns=busy_ns,
        results_waiting_ns=round(stats.results_waiting_s * _NS),
        consumer_waiting_ns=round(stats.consumer_waiting_s * _NS),
        chunks_done=stats.chunks_done,
        takes_ahead=stats.takes_ahead,
        fewest_spare_results=stats.fewest_spare_results,
    )
