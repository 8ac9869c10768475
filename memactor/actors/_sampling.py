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
from typing import TYPE_CHECKING, Any

from ..metrics import ActorSample
from ..metrics._actors import ACTOR, CHUNKS
from ..runtime import Actor, ActorStatistics

if TYPE_CHECKING:  # at run time only ActorStatistics is told apart: _chunks imports us
    from ._chunks import ChunkStatistics

_NS = 1_000_000_000


def figures_of(actor: Actor[Any, Any]) -> ActorStatistics | ChunkStatistics:
    """What a tick reads of *actor*: a chunk processor's statistics (they hold its
    mailbox's), else its mailbox's alone. Another actor's own ``statistics()`` is never
    called: it may cost (a GPU manager's asks the device)."""
    if getattr(actor, "reports_lookahead", False):
        chunk: ChunkStatistics = actor.statistics()  # type: ignore[assignment]  # a chunk processor's, by the marker
        return chunk
    return actor.ref.statistics()


class _Counts:
    """One actor's running counts (mutable: a tick only adds to them)."""

    __slots__ = (
        "busy_ns",
        "busy_ticks",
        "capacity",
        "chunk",
        "held_up",
        "peak_depth",
        "ticks",
        "ticks_full",
        "waiting_bytes_sampled",
    )

    def __init__(self) -> None:
        self.capacity = self.peak_depth = 0
        self.ticks = self.ticks_full = self.held_up = 0
        self.busy_ticks = self.waiting_bytes_sampled = self.busy_ns = 0
        self.chunk: ChunkStatistics | None = None

    def sample(self, name: str) -> ActorSample:
        sample = ActorSample(
            actor=name,
            kind=ACTOR,
            mailbox_capacity=self.capacity,
            ticks=self.ticks,
            ticks_full=self.ticks_full,
            ticks_full_held_up=self.held_up,
            peak_mailbox_depth=self.peak_depth,
        )
        chunk = self.chunk
        if chunk is None:
            return sample
        return dataclasses.replace(
            sample,
            kind=CHUNKS,
            lookahead=chunk.lookahead,
            busy_ticks=self.busy_ticks,
            waiting_bytes_sampled=self.waiting_bytes_sampled,
            peak_waiting_bytes=chunk.peak_waiting_bytes,
            busy_ns=self.busy_ns,
            results_waiting_ns=round(chunk.results_waiting_s * _NS),
            consumer_waiting_ns=round(chunk.consumer_waiting_s * _NS),
            chunks_done=chunk.chunks_done,
            takes_ahead=chunk.takes_ahead,
            fewest_spare_results=chunk.fewest_spare_results,
        )


class ActorBook:
    """The accumulated samples of every actor seen, by name; it outlives a restart of
    the metrics actor (it lives in its ``MetricsState``). An actor that stopped keeps
    its last sample: the evidence of a run stays in its final snapshot.

    A tick only adds to counters; the frozen samples are built when asked for, once
    per tick at most.
    """

    def __init__(self) -> None:
        self._counts: dict[str, _Counts] = {}
        self._samples: tuple[ActorSample, ...] | None = ()

    def tick(
        self,
        statistics: Iterable[ActorStatistics | ChunkStatistics],
        held_up: Container[str] = frozenset(),
    ) -> None:
        """Add one tick of each actor's *statistics*; *held_up* names the actors that
        wait now for room in another's mailbox."""
        counts = self._counts
        for stats in statistics:
            if isinstance(stats, ActorStatistics):
                actor, chunk = stats, None
            else:
                actor, chunk = stats.actor, stats
            entry = counts.get(actor.name)
            if entry is None:
                entry = counts[actor.name] = _Counts()
            entry.capacity = actor.mailbox_capacity
            entry.peak_depth = actor.mailbox_peak_depth
            entry.ticks += 1
            if actor.mailbox_depth >= actor.mailbox_capacity or actor.senders_waiting > 0:
                entry.ticks_full += 1
                entry.held_up += actor.name in held_up
            if chunk is not None:
                busy_ns = round(chunk.busy_s * _NS)
                if busy_ns > entry.busy_ns:  # a call ran since the last tick
                    entry.busy_ticks += 1
                    entry.waiting_bytes_sampled += chunk.waiting_bytes
                entry.busy_ns = busy_ns
                entry.chunk = chunk
        self._samples = None

    def samples(self) -> tuple[ActorSample, ...]:
        """Every actor's sample so far, by name."""
        if self._samples is None:
            self._samples = tuple(self._counts[n].sample(n) for n in sorted(self._counts))
        return self._samples
