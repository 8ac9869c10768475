"""Backends for :class:`~memactor.actors.GpuBufferManager`: NumPy on the host, CuPy on a GPU.

A backend makes arrays on its device and copies between it and the host; it knows
nothing about accounting. CuPy (and nvidia-ml-py) are imported lazily, by
:class:`CupyBackend` and :func:`select_backend` only, never when this module is imported:
CuPy is an optional extra and useless without a driver. :func:`process_device_memory`
never imports CuPy: it reads the GPUs only of a program that already did.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .._errors import MemactorError
from ..events import check_device

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

    def to_device(self, host: npt.NDArray[Any]) -> Any:
        """A new array on the device holding a copy of ``host``."""

    def to_host(self, array: Any) -> npt.NDArray[Any]:
        """A new NumPy array holding a copy of ``array``."""

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

    ``to_device`` and ``to_host`` are plain copies; the manager still counts them as
    TRANSFER events (``cpu`` to ``cpu``), so code written for a GPU shows the same
    copies, with the same bytes, when it runs without one. It knows no memory pool or
    device totals: :meth:`memory_info` is all ``None``.
    """

    name: BackendName = "host"
    device = "cpu"

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        return np.empty(shape, dtype=dtype)

    def copy_overlap(self, dst: Any, src: Any) -> None:
        copy_overlap(dst, src)

    def to_device(self, host: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.array(host, copy=True, order="C")

    def to_host(self, array: Any) -> npt.NDArray[Any]:
        return np.array(array, copy=True)

    def memory_info(self) -> tuple[int | None, int | None, int | None, int | None]:
        return None, None, None, None

    def close(self) -> None:
        pass


Attribute = Callable[[int, int, int], None]
"""``alloc(device_id, ptr, size)``: what the CuPy hook calls for an allocation."""

_hook_names = itertools.count(1)


class CupyBackend:
    """CuPy arrays on ``cuda:{device_index}``, from CuPy's default memory pool.

    Imports ``cupy`` here (raising :class:`DeviceUnavailableError` if it is missing, no
    device is available or the index is out of range), and ``pynvml`` if it is installed,
    for the device's used and total bytes (``None`` without it). NVML numbers the devices
    as the driver does, which ``CUDA_VISIBLE_DEVICES`` may renumber for CUDA.

    :meth:`memory_hook` makes a ``cupy.cuda.memory_hook.MemoryHook`` that calls back on
    every allocation from and every free back to the memory pool
    (``malloc_postprocess``/``free_postprocess``: the pair that matches one array's
    memory; ``alloc_postprocess`` fires only when the pool itself grows). CuPy keeps
    hooks per thread: one entered with ``with hook:`` in trio's thread sees what every
    actor of the system allocates there, not what worker threads allocate.
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
        self._nvml: Any = None
        self._nvml_handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self._nvml = pynvml
        except Exception:  # not installed, or no driver: the numbers stay unknown
            self._nvml = None

    def _on(self) -> Any:
        return self._cupy.cuda.Device(self.index)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        with self._on():
            return self._cupy.empty(shape, dtype=dtype)

    def copy_overlap(self, dst: Any, src: Any) -> None:
        with self._on():
            copy_overlap(dst, src)

    def to_device(self, host: npt.NDArray[Any]) -> Any:
        with self._on():
            return self._cupy.array(host, copy=True, order="C")

    def to_host(self, array: Any) -> npt.NDArray[Any]:
        with self._on():
            result: npt.NDArray[Any] = self._cupy.asnumpy(array)
            return result

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


def process_device_memory() -> tuple[tuple[str, int, int], ...]:
    """``(device, process bytes, pool bytes)`` for the current CuPy device of a program
    that imported CuPy; empty otherwise (CuPy is never imported here).

    The process bytes are what NVML (nvidia-ml-py, if installed) says this process uses
    on the device, else CuPy's default pool total; the pool bytes are that total. Any
    failure of CuPy or NVML gives an empty answer: sampling never stops a program.
    """
    cupy: Any = sys.modules.get("cupy")
    if cupy is None:
        return ()
    try:
        index = int(cupy.cuda.runtime.getDevice())
        pool_bytes = int(cupy.get_default_memory_pool().total_bytes())
        bus_id = str(cupy.cuda.Device(index).pci_bus_id)
    except Exception:
        return ()
    used = _nvml_process_bytes(bus_id)
    return ((f"cuda:{index}", pool_bytes if used is None else used, pool_bytes),)


_nvml_started = False
"""Whether :func:`_nvml_process_bytes` initialized NVML (once; NVML counts inits, so
this never disturbs a :class:`CupyBackend`'s own)."""


def _nvml_process_bytes(bus_id: str) -> int | None:
    """This process's device memory on the GPU at PCI *bus_id*, per NVML; ``None`` when
    NVML is missing or does not say."""
    global _nvml_started
    try:
        import pynvml
    except ImportError:
        return None
    try:
        if not _nvml_started:
            pynvml.nvmlInit()
            _nvml_started = True
        handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())
        pid = os.getpid()
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
        return None
    except Exception:
        return None
