"""``ChunkProcessor``: apply a function to an array chunk by chunk, in pooled memory.

An array is cut into chunks (:func:`chunk_slices`, C order). Each chunk is copied into a
buffer leased from a :class:`BufferPool`, the function runs on that copy, and its result
is copied into a second leased buffer until the consumer takes it. Both leases are taken
with the processor's name as owner, so the ledger shows the processor's working memory
under its own name while the pool's cache keeps the blocks for the next chunk.

Memory is bounded, whatever the array's size:

- at most ``concurrency`` chunks are computed at once (each holding an input and an
  output buffer);
- at most ``concurrency + lookahead`` chunks of one call are started and not yet taken by
  the consumer (each holding its output buffer). A slow consumer of :meth:`stream` thus
  stops the processor instead of letting results pile up.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt
import trio

from ..runtime import Actor, ActorStatistics
from ._chunking import chunk_slices
from ._lease import nbytes_of
from ._pool import BufferPool

Array: TypeAlias = npt.NDArray[Any]
SyncChunkFn: TypeAlias = Callable[[Array], npt.ArrayLike]
AsyncChunkFn: TypeAlias = Callable[[Array], Awaitable[npt.ArrayLike]]
ChunkFn: TypeAlias = SyncChunkFn | AsyncChunkFn


@dataclass(frozen=True, slots=True)
class ChunkStatistics:
    """A snapshot of one :class:`ChunkProcessor`, taken by ``statistics()``.

    Counters cover the processor's whole life, over every ``process`` and ``stream`` call.
    """

    actor: ActorStatistics
    """The processor's statistics as an actor (mailbox, restarts, ...)."""

    chunks_done: int
    """Chunks whose function returned and whose result was stored."""

    bytes_processed: int
    """Input bytes of the chunks counted in :attr:`chunks_done`."""

    in_flight: int
    """Chunks being computed now (at most ``concurrency``)."""

    peak_in_flight: int
    """The largest :attr:`in_flight` seen."""

    working_bytes: int
    """Bytes leased from the pool by this processor now (inputs and outputs), counted as
    the pool's raw blocks (size classes): what the ledger shows for the processor as owner."""

    peak_working_bytes: int
    """The largest :attr:`working_bytes` seen."""

    leases: int
    """Leases taken from the pool by this processor."""

    pool_hits: int
    """Those of :attr:`leases` that the pool served from its cache. Exact for a lease
    served at once; a lease that had to wait for room under the pool's ``max_reserved``
    counts as a hit when its block is no newer than the newest this processor had been
    lent before (so a block made for another owner meanwhile, then reused, counts as a
    miss)."""

    reuse_ratio: float
    """``pool_hits / leases``; 0.0 before the first lease."""

    requested_working_bytes: int = 0
    """Bytes of the arrays in :attr:`working_bytes` (what this processor asked the pool
    for, less the size classes' slack): what the ledger shows as the pool's requested
    bytes in use for this processor."""

    peak_requested_working_bytes: int = 0
    """The largest :attr:`requested_working_bytes` seen."""

    bytes_leased: int = 0
    """Block bytes of every lease taken, over the processor's life."""

    requested_bytes_leased: int = 0
    """Array bytes of every lease taken, over the processor's life."""

    lookahead: int = 0
    """The processor's ``lookahead``."""

    waiting_results: int = 0
    """Results ready now and not yet taken by their consumer."""

    waiting_bytes: int = 0
    """Bytes of the results in :attr:`waiting_results` (their arrays)."""

    peak_waiting_bytes: int = 0
    """The largest :attr:`waiting_bytes` seen: what the lookahead cost at most."""

    busy_s: float = 0.0
    """Time (trio's clock) during which at least one call was running."""

    results_waiting_s: float = 0.0
    """Of :attr:`busy_s`, the time at least one result waited for its consumer: near
    :attr:`busy_s`, the consumer is the slow side and results pile up in the lookahead."""

    consumer_waiting_s: float = 0.0
    """The time consumers spent waiting for their next result: near :attr:`busy_s`, the
    processor is the slow side and its lookahead is never used."""

    takes_ahead: int = 0
    """Results a consumer took without waiting while chunks of its call remained to be
    started (the takes at which the lookahead could have been smaller)."""

    fewest_spare_results: int = -1
    """At those takes, the fewest results that were ready beyond the one taken: the
    lookahead could have been that much smaller without the consumer waiting there.
    -1 before the first such take."""


class _Slot:
    """One chunk of one call, from its start until the consumer has taken its result."""

    __slots__ = ("consumed", "index", "output", "ready", "region", "waiting_bytes")

    def __init__(self, index: int, region: tuple[slice, ...]) -> None:
        self.index = index
        self.region = region
        self.output: Array | None = None
        """The leased result while the chunk's task holds it; None before and after."""
        self.ready = trio.Event()
        """Set when :attr:`output` is there, or when the chunk ended without it."""
        self.consumed = trio.Event()
        """Set by the consumer when it no longer reads :attr:`output`."""
        self.waiting_bytes = 0
        """The bytes of :attr:`output` while it is ready and not yet taken; else 0."""


class _Run:
    """The shared state of one ``process`` or ``stream`` call."""

    def __init__(self, array: Array, regions: list[tuple[slice, ...]], window: int) -> None:
        self.array = array
        self.regions = regions
        self.window = trio.Semaphore(window)
        """Chunks started and not yet consumed: the lookahead bound."""
        self.send, self.receive = trio.open_memory_channel[_Slot](window)
        self.scope = trio.CancelScope()
        """Around the production: cancelled when a chunk fails or the consumer leaves."""
        self.error: Exception | None = None
        self.done = trio.Event()
        """Set once every chunk task has ended and every lease is back in the pool."""
        self.started = 0
        """Chunks started so far."""
        self.ready = 0
        """Results ready and not yet taken."""

    def fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self.scope.cancel()


class ChunkProcessor(Actor[Array, Array]):
    """Applies *fn* to an array chunk by chunk, with bounded concurrency and memory.

    ``fn`` takes one chunk (a C-contiguous array of the input's dtype, at most
    *chunk_shape*) and returns an array of the same shape. A plain function runs in a
    worker thread (``trio.to_thread.run_sync``); an ``async def`` function (detected with
    :func:`inspect.iscoroutinefunction`) is awaited in a trio task. The chunk is a pooled
    buffer that ``fn`` may modify in place, but must not keep: it goes back to the pool
    when ``fn`` returns. The result's dtype is *out_dtype* when given (results are cast as
    by ``ndarray.astype``), else ``fn``'s, which must then be the same for every chunk.

    Spawn it, then call :meth:`process` or :meth:`stream` from any task::

        pool = BufferPool()
        await system.spawn(pool, name="pool")
        proc = ChunkProcessor(decode, (256, 256), pool=pool, concurrency=4)
        await system.spawn(proc, name="decode.chunks")
        image = await proc.process(raw)

    As an actor, a message is an array and the reply its processed result (``await
    ref.ask(raw)``); an error in ``fn`` then fails the actor like any handler's.

    Memory: every input copy and result buffer is leased from *pool* with the processor's
    name as owner; the arrays handed to the caller (the result of :meth:`process`, the
    chunks of :meth:`stream`) are ordinary NumPy arrays that belong to the caller and are
    not accounted. ``fn``'s own return value lives only until it is copied into the
    pooled result buffer. The processor allocates nothing else per chunk.

    A pool capped by ``max_reserved`` must have room for ``concurrency`` input and
    ``concurrency + lookahead`` result blocks of the largest chunk: with less, a later
    chunk's result may hold the memory that the chunk the consumer waits for needs, and
    the call waits for ever. With less room in use by others it waits for them
    (the pool's backpressure).

    Raises (constructor):
      ValueError: *chunk_shape* has a length below 1, *concurrency* is below 1 or
          *lookahead* is negative.
      TypeError: *fn* is not callable.
    """

    reports_lookahead: ClassVar[bool] = True
    """The metrics actor samples :meth:`statistics` on its tick (see ``_sampling``)."""

    def __init__(
        self,
        fn: ChunkFn,
        chunk_shape: int | Sequence[int],
        *,
        pool: BufferPool,
        concurrency: int = 2,
        lookahead: int | None = None,
        out_dtype: npt.DTypeLike | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        shape = (chunk_shape,) if isinstance(chunk_shape, int) else tuple(chunk_shape)
        chunk_slices(shape, shape)  # checks the lengths are positive integers
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if lookahead is None:
            lookahead = concurrency
        if lookahead < 0:
            raise ValueError(f"lookahead must be at least 0, got {lookahead}")
        self.fn = fn
        self.chunk_shape: tuple[int, ...] = shape
        self.pool = pool
        self.concurrency = concurrency
        self.lookahead = lookahead
        self.out_dtype: np.dtype[Any] | None = None if out_dtype is None else np.dtype(out_dtype)
        if self.out_dtype is not None and (
            self.out_dtype.hasobject or self.out_dtype.itemsize == 0
        ):
            raise TypeError(
                f"out_dtype must be a sized dtype without Python objects, got {self.out_dtype}"
            )
        # An object whose __call__ is an async def counts as async too.
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        self._limiter = trio.CapacityLimiter(concurrency)
        self._chunks_done = 0
        self._bytes_processed = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._working_bytes = 0
        self._peak_working_bytes = 0
        self._leases = 0
        self._requested_working_bytes = self._peak_requested_working_bytes = 0
        self._bytes_leased = self._requested_bytes_leased = 0
        self._pool_hits = 0
        # The exact time accounting of lookahead vs throughput (see ChunkStatistics):
        # each counter is an open interval's start (or None) plus the closed total.
        self._busy = _Interval()
        self._results_waiting = _Interval()
        self._consumer_waiting_s = 0.0
        self._waiting_results = self._waiting_bytes = self._peak_waiting_bytes = 0
        self._takes_ahead = 0
        self._fewest_spare = -1

    async def handle(self, message: Array) -> Array:
        """Reply with ``await self.process(message)``."""
        return await self.process(message)

    # ---- the public calls -------------------------------------------------------------

    async def process(self, array: npt.ArrayLike) -> Array:
        """Return ``fn`` applied to *array* chunk by chunk, assembled in a new array.

        The result has the input's shape and the dtype described in the class docstring.
        An empty array gives an empty result (of *out_dtype*, else the input's dtype)
        without calling ``fn``. Chunks run in tasks of the caller's own nursery, so this
        works from any task of a spawned processor.

        Errors: the first exception raised by ``fn`` (or by the pool, or a result of the
        wrong shape, a ``ValueError``) is raised here as it is, after every other chunk
        of this call has been cancelled or has finished and every lease has gone back to
        the pool.

        Cancellation: the chunks of this call are cancelled and this returns (raising
        `trio.Cancelled`) once each has ended and returned its leases. A chunk whose
        plain function is running in a thread is waited for: a thread cannot be
        interrupted, and its buffers stay lent to it until it returns.
        """
        run = self._prepare(array)
        result: Array | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._produce, run)
            try:
                result = await self._assemble(run)
            except Exception as error:
                run.fail(error)
        if run.error is not None:
            raise run.error
        if result is None:  # no chunks at all
            return np.empty(run.array.shape, dtype=self.out_dtype or run.array.dtype)
        return result

    async def stream(self, array: npt.ArrayLike) -> AsyncGenerator[tuple[int, Array], None]:
        """Yield ``(index, result)`` for every chunk of *array*, in :func:`chunk_slices` order.

        ``index`` is the chunk's position in ``chunk_slices(array.shape, chunk_shape)``;
        ``result`` is a new array (a copy out of the pooled buffer) that the caller keeps.
        The chunks run in the processor's own nursery, so the processor must be running.

        Backpressure: at most ``concurrency + lookahead`` chunks of the stream are started
        and not yet yielded; a consumer that is slow to ask for the next result stops the
        processor there, and memory stays bounded.

        Errors: as :meth:`process`, the first error of ``fn`` is raised from the ``async
        for`` once every chunk of this stream has ended and returned its leases. If the
        processor stops during the stream, `trio.BrokenResourceError` is raised.

        Cancellation and early exit: when the consumer is cancelled while waiting for the
        next result, or closes the generator (``aclose()``, or leaving ``async with
        contextlib.aclosing(proc.stream(a))``), the stream's chunks are cancelled and the
        generator waits for them to return their leases before it goes. A generator
        abandoned without closing (``break`` out of a bare ``async for``) is closed by
        trio when it is garbage collected; until then it holds at most its lookahead of
        result buffers. Use ``contextlib.aclosing`` to make the release deterministic.

        Raises:
          RuntimeError: the processor is not running (not spawned yet, or stopped).
        """
        run = self._prepare(array)
        if not run.regions:
            return
        self.nursery.start_soon(self._produce, run)
        taken = 0
        dtype: np.dtype[Any] | None = None
        try:
            while taken < len(run.regions):
                slot = await self._next(run)
                if slot is None:
                    break
                try:
                    assert slot.output is not None  # checked by _next
                    dtype = self._check_dtype(slot, dtype)
                    copy = slot.output.copy()
                except Exception as error:
                    run.fail(error)
                    break
                finally:
                    self._consumed(run, slot)
                taken += 1
                yield slot.index, copy
        finally:
            run.scope.cancel()
            with trio.CancelScope(shield=True):
                await run.done.wait()
        if run.error is not None:
            raise run.error
        if taken < len(run.regions):
            raise trio.BrokenResourceError(
                f"chunk processor {self.name!r} stopped during the stream"
            )

    def statistics(self) -> ChunkStatistics:  # type: ignore[override]  # a richer value
        """Return a fresh frozen :class:`ChunkStatistics`; ``actor`` is the actor's own.

        Raises ``RuntimeError`` before spawn.
        """
        return ChunkStatistics(
            actor=super().statistics(),
            chunks_done=self._chunks_done,
            bytes_processed=self._bytes_processed,
            in_flight=self._in_flight,
            peak_in_flight=self._peak_in_flight,
            working_bytes=self._working_bytes,
            peak_working_bytes=self._peak_working_bytes,
            leases=self._leases,
            pool_hits=self._pool_hits,
            reuse_ratio=self._pool_hits / self._leases if self._leases else 0.0,
            requested_working_bytes=self._requested_working_bytes,
            peak_requested_working_bytes=self._peak_requested_working_bytes,
            bytes_leased=self._bytes_leased,
            requested_bytes_leased=self._requested_bytes_leased,
            lookahead=self.lookahead,
            waiting_results=self._waiting_results,
            waiting_bytes=self._waiting_bytes,
            peak_waiting_bytes=self._peak_waiting_bytes,
            busy_s=self._busy.total_s(),
            results_waiting_s=self._results_waiting.total_s(),
            consumer_waiting_s=self._consumer_waiting_s,
            takes_ahead=self._takes_ahead,
            fewest_spare_results=self._fewest_spare,
        )

    # ---- one call: production and ordered consumption ---------------------------------

    def _prepare(self, array: npt.ArrayLike) -> _Run:
        array = np.asarray(array)
        regions = chunk_slices(array.shape, self.chunk_shape)
        self.name  # noqa: B018  # raises RuntimeError before anything starts when unspawned
        return _Run(array, regions, self.concurrency + self.lookahead)

    async def _produce(self, run: _Run) -> None:
        """Start one task per chunk, in order, while the window has room."""
        self._busy.enter()
        try:
            with run.scope:
                async with trio.open_nursery() as nursery:
                    for index, region in enumerate(run.regions):
                        await run.window.acquire()
                        slot = _Slot(index, region)
                        run.send.send_nowait(slot)  # the window keeps it below capacity
                        run.started += 1
                        nursery.start_soon(self._chunk, run, slot)
        finally:
            run.send.close()
            self._busy.leave()
            run.done.set()

    async def _chunk(self, run: _Run, slot: _Slot) -> None:
        """Compute one chunk, then hold its result buffer until the consumer took it."""
        try:
            async with contextlib.AsyncExitStack() as held:
                output = await self._compute(run, slot, held)
                try:
                    slot.output = output
                    self._result_ready(run, slot, output.nbytes)
                    slot.ready.set()
                    await slot.consumed.wait()
                finally:
                    self._result_taken(run, slot)
                    slot.output = None  # before the lease goes back: never read it after
        except Exception as error:
            run.fail(error)
        finally:
            slot.ready.set()

    async def _compute(self, run: _Run, slot: _Slot, held: contextlib.AsyncExitStack) -> Array:
        """Run ``fn`` on a pooled copy of the chunk; return the pooled result (in *held*)."""
        source = run.array[slot.region]
        shape = tuple(s.stop - s.start for s in slot.region)
        async with self._limiter:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            try:
                async with self._lease(shape, run.array.dtype) as chunk:
                    if self._is_async:
                        np.copyto(chunk, source)
                        result = np.asarray(await self.fn(chunk))  # type: ignore[misc]  # async when _is_async
                    else:
                        result = await trio.to_thread.run_sync(self._run_sync, chunk, source)
                    if result.shape != shape:
                        raise ValueError(
                            f"fn returned shape {result.shape} for chunk {slot.index} "
                            f"of shape {shape}"
                        )
                    output = await held.enter_async_context(
                        self._lease(shape, self.out_dtype or result.dtype)
                    )
                    np.copyto(output, result, casting="unsafe")
                    del result
            finally:
                self._in_flight -= 1
        self._chunks_done += 1
        self._bytes_processed += nbytes_of(shape, run.array.dtype)
        return output

    def _run_sync(self, chunk: Array, source: Array) -> Array:
        """In a worker thread: fill the pooled chunk, apply the plain ``fn``."""
        np.copyto(chunk, source)
        return np.asarray(self.fn(chunk))

    @contextlib.asynccontextmanager
    async def _lease(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> AsyncIterator[Array]:
        """A pool lease owned by this processor, counted in its statistics.

        The lease is taken without waiting when it can be, so that it is counted in the
        same step as the pool lends it and the peak of working memory agrees with the
        ledger's; after a wait (a capped pool) it is counted when this task resumes.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            lease = self.pool.acquire_nowait(shape, dtype, owner=self.name)
        except trio.WouldBlock:
            lease = await self.pool.acquire(shape, dtype, owner=self.name)
        hit = lease.hit
        try:
            self._leases += 1
            self._pool_hits += hit
            self._working_bytes += lease.block_nbytes
            self._peak_working_bytes = max(self._peak_working_bytes, self._working_bytes)
            self._bytes_leased += lease.block_nbytes
            self._requested_bytes_leased += lease.nbytes
            self._requested_working_bytes += lease.nbytes
            self._peak_requested_working_bytes = max(
                self._peak_requested_working_bytes, self._requested_working_bytes
            )
            yield lease.array
        finally:
            lease.release()
            self._working_bytes -= lease.block_nbytes
            self._requested_working_bytes -= lease.nbytes

    async def _next(self, run: _Run) -> _Slot | None:
        """The next chunk in order once its result is ready; None when the run ended.

        Counts the time the consumer waited here, and, when it did not wait while chunks
        remained to start, how many results were ready beyond this one.
        """
        try:
            slot = run.receive.receive_nowait()
        except trio.WouldBlock:
            slot = None
        except trio.EndOfChannel:
            return None
        if slot is not None and slot.ready.is_set():
            if slot.output is not None and run.started < len(run.regions):
                self._takes_ahead += 1
                spare = run.ready - 1
                if self._fewest_spare < 0 or spare < self._fewest_spare:
                    self._fewest_spare = spare
            await trio.lowlevel.checkpoint()  # as the receive it stands for
        else:
            began = trio.current_time()
            try:
                if slot is None:
                    slot = await run.receive.receive()
                await slot.ready.wait()
            except trio.EndOfChannel:
                return None
            finally:
                self._consumer_waiting_s += trio.current_time() - began
        if run.error is not None or slot.output is None:
            return None
        return slot

    def _result_ready(self, run: _Run, slot: _Slot, nbytes: int) -> None:
        run.ready += 1
        slot.waiting_bytes = nbytes
        self._waiting_results += 1
        self._waiting_bytes += nbytes
        self._peak_waiting_bytes = max(self._peak_waiting_bytes, self._waiting_bytes)
        if self._waiting_results == 1:
            self._results_waiting.enter()

    def _result_taken(self, run: _Run, slot: _Slot) -> None:
        """The result of *slot* no longer waits (taken, or its chunk ended); idempotent."""
        if not slot.waiting_bytes:
            return
        run.ready -= 1
        self._waiting_results -= 1
        self._waiting_bytes -= slot.waiting_bytes
        slot.waiting_bytes = 0
        if self._waiting_results == 0:
            self._results_waiting.leave()

    def _check_dtype(self, slot: _Slot, expected: np.dtype[Any] | None) -> np.dtype[Any]:
        """The result's dtype, which must be *expected* (chunk 0's) when that is known."""
        assert slot.output is not None
        dtype = slot.output.dtype
        if expected is not None and dtype != expected:
            raise ValueError(
                f"fn returned dtype {dtype} for chunk {slot.index} and {expected} for "
                "chunk 0; pass out_dtype to cast every result"
            )
        return dtype

    def _consumed(self, run: _Run, slot: _Slot) -> None:
        self._result_taken(run, slot)
        slot.consumed.set()
        run.window.release()

    async def _assemble(self, run: _Run) -> Array | None:
        """Copy every chunk's result into place; None when there are no chunks or it failed."""
        result: Array | None = None
        for _ in run.regions:
            slot = await self._next(run)
            if slot is None:
                return None
            try:
                output = slot.output
                assert output is not None  # checked by _next
                if result is None:
                    result = np.empty(run.array.shape, dtype=output.dtype)
                self._check_dtype(slot, result.dtype)
                result[slot.region] = output
            finally:
                self._consumed(run, slot)
        return result


class _Interval:
    """Time spent with at least one holder inside, on trio's clock; nested enters count
    once. Read at any moment, an open interval counts up to now."""

    __slots__ = ("_closed_s", "_depth", "_since")

    def __init__(self) -> None:
        self._closed_s = 0.0
        self._depth = 0
        self._since = 0.0

    def enter(self) -> None:
        if self._depth == 0:
            self._since = trio.current_time()
        self._depth += 1

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._closed_s += trio.current_time() - self._since

    def total_s(self) -> float:
        if self._depth:
            return self._closed_s + trio.current_time() - self._since
        return self._closed_s
