"""Leases and the pieces a :class:`~memactor.actors.BufferPool` lends with them.

A :class:`Lease` is one loan of a pooled buffer; its errors, the size classes that decide
which raw block serves a request, the owner a lease is attributed to by default, and the
pool's statistics live here, beside the pool that uses them (``_pool.py``).
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, SupportsIndex, TypeAlias

import numpy as np
import numpy.typing as npt
import trio

from .._errors import MemactorError
from ..runtime import ActorStatistics, current_actor
from ._metrics import GetStatistics

if TYPE_CHECKING:
    from ._pool import BufferPool


MiB: Final = 1 << 20
"""Size classes are powers of two up to this, and multiples of it above."""


class LeaseError(MemactorError):
    """A lease was misused: released twice, released to a pool it does not belong to, its
    array used after release, or used before it was acquired. The message says which."""


class PoolTimeoutError(MemactorError, TimeoutError):
    """An acquire waited ``timeout`` seconds for memory under ``max_reserved`` in vain."""

    def __init__(
        self, message: str, *, requested_bytes: int, bytes_reserved: int, max_reserved: int | None
    ) -> None:
        super().__init__(message)
        self.requested_bytes = requested_bytes
        """The raw block size the request needed (its size class)."""
        self.bytes_reserved = bytes_reserved
        """What the pool reserved when the wait ended."""
        self.max_reserved = max_reserved
        """The pool's cap."""


def size_class(nbytes: int) -> int:
    """The raw block size that serves a request of ``nbytes``.

    ``nbytes`` rounded up to the next power of two up to 1 MiB, and to the next multiple of
    1 MiB above; ``0`` for ``0`` (a zero-size request gets a zero-size block). So at most
    half of a small block and less than 1 MiB of a large one is slack.

    Raises ``ValueError`` for a negative ``nbytes``.
    """
    if nbytes < 0:
        raise ValueError(f"nbytes must not be negative, got {nbytes}")
    if nbytes <= MiB:
        return 0 if nbytes == 0 else 1 << (nbytes - 1).bit_length()
    return -(-nbytes // MiB) * MiB


def dims_of(shape: SupportsIndex | Sequence[SupportsIndex]) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints; raises ``TypeError``/``ValueError``."""
    try:
        if isinstance(shape, Sequence | np.ndarray):
            dims = tuple(operator.index(n) for n in shape)
        else:
            dims = (operator.index(shape),)
    except TypeError:
        raise TypeError(f"shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(n < 0 for n in dims):
        raise ValueError(f"shape {dims} has a negative dimension")
    return dims


def nbytes_of(dims: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """The bytes an array of ``dims`` and ``dtype`` takes."""
    return math.prod(dims) * dtype.itemsize


def current_owner() -> str:
    """The name to attribute memory to for the calling trio task.

    The name of the actor the task works for (:func:`memactor.runtime.current_actor`: its
    hooks and handlers, and the tasks it started, count as the actor), else the calling
    task's own name, whatever it looks like.
    """
    actor = current_actor()
    if actor is not None:
        return actor.name
    return trio.lowlevel.current_task().name


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a :class:`BufferPool`, taken by ``statistics()``; it does not change.

    Byte counts are raw block sizes (size classes), exactly what the ledger shows for the
    pool's component. Counters cover the pool's whole life, across restarts.
    """

    hits: int
    """Requests served by a cached block (ACQUIRE events)."""
    misses: int
    """Requests served by a new raw block (ALLOC events)."""
    leases_out: int
    """Blocks lent now."""
    cached_blocks: int
    """Blocks in the cache now."""
    bytes_reserved: int
    """Bytes of all raw blocks held, cached or lent."""
    peak_bytes_reserved: int
    bytes_in_use: int
    """Bytes of the blocks lent now."""
    peak_bytes_in_use: int
    bytes_cached: int
    """``bytes_reserved - bytes_in_use``: the cache."""
    waiters: int
    """Tasks waiting for memory now (backpressure)."""
    trims: int
    """Cached blocks freed: over ``max_cached``, to make room under ``max_reserved``, by
    :meth:`BufferPool.trim` and when the pool stopped."""
    max_reserved: int | None
    max_cached: int | None
    actor: ActorStatistics
    """The pool's statistics as an actor (mailbox, state, restarts...)."""


@dataclass(frozen=True, slots=True)
class Trim:
    """Ask a :class:`~memactor.actors.BufferPool` to free its cache (:meth:`BufferPool.trim`):
    replies the bytes freed."""


PoolRequest: TypeAlias = GetStatistics | Trim
"""The messages a pool handles: see :meth:`BufferPool.handle`."""

PoolReply: TypeAlias = PoolStatistics | int
"""What :meth:`BufferPool.handle` answers."""


class _Block:
    """One raw block: the memory the ledger knows under ``id``."""

    __slots__ = ("id", "nbytes", "raw")

    def __init__(self, block_id: int, raw: npt.NDArray[np.uint8]) -> None:
        self.id = block_id
        self.raw = raw
        self.nbytes = raw.nbytes


class _LeaseState(enum.Enum):
    PENDING = "pending"
    LENT = "lent"
    RELEASED = "released"


class Lease:
    """One loan of a buffer from a :class:`BufferPool`.

    Made by :meth:`BufferPool.lease` (pending: ``async with`` acquires it) or by
    :meth:`BufferPool.acquire` / :meth:`~BufferPool.acquire_nowait` (already lent). The
    array is a C-contiguous view of a raw block of ``block_nbytes`` bytes; once the lease
    is released that block may be lent to someone else, so :attr:`array` raises
    :class:`LeaseError` and the view handed out earlier is made read-only (a best-effort
    guard: views taken from it stay writable). Not reusable: acquire a new lease instead.
    """

    __slots__ = (
        "_array",
        "_block",
        "_pool",
        "_state",
        "_timeout",
        "block_nbytes",
        "dtype",
        "hit",
        "nbytes",
        "owner",
        "shape",
    )

    def __init__(
        self,
        pool: BufferPool,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        owner: str,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self.shape = shape
        """The array's shape."""
        self.dtype = dtype
        """The array's dtype."""
        self.owner = owner
        """Whom the ledger attributes the block to while lent."""
        self.nbytes = nbytes_of(shape, dtype)
        """The array's bytes (what was asked for)."""
        self.block_nbytes = size_class(self.nbytes)
        """The raw block's bytes (what the pool reserves for it)."""
        self.hit = False
        """Whether the block came from the cache (a hit) rather than a new allocation."""
        self._timeout = timeout
        self._state = _LeaseState.PENDING
        self._block: _Block | None = None
        self._array: npt.NDArray[Any] | None = None

    def __repr__(self) -> str:
        block = "" if self._block is None else f" block {self._block.id}"
        return (
            f"<Lease {self.dtype}{list(self.shape)}{block} for {self.owner!r} {self._state.value}>"
        )

    def _describe(self) -> str:
        block = "" if self._block is None else f" (block {self._block.id})"
        return f"lease of {self.dtype}{list(self.shape)}{block} for {self.owner!r}"

    @property
    def acquired(self) -> bool:
        """Whether the buffer is lent now (acquired and not released)."""
        return self._state is _LeaseState.LENT

    @property
    def array(self) -> npt.NDArray[Any]:
        """The lent array. Raises :class:`LeaseError` before acquisition and after release."""
        if self._array is not None:
            return self._array
        if self._state is _LeaseState.PENDING:
            raise LeaseError(f"{self._describe()} was never acquired: enter it with async with")
        raise LeaseError(
            f"{self._describe()} was used after release: its block may be lent to someone "
            "else; acquire a new lease"
        )

    @property
    def block(self) -> int:
        """The raw block's id in the ledger (kept after release). Raises :class:`LeaseError`
        before acquisition."""
        if self._block is None:
            raise LeaseError(f"{self._describe()} was never acquired and has no block")
        return self._block.id

    def release(self) -> None:
        """Give the buffer back to its pool now; synchronous, so safe in a cancelled scope.

        Raises :class:`LeaseError` if it was already released or never acquired.
        """
        self._pool.release(self)

    def _lend(self, block: _Block, *, hit: bool) -> None:
        self._block = block
        self.hit = hit
        view = block.raw[: self.nbytes].view(self.dtype).reshape(self.shape)
        self._array = view
        self._state = _LeaseState.LENT

    def _take_back(self) -> _Block:
        block = self._block
        assert block is not None
        assert self._array is not None
        self._array.flags.writeable = False
        self._array = None
        self._state = _LeaseState.RELEASED
        return block

    async def __aenter__(self) -> npt.NDArray[Any]:
        """Acquire (see :meth:`BufferPool.acquire`) and return the array."""
        if self._state is not _LeaseState.PENDING:
            raise LeaseError(f"{self._describe()} was entered twice: a lease lends once")
        await self._pool._acquire_into(self, self._timeout)
        return self.array

    async def __aexit__(self, *exc_info: object) -> None:
        """Release, on a normal exit, an exception or a cancellation alike (unless the body
        released the lease already)."""
        if self._state is _LeaseState.LENT:
            self._pool.release(self)
