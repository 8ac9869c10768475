"""Backends for :class:`~memactor.actors.GpuBufferManager`: NumPy on the host, CuPy on a GPU.

A backend makes arrays on its device and copies between it and the host; it knows
nothing about accounting. A copy (:meth:`GpuBackend.upload`, :meth:`GpuBackend.download`)
runs in chunks of ``chunk_bytes`` and checks its ``abort`` flag between them, so that a
cancelled copy in a worker thread stops within a chunk (see :mod:`._offload`). CuPy (and
nvidia-ml-py) are imported lazily, by :class:`CupyBackend` and :func:`select_backend`
only, never when this module is imported: CuPy is an optional extra and useless without
a driver.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .._errors import MemactorError
from ..events import check_device
from ._gpu_devices import cuda_bus_ids, match_nvml_devices, nvml_bus_ids
from ._offload import CopyAborted

DEFAULT_CHUNK_BYTES: Final = 64 << 20
"""How much one step of a copy moves (64 MiB) before it checks whether to stop: a
cancelled copy stops within a chunk, and a chunk is large enough that the checks cost
nothing a copy engine would notice."""

BackendName = Literal["host", "cupy"]


class DeviceUnavailableError(MemactorError):
    """The device asked for cannot be used here: CuPy is missing, no CUDA device is
    available, or the device index is out of range. The message says which."""


class GpuBackend(Protocol):
    """What :class:`GpuBufferManager` needs from a device. Every method is synchronous."""

    name: BackendName
    """``"host"`` or ``"cupy"``."""
    device: str
    """The device the arrays live on: ``"cpu"`` or ``"cuda:N"``."""

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A new uninitialised array on the device."""

    def copy_overlap(self, dst: Any, src: Any) -> None:
        """Copy what ``src`` and ``dst`` have in common into ``dst`` (see :meth:`resize`)."""

    def empty_for_copy(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A new uninitialised array on the device for an upload to fill (called in the
        copy's thread)."""

    def empty_pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[Any, int]:
        """A new uninitialised host array in page-locked memory, and the bytes the
        allocation holds (the pool's rounded size; ``nbytes`` on the host backend)."""

    def ready(self) -> Any:
        """A marker of the work queued so far on the caller's current stream, taken in
        trio's thread before a copy (a CUDA event; ``None`` on the host backend): the
        copy waits for it, so it sees what the caller wrote and never overwrites memory
        the caller's queued work still reads."""

    def upload(
        self, dst: Any, src: npt.NDArray[Any], ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        """Copy the C-contiguous host array *src* into the device array *dst* (same
        bytes), *chunk* bytes at a time; blocks until it is done. Raises
        :class:`CopyAborted` when *abort* is set between chunks."""

    def download(
        self, dst: npt.NDArray[Any], src: Any, ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        """Copy the device array *src* into the C-contiguous host array *dst*, as
        :meth:`upload` does the other way."""

    def thread_hook(self, hook: Any) -> contextlib.AbstractContextManager[Any]:
        """A context that enters *hook* (made by ``memory_hook``, or ``None``) in the
        calling thread, for a worker thread's allocations to be seen."""

    def memory_info(self) -> tuple[int | None, int | None, int | None, int | None]:
        """``(pool_used, pool_total, device_used, device_total)`` in bytes, ``None`` when
        unknown."""

    def close(self) -> None:
        """Release what the backend holds (hooks, NVML); idempotent."""


def copy_overlap(dst: Any, src: Any) -> None:
    """Copy the common part of two arrays (NumPy or CuPy) into ``dst``.

    With the same number of dimensions, the common part is the leading corner
    ``[:min(a0, b0), :min(a1, b1), ...]`` (growing an image keeps its pixels where they
    were); otherwise it is the first ``min(src.size, dst.size)`` elements in C order.
    """
    if dst.ndim == src.ndim:
        corner = tuple(slice(0, min(a, b)) for a, b in zip(dst.shape, src.shape, strict=True))
        dst[corner] = src[corner]
    else:
        n = min(dst.size, src.size)
        dst.reshape(-1)[:n] = src.reshape(-1)[:n]


class HostBackend:
    """NumPy arrays in host memory, device ``"cpu"``.

    Uploads and downloads are plain chunked copies (``numpy.copyto``, which releases the
    GIL); the manager still runs the large ones in a worker thread and counts them as
    TRANSFER events (``cpu`` to ``cpu``) with their durations, so code written for a GPU
    shows the same copies, with the same bytes and the same behaviour under
    cancellation, when it runs without one. "Pinned" buffers are ordinary allocations.
    It knows no memory pool or device totals: :meth:`memory_info` is all ``None``.
    """

    name: BackendName = "host"
    device = "cpu"

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        return np.empty(shape, dtype=dtype)

    def copy_overlap(self, dst: Any, src: Any) -> None:
        copy_overlap(dst, src)

    def empty_for_copy(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        return np.empty(shape, dtype=dtype)

    def empty_pinned(
        self, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[npt.NDArray[Any], int]:
        array = np.empty(shape, dtype=dtype)  # host memory has nothing to pin it for
        return array, int(array.nbytes)

    def ready(self) -> None:
        return None

    def upload(
        self, dst: Any, src: npt.NDArray[Any], ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        _copy_bytes(as_bytes(dst), as_bytes(src), abort, chunk)

    def download(
        self, dst: npt.NDArray[Any], src: Any, ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        _copy_bytes(as_bytes(dst), as_bytes(src), abort, chunk)

    def thread_hook(self, hook: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def memory_info(self) -> tuple[int | None, int | None, int | None, int | None]:
        return None, None, None, None

    def close(self) -> None:
        pass


def as_bytes(array: Any) -> Any:
    """The bytes of a C-contiguous NumPy or CuPy array, as a flat ``uint8`` view."""
    return array.reshape(-1).view(np.uint8)


def chunks(nbytes: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each step of a copy of *nbytes*, *chunk* bytes at most."""
    for start in range(0, nbytes, chunk):
        yield start, min(start + chunk, nbytes)


def _copy_bytes(dst: Any, src: Any, abort: threading.Event, chunk: int) -> None:
    for start, stop in chunks(len(src), chunk):
        if abort.is_set():
            raise CopyAborted
        np.copyto(dst[start:stop], src[start:stop])


Attribute = Callable[[int, int, int], None]
"""``alloc(device_id, ptr, size)``: what the CuPy hook calls for an allocation."""

_hook_names = itertools.count(1)


class CupyBackend:
    """CuPy arrays on ``cuda:{device_index}``, from CuPy's default memory pool.

    Imports ``cupy`` here (raising :class:`DeviceUnavailableError` if it is missing, no
    device is available or the index is out of range), and ``pynvml`` if it is installed,
    for the device's used and total bytes (``None`` without it). NVML numbers the devices
    as the driver does, which ``CUDA_VISIBLE_DEVICES`` may renumber for CUDA, so the
    NVML device is the one with this device's PCI bus id (see
    :func:`~memactor.actors.match_nvml_devices`), never the one with its index.

    **Copies** run on two streams of the backend's own, one per direction (made on first
    use; non-blocking, so they overlap with kernels on the default stream): an upload
    and a download overlap on the GPU's two copy engines, and copies in one direction
    queue on one stream, as they would on the one link they share anyway (a stream per
    owner would add streams, not bandwidth). A copy first waits for :meth:`ready`'s
    event (the caller's stream), then queues its chunks with an event after each and
    waits for them in the worker thread, at most two chunks ahead, so an abort waits
    for two chunks at most. Buffers for a copy are allocated with the copy's stream
    current, so CuPy's pool orders their reuse on that stream.

    **Pinned memory** comes from CuPy's default pinned memory pool
    (``cupy.cuda.alloc_pinned_memory``); a buffer goes back to the pool when its array
    is garbage.

    :meth:`memory_hook` makes a ``cupy.cuda.memory_hook.MemoryHook`` that calls back on
    every allocation from and every free back to the memory pool
    (``malloc_postprocess``/``free_postprocess``: the pair that matches one array's
    memory; ``alloc_postprocess`` fires only when the pool itself grows). CuPy keeps
    hooks per thread: one entered with ``with hook:`` in trio's thread sees what every
    actor of the system allocates there, not what other threads allocate (the manager
    enters it in its copy threads too, see :meth:`thread_hook`).
    """

    name: BackendName = "cupy"

    def __init__(self, device_index: int = 0) -> None:
        self.device = check_device(f"cuda:{device_index}")
        self.index: Final = device_index
        cupy = _import_cupy(self.device)
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= device_index < count:
            raise DeviceUnavailableError(
                f"device {self.device!r} does not exist: CUDA sees {count} device(s)"
            )
        self._cupy = cupy
        self._pool = cupy.get_default_memory_pool()
        self._streams: dict[str, Any] = {}
        self._streams_lock = threading.Lock()
        self._nvml: Any = None
        self._nvml_handle: Any = None
        self.nvml_index: int | None = None
        """The NVML index of this device (matched by PCI bus id); ``None`` without NVML."""
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # not installed, or no driver: the numbers stay unknown
            return
        try:
            matched = match_nvml_devices(cuda_bus_ids(cupy), nvml_bus_ids(pynvml))
            self.nvml_index = matched.get(device_index)
            if self.nvml_index is not None:
                self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(self.nvml_index)
        except Exception:
            self.nvml_index = None
        if self._nvml_handle is None:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()
            return
        self._nvml = pynvml

    def _on(self) -> Any:
        return self._cupy.cuda.Device(self.index)

    def stream(self, direction: Literal["up", "down"]) -> Any:
        """The stream copies in *direction* run on (made on first use, in any thread)."""
        with self._streams_lock:
            found = self._streams.get(direction)
            if found is None:
                with self._on():
                    found = self._streams[direction] = self._cupy.cuda.Stream(non_blocking=True)
            return found

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        with self._on():
            return self._cupy.empty(shape, dtype=dtype)

    def copy_overlap(self, dst: Any, src: Any) -> None:
        with self._on():
            copy_overlap(dst, src)

    def empty_for_copy(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """:meth:`empty`, with the upload stream current: CuPy's pool then orders the
        block's reuse on the stream the copy writes it on."""
        with self._on(), self.stream("up"):
            return self._cupy.empty(shape, dtype=dtype)

    def empty_pinned(
        self, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[npt.NDArray[Any], int]:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes == 0:
            return np.empty(shape, dtype=dtype), 0
        memory = self._cupy.cuda.alloc_pinned_memory(nbytes)
        # The pool rounds sizes up (to 512 bytes): what it holds is the block's size.
        held = int(getattr(getattr(memory, "mem", None), "size", nbytes))
        flat = np.frombuffer(memory, dtype=np.uint8, count=nbytes)
        return flat.view(dtype).reshape(shape), held

    def ready(self) -> Any:
        with self._on():
            event = self._cupy.cuda.Event(disable_timing=True)
            event.record(self._cupy.cuda.get_current_stream())
            return event

    def upload(
        self, dst: Any, src: npt.NDArray[Any], ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        kind = self._cupy.cuda.runtime.memcpyHostToDevice
        self._copy(dst.data.ptr, src.ctypes.data, int(src.nbytes), kind, "up", ready, abort, chunk)

    def download(
        self, dst: npt.NDArray[Any], src: Any, ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        if not src.flags.c_contiguous:
            with self._on(), self.stream("down"):
                src = self._cupy.ascontiguousarray(src)
        kind = self._cupy.cuda.runtime.memcpyDeviceToHost
        self._copy(
            dst.ctypes.data, src.data.ptr, int(dst.nbytes), kind, "down", ready, abort, chunk
        )

    def _copy(
        self,
        dst: int,
        src: int,
        nbytes: int,
        kind: int,
        direction: Literal["up", "down"],
        ready: Any,
        abort: threading.Event,
        chunk: int,
    ) -> None:
        cuda = self._cupy.cuda
        stream = self.stream(direction)
        queued: deque[Any] = deque()
        with self._on():
            if ready is not None:
                stream.wait_event(ready)
            try:
                for start, stop in chunks(nbytes, chunk):
                    if abort.is_set():
                        break
                    cuda.runtime.memcpyAsync(
                        dst + start, src + start, stop - start, kind, stream.ptr
                    )
                    done = cuda.Event(disable_timing=True)
                    done.record(stream)
                    queued.append(done)
                    if len(queued) >= 2:
                        queued.popleft().synchronize()  # waits without the GIL
            finally:
                # Never leave a queued chunk writing into memory that may be freed.
                while queued:
                    queued.popleft().synchronize()
        if abort.is_set():
            raise CopyAborted

    def thread_hook(self, hook: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if hook is None else hook

    def memory_info(self) -> tuple[int | None, int | None, int | None, int | None]:
        with self._on():  # the default pool answers for the current device
            pool_used, pool_total = int(self._pool.used_bytes()), int(self._pool.total_bytes())
        device_used = device_total = None
        if self._nvml is not None:
            try:
                info = self._nvml.nvmlDeviceGetMemoryInfo(self._nvml_handle)
                device_used, device_total = int(info.used), int(info.total)
            except Exception:
                pass
        return pool_used, pool_total, device_used, device_total

    def memory_hook(self, alloc: Attribute, free: Callable[[int, int], None]) -> Any:
        """A CuPy memory hook calling ``alloc(device_id, ptr, size)`` after each pool
        allocation and ``free(device_id, ptr)`` after each free; enter it with ``with``.
        The callbacks must not raise (CuPy would raise it in the allocating code)."""
        base = self._cupy.cuda.memory_hook.MemoryHook

        class _Hook(base):  # type: ignore[misc, valid-type]  # cupy is untyped
            name = f"memactor-{next(_hook_names)}"  # hooks are keyed by name per thread

            def malloc_postprocess(self, **kwargs: Any) -> None:
                if kwargs.get("mem_ptr"):  # 0 when the allocation failed
                    alloc(kwargs["device_id"], kwargs["mem_ptr"], kwargs["mem_size"])

            def free_postprocess(self, **kwargs: Any) -> None:
                free(kwargs["device_id"], kwargs["mem_ptr"])

        return _Hook()

    def close(self) -> None:
        nvml, self._nvml = self._nvml, None
        if nvml is not None:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()


def _import_cupy(device: str) -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"device {device!r} needs CuPy, which is not installed "
            f"(install memactor[cuda12] or memactor[cuda13]): {exc}"
        ) from exc
    if not cupy.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {device!r}: CuPy is installed but no CUDA device is available "
            "(cupy.cuda.is_available() is False)"
        )
    return cupy


def select_backend(device: str) -> tuple[HostBackend | CupyBackend, str]:
    """The backend for ``device`` (``"auto"``, ``"cpu"`` or ``"cuda:N"``) and why.

    ``"auto"`` picks CuPy on ``cuda:0`` when it imports and a device is available, else
    the host backend, and the reason says which and why. ``"cuda:N"`` never falls back.

    Raises:
      DeviceUnavailableError: ``"cuda:N"`` cannot be used (see :class:`CupyBackend`).
      ValueError: ``device`` is none of those.
    """
    if device == "auto":
        try:
            _import_cupy("cuda:0")
        except DeviceUnavailableError as exc:
            cause = exc.__cause__
            why = (
                "cupy is not installed"
                if cause is not None
                else "cupy is installed but no CUDA device is available"
            )
            return HostBackend(), f"auto: {why}; using the host backend (device 'cpu')"
        return CupyBackend(0), "auto: cupy found a CUDA device; using the cupy backend on cuda:0"
    check_device(device)
    if device == "cpu":
        return HostBackend(), "device 'cpu' asked for: using the host backend"
    return CupyBackend(int(device.split(":")[1])), f"device {device!r} asked for: using cupy"
