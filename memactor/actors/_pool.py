"""``BufferPool``: an actor that lends NumPy buffers by shape and dtype, and accounts for them.

A request of ``nbytes`` is served by a raw ``uint8`` block of its *size class* (see
:func:`size_class`); the caller gets a C-contiguous view of the block's first ``nbytes``
bytes with the shape and dtype it asked for. A returned block stays in the pool's cache
and serves the next request of its class (a hit). Every block the pool holds, cached or
lent, is reported through the pool's memory reporter, so the ledger's component for the
pool shows, to the byte, ``bytes_reserved`` = all raw blocks and ``bytes_in_use`` = the
lent ones.

Lending is synchronous under the hood; only waiting for memory (backpressure under
``max_reserved``) awaits, and releasing never does, so a lease is returned even from a
cancelled scope.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, SupportsIndex

import numpy as np
import numpy.typing as npt
import outcome
import trio

from ..events import format_size, parse_size
from ..runtime import Actor, MemoryReporter
from ._lease import (
    Lease,
    LeaseError,
    PoolReply,
    PoolRequest,
    PoolStatistics,
    PoolTimeoutError,
    Trim,
    _Block,
    _LeaseState,
    current_owner,
    dims_of,
)
from ._metrics import GetStatistics


class _PoolState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class BufferPool(Actor[PoolRequest, PoolReply]):
    """An actor that lends NumPy buffers by shape and dtype from a cache of raw blocks.

    ``pool = BufferPool(max_reserved="256 MiB"); await system.spawn(pool, name="pool")``,
    then ``async with pool.lease((1024, 1024), np.float32) as array: ...``. Lending and
    releasing are method calls on the instance, in the caller's task; the actor's own
    task only answers messages (:meth:`handle`) and cleans up when it stops. Like the
    actor's reporter, a pool belongs to the system's trio thread.

    ``max_reserved`` caps the bytes of all raw blocks, cached and lent (``None``: no cap).
    A request that would push past it first frees cold cached blocks of other size
    classes; if that is not enough (the lent blocks alone leave no room) it waits:
    **backpressure**. Waiters are served first come, first served as leases come back: a
    request that would fit waits behind an earlier one that does not.

    ``max_cached`` caps the bytes of the cache (``None``: no cap but ``max_reserved``);
    when a release pushes past it, the coldest cached blocks (returned longest ago) are
    freed. Both take sizes as :func:`~memactor.parse_size` reads them.

    **Reporting** (component: the pool's name; owner: the lease's owner): ALLOC on a miss,
    ACQUIRE on a hit, RELEASE when a lease comes back to the cache, FREE when a cached
    block is freed. Every ALLOC and ACQUIRE carries the bytes the request asked for (its
    ``requested`` size) beside the block's, so the ledger shows the pool's slack and
    reuse ratio.

    **Stop.** When the pool stops (or before a restart), waiters get
    ``trio.ClosedResourceError``, the cache is freed (FREE each block) and new acquires
    raise ``trio.ClosedResourceError``. Leases still out stay valid; a restarted pool
    takes them back into its cache, otherwise releasing one frees its block and reports
    FREE while the actor system is open; after the system closed nothing can be reported
    (the ledger keeps the block as lent, as it was when the system closed) and the
    release still succeeds silently. A restart of the same instance keeps its counters.
    """

    def __init__(
        self, *, max_reserved: int | str | None = None, max_cached: int | str | None = None
    ) -> None:
        self.max_reserved: Final = None if max_reserved is None else parse_size(max_reserved)
        """The cap on reserved bytes, or ``None``."""
        self.max_cached: Final = None if max_cached is None else parse_size(max_cached)
        """The cap on cached bytes, or ``None``."""
        self._state = _PoolState.NEW
        self._reporter: MemoryReporter | None = None
        # Cached blocks by id, coldest (returned longest ago) first; and by size class,
        # warmest last, so that a hit reuses the block most likely still in CPU caches.
        self._cached: OrderedDict[int, _Block] = OrderedDict()
        self._buckets: dict[int, dict[int, _Block]] = {}
        self._lent: dict[int, _Block] = {}
        self._waiters: dict[Lease, trio.lowlevel.Task] = {}  # in arrival order
        self._bytes_reserved = self._peak_bytes_reserved = 0
        self._bytes_in_use = self._peak_bytes_in_use = 0
        self._hits = self._misses = self._trims = 0

    def __repr__(self) -> str:
        return f"<BufferPool {self._label()} {self._state.value}>"

    def _label(self) -> str:
        return repr(self.name) if self.spawned else "(unspawned)"

    # -- lending -------------------------------------------------------------------------

    def lease(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike = np.float64,
        *,
        owner: str | None = None,
        timeout: float | None = None,
    ) -> Lease:
        """A pending lease for ``async with``: acquired on enter, released on exit.

        ``async with pool.lease((1024, 1024), np.float32) as array:`` waits on enter as
        :meth:`acquire` does (with ``timeout``), and releases on every exit: normal, by an
        exception or by a cancellation. ``owner`` defaults to the calling actor or task
        (:func:`current_owner`, read now). Raises what :meth:`acquire` raises for a bad
        request, at once; pool state is checked on enter.
        """
        return self._new_lease(shape, dtype, owner, timeout)

    async def acquire(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike = np.float64,
        *,
        owner: str | None = None,
        timeout: float | None = None,
    ) -> Lease:
        """Lend an array of ``shape`` and ``dtype``; release it with ``lease.release()``.

        Waits while lending would push reserved bytes over ``max_reserved`` (after freeing
        what the cache can give), and behind earlier waiters. On cancellation while
        waiting nothing is lent and the waiter leaves the queue; once this returns the
        lease is the caller's to release. A checkpoint, like trio's ``send``.

        Raises:
          PoolTimeoutError: ``timeout`` seconds passed without room (nothing is lent).
          ValueError: the block needed is bigger than ``max_reserved`` (it never fits), a
              negative dimension, a zero-size dtype or a negative ``timeout``.
          TypeError: an object dtype (raw memory cannot hold references).
          trio.ClosedResourceError: the pool is not running (not spawned yet, or stopped,
              also while this waited).
        """
        lease = self._new_lease(shape, dtype, owner, timeout)
        await self._acquire_into(lease, timeout)
        return lease

    def acquire_nowait(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike = np.float64,
        *,
        owner: str | None = None,
    ) -> Lease:
        """Lend like :meth:`acquire`, or raise ``trio.WouldBlock`` (changing nothing) if it
        would have to wait; raises the same errors otherwise."""
        lease = self._new_lease(shape, dtype, owner, None)
        self._check_running()
        if self._waiters or not self._try_lend(lease):
            raise trio.WouldBlock
        return lease

    def release(self, lease: Lease) -> None:
        """Take ``lease`` back (what :meth:`Lease.release` calls); never awaits.

        The block goes to the cache (RELEASE), waiters that now fit are lent to in order,
        then the cache is trimmed to ``max_cached``. After the pool stopped, the block is
        freed instead (see the class docstring).

        Raises :class:`LeaseError` for a lease of another pool, one released already, or
        one never acquired.
        """
        if lease._pool is not self:
            raise LeaseError(
                f"{lease._describe()} belongs to pool {lease._pool._label()}, "
                f"not to pool {self._label()}"
            )
        if lease._state is _LeaseState.RELEASED:
            raise LeaseError(f"{lease._describe()} was released twice")
        if lease._state is _LeaseState.PENDING:
            raise LeaseError(f"{lease._describe()} was never acquired, so cannot be released")
        block = lease._take_back()
        del self._lent[block.id]
        self._bytes_in_use -= block.nbytes
        if self._state is not _PoolState.RUNNING:
            self._bytes_reserved -= block.nbytes
            self._free_after_stop(block)
            return
        self._cache(block)
        self._serve_waiters()
        if self.max_cached is not None:
            while self._bytes_reserved - self._bytes_in_use > self.max_cached:
                self._free_coldest()

    def trim(self) -> int:
        """Free every cached block (FREE each); return the bytes freed. Never awaits."""
        freed = self._bytes_reserved - self._bytes_in_use
        while self._cached:
            self._free_coldest()
        return freed

    # -- the actor -----------------------------------------------------------------------

    async def on_start(self) -> None:
        self._reporter = self.reporter
        self._state = _PoolState.RUNNING

    async def on_stop(self) -> None:
        """Refuse new requests, fail the waiters, free the cache; see the class docstring."""
        self._state = _PoolState.STOPPED
        waiters, self._waiters = self._waiters, {}
        for lease, task in waiters.items():
            error = trio.ClosedResourceError(
                f"buffer pool {self._label()} stopped while {lease._describe()} waited"
            )
            trio.lowlevel.reschedule(task, outcome.Error(error))
        self.trim()

    async def handle(self, message: PoolRequest) -> PoolReply:
        """:class:`GetStatistics`: answer :meth:`statistics`; :class:`Trim`: :meth:`trim`
        and answer the bytes freed. Any other message raises ``TypeError``, which (as any
        handler error) fails the actor."""
        if isinstance(message, GetStatistics):
            return self.statistics()
        if isinstance(message, Trim):
            return self.trim()
        raise TypeError(
            f"buffer pool {self._label()} got {message!r}: not GetStatistics() or Trim()"
        )

    def statistics(self) -> PoolStatistics:  # type: ignore[override]  # it wraps the actor's
        """A fresh frozen :class:`PoolStatistics`. Raises ``RuntimeError`` before spawn."""
        return PoolStatistics(
            hits=self._hits,
            misses=self._misses,
            leases_out=len(self._lent),
            cached_blocks=len(self._cached),
            bytes_reserved=self._bytes_reserved,
            peak_bytes_reserved=self._peak_bytes_reserved,
            bytes_in_use=self._bytes_in_use,
            peak_bytes_in_use=self._peak_bytes_in_use,
            bytes_cached=self._bytes_reserved - self._bytes_in_use,
            waiters=len(self._waiters),
            trims=self._trims,
            max_reserved=self.max_reserved,
            max_cached=self.max_cached,
            actor=super().statistics(),
        )

    # -- internals -----------------------------------------------------------------------

    def _new_lease(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike,
        owner: str | None,
        timeout: float | None,
    ) -> Lease:
        dims = dims_of(shape)
        kind = np.dtype(dtype)
        if kind.subdtype is not None:
            # A sub-array dtype ("3 float32s") is extra trailing dimensions, as np.empty
            # reads it; a view of raw bytes cannot take it as it is.
            kind, extra = kind.subdtype
            dims += extra
        if kind.hasobject:
            raise TypeError(f"dtype {kind} holds Python objects; a raw buffer cannot")
        if kind.itemsize == 0:
            raise ValueError(f"dtype {kind!r} has no size; give a sized dtype")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or a non-negative number, got {timeout}")
        lease = Lease(self, dims, kind, current_owner() if owner is None else owner, timeout)
        cap = self.max_reserved
        if cap is not None and lease.block_nbytes > cap:
            raise ValueError(
                f"{kind}{list(dims)} needs a {format_size(lease.block_nbytes)} block "
                f"({lease.block_nbytes} bytes), more than max_reserved {format_size(cap)} "
                f"({cap} bytes) of pool {self._label()}: it could never be lent"
            )
        return lease

    def _check_running(self) -> None:
        if self._state is _PoolState.NEW:
            raise trio.ClosedResourceError(
                "buffer pool is not running yet: spawn it first (await system.spawn(pool, ...))"
            )
        if self._state is _PoolState.STOPPED:
            raise trio.ClosedResourceError(f"buffer pool {self._label()} has stopped")

    async def _acquire_into(self, lease: Lease, timeout: float | None) -> None:
        self._check_running()
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_running()
        if not self._waiters and self._try_lend(lease):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        self._waiters[lease] = task

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            del self._waiters[lease]
            return trio.lowlevel.Abort.SUCCEEDED

        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                await trio.lowlevel.wait_task_rescheduled(abort)
            except BaseException:
                # Leaving the head of the queue may let those behind it fit.
                self._serve_waiters()
                raise
        if lease._state is _LeaseState.PENDING:
            reserved, cap = self._bytes_reserved, self.max_reserved
            raise PoolTimeoutError(
                f"pool {self._label()} could not lend {format_size(lease.block_nbytes)} "
                f"({lease.block_nbytes} bytes, for {lease.dtype}{list(lease.shape)}) within "
                f"{timeout} s: {format_size(reserved)} ({reserved} bytes) reserved, "
                f"{format_size(self._bytes_in_use)} in use, max_reserved "
                f"{format_size(cap or 0)} ({cap} bytes)",
                requested_bytes=lease.block_nbytes,
                bytes_reserved=reserved,
                max_reserved=cap,
            )

    def _try_lend(self, lease: Lease) -> bool:
        """Lend a cached or a new block to ``lease`` if it fits now; never waits."""
        reporter = self._reporter
        assert reporter is not None
        size = lease.block_nbytes
        bucket = self._buckets.get(size)
        hit = bool(bucket)
        if bucket:
            _, block = bucket.popitem()
            if not bucket:
                del self._buckets[size]
            del self._cached[block.id]
            self._hits += 1
            reporter.acquire(block.id, size, lease.owner, requested=lease.nbytes)
        else:
            cap = self.max_reserved
            if cap is not None:
                if self._bytes_in_use + size > cap:
                    return False
                while self._bytes_reserved + size > cap:
                    self._free_coldest()
            block = _Block(reporter.next_block(), np.empty(size, dtype=np.uint8))
            self._bytes_reserved += size
            self._peak_bytes_reserved = max(self._peak_bytes_reserved, self._bytes_reserved)
            self._misses += 1
            reporter.alloc(block.id, size, lease.owner, requested=lease.nbytes)
        self._bytes_in_use += size
        self._peak_bytes_in_use = max(self._peak_bytes_in_use, self._bytes_in_use)
        self._lent[block.id] = block
        try:
            lease._lend(block, hit=hit)
        except BaseException:
            # The view could not be made: the block was never handed out. It goes to the
            # cache as a returned block would, so the books stay equal to what is held.
            del self._lent[block.id]
            self._bytes_in_use -= size
            self._cache(block)
            raise
        return True

    def _cache(self, block: _Block) -> None:
        """Put a block that came back into the cache (RELEASE), warmest of its class."""
        assert self._reporter is not None
        self._reporter.release(block.id, block.nbytes)
        self._cached[block.id] = block
        self._buckets.setdefault(block.nbytes, {})[block.id] = block

    def _serve_waiters(self) -> None:
        while self._waiters and self._state is _PoolState.RUNNING:
            lease, task = next(iter(self._waiters.items()))
            try:
                if not self._try_lend(lease):
                    return
                result: outcome.Outcome[None] = outcome.Value(None)
            except Exception as exc:  # a MemoryError belongs to the waiter, not to us
                result = outcome.Error(exc)
            del self._waiters[lease]
            trio.lowlevel.reschedule(task, result)

    def _free_coldest(self) -> None:
        _, block = self._cached.popitem(last=False)
        bucket = self._buckets[block.nbytes]
        del bucket[block.id]
        if not bucket:
            del self._buckets[block.nbytes]
        self._bytes_reserved -= block.nbytes
        self._trims += 1
        assert self._reporter is not None
        self._reporter.free(block.id, block.nbytes)

    def _free_after_stop(self, block: _Block) -> None:
        # The pool's own reporter closes when it stops for good; a fresh one for the same
        # component works while the system is open. After that there is no one to tell.
        try:
            if self._reporter is None:
                raise trio.ClosedResourceError
            self._reporter.free(block.id, block.nbytes)
        except trio.ClosedResourceError:
            try:
                self._reporter = self.system.memory.reporter(self.name)
                self._reporter.free(block.id, block.nbytes)
            except trio.ClosedResourceError:
                self._reporter = None
