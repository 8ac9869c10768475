"""What the metrics actor saw of each actor on its ticks: how often its mailbox was
full, and for a chunk processor what its lookahead held and whether it bought anything.

The metrics actor samples every actor's statistics on its tick (never on the hot path)
and accumulates one :class:`ActorSample` per actor; the ledger hands the latest ones to
every snapshot (``Snapshot.actors``), where :func:`~memactor.metrics.recommend` reads
them. The time figures of a chunk processor are its own exact counters, not sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTOR = "actor"
CHUNKS = "chunks"


@dataclass(frozen=True, slots=True)
class ActorSample:
    """One actor as the metrics actor's ticks saw it, over the whole run.

    The chunk fields are zero (``fewest_spare_results`` -1) for an actor that is not a
    chunk processor.
    """

    actor: str
    """The actor's name."""
    kind: str
    """``"actor"``, or ``"chunks"`` for a :class:`~memactor.actors.ChunkProcessor`."""
    mailbox_capacity: int
    ticks: int
    """Ticks at which the actor was sampled."""
    ticks_full: int
    """Of :attr:`ticks`, those at which its mailbox held ``mailbox_capacity`` messages
    or a sender waited for room."""
    ticks_full_held_up: int
    """Of :attr:`ticks_full`, those at which the actor itself waited for room in another
    actor's full mailbox: then the actor after it is the slow one, not this one."""
    peak_mailbox_depth: int
    lookahead: int = 0
    """The processor's ``lookahead`` (results it may keep beyond ``concurrency``)."""
    busy_ticks: int = 0
    """Ticks at which a ``process`` or ``stream`` call of the processor was running."""
    waiting_bytes_sampled: int = 0
    """The sum, over :attr:`busy_ticks`, of the bytes held by results that waited for
    the consumer at that tick (divide by ``busy_ticks`` for the mean)."""
    peak_waiting_bytes: int = 0
    """The most bytes results waiting for the consumer held at once (exact)."""
    busy_ns: int = 0
    """Time a call of the processor was running (exact, trio's clock)."""
    results_waiting_ns: int = 0
    """Of :attr:`busy_ns`, the time at least one result was ready and not yet taken."""
    consumer_waiting_ns: int = 0
    """The time the consumer spent waiting for its next result."""
    chunks_done: int = 0
    takes_ahead: int = 0
    """Results the consumer took without waiting while chunks remained to start."""
    fewest_spare_results: int = -1
    """At those takes, the fewest results ready beyond the one taken; -1 with none."""

    @property
    def full_ratio(self) -> float:
        """``ticks_full / ticks``; 0.0 before the first tick."""
        return self.ticks_full / self.ticks if self.ticks else 0.0

    @property
    def full_own_ratio(self) -> float:
        """The share of ticks its mailbox was full while it was not itself held up by
        the actor after it (``(ticks_full - ticks_full_held_up) / ticks``)."""
        return (self.ticks_full - self.ticks_full_held_up) / self.ticks if self.ticks else 0.0

    @property
    def results_waiting_ratio(self) -> float:
        """``results_waiting_ns / busy_ns``; 0.0 before any call."""
        return self.results_waiting_ns / self.busy_ns if self.busy_ns else 0.0

    @property
    def mean_waiting_bytes(self) -> int:
        """The bytes waiting results held on an average busy tick."""
        return self.waiting_bytes_sampled // self.busy_ticks if self.busy_ticks else 0
