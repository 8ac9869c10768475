"""Which GPU is which: CUDA's devices matched to NVML's by PCI bus id, and what this
process holds on each.

CUDA numbers the devices a process may see (``CUDA_VISIBLE_DEVICES`` picks and orders
them; by default fastest first), NVML numbers every device of the machine (by PCI bus
order). The same index can so name two different GPUs, and an NVML figure shown beside
``cuda:1`` may belong to another GPU. A GPU's PCI bus id is the one name both agree on:
:func:`match_nvml_devices` pairs them by it, as a pure function over the two tables that
the CuPy and NVML calls of :func:`cuda_bus_ids` and :func:`nvml_bus_ids` produce.

CuPy and NVML (nvidia-ml-py) are never imported here: :func:`process_device_memory`
reads the GPUs only of a program that already imported CuPy.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

PciBusId = tuple[int, int, int, int]
"""``(domain, bus, device, function)``, the numbers a PCI bus id's text spells."""

_BUS_ID = re.compile(
    r"(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<device>[0-9a-fA-F]{1,2})\.(?P<function>[0-7])"
)


def parse_pci_bus_id(text: str | bytes) -> PciBusId:
    """The numbers of a PCI bus id, whichever way it is written.

    CUDA writes ``"0000:3B:00.0"`` (a 4-digit domain), NVML ``"00000000:3B:00.0"`` (8
    digits; older pynvml versions give bytes), ``lspci`` ``"3b:00.0"`` (no domain: 0);
    case does not matter. Raises ``ValueError`` naming the text for anything else.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    found = _BUS_ID.fullmatch(raw.strip().rstrip("\x00"))
    if found is None:
        raise ValueError(f"not a PCI bus id: {text!r} (expected DOMAIN:BUS:DEVICE.FUNCTION)")
    domain = found.group("domain")
    return (
        int(domain, 16) if domain else 0,
        int(found.group("bus"), 16),
        int(found.group("device"), 16),
        int(found.group("function")),
    )


def match_nvml_devices(
    cuda: Mapping[int, str | bytes], nvml: Mapping[int, str | bytes]
) -> dict[int, int]:
    """``{cuda index: nvml index}`` for every CUDA device whose PCI bus id NVML knows.

    *cuda* maps each CUDA device index to its bus id (``cudaDeviceGetPCIBusId``), *nvml*
    each NVML device index to its own (``nvmlDeviceGetPciInfo(handle).busId``). A CUDA
    device NVML does not list is left out (its NVML figures are then unknown, never
    another GPU's). Raises ``ValueError`` for a bus id that does not parse, or one that
    two NVML devices share (the tables are then not of one machine).
    """
    by_bus: dict[PciBusId, int] = {}
    for index, text in nvml.items():
        bus = parse_pci_bus_id(text)
        if bus in by_bus:
            raise ValueError(
                f"NVML devices {by_bus[bus]} and {index} share the PCI bus id {text!r}"
            )
        by_bus[bus] = index
    matched: dict[int, int] = {}
    for index, text in cuda.items():
        found = by_bus.get(parse_pci_bus_id(text))
        if found is not None:
            matched[index] = found
    return matched


def cuda_bus_ids(cupy: Any) -> dict[int, str]:
    """``{cuda index: PCI bus id}`` for every device CUDA sees (needs a GPU)."""
    count = int(cupy.cuda.runtime.getDeviceCount())
    return {index: str(cupy.cuda.runtime.deviceGetPCIBusId(index)) for index in range(count)}


def nvml_bus_ids(pynvml: Any) -> dict[int, str | bytes]:
    """``{nvml index: PCI bus id}`` for every device NVML sees (needs a GPU and an
    initialized NVML)."""
    found: dict[int, str | bytes] = {}
    for index in range(int(pynvml.nvmlDeviceGetCount())):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        found[index] = pynvml.nvmlDeviceGetPciInfo(handle).busId
    return found


_handles: dict[int, Any] | None = None
"""NVML's handle of each CUDA device, matched once by :func:`process_device_memory`."""

_nvml_started = False
"""Whether this module initialized NVML (once; NVML counts inits, so this never
disturbs a :class:`CupyBackend`'s own)."""


def _nvml() -> Any:
    """pynvml, initialized; ``None`` when it is missing or NVML does not start."""
    global _nvml_started
    try:
        import pynvml
    except ImportError:
        return None
    try:
        if not _nvml_started:
            pynvml.nvmlInit()
            _nvml_started = True
    except Exception:
        return None
    return pynvml


def _nvml_process_bytes(pynvml: Any, handle: Any) -> int | None:
    """This process's memory on the GPU of *handle*, per NVML; ``None`` when NVML does
    not say (no context there, or a driver that hides per-process figures)."""
    pid = os.getpid()
    for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if proc.pid == pid and proc.usedGpuMemory is not None:
            return int(proc.usedGpuMemory)
    return None


def process_device_memory() -> tuple[tuple[str, int, int], ...]:
    """``(device, process bytes, pool bytes)`` for each GPU this process uses, in CUDA's
    numbering, of a program that imported CuPy; empty otherwise (CuPy is never imported
    here).

    A device is used when NVML lists this process on it (matched by PCI bus id, see
    :func:`match_nvml_devices`) or it is CuPy's current device. The process bytes are
    NVML's per-process figure, else CuPy's default pool total on that device; the pool
    bytes are that total, read only on devices where the process already has a context
    (reading it elsewhere would make one). Any failure of CuPy or NVML gives what was
    read so far: sampling never stops a program.
    """
    global _handles
    cupy: Any = sys.modules.get("cupy")
    if cupy is None:
        return ()
    try:
        current = int(cupy.cuda.runtime.getDevice())
    except Exception:
        return ()
    used: dict[int, int] = {}
    pynvml = _nvml()
    if pynvml is not None:
        try:
            if _handles is None:  # which GPU is which does not change while a process runs
                matched = match_nvml_devices(cuda_bus_ids(cupy), nvml_bus_ids(pynvml))
                _handles = {c: pynvml.nvmlDeviceGetHandleByIndex(n) for c, n in matched.items()}
            for cuda_index, handle in _handles.items():
                figure = _nvml_process_bytes(pynvml, handle)
                if figure is not None:
                    used[cuda_index] = figure
        except Exception:
            pass
    found = []
    pool = cupy.get_default_memory_pool()
    for index in sorted({current, *used}):
        try:
            with cupy.cuda.Device(index):  # the default pool answers for the current device
                pool_bytes = int(pool.total_bytes())
        except Exception:
            continue
        found.append((f"cuda:{index}", used.get(index, pool_bytes), pool_bytes))
    return tuple(found)
