"""The ledger's owner table: who holds bytes, kept bounded when owners come and go.

Every owner has an index that live blocks carry packed in their records (see
:mod:`._accounts`). A program that names a new owner per request would grow the table
without end, so once it holds twice ``limit`` owners, the owners outside the top
``limit`` (by bytes in use, then peak) that hold nothing are folded away and their
indexes reused. The views show the top ``limit`` owners and one ``"(other owners)"`` row
with the exact remainder, so the owners' bytes in use always add up to the total.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from ._accounts import OTHER_OWNERS, OWNER_MASK, OWNER_SHIFT, OwnerAccount
from ._stats import OwnerStats

DEFAULT_OWNER_LIMIT = 1000
"""How many owners the views show by name (the rest make one ``"(other owners)"`` row)."""


def _rank(owner: OwnerAccount) -> tuple[int, int]:
    return (owner.in_use, owner.peak_in_use)


class OwnerTable:
    """Owner accounts by name and by the index packed into live blocks."""

    __slots__ = (
        "_fold_at",
        "_free",
        "_sorted",
        "by_index",
        "by_name",
        "folded",
        "folded_peak",
        "limit",
    )

    def __init__(self, limit: int = DEFAULT_OWNER_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"owner_limit must be at least 1, got {limit}")
        self.limit = limit
        self.by_name: dict[str, OwnerAccount] = {}
        # Index 0 stands for "lent to nobody" (a block in its pool's cache).
        self.by_index: list[OwnerAccount] = [OwnerAccount("", 0)]
        self.folded = 0
        """How many owners were folded away so far."""
        self.folded_peak = 0
        """The highest peak of any owner folded away."""
        self._free: list[int] = []
        self._fold_at = 2 * limit
        self._sorted: list[str] | None = None

    def __len__(self) -> int:
        return len(self.by_name)

    def open(self, owner: object) -> OwnerAccount:
        """Open the account of a new owner, reusing a folded owner's index if there is one."""
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, got {owner!r}")
        if owner == OTHER_OWNERS:
            raise ValueError(f"{OTHER_OWNERS!r} is a reserved owner name")
        index = self._free.pop() if self._free else len(self.by_index)
        if index > OWNER_MASK:
            raise OverflowError(f"more than {OWNER_MASK} owners at once")
        holder = self.by_name[owner] = OwnerAccount(owner, index)
        if index == len(self.by_index):
            self.by_index.append(holder)
        else:
            self.by_index[index] = holder
        self._sorted = None
        return holder

    def due(self) -> bool:
        """Whether enough owners came to make folding worth a pass over them all."""
        return len(self.by_name) > self._fold_at

    def fold(self, pinned: Iterable[int] = ()) -> int:
        """Fold the owners outside the top ``limit`` that hold no bytes; return how many.

        *pinned* are indexes that live blocks still carry although their owner holds
        zero bytes (zero-byte blocks): those owners stay, so no block's owner changes.
        """
        keep = {id(o) for o in heapq.nlargest(self.limit, self.by_name.values(), key=_rank)}
        kept_indexes = set(pinned)
        folded = 0
        for holder in list(self.by_name.values()):
            index = holder.tag >> OWNER_SHIFT
            if id(holder) in keep or holder.in_use or index in kept_indexes:
                continue
            del self.by_name[holder.owner]
            self.folded_peak = max(self.folded_peak, holder.peak_in_use)
            self.by_index[index] = OwnerAccount(OTHER_OWNERS, index)
            self._free.append(index)
            folded += 1
        if folded:
            self.folded += folded
            self._sorted = None
        self._fold_at = 2 * max(self.limit, len(self.by_name))
        return folded

    def stats(self) -> tuple[OwnerStats, ...]:
        """The top ``limit`` owners, sorted by name, and (once any owner was left out or
        folded) the ``"(other owners)"`` row: the exact sum of the others' bytes in use,
        and the highest peak any one of them reached."""
        owners = self.by_name
        if len(owners) <= self.limit:
            if self._sorted is None:
                self._sorted = sorted(owners)
            shown = [owners[name].freeze() for name in self._sorted]
            if not self.folded:
                return tuple(shown)
            rest = OwnerStats(OTHER_OWNERS, 0, self.folded_peak)
        else:
            top = heapq.nlargest(self.limit, owners.values(), key=_rank)
            chosen = {id(holder) for holder in top}
            rest_in_use = rest_peak = 0
            for holder in owners.values():
                if id(holder) not in chosen:
                    rest_in_use += holder.in_use
                    rest_peak = max(rest_peak, holder.peak_in_use)
            shown = [holder.freeze() for holder in top]
            rest = OwnerStats(OTHER_OWNERS, rest_in_use, max(rest_peak, self.folded_peak))
        return tuple(sorted([*shown, rest], key=_by_name))


def _by_name(stats: OwnerStats) -> str:
    return stats.owner
