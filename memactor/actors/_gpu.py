"""``GpuBufferManager``: an actor that allocates device buffers and accounts for them.

Buffers are made by a backend (:mod:`._gpu_backends`): CuPy on ``cuda:N`` or NumPy on
the host (device ``"cpu"``). Every buffer the manager holds is reported through its
memory reporter on the buffer's device (ALLOC, RESIZE, FREE), and every copy between the
host and the device it makes is a TRANSFER event with its bytes, so the ledger's
component for the manager equals, to the byte, the buffers it holds.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, SupportsIndex

import numpy as np
import numpy.typing as npt
import trio

from .._errors import MemactorError
from ..events import format_size, parse_size
from ..runtime import Actor, ActorStatistics, MemoryReporter
from ._gpu_backends import BackendName, CupyBackend, HostBackend, select_backend
from ._lease import current_owner, dims_of, nbytes_of
from ._metrics import GetStatistics


class DeviceBufferError(MemactorError):
    """A device buffer was misused: freed twice, freed or resized by another manager, or
    used after it was freed. The message says which."""


class DeviceMemoryLimitError(MemactorError):
    """An allocation would push the manager's reserved bytes over ``max_reserved``."""

    def __init__(
        self, message: str, *, requested_bytes: int, bytes_reserved: int, max_reserved: int
    ) -> None:
        super().__init__(message)
        self.requested_bytes = requested_bytes
        self.bytes_reserved = bytes_reserved
        self.max_reserved = max_reserved


class DeviceBuffer:
    """One buffer held by a :class:`GpuBufferManager`, until :meth:`GpuBufferManager.free`.

    ``array`` is a NumPy array (host backend) or a CuPy array (CuPy backend); after the
    buffer is freed it raises :class:`DeviceBufferError`. ``block`` is its id in the ledger.
    """

    __slots__ = (
        "_array",
        "_freed_by",
        "_manager",
        "block",
        "device",
        "dtype",
        "nbytes",
        "owner",
        "shape",
    )

    def __init__(self, manager: GpuBufferManager, block: int, array: Any, owner: str) -> None:
        self._manager = manager
        self._array: Any = array
        self._freed_by = "freed"
        self.block: Final = block
        self.device: Final[str] = manager.device
        self.owner: Final = owner
        self.dtype: np.dtype[Any] = array.dtype
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.nbytes: int = int(array.nbytes)

    def __repr__(self) -> str:
        state = "freed" if self._array is None else "live"
        where = f"block {self.block} on {self.device}"
        return f"<DeviceBuffer {self.dtype}{list(self.shape)} {where} {state}>"

    @property
    def freed(self) -> bool:
        """Whether the buffer was freed (by hand or when its manager stopped)."""
        return self._array is None

    @property
    def array(self) -> Any:
        """The device array. Raises :class:`DeviceBufferError` once the buffer is freed."""
        if self._array is None:
            raise DeviceBufferError(f"{self!r} was used after it was freed")
        return self._array


@dataclass(frozen=True, slots=True)
class GpuStatistics:
    """A snapshot of a :class:`GpuBufferManager`, taken by ``statistics()``.

    Byte counts are the manager's own buffers, as the ledger shows its component on
    ``device``; the ``pool_*`` and ``device_*`` numbers come from CuPy's default memory
    pool and from NVML, and are ``None`` when unknown (the host backend, no pynvml).
    """

    device: str
    backend: BackendName
    bytes_reserved: int
    peak_bytes_reserved: int
    bytes_in_use: int
    """The same as ``bytes_reserved``: the manager caches nothing."""
    live_buffers: int
    transfers_to_device: int
    bytes_to_device: int
    transfers_to_host: int
    bytes_to_host: int
    hooked_blocks: int
    """CuPy allocations made by other code in trio's thread that the memory hook saw and
    are still live (always 0 on the host backend)."""
    hooked_bytes: int
    pool_used_bytes: int | None
    pool_total_bytes: int | None
    device_used_bytes: int | None
    device_total_bytes: int | None
    actor: ActorStatistics


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class GpuBufferManager(Actor[GetStatistics, GpuStatistics]):
    """An actor that allocates, resizes and frees device buffers and accounts for them.

    ``gpu = GpuBufferManager("auto", max_reserved="8 GiB"); await system.spawn(gpu,
    name="gpu")``; then ``buf = await gpu.alloc((1024, 1024), np.float32)``, ``await
    gpu.resize(buf, (2048, 1024))``, ``gpu.free(buf)``, ``buf = await gpu.to_device(a)``
    and ``a = await gpu.to_host(buf)``. Like a :class:`BufferPool`, these are method calls
    in the caller's task on trio's thread; the actor's task answers :class:`GetStatistics` and
    cleans up when it stops.

    **Device.** ``"cpu"``: the host backend (NumPy). ``"cuda:N"``: CuPy on that device, or
    :class:`DeviceUnavailableError` at once (never a fallback). ``"auto"``: CuPy on
    ``cuda:0`` when it imports and a device is available, else the host backend;
    :attr:`backend_reason` says which and why. Copies run in trio's thread and block it
    while they last.

    **Reporting** (component: the manager's name; device: the buffer's; owner: ``owner=``,
    else the calling actor or task, :func:`current_owner`): ALLOC for a new buffer, RESIZE
    (old and new size) for a resize, FREE for a free, TRANSFER ``cpu -> device`` for
    :meth:`to_device` and ``device -> cpu`` for :meth:`to_host` (``cpu -> cpu`` on the host
    backend: the same copies, counted the same way). On the CuPy backend a CuPy memory
    hook, entered in trio's thread while the manager runs, also reports ALLOC/FREE for
    every CuPy pool allocation other code makes there, owned by the actor (or task) that
    made it. Allocations in worker threads are not seen; those still live when the manager
    stops stay live in the ledger, as the memory does.

    **Cancellation and stop.** ``alloc``, ``resize``, ``to_device`` and ``to_host`` are
    checkpoints that act only if not cancelled before; once they act the result is the
    caller's. ``free`` never awaits. When the manager stops it frees every live buffer
    (FREE each, so its books end at 0); later calls raise ``trio.ClosedResourceError``
    and freeing such a buffer raises :class:`DeviceBufferError`.
    """

    def __init__(self, device: str = "auto", *, max_reserved: int | str | None = None) -> None:
        backend, reason = select_backend(device)
        self.backend: Final[HostBackend | CupyBackend] = backend
        self.backend_reason: Final = reason
        """Which backend was chosen and why (``"auto: cupy is not installed; ..."``)."""
        self.device: Final = backend.device
        """``"cpu"`` or ``"cuda:N"``: where the buffers live."""
        self.max_reserved: Final = None if max_reserved is None else parse_size(max_reserved)
        self._state = _State.NEW
        self._reporter: MemoryReporter | None = None
        self._live: dict[int, DeviceBuffer] = {}
        self._reserved = self._peak = 0
        self._to_device = self._bytes_to_device = self._to_host = self._bytes_to_host = 0
        self._hook: Any = None
        self._own = False  # set while the manager allocates, so the hook skips it
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
        dims, kind = dims_of(shape), np.dtype(dtype)
        if kind.hasobject or kind.itemsize == 0:
            raise TypeError(f"dtype {kind!r} cannot make a device buffer")
        who = current_owner() if owner is None else owner
        await self._enter()
        array = self._make(lambda: self.backend.empty(dims, kind), nbytes_of(dims, kind))
        buffer = self._adopt(array, who)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    async def resize(
        self, buffer: DeviceBuffer, shape: SupportsIndex | Sequence[SupportsIndex]
    ) -> DeviceBuffer:
        """Reallocate ``buffer`` to ``shape`` (same dtype, same block), copying the
        overlap (:func:`~memactor.actors._gpu_backends.copy_overlap`); report RESIZE.
        Returns ``buffer``, whose ``array``, ``shape`` and ``nbytes`` are now the new ones.

        Raises what :meth:`alloc` raises, and :class:`DeviceBufferError` for a freed buffer or
        another manager's.
        """
        dims = dims_of(shape)
        self._check_mine(buffer, "resized")
        await self._enter()
        self._check_mine(buffer, "resized")
        old, new = buffer.nbytes, nbytes_of(dims, buffer.dtype)
        array = self._make(lambda: self.backend.empty(dims, buffer.dtype), new - old)
        self.backend.copy_overlap(array, buffer._array)
        buffer._array, buffer.shape, buffer.nbytes = array, dims, new
        self._count(new - old)
        assert self._reporter is not None
        self._reporter.resize(buffer.block, old, new, self.device)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    def free(self, buffer: DeviceBuffer) -> None:
        """Drop ``buffer`` (FREE); never awaits. Raises :class:`DeviceBufferError` if it was
        freed already (by hand or when the manager stopped) or is another manager's."""
        self._check_mine(buffer, "freed")
        del self._live[buffer.block]
        buffer._array = None
        self._count(-buffer.nbytes)
        assert self._reporter is not None
        self._reporter.free(buffer.block, buffer.nbytes, self.device)

    async def to_device(self, host: npt.ArrayLike, *, owner: str | None = None) -> DeviceBuffer:
        """A new buffer holding a copy of ``host`` (ALLOC, then TRANSFER cpu -> device).

        Raises what :meth:`alloc` raises.
        """
        source = np.asarray(host)
        if source.dtype.hasobject:
            raise TypeError(f"dtype {source.dtype!r} cannot make a device buffer")
        who = current_owner() if owner is None else owner
        await self._enter()
        array = self._make(lambda: self.backend.to_device(source), source.nbytes)
        buffer = self._adopt(array, who)
        self._to_device += 1
        self._bytes_to_device += buffer.nbytes
        assert self._reporter is not None
        self._reporter.transfer(buffer.nbytes, "cpu", self.device, buffer.block)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return buffer

    async def to_host(self, buffer: DeviceBuffer) -> npt.NDArray[Any]:
        """A NumPy copy of ``buffer`` (TRANSFER device -> cpu); the buffer stays live.

        Raises :class:`DeviceBufferError` for a freed buffer or another manager's, and
        ``trio.ClosedResourceError`` when the manager is not running.
        """
        self._check_mine(buffer, "copied to the host")
        await self._enter()
        self._check_mine(buffer, "copied to the host")
        result = self.backend.to_host(buffer._array)
        self._to_host += 1
        self._bytes_to_host += buffer.nbytes
        assert self._reporter is not None
        self._reporter.transfer(buffer.nbytes, self.device, "cpu", buffer.block)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return result

    # -- the actor -----------------------------------------------------------------------

    async def on_start(self) -> None:
        self._reporter = self.reporter
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
        for buffer in list(self._live.values()):
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
            hooked_blocks=len(self._hooked),
            hooked_bytes=sum(size for _, size in self._hooked.values()),
            pool_used_bytes=pool_used,
            pool_total_bytes=pool_total,
            device_used_bytes=device_used,
            device_total_bytes=device_total,
            actor=super().statistics(),
        )

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

    def _check_mine(self, buffer: DeviceBuffer, doing: str) -> None:
        if buffer._manager is not self:
            raise DeviceBufferError(f"{buffer!r} belongs to {buffer._manager!r}, not to {self!r}")
        if buffer._array is None:
            raise DeviceBufferError(f"{buffer!r} was {doing} after it was {buffer._freed_by}")

    def _make(self, make: Any, growth: int) -> Any:
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
        self._own = True
        try:
            return make()
        finally:
            self._own = False

    def _adopt(self, array: Any, owner: str) -> DeviceBuffer:
        assert self._reporter is not None
        buffer = DeviceBuffer(self, self._reporter.next_block(), array, owner)
        self._live[buffer.block] = buffer
        self._count(buffer.nbytes)
        self._reporter.alloc(buffer.block, buffer.nbytes, owner, self.device)
        return buffer

    def _count(self, delta: int) -> None:
        self._reserved += delta
        self._peak = max(self._peak, self._reserved)

    def _hook_alloc(self, device_id: int, ptr: int, size: int) -> None:
        # Called by CuPy inside the allocating code: it must never raise.
        if self._own or self._reporter is None or self._state is not _State.RUNNING:
            return
        try:
            try:
                owner = current_owner()
            except RuntimeError:  # not in a trio task (a callback of trio's own)
                owner = self.name
            block = self._reporter.next_block()
            self._reporter.alloc(block, size, owner, f"cuda:{device_id}")
            self._hooked[(device_id, ptr)] = (block, size)
        except Exception:
            pass

    def _hook_free(self, device_id: int, ptr: int) -> None:
        entry = self._hooked.pop((device_id, ptr), None)
        if entry is None or self._reporter is None:
            return
        with contextlib.suppress(Exception):
            self._reporter.free(entry[0], entry[1], f"cuda:{device_id}")
