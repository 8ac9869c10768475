"""What a :class:`~memactor.actors.GpuBufferManager` hands out and answers: its buffers,
its statistics and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from .._errors import MemactorError
from ..runtime import ActorStatistics
from ._gpu_backends import BackendName

if TYPE_CHECKING:
    from ._gpu import GpuBufferManager


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

    ``array`` is a NumPy array (host backend, or a pinned buffer) or a CuPy array (CuPy
    backend); after the buffer is freed it raises :class:`DeviceBufferError`. ``block``
    is its id in the ledger (in the manager's component, or in ``NAME.pinned`` for a
    pinned buffer). ``pinned``: a page-locked host buffer from
    :meth:`GpuBufferManager.alloc_pinned`, on device ``"cpu"``.
    """

    __slots__ = (
        "_array",
        "_freed_by",
        "_held",
        "_manager",
        "block",
        "device",
        "dtype",
        "nbytes",
        "owner",
        "pinned",
        "shape",
    )

    def __init__(
        self,
        manager: GpuBufferManager,
        block: int,
        array: Any,
        owner: str,
        *,
        pinned: bool = False,
        held: int | None = None,
    ) -> None:
        self._manager = manager
        self._array: Any = array
        self._freed_by = "freed"
        self.block: Final = block
        self.pinned: Final = pinned
        self.device: Final[str] = "cpu" if pinned else manager.device
        self.owner: Final = owner
        self.dtype: np.dtype[Any] = array.dtype
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.nbytes: int = int(array.nbytes)
        self._held = self.nbytes if held is None else held  # the bytes reported

    def __repr__(self) -> str:
        state = "freed" if self._array is None else "live"
        where = f"{'pinned ' if self.pinned else ''}block {self.block} on {self.device}"
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
    """CuPy allocations made by other code in trio's thread, or in the manager's copy
    threads, that the memory hook saw and are still live (always 0 on the host
    backend)."""
    hooked_bytes: int
    to_device_ns: int
    """The time the copies to the device took, added up (bytes_to_device over it is the
    bandwidth; the ledger has the same figures per route)."""
    to_host_ns: int
    copies_in_flight: int
    """Copies running now in worker threads (at most ``max_copies``)."""
    copies_waiting: int
    """Copies waiting for one of those to end before they start."""
    pinned_buffers: int
    """Live page-locked host buffers (:meth:`GpuBufferManager.alloc_pinned`)."""
    pinned_bytes: int
    """The bytes they hold (CuPy's pinned pool rounds each up to 512 bytes)."""
    pool_used_bytes: int | None
    pool_total_bytes: int | None
    device_used_bytes: int | None
    device_total_bytes: int | None
    actor: ActorStatistics
