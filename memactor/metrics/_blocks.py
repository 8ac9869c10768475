"""The live blocks of a snapshot, stored as columns so a million of them stay cheap."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..events import Site
from ._accounts import OWNER_MASK, OWNER_SHIFT, SIZE_MASK, TIME_SHIFT, Account, OwnerAccount

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]

_LOW_64 = (1 << 64) - 1
_chain = itertools.chain.from_iterable
_repeat = itertools.repeat

CACHED = -1
"""The owner index of a block that sits in its pool's cache, lent to nobody."""

UNKNOWN_SITE = -1
"""The site index of a block whose lend carried no site (sites off, or not sampled)."""

_COLUMNS: dict[str, type[np.int32] | type[np.int64]] = {
    "account": np.int32,
    "block": np.int64,
    "size": np.int64,
    "owner": np.int32,
    "allocated_ns": np.int64,
    "site": np.int32,
}


class LiveBlock(NamedTuple):
    """One live block, as a row of :class:`LiveBlocks`."""

    component: str
    device: str
    block: int
    size: int
    owner: str | None
    """Who holds the block; ``None`` while it sits in its pool's cache."""
    allocated_ns: int
    site: Site | None = None
    """Where the block's lend was asked for; ``None`` without a site."""

    @property
    def in_use(self) -> bool:
        return self.owner is not None


def int_column(values: object, name: str) -> npt.NDArray[np.int64]:
    """A one-dimensional int64 array of *values*, which must all be integers.

    Raises :class:`ValueError` naming the column for floats, strings or nesting (a
    float would otherwise be truncated without a word) and for integers beyond int64.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    items = list(values) if isinstance(values, list | tuple) else None
    if items is None or not all(type(v) is int for v in items):
        raise ValueError(f"column {name!r} must be an array of integers")
    try:
        return np.array(items, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"column {name!r} holds an integer beyond 64 bits") from None


def read_column(
    raw: object, name: str, dtype: type[np.int32] | type[np.int64], *, what: str = "column"
) -> npt.NDArray[Any]:
    """A read-only one-dimensional array of *dtype* from a column as a snapshot stores it:
    little-endian bytes (msgpack) or a sequence of integers (JSON, or arrays in memory).

    Raises :class:`ValueError` naming the column (``f"{what} {name!r}"``) for a partial
    item, a value beyond *dtype*, anything that is not integers, or more than one dimension.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        if len(raw) % np.dtype(dtype).itemsize:
            raise ValueError(f"{what} {name!r} has a partial item")
        # Bytes are immutable, so the array may share them; a no-op on little-endian hosts.
        array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(
            dtype, copy=False
        )
    else:
        wide = int_column(raw, name)
        info = np.iinfo(dtype)
        if len(wide) and (wide.min() < info.min or wide.max() > info.max):
            raise ValueError(f"{what} {name!r} holds a value beyond {np.dtype(dtype)}")
        array = wide.astype(dtype, copy=False)
    if array.ndim != 1:
        raise ValueError(f"{what} {name!r} must be one-dimensional")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True, eq=False)
class LiveBlocks:
    """Every live block at one moment, as parallel read-only arrays.

    ``account[i]`` indexes ``accounts`` (the ``(component, device)`` pairs) and
    ``owner[i]`` indexes ``owners``, or is :data:`CACHED` for a block in a pool's cache;
    ``site[i]`` indexes ``sites``, or is :data:`UNKNOWN_SITE` for a block lent without a
    site (and for every cached block). Rows are grouped by account in ``accounts`` order.
    """

    accounts: tuple[tuple[str, str], ...]
    owners: tuple[str, ...]
    account: Int32Array
    block: Int64Array
    size: Int64Array
    owner: Int32Array
    allocated_ns: Int64Array
    site: Int32Array
    sites: tuple[Site, ...] = ()

    @classmethod
    def empty(cls) -> LiveBlocks:
        return cls.from_columns((), (), {})

    @classmethod
    def from_columns(
        cls,
        accounts: tuple[tuple[str, str], ...],
        owners: tuple[str, ...],
        columns: Mapping[str, npt.ArrayLike],
        sites: tuple[Site, ...] = (),
    ) -> LiveBlocks:
        """Build from arrays (or buffers) named like the fields; checks shapes and indexes.
        A missing ``site`` column means no block has a site.

        Raises :class:`ValueError` saying which column is wrong.
        """
        arrays = {
            name: read_column(columns.get(name, ()), name, dtype)
            for name, dtype in _COLUMNS.items()
            if name in columns or name != "site"
        }
        if "site" not in arrays:
            arrays["site"] = np.full(len(arrays["block"]), UNKNOWN_SITE, dtype=np.int32)
        return cls._checked(accounts, owners, arrays, sites)

    @classmethod
    def _checked(
        cls,
        accounts: tuple[tuple[str, str], ...],
        owners: tuple[str, ...],
        arrays: dict[str, npt.NDArray[Any]],
        sites: tuple[Site, ...] = (),
    ) -> LiveBlocks:
        """Build from arrays of the right dtypes that nobody else holds; checks shapes
        and indexes (raising :class:`ValueError`) and makes the arrays read-only."""
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"block columns differ in length: {sorted(lengths)}")
        if len(arrays["account"]) and not (
            arrays["account"].min() >= 0 and arrays["account"].max() < len(accounts)
        ):
            raise ValueError("column 'account' points past the accounts table")
        if len(arrays["owner"]) and not (
            arrays["owner"].min() >= CACHED and arrays["owner"].max() < len(owners)
        ):
            raise ValueError("column 'owner' points past the owners table")
        if len(arrays["site"]) and not (
            arrays["site"].min() >= UNKNOWN_SITE and arrays["site"].max() < len(sites)
        ):
            raise ValueError("column 'site' points past the sites table")
        if len(arrays["size"]) and arrays["size"].min() < 0:
            raise ValueError("column 'size' holds a negative size")
        for array in arrays.values():
            array.flags.writeable = False
        return cls(accounts, owners, sites=sites, **arrays)

    @classmethod
    def collect(
        cls,
        accounts: list[Account],
        holders: list[OwnerAccount],
        site_of: Callable[[int], Site | None] | None = None,
    ) -> LiveBlocks:
        """Copy the live blocks out of the ledger's accounts, in each account's order
        (the order its blocks were allocated in).

        *holders* lists the owner accounts by the index packed into each block.
        """
        count = sum(len(account.blocks) for account in accounts)
        lengths = np.fromiter(
            (len(a.blocks) for a in accounts), dtype=np.int64, count=len(accounts)
        )
        account_index = np.repeat(np.arange(len(accounts), dtype=np.int32), lengths)
        if all(hasattr(a.blocks, "copy_into") for a in accounts):
            block, sizes, holder_index, times = _table_columns(accounts, count)
        else:
            block, sizes, holder_index, times = _dict_columns(accounts, count, len(holders))
        site_index, sites = _sites_of(accounts, count, site_of)
        # Keep only the owners that hold a block, renumbered from 0 in name order.
        # (A count per holder, not np.unique: no sort of a column.)
        held = np.bincount(holder_index, minlength=len(holders))
        held[:1] = 0  # index 0 holds nothing: a block in its pool's cache
        used = np.flatnonzero(held)
        names = sorted((holders[i].owner, i) for i in used.tolist())
        renumber = np.full(len(holders), CACHED, dtype=np.int32)
        for new_index, (_, old_index) in enumerate(names):
            renumber[old_index] = new_index
        return cls._checked(
            tuple((a.component, a.device) for a in accounts),
            tuple(name for name, _ in names),
            {
                "account": account_index,
                "block": block,
                "size": sizes,
                "owner": renumber[holder_index],
                "allocated_ns": times,
                "site": site_index,
            },
            sites,
        )

    def __len__(self) -> int:
        return len(self.block)

    def __iter__(self) -> Iterator[LiveBlock]:
        accounts, owners, sites = self.accounts, self.owners, self.sites
        for account, block, size, owner, allocated, site in zip(
            self.account.tolist(),
            self.block.tolist(),
            self.size.tolist(),
            self.owner.tolist(),
            self.allocated_ns.tolist(),
            self.site.tolist(),
            strict=True,
        ):
            component, device = accounts[account]
            yield LiveBlock(
                component,
                device,
                block,
                size,
                None if owner == CACHED else owners[owner],
                allocated,
                None if site == UNKNOWN_SITE else sites[site],
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LiveBlocks):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable

    @property
    def in_use(self) -> npt.NDArray[np.bool_]:
        """A mask of the blocks lent to an owner (not cached)."""
        mask: npt.NDArray[np.bool_] = self.owner != CACHED
        return mask

    def select(self, mask: npt.NDArray[np.bool_]) -> LiveBlocks:
        """The rows where *mask* is true, with the same tables."""
        return LiveBlocks._checked(
            self.accounts,
            self.owners,
            {name: getattr(self, name)[mask] for name in _COLUMNS},
            self.sites,
        )

    def rows_of(self, component: str, device: str) -> npt.NDArray[np.bool_]:
        """A mask of the blocks of one component on one device."""
        try:
            index = self.accounts.index((component, device))
        except ValueError:
            return np.zeros(len(self), dtype=bool)
        mask: npt.NDArray[np.bool_] = self.account == index
        return mask


_Columns = tuple[Int64Array, Int64Array, Int32Array, Int64Array]
"""Block ids, sizes, owner indexes and allocation times."""


def _table_columns(accounts: list[Account], count: int) -> _Columns:
    """Block ids, sizes, owner indexes and times of accounts whose blocks are the compiled
    ledger's C tables: each writes its blocks straight into the columns."""
    columns = [np.empty(count, dtype=np.int64) for _ in range(4)]
    end = 0
    for account in accounts:
        end = account.blocks.copy_into(*columns, end)  # type: ignore[attr-defined]  # the C table's
    block, sizes, owners, times = columns
    return block, sizes, owners.astype(np.int32), times


def _dict_columns(accounts: list[Account], count: int, holders: int) -> _Columns:
    """The same columns from dicts of packed ints (the pure-Python ledger's). Each packed
    block is read twice in C (``map`` over the dict's values): once for its low 64 bits
    (size and, with fewer than 2**16 owners, the owner index) and once for its time, so
    no Python object per block is kept and no object array is made."""
    block = np.fromiter(_chain(a.blocks.keys() for a in accounts), np.int64, count=count)
    # operator.and_ and operator.rshift over a repeat() are called with their two
    # arguments directly; a bound method such as _LOW_64.__and__ would be called
    # through a method wrapper that builds an argument tuple per block.
    low = np.fromiter(
        map(operator.and_, _chain(a.blocks.values() for a in accounts), _repeat(_LOW_64)),
        np.uint64,
        count=count,
    )
    times = np.fromiter(
        map(operator.rshift, _chain(a.blocks.values() for a in accounts), _repeat(TIME_SHIFT)),
        np.int64,
        count=count,
    )
    if holders <= 1 << (64 - OWNER_SHIFT):
        holder_index = (low >> np.uint64(OWNER_SHIFT)).astype(np.int32)
    else:
        holder_index = np.fromiter(
            ((v >> OWNER_SHIFT) & OWNER_MASK for a in accounts for v in a.blocks.values()),
            np.int32,
            count=count,
        )
    np.bitwise_and(low, np.uint64(SIZE_MASK), out=low)
    return block, low.view(np.int64), holder_index, times


def _sites_of(
    accounts: list[Account], count: int, site_of: Callable[[int], Site | None] | None
) -> tuple[Int32Array, tuple[Site, ...]]:
    """Each block's index into a table of the sites that hold blocks (in first-seen
    order), and the table; every index is :data:`UNKNOWN_SITE` when no account keeps
    sites, at the cost of one fill."""
    index = np.full(count, UNKNOWN_SITE, dtype=np.int32)
    if site_of is None or not any(a.sites for a in accounts):
        return index, ()
    ids = np.fromiter(
        (site for a in accounts for site in map(a.sites.get, a.blocks, _repeat(0))),
        np.int64,
        count=count,
    )
    unique, inverse = np.unique(ids, return_inverse=True)
    lookup = np.full(len(unique), UNKNOWN_SITE, dtype=np.int32)
    table: list[Site] = []
    for position, site_id in enumerate(unique.tolist()):
        site = site_of(site_id) if site_id else None
        if site is not None:
            lookup[position] = len(table)
            table.append(site)
    return lookup[inverse.reshape(-1)], tuple(table)
