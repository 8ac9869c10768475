"""The component rows of a view, kept in chunks so that a view costs what changed.

The ledger keeps one frozen :class:`ComponentStats` per account, sorted by (component,
device). A view used to copy all of them into a fresh tuple: with 100,000 components
that copy was most of a tick. :class:`SortedRows` keeps the rows in chunks of at most
:data:`CHUNK_ROWS`, each with a cached tuple that only a change to one of its rows drops,
and a view is a :class:`ComponentRows` over those tuples: the chunks that did not change
are shared, not copied, between one view and the next.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain
from typing import TYPE_CHECKING, overload

from ._stats import ComponentStats

if TYPE_CHECKING:
    from ._accounts import Account

CHUNK_ROWS = 256
"""A chunk that grows past this many rows splits in two. A view copies each chunk that
changed (a few ns a row) and steps over every chunk (tens of ns each): at 100,000 rows
of which 100 changed, chunks of 128 to 256 rows balance the two at under 0.1 ms."""

_Key = tuple[str, str]
_Chunks = tuple[tuple[ComponentStats, ...], ...]


class ComponentRows(Sequence[ComponentStats]):
    """An immutable sequence of component statistics that behaves as a tuple of them.

    It compares equal to (and hashes as) the tuple of the same rows, and indexing,
    slicing (which gives a tuple), iteration, ``len``, ``in``, ``index`` and ``count``
    work as on that tuple. The ledger builds one per view from chunks that it shares
    between views (see the module docstring); ``ComponentRows(rows)`` makes one from any
    rows.
    """

    __slots__ = ("_chunks", "_length", "_starts")

    def __init__(self, rows: Iterable[ComponentStats] = ()) -> None:
        chunk = tuple(rows)
        self._chunks: _Chunks = (chunk,) if chunk else ()
        self._length = len(chunk)
        self._starts: list[int] | None = None

    @classmethod
    def _of_chunks(cls, chunks: _Chunks, length: int) -> ComponentRows:
        """Rows made of *chunks* (none of them empty), *length* rows in all."""
        rows = cls.__new__(cls)
        rows._chunks = chunks
        rows._length = length
        rows._starts = None
        return rows

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[ComponentStats]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[ComponentStats]:
        return chain.from_iterable(reversed(chunk) for chunk in reversed(self._chunks))

    def __contains__(self, value: object) -> bool:
        return any(value in chunk for chunk in self._chunks)

    @overload
    def __getitem__(self, index: int) -> ComponentStats: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[ComponentStats, ...]: ...

    def __getitem__(self, index: int | slice) -> ComponentStats | tuple[ComponentStats, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError("ComponentRows index out of range")
        starts = self._starts
        if starts is None:
            starts = self._starts = [0, *accumulate(map(len, self._chunks))]
        which = bisect_right(starts, position) - 1
        return self._chunks[which][position - starts[which]]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ComponentRows):
            if self._length != other._length:
                return False
            # Views of one ledger share their unchanged chunks, which compare by identity.
            return self._chunks == other._chunks or tuple(self) == tuple(other)
        if isinstance(other, tuple):
            return self._length == len(other) and tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"ComponentRows({tuple(self)!r})"

    def __reduce__(self) -> tuple[type[ComponentRows], tuple[tuple[ComponentStats, ...]]]:
        return (ComponentRows, (tuple(self),))


class _Chunk:
    """Neighbouring rows, their keys and accounts, and the tuple of the rows once taken."""

    __slots__ = ("accounts", "keys", "rows", "taken")

    def __init__(self) -> None:
        self.keys: list[_Key] = []
        self.rows: list[ComponentStats] = []
        self.accounts: list[Account] = []
        self.taken: tuple[ComponentStats, ...] | None = None

    def position(self, account: Account) -> int:
        """Where *account*'s row is: where it was last time, unless a row came or went
        before it since (then a binary search within the chunk finds it)."""
        position = account.row_index
        accounts = self.accounts
        if position >= len(accounts) or accounts[position] is not account:
            position = account.row_index = bisect_left(
                self.keys, (account.component, account.device)
            )
        return position


class SortedRows:
    """The ledger's frozen rows, sorted by (component, device), in chunks.

    Each account remembers its chunk and its position there, so replacing its row costs
    no search unless a row came or went before it in that chunk since (then one binary
    search within the chunk); a new row costs two binary searches (over the chunks'
    first keys, then within one chunk) and a list insertion within one chunk.
    """

    __slots__ = ("_bounds", "_chunks", "_length", "_view")

    def __init__(self) -> None:
        self._chunks = [_Chunk()]
        # Chunk i + 1 holds the keys from _bounds[i] up to _bounds[i + 1]: a bound is the
        # first key of a chunk when it split off, and still divides after that row goes.
        self._bounds: list[_Key] = []
        self._length = 0
        self._view: ComponentRows | None = ComponentRows()

    def __len__(self) -> int:
        return self._length

    def put(self, account: Account, stats: ComponentStats) -> None:
        """Make *stats* the row of *account*, in place of its last one if it has one."""
        chunk = account.row_chunk
        self._view = None
        if chunk is None:
            self._insert(account, stats)
            return
        chunk.rows[chunk.position(account)] = stats
        chunk.taken = None

    def _insert(self, account: Account, stats: ComponentStats) -> None:
        key = (account.component, account.device)
        which = bisect_right(self._bounds, key)
        chunk = self._chunks[which]
        position = bisect_left(chunk.keys, key)
        chunk.keys.insert(position, key)
        chunk.rows.insert(position, stats)
        chunk.accounts.insert(position, account)
        chunk.taken = None
        account.row_chunk = chunk
        account.row_index = position
        self._length += 1
        if len(chunk.keys) > CHUNK_ROWS:
            self._split(which)

    def _split(self, which: int) -> None:
        chunk = self._chunks[which]
        half = len(chunk.keys) // 2
        upper = _Chunk()
        upper.keys, upper.rows, upper.accounts = (
            chunk.keys[half:],
            chunk.rows[half:],
            chunk.accounts[half:],
        )
        del chunk.keys[half:], chunk.rows[half:], chunk.accounts[half:]
        chunk.taken = None
        for position, moved in enumerate(upper.accounts):
            moved.row_chunk = upper
            moved.row_index = position
        self._chunks.insert(which + 1, upper)
        self._bounds.insert(which, upper.keys[0])

    def remove(self, account: Account) -> None:
        """Take the row of *account* out; it must have one."""
        chunk = account.row_chunk
        assert chunk is not None, "an account without a row has none to remove"
        position = chunk.position(account)
        del chunk.keys[position], chunk.rows[position], chunk.accounts[position]
        chunk.taken = None
        account.row_chunk = None
        self._length -= 1
        self._view = None
        if not chunk.keys and len(self._chunks) > 1:
            # Its keys' range goes to the chunk below it (above it, for the first chunk).
            which = self._chunks.index(chunk)
            del self._chunks[which], self._bounds[max(which - 1, 0)]

    def view(self) -> ComponentRows:
        """The rows as they are now: chunks that did not change since the last view are
        shared with it, the others are copied."""
        if self._view is None:
            taken: list[tuple[ComponentStats, ...]] = []
            for chunk in self._chunks:
                rows = chunk.taken
                if rows is None:
                    rows = chunk.taken = tuple(chunk.rows)
                if rows:
                    taken.append(rows)
            self._view = ComponentRows._of_chunks(tuple(taken), self._length)
        return self._view
