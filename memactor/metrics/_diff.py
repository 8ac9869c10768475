"""Comparing two snapshots: what changed, what appeared, and who is suspected of leaking.

A suspect is a component whose in-use bytes grew by more than the tolerance between the
two snapshots, including a component that did not exist in the first one (the commonest
leak is a new component that never gives its memory back). Reserved bytes alone never
make a suspect: a pool whose in-use bytes went back to zero does not leak, however much
it caches.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._blocks import LiveBlocks
from ._sites import SiteUsage, sites_of_blocks
from ._snapshot import Snapshot
from ._stats import ComponentStats
from ._trend import Trend, TrendConfig, find_unattributed_growth


class Change(enum.Enum):
    """How a component changed between two snapshots."""

    APPEARED = "appeared"
    VANISHED = "vanished"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ComponentDelta:
    """One component on one device, before and after."""

    component: str
    device: str
    change: Change
    bytes_reserved_before: int
    bytes_reserved_after: int
    bytes_in_use_before: int
    bytes_in_use_after: int
    live_blocks_before: int
    live_blocks_after: int

    @property
    def bytes_reserved_delta(self) -> int:
        return self.bytes_reserved_after - self.bytes_reserved_before

    @property
    def bytes_in_use_delta(self) -> int:
        return self.bytes_in_use_after - self.bytes_in_use_before

    @property
    def live_blocks_delta(self) -> int:
        return self.live_blocks_after - self.live_blocks_before


@dataclass(frozen=True, slots=True)
class LeakSuspect:
    """A component whose in-use memory grew past the tolerance, with its evidence."""

    component: str
    device: str
    bytes_in_use_delta: int
    new_blocks: int
    """Blocks lent out in *after* that were not alive in *before*."""
    new_bytes: int
    """Their bytes."""
    top_owners: tuple[tuple[str, int], ...]
    """Owners of those new in-use blocks, by bytes, largest first (at most five)."""
    reason: str
    top_sites: tuple[SiteUsage, ...] = ()
    """The sites whose lends hold those new in-use blocks, by bytes, largest first (at
    most five); empty where *after* has no sites (sites off, or sampled out)."""


@dataclass(frozen=True, slots=True)
class UnattributedDelta:
    """The process's memory on one device, and the part outside memactor's books, in
    both snapshots (see :class:`~memactor.metrics.ProcessStats`)."""

    device: str
    process_bytes_before: int
    process_bytes_after: int
    unattributed_bytes_before: int
    unattributed_bytes_after: int

    @property
    def unattributed_bytes_delta(self) -> int:
        return self.unattributed_bytes_after - self.unattributed_bytes_before

    @property
    def process_bytes_delta(self) -> int:
        return self.process_bytes_after - self.process_bytes_before


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """The difference between two snapshots; see :func:`diff`."""

    before_label: str
    after_label: str
    elapsed_ns: int
    """``after.monotonic_ns - before.monotonic_ns``."""
    tolerance_bytes: int
    components: tuple[ComponentDelta, ...]
    new_blocks: LiveBlocks
    """Blocks alive in *after* that were not alive in *before* (cached ones included)."""
    suspects: tuple[LeakSuspect, ...]
    bytes_in_use_delta: int
    bytes_reserved_delta: int
    unattributed: tuple[UnattributedDelta, ...] = ()
    """Per device sampled in both snapshots: process and unattributed bytes."""
    unattributed_trends: tuple[Trend, ...] = ()
    """The trend of each device's unattributed series in *after*."""
    callsites: int = 0
    """*after*'s ``totals.callsites``: whether its sites were recorded, and sampled."""

    @property
    def outside_growing(self) -> tuple[Trend, ...]:
        """The devices whose memory outside memactor grows steadily (not a leak of a
        component: nobody reported it)."""
        return tuple(t for t in self.unattributed_trends if t.growing)

    @property
    def appeared(self) -> tuple[ComponentDelta, ...]:
        return tuple(c for c in self.components if c.change is Change.APPEARED)

    @property
    def vanished(self) -> tuple[ComponentDelta, ...]:
        return tuple(c for c in self.components if c.change is Change.VANISHED)

    @property
    def leaked(self) -> bool:
        """True when there is at least one suspect."""
        return bool(self.suspects)


def diff(
    before: Snapshot,
    after: Snapshot,
    *,
    tolerance_bytes: int = 0,
    trend: TrendConfig | None = None,
) -> SnapshotDiff:
    """Compare *before* with *after*; components growing in use past the tolerance are suspects.

    *tolerance_bytes* is how much in-use growth per component is forgiven. Where both
    snapshots sampled the process, the unattributed bytes are compared per device, and
    *after*'s unattributed series is judged with *trend*. Raises :class:`ValueError`
    for a negative tolerance.
    """
    if tolerance_bytes < 0:
        raise ValueError(f"tolerance_bytes must not be negative, got {tolerance_bytes}")
    old = {(c.component, c.device): c for c in before.components}
    new = {(c.component, c.device): c for c in after.components}
    empty = ComponentStats("", "")
    deltas = []
    for key in sorted(old.keys() | new.keys()):
        first, second = old.get(key, empty), new.get(key, empty)
        if key not in old:
            change = Change.APPEARED
        elif key not in new:
            change = Change.VANISHED
        elif (first.bytes_reserved, first.bytes_in_use, first.live_blocks) != (
            second.bytes_reserved,
            second.bytes_in_use,
            second.live_blocks,
        ):
            change = Change.CHANGED
        else:
            change = Change.UNCHANGED
        deltas.append(
            ComponentDelta(
                key[0],
                key[1],
                change,
                first.bytes_reserved,
                second.bytes_reserved,
                first.bytes_in_use,
                second.bytes_in_use,
                first.live_blocks,
                second.live_blocks,
            )
        )
    fresh = after.blocks.select(_not_in(after.blocks, before.blocks))
    suspects = tuple(
        _suspect(delta, fresh) for delta in deltas if delta.bytes_in_use_delta > tolerance_bytes
    )
    return SnapshotDiff(
        before_label=before.label,
        after_label=after.label,
        elapsed_ns=after.monotonic_ns - before.monotonic_ns,
        tolerance_bytes=tolerance_bytes,
        components=tuple(deltas),
        new_blocks=fresh,
        suspects=suspects,
        bytes_in_use_delta=after.totals.bytes_in_use - before.totals.bytes_in_use,
        bytes_reserved_delta=after.totals.bytes_reserved - before.totals.bytes_reserved,
        unattributed=_unattributed(before, after),
        unattributed_trends=find_unattributed_growth(after, trend),
        callsites=after.totals.callsites,
    )


def _unattributed(before: Snapshot, after: Snapshot) -> tuple[UnattributedDelta, ...]:
    earlier = {p.device: p for p in before.process}
    return tuple(
        UnattributedDelta(
            p.device,
            earlier[p.device].process_bytes,
            p.process_bytes,
            earlier[p.device].unattributed_bytes,
            p.unattributed_bytes,
        )
        for p in after.process
        if p.device in earlier
    )


def _not_in(after: LiveBlocks, before: LiveBlocks) -> npt.NDArray[np.bool_]:
    """A mask of the rows of *after* whose (component, device, block) is not in *before*."""
    mask = np.ones(len(after), dtype=bool)
    after_rows, before_rows = _account_rows(after), _account_rows(before)
    earlier_account = {key: index for index, key in enumerate(before.accounts)}
    for index, key in enumerate(after.accounts):
        earlier_index = earlier_account.get(key)
        if earlier_index is None:
            continue
        rows, earlier_rows = after_rows[index], before_rows[earlier_index]
        earlier = before.block[earlier_rows]
        if len(earlier):
            mask[rows] = ~_member(after.block[rows], earlier)
    return mask


def _account_rows(blocks: LiveBlocks) -> list[slice] | list[npt.NDArray[np.bool_]]:
    """Each account's rows: slices (views, no copies) when rows are grouped by account,
    as :meth:`LiveBlocks.collect` makes them, else masks."""
    account = blocks.account
    if len(account) < 2 or bool(np.all(account[1:] >= account[:-1])):
        bounds = np.searchsorted(account, np.arange(len(blocks.accounts) + 1)).tolist()
        return [slice(start, end) for start, end in itertools.pairwise(bounds)]
    return [account == index for index in range(len(blocks.accounts))]


_CHUNK = 1 << 20


def _member(values: npt.NDArray[np.int64], known: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """A mask of the *values* found in *known*, with little memory for dense block ids.

    Block ids are counters, so a table of one byte per id between the smallest and the
    largest known one is small; it is filled and read in chunks so that no temporary
    is as large as a column. Sparse ids fall back to :func:`numpy.isin`.
    """
    low, high = int(known.min()), int(known.max())
    span = high - low + 1
    if span > 4 * len(known) + (1 << 16):
        found: npt.NDArray[np.bool_] = np.isin(values, known)
        return found
    table = np.zeros(span, dtype=bool)
    for start in range(0, len(known), _CHUNK):
        table[known[start : start + _CHUNK] - low] = True
    found = np.zeros(len(values), dtype=bool)
    for start in range(0, len(values), _CHUNK):
        part = values[start : start + _CHUNK]
        inside = (part >= low) & (part <= high)
        found[start : start + _CHUNK][inside] = table[part[inside] - low]
    return found


def _suspect(delta: ComponentDelta, fresh: LiveBlocks) -> LeakSuspect:
    rows = fresh.rows_of(delta.component, delta.device) & fresh.in_use
    sizes = fresh.size[rows]
    owners = fresh.owner[rows]
    by_owner: dict[str, int] = {}
    for owner, size in zip(owners.tolist(), sizes.tolist(), strict=True):
        name = fresh.owners[owner]
        by_owner[name] = by_owner.get(name, 0) + size
    top = tuple(sorted(by_owner.items(), key=lambda item: (-item[1], item[0]))[:5])
    if delta.change is Change.APPEARED:
        reason = "appeared holding memory in use"
    else:
        reason = "memory in use grew"
    return LeakSuspect(
        delta.component,
        delta.device,
        delta.bytes_in_use_delta,
        int(rows.sum()),
        int(sizes.sum()),
        top,
        reason,
        sites_of_blocks(fresh.select(rows))[:5] if fresh.sites else (),
    )
