"""``GpuBufferManager``: an actor that allocates device buffers and accounts for them.

Buffers are made by a backend (:mod:`._gpu_backends`): CuPy on ``cuda:N`` or NumPy on
the host (device ``"cpu"``). Every buffer the manager holds is reported on the buffer's
device (ALLOC, RESIZE, FREE), and every copy between the host and the device it makes is
a TRANSFER event with its bytes and duration, so the ledger's component for the manager
equals, to the byte, the buffers it holds, and shows each direction's bandwidth. Large
copies run in worker threads (:mod:`._offload`), so they never stall trio's loop.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, SupportsIndex, TypeVar

import numpy as np
import numpy.typing as npt
import trio

from ..events import PINNED_TAG, format_size, parse_size
from ..runtime import Actor, ThreadReporter
from ._gpu_backends import (
    DEFAULT_CHUNK_BYTES,
    CupyBackend,
    GpuBackend,
    as_bytes,
    select_backend,
)
from ._gpu_buffer import (
    DeviceBuffer,
    DeviceBufferError,
    DeviceMemoryLimitError,
    GpuStatistics,
)
from ._lease import current_owner, dims_of, nbytes_of
from ._metrics import GetStatistics
from ._offload import run_off_loop

T = TypeVar("T")

DEFAULT_COPY_THRESHOLD: Final = 1 << 20
"""Copies of fewer bytes (1 MiB) run inline in trio's thread: a hop to a worker thread
and back costs more than copying them."""

DEFAULT_MAX_COPIES: Final = 2
"""Copies a manager runs at once in worker threads: one each way fills both of a GPU's
copy engines; more would only queue on them."""

_NEVER = threading.Event()
"""The abort flag of an inline copy: never set (nothing can cancel trio's own thread
in the middle of a synchronous call)."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class GpuBufferManager(Actor[GetStatistics, GpuStatistics]):
    """An actor that allocates, resizes and frees device buffers, copies between host and
    device without stalling trio's loop, and accounts for all of it.

    ``gpu = GpuBufferManager("auto", max_reserved="8 GiB"); await system.spawn(gpu,
    name="gpu")``; then ``buf = await gpu.alloc((1024, 1024), np.float32)``, ``await
    gpu.resize(buf, (2048, 1024))``, ``gpu.free(buf)``, ``buf = await gpu.to_device(a)``
    and ``a = await gpu.to_host(buf)``; ``staging = await gpu.alloc_pinned(shape, dtype)``
    for page-locked host memory. Like a :class:`BufferPool`, these are method calls in the
    caller's task on trio's thread; the actor's task answers :class:`GetStatistics` and
    cleans up when it stops.

    **Device.** ``"cpu"``: the host backend (NumPy). ``"cuda:N"``: CuPy on that device, or
    :class:`DeviceUnavailableError` at once (never a fallback). ``"auto"``: CuPy on
    ``cuda:0`` when it imports and a device is available, else the host backend;
    :attr:`backend_reason` says which and why. A backend object (a :class:`GpuBackend`)
    is used as it is.

    **Copies.** :meth:`to_device` and :meth:`to_host` of ``copy_threshold`` bytes or more
    (default 1 MiB) run in a worker thread, in chunks of ``chunk_bytes`` (64 MiB), at most
    ``max_copies`` (2) at once (later ones wait their turn, cancellably); trio's loop, and
    so every other actor, the metrics actor and a live view, runs on meanwhile. Smaller
    copies run inline in trio's thread, which is cheaper than a thread hop. On CuPy a copy
    runs on the backend's stream for its direction and waits for the work queued before
    it on the caller's current stream (see :class:`CupyBackend`); the result is complete
    when the call returns.

    **Reporting** (component: the manager's name; device: the buffer's; owner: ``owner=``,
    else the calling actor or task, :func:`current_owner`): ALLOC for a new buffer, RESIZE
    (old and new size) for a resize, FREE for a free, TRANSFER ``cpu -> device`` for
    :meth:`to_device` and ``device -> cpu`` for :meth:`to_host` (``cpu -> cpu`` on the host
    backend: the same copies, counted the same way), each carrying the copy's duration
    (:data:`~memactor.events.DURATION_TAG`), so the ledger shows bandwidth per direction.
    Events go through a :class:`~memactor.runtime.ThreadReporter`, so a copy thread
    reports its buffer the moment it allocates it (owned by the caller) and its copy the
    moment it ends. Pinned buffers are host memory: component ``NAME.pinned``, device
    ``"cpu"``, tagged :data:`~memactor.events.PINNED_TAG`, so their bytes show as a row of
    their own. On the CuPy backend a CuPy memory hook, entered in trio's thread while the
    manager runs and in each copy thread while it copies, also reports ALLOC/FREE for
    every CuPy pool allocation other code makes there, owned by the actor (or task) that
    made it or the copy's caller. Allocations in other threads are not seen; those still
    live when the manager stops stay live in the ledger, as the memory does. With the
    system's tracking off the manager reports nothing (its own statistics still count).

    **Cancellation and stop.** ``alloc``, ``alloc_pinned``, ``resize`` and inline copies
    are checkpoints that act only if not cancelled before; once they act the result is
    the caller's. A copy in a worker thread that is cancelled stops within a chunk (on
    CuPy, within the two chunks queued), frees its new buffer (ALLOC then FREE in the
    ledger, so the caller's bytes are back to before) and raises ``trio.Cancelled``; a
    cancelled :meth:`to_host` returns no half array (with ``out=``, ``out`` may be partly
    written). ``free`` never awaits. When the manager stops it frees every live buffer
    (FREE each, so its books end at 0); a copy still running then frees its result and
    raises ``trio.ClosedResourceError``, as later calls do, and freeing such a buffer
    raises :class:`DeviceBufferError`.
    """

    def __init__(
        self,
        device: str | GpuBackend = "auto",
        *,
        max_reserved: int | str | None = None,
        copy_threshold: int | str = DEFAULT_COPY_THRESHOLD,
        max_copies: int = DEFAULT_MAX_COPIES,
        chunk_bytes: int | str = DEFAULT_CHUNK_BYTES,
    ) -> None:
        backend: GpuBackend
        if isinstance(device, str):
            backend, reason = select_backend(device)
        else:
            backend, reason = device, f"backend {type(device).__name__} given"
        if isinstance(max_copies, bool) or not isinstance(max_copies, int) or max_copies < 1:
            raise ValueError(f"max_copies must be a positive int, got {max_copies!r}")
        self.backend: Final[GpuBackend] = backend
        self.backend_reason: Final = reason
        """Which backend was chosen and why (``"auto: cupy is not installed; ..."``)."""
        self.device: Final = backend.device
        """``"cpu"`` or ``"cuda:N"``: where the buffers live."""
        self.max_reserved: Final = None if max_reserved is None else parse_size(max_reserved)
        self.copy_threshold: Final = parse_size(copy_threshold)
        """Copies of at least this many bytes run in a worker thread."""
        self.chunk_bytes: Final = parse_size(chunk_bytes)
        """What a copy moves between two looks at its abort flag."""
        if self.chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be at least 1 byte, got {chunk_bytes!r}")
        self.max_copies: Final = max_copies
        self._limiter = trio.CapacityLimiter(max_copies)
        self._state = _State.NEW
        self._events: ThreadReporter | None = None
        self._pinned_events: ThreadReporter | None = None
        self._live: dict[int, DeviceBuffer] = {}
        self._pinned: dict[int, DeviceBuffer] = {}
        self._reserved = self._peak = self._pinned_bytes = 0
        self._to_device = self._bytes_to_device = self._to_host = self._bytes_to_host = 0
        self._to_device_ns = self._to_host_ns = 0
        self._hook: Any = None
        # Per thread: whether the manager allocates there now (the hook skips it), and
        # whom a copy thread works for (the hook's owner there).
        self._local = threading.local()
        self._hooked_lock = threading.Lock()
        self._hooked: dict[tuple[int, int], tuple[int, int]] = {}  # (dev, ptr): (block, size)

    def __repr__(self) -> str:
        name = repr(self.name) if self.spawned else "(unspawned)"
        return f"<GpuBufferManager {name} on {self.device} {self._state.value}>"

    # -- buffers -------------------------------------------------------------------------

    async def alloc(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike = np.float64,
        *,
        owner: str | None = None,
    ) -> DeviceBuffer:
        """A new uninitialised buffer of ``shape`` and ``dtype`` on the device (ALLOC).

        Raises:
          DeviceMemoryLimitError: it would push reserved bytes over ``max_reserved``.
          ValueError, TypeError: a bad shape, or a dtype of no size or holding objects.
          trio.ClosedResourceError: the manager is not running.
        """
        dims, kind = dims_of(shape), _buffer_dtype(dtype)
        who = current_owner() if owner is None else owner
        await self._enter()
        nbytes = nbytes_of(dims, kind)
        self._reserve(nbytes)
        try:
            array = self._own_call(lambda: self.backend.empty(dims, kind))
        except BaseException:
            self._count(-nbytes)
            raise
        self._held()
        buffer = self._adopt(array, who)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    async def alloc_pinned(
        self,
        shape: SupportsIndex | Sequence[SupportsIndex],
        dtype: npt.DTypeLike = np.float64,
        *,
        owner: str | None = None,
    ) -> DeviceBuffer:
        """A new uninitialised page-locked host buffer (``pinned``, device ``"cpu"``): the
        fastest source for :meth:`to_device` and target for ``to_host(..., out=)``.

        On CuPy it comes from CuPy's pinned memory pool; on the host backend it is an
        ordinary allocation. Reported as ALLOC on ``"cpu"`` in component ``NAME.pinned``
        with the ``pinned`` tag (and the ``requested`` tag where the pool rounded the size
        up), so the pinned bytes show in every view; ``max_reserved`` (device memory)
        does not count them. :meth:`free` gives it back. Page-locked memory cannot be
        swapped out: hold little, for short.

        Raises what :meth:`alloc` raises, but :class:`DeviceMemoryLimitError`.
        """
        dims, kind = dims_of(shape), _buffer_dtype(dtype)
        who = current_owner() if owner is None else owner
        await self._enter()
        array, held = self._own_call(lambda: self.backend.empty_pinned(dims, kind))
        events = self._pinned_events
        assert events is not None
        block = events.next_block()
        buffer = DeviceBuffer(self, block, array, who, pinned=True, held=held)
        self._pinned[block] = buffer
        self._pinned_bytes += held
        requested = None if held == buffer.nbytes else buffer.nbytes
        events.alloc(block, held, who, "cpu", requested, tags=((PINNED_TAG, "1"),))
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    async def resize(
        self, buffer: DeviceBuffer, shape: SupportsIndex | Sequence[SupportsIndex]
    ) -> DeviceBuffer:
        """Reallocate ``buffer`` to ``shape`` (same dtype, same block), copying the
        overlap (:func:`~memactor.actors._gpu_backends.copy_overlap`); report RESIZE.
        Returns ``buffer``, whose ``array``, ``shape`` and ``nbytes`` are now the new ones.

        Raises what :meth:`alloc` raises, and :class:`DeviceBufferError` for a freed buffer,
        another manager's, or a pinned one (pinned buffers keep their size).
        """
        dims = dims_of(shape)
        self._check_mine(buffer, "resized")
        if buffer.pinned:
            raise DeviceBufferError(f"{buffer!r} cannot be resized: pinned buffers keep their size")
        await self._enter()
        self._check_mine(buffer, "resized")
        old, new = buffer.nbytes, nbytes_of(dims, buffer.dtype)
        self._reserve(new - old)
        try:
            array = self._own_call(lambda: self.backend.empty(dims, buffer.dtype))
            self.backend.copy_overlap(array, buffer._array)
        except BaseException:
            self._count(old - new)
            raise
        self._held()
        buffer._array, buffer.shape, buffer.nbytes, buffer._held = array, dims, new, new
        self._emitter().resize(buffer.block, old, new, self.device)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    def free(self, buffer: DeviceBuffer) -> None:
        """Drop ``buffer`` (FREE), a device buffer or a pinned one; never awaits. Raises
        :class:`DeviceBufferError` if it was freed already (by hand or when the manager
        stopped) or is another manager's."""
        self._check_mine(buffer, "freed")
        buffer._array = None
        if buffer.pinned:
            del self._pinned[buffer.block]
            self._pinned_bytes -= buffer._held
            assert self._pinned_events is not None
            self._pinned_events.free(buffer.block, buffer._held, "cpu")
        else:
            del self._live[buffer.block]
            self._count(-buffer.nbytes)
            self._emitter().free(buffer.block, buffer.nbytes, self.device)

    async def to_device(
        self, host: npt.ArrayLike | DeviceBuffer, *, owner: str | None = None
    ) -> DeviceBuffer:
        """A new buffer holding a copy of ``host`` (an array, or a pinned buffer): ALLOC,
        then TRANSFER cpu -> device with the copy's duration.

        Runs in a worker thread from ``copy_threshold`` bytes (see the class docstring
        for how, and for cancellation). Raises what :meth:`alloc` raises, and
        :class:`DeviceBufferError` for a device buffer, or a freed or foreign pinned one.
        """
        if isinstance(host, DeviceBuffer):
            self._check_mine(host, "copied to the device")
            if not host.pinned:
                raise DeviceBufferError(
                    f"{host!r} is a device buffer: to_device copies host arrays and pinned buffers"
                )
            source = np.asarray(host._array)
        else:
            source = np.asarray(host)
        _buffer_dtype(source.dtype)
        who = current_owner() if owner is None else owner
        await self._enter()
        nbytes = int(source.nbytes)
        self._reserve(nbytes)
        try:
            ready = self.backend.ready()
            array, block, took = await self._copy(
                nbytes,
                lambda abort: self._upload(source, who, ready, abort),
                lambda result: self._emitter().free(result[1], nbytes, self.device),
                who,
            )
        except BaseException:
            self._count(-nbytes)
            raise
        self._held()
        buffer = DeviceBuffer(self, block, array, who)
        self._live[block] = buffer
        self._to_device += 1
        self._bytes_to_device += nbytes
        self._to_device_ns += took
        return buffer

    async def to_host(
        self, buffer: DeviceBuffer, *, out: npt.NDArray[Any] | DeviceBuffer | None = None
    ) -> npt.NDArray[Any]:
        """A NumPy copy of ``buffer`` (TRANSFER device -> cpu, with its duration); the
        buffer stays live. With ``out`` (a pinned buffer of this manager, or a writeable
        C-contiguous NumPy array of the same number of bytes) the copy goes there and
        ``out``'s array is returned, viewed as ``buffer``'s dtype and shape.

        Runs in a worker thread from ``copy_threshold`` bytes (see the class docstring).
        Raises :class:`DeviceBufferError` for a freed buffer, another manager's or a pinned
        one, ``ValueError`` for an ``out`` that does not fit, and
        ``trio.ClosedResourceError`` when the manager is not running.
        """
        self._check_mine(buffer, "copied to the host")
        if buffer.pinned:
            raise DeviceBufferError(
                f"{buffer!r} is host memory already: to_host copies device buffers"
            )
        target = None if out is None else self._out_array(buffer, out)
        who = current_owner()
        await self._enter()
        self._check_mine(buffer, "copied to the host")
        source, nbytes, ready = buffer._array, buffer.nbytes, self.backend.ready()
        shape, dtype, block = buffer.shape, buffer.dtype, buffer.block

        def download(abort: threading.Event) -> tuple[npt.NDArray[Any], int]:
            result = np.empty(shape, dtype) if target is None else target
            start = time.perf_counter_ns()
            self.backend.download(result, source, ready, abort, self.chunk_bytes)
            took = time.perf_counter_ns() - start
            self._emitter().transfer(nbytes, self.device, "cpu", block, duration_ns=took)
            return result, took

        result, took = await self._copy(nbytes, download, lambda _: None, who)
        self._to_host += 1
        self._bytes_to_host += nbytes
        self._to_host_ns += took
        return result

    # -- the actor -----------------------------------------------------------------------

    async def on_start(self) -> None:
        if self._events is None:  # one pair for the manager's life, across restarts
            hub = self.system.memory  # with tracking off, these report nothing
            self._events = hub.thread_reporter(self.name, device=self.device)
            self._pinned_events = hub.thread_reporter(f"{self.name}.pinned")
        if isinstance(self.backend, CupyBackend):
            self._hook = self.backend.memory_hook(self._hook_alloc, self._hook_free)
            self._hook.__enter__()
        self._state = _State.RUNNING

    async def on_stop(self) -> None:
        """Free every live buffer (FREE each), leave the hook, refuse new calls."""
        self._state = _State.STOPPED
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.__exit__(None, None, None)
        for buffer in [*self._live.values(), *self._pinned.values()]:
            self.free(buffer)
            buffer._freed_by = "freed when its manager stopped"

    async def handle(self, message: GetStatistics) -> GpuStatistics:
        """:class:`GetStatistics`: answer :meth:`statistics`; anything else raises
        ``TypeError``, which (as any handler error) fails the actor."""
        if isinstance(message, GetStatistics):
            return self.statistics()
        raise TypeError(f"{self!r} got {message!r}: not GetStatistics()")

    def statistics(self) -> GpuStatistics:  # type: ignore[override]  # it wraps the actor's
        """A fresh frozen :class:`GpuStatistics`. Raises ``RuntimeError`` before spawn."""
        pool_used, pool_total, device_used, device_total = self.backend.memory_info()
        with self._hooked_lock:
            hooked = list(self._hooked.values())
        return GpuStatistics(
            device=self.device,
            backend=self.backend.name,
            bytes_reserved=self._reserved,
            peak_bytes_reserved=self._peak,
            bytes_in_use=self._reserved,
            live_buffers=len(self._live),
            transfers_to_device=self._to_device,
            bytes_to_device=self._bytes_to_device,
            transfers_to_host=self._to_host,
            bytes_to_host=self._bytes_to_host,
            hooked_blocks=len(hooked),
            hooked_bytes=sum(size for _, size in hooked),
            to_device_ns=self._to_device_ns,
            to_host_ns=self._to_host_ns,
            copies_in_flight=int(self._limiter.borrowed_tokens),
            copies_waiting=self._limiter.statistics().tasks_waiting,
            pinned_buffers=len(self._pinned),
            pinned_bytes=self._pinned_bytes,
            pool_used_bytes=pool_used,
            pool_total_bytes=pool_total,
            device_used_bytes=device_used,
            device_total_bytes=device_total,
            actor=super().statistics(),
        )

    # -- copies --------------------------------------------------------------------------

    async def _copy(
        self,
        nbytes: int,
        work: Callable[[threading.Event], T],
        undo: Callable[[T], None],
        who: str,
    ) -> T:
        """Run a copy's *work* inline (below ``copy_threshold``) or in a worker thread
        working for *who*, and hand its result over only if the caller was not cancelled
        and the manager still runs; else *undo* it and raise."""
        if nbytes < self.copy_threshold:
            result = work(_NEVER)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return result
        result = await run_off_loop(lambda abort: self._in_thread(work, abort, who), self._limiter)
        try:
            # It finished before it saw a cancellation: the caller does not take it.
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_running()
        except BaseException:
            undo(result)
            raise
        return result

    def _in_thread(
        self, work: Callable[[threading.Event], T], abort: threading.Event, who: str
    ) -> T:
        # CuPy's hooks are per thread: enter the manager's here for the copy's length,
        # with whom the copy works for as the owner of what it sees.
        self._local.owner = who
        try:
            with self.backend.thread_hook(self._hook):
                return work(abort)
        finally:
            self._local.owner = None

    def _upload(
        self, source: npt.NDArray[Any], who: str, ready: Any, abort: threading.Event
    ) -> tuple[Any, int, int]:
        """A copy's work for :meth:`to_device`, in its thread: allocate and report the
        buffer, copy, report the copy; on an error or an abort, free and report that."""
        array = self._own_call(lambda: self.backend.empty_for_copy(source.shape, source.dtype))
        events = self._emitter()
        block, nbytes = events.next_block(), int(source.nbytes)
        events.alloc(block, nbytes, who, self.device)
        try:
            contiguous = np.ascontiguousarray(source)
            start = time.perf_counter_ns()
            self.backend.upload(array, as_bytes(contiguous), ready, abort, self.chunk_bytes)
            took = time.perf_counter_ns() - start
        except BaseException:
            events.free(block, nbytes, self.device)
            raise
        events.transfer(nbytes, "cpu", self.device, block, duration_ns=took)
        return array, block, took

    # -- internals -----------------------------------------------------------------------

    async def _enter(self) -> None:
        self._check_running()
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_running()

    def _check_running(self) -> None:
        if self._state is _State.NEW:
            raise trio.ClosedResourceError(
                "GPU buffer manager is not running yet: spawn it first (await system.spawn(...))"
            )
        if self._state is _State.STOPPED:
            raise trio.ClosedResourceError(f"{self!r} has stopped")

    def _emitter(self) -> ThreadReporter:
        assert self._events is not None
        return self._events

    def _check_mine(self, buffer: DeviceBuffer, doing: str) -> None:
        if buffer._manager is not self:
            raise DeviceBufferError(f"{buffer!r} belongs to {buffer._manager!r}, not to {self!r}")
        if buffer._array is None:
            raise DeviceBufferError(f"{buffer!r} was {doing} after it was {buffer._freed_by}")

    def _out_array(
        self, buffer: DeviceBuffer, out: npt.NDArray[Any] | DeviceBuffer
    ) -> npt.NDArray[Any]:
        if isinstance(out, DeviceBuffer):
            self._check_mine(out, "copied into")
            if not out.pinned:
                raise ValueError(f"out must be a pinned buffer or a NumPy array, got {out!r}")
            out = out._array
        if not isinstance(out, np.ndarray):
            raise ValueError(f"out must be a pinned buffer or a NumPy array, got {out!r}")
        if out.nbytes != buffer.nbytes or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(
                f"out must be a writeable C-contiguous array of {buffer.nbytes} bytes "
                f"(as {buffer!r}), got one of {out.nbytes} bytes"
                f"{'' if out.flags.c_contiguous else ', not C-contiguous'}"
                f"{'' if out.flags.writeable else ', read-only'}"
            )
        view: npt.NDArray[Any] = as_bytes(out).view(buffer.dtype).reshape(buffer.shape)
        return view

    def _reserve(self, growth: int) -> None:
        """Count *growth* more reserved bytes before they are allocated (so that copies
        running at once cannot pass the cap together), or raise if that passes
        ``max_reserved``. The peak moves when the allocation succeeds (:meth:`_held`);
        a failure gives the bytes back with ``_count(-growth)``."""
        cap = self.max_reserved
        if cap is not None and growth > 0 and self._reserved + growth > cap:
            raise DeviceMemoryLimitError(
                f"{self!r} cannot take {format_size(growth)} ({growth} bytes) more: "
                f"{format_size(self._reserved)} ({self._reserved} bytes) reserved, "
                f"max_reserved {format_size(cap)} ({cap} bytes)",
                requested_bytes=growth,
                bytes_reserved=self._reserved,
                max_reserved=cap,
            )
        self._reserved += growth

    def _held(self) -> None:
        """Reserved bytes became memory: move the peak."""
        self._peak = max(self._peak, self._reserved)

    def _own_call(self, make: Callable[[], T]) -> T:
        """``make()`` with the hook told to skip this thread's allocations (the manager
        reports its own)."""
        self._local.own = True
        try:
            return make()
        finally:
            self._local.own = False

    def _adopt(self, array: Any, owner: str) -> DeviceBuffer:
        events = self._emitter()
        buffer = DeviceBuffer(self, events.next_block(), array, owner)
        self._live[buffer.block] = buffer
        events.alloc(buffer.block, buffer.nbytes, owner, self.device)
        return buffer

    def _count(self, delta: int) -> None:
        self._reserved += delta

    def _hook_alloc(self, device_id: int, ptr: int, size: int) -> None:
        # Called by CuPy inside the allocating code, in any thread: it must never raise.
        local = self._local
        if getattr(local, "own", False) or self._events is None:
            return
        if self._state is not _State.RUNNING:
            return
        try:
            owner = getattr(local, "owner", None)
            if owner is None:
                try:
                    owner = current_owner()
                except RuntimeError:  # not in a trio task (a callback of trio's own)
                    owner = self.name
            block = self._events.next_block()
            self._events.alloc(block, size, owner, f"cuda:{device_id}")
            with self._hooked_lock:
                self._hooked[(device_id, ptr)] = (block, size)
        except Exception:
            pass

    def _hook_free(self, device_id: int, ptr: int) -> None:
        with self._hooked_lock:
            entry = self._hooked.pop((device_id, ptr), None)
        if entry is None or self._events is None:
            return
        with contextlib.suppress(Exception):
            self._events.free(entry[0], entry[1], f"cuda:{device_id}")


def _buffer_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    kind = np.dtype(dtype)
    if kind.hasobject or kind.itemsize == 0:
        raise TypeError(f"dtype {kind!r} cannot make a device buffer")
    return kind
