"""What an aggregator keeps of one source: its identity, its ledger copy, and how it
stands (live or gone, sequence number, gaps, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from ..metrics import LIVE, SourceStats
from ..remote import Source
from ._delta import LedgerCopy
from ._merge import source_prefix

SourceKey = tuple[str, int, int, str]
"""``(host, pid, started_wall_ns, name)``: what names a source."""


@dataclass(eq=False, slots=True)
class Record:
    identity: Source
    copy: LedgerCopy = field(default_factory=LedgerCopy)
    state: str = LIVE
    seq: int = 0
    updates: int = 0
    gaps: int = 0
    checkpoints: int = 0
    awaiting_checkpoint: bool = True
    gone_wall_ns: int = 0
    gone_how: str = ""
    scope: trio.CancelScope | None = None
    """The connection's scope, cancelled when the source is marked gone from outside."""

    @property
    def key(self) -> SourceKey:
        i = self.identity
        return (i.host, i.pid, i.started_wall_ns, i.name)

    @property
    def prefix(self) -> str:
        return source_prefix(self.identity.name, self.identity.host, self.identity.pid)

    def stats(self) -> SourceStats:
        totals = self.copy.totals
        return SourceStats(
            name=self.identity.name,
            host=self.identity.host,
            pid=self.identity.pid,
            started_wall_ns=self.identity.started_wall_ns,
            prefix=self.prefix,
            state=self.state,
            seq=self.seq,
            updates=self.updates,
            gaps=self.gaps,
            checkpoints=self.checkpoints,
            bytes_reserved=totals.bytes_reserved,
            bytes_in_use=totals.bytes_in_use,
            peak_bytes_reserved=totals.peak_bytes_reserved,
            peak_bytes_in_use=totals.peak_bytes_in_use,
            live_blocks=totals.live_blocks,
            events_applied=totals.events_applied,
            gone_wall_ns=self.gone_wall_ns,
            gone_how=self.gone_how,
            address=self.identity.address,
        )
