"""Sampling the process's own memory, so the ledger can tell what nobody reported.

:func:`read_process_memory` is a pure read of what the operating system says the process
holds now, returned as a frozen :class:`ProcessMemory`; :func:`note_process_memory` puts
one such reading into a ledger, where it meets the reported bytes (see
:class:`memactor.metrics.ProcessStats`). The metrics actor does both on every tick.

On Linux ``/proc/self/smaps_rollup`` gives RSS, PSS and USS exactly and cheaply (one
small read, no walk over the mappings); without it ``/proc/self/statm`` gives RSS, then
psutil if it is installed, then :mod:`resource` (whose figure is the peak RSS, the best
a bare system says). GPU figures come from :func:`process_device_memory`, which never
imports CuPy.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Final

from ..metrics import Ledger
from ._gpu_devices import process_device_memory

_READ_LIMIT: Final = 16_384
"""The most bytes read from a ``/proc`` file: smaps_rollup is about 1 KiB."""

_SMAPS_ROLLUP: Final = "/proc/self/smaps_rollup"
_STATM: Final = "/proc/self/statm"


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """What the process held when it was read; sizes in bytes, 0 where unknown."""

    rss_bytes: int
    uss_bytes: int = 0
    pss_bytes: int = 0
    source: str = ""
    """Where the host figures came from: ``"smaps_rollup"``, ``"statm"``, ``"psutil"``
    or ``"resource"``."""
    devices: tuple[tuple[str, int, int], ...] = ()
    """``(device, process bytes, CuPy pool bytes)`` per GPU this process uses."""

    @property
    def host_bytes(self) -> int:
        """The figure set against the ledger on ``"cpu"``: USS where known, else RSS.

        USS counts only the pages this process alone holds, so an allocation nobody
        reported adds to it and the shared libraries every process maps do not."""
        return self.uss_bytes or self.rss_bytes


def parse_smaps_rollup(text: str) -> tuple[int, int, int]:
    """``(rss, uss, pss)`` in bytes from the text of ``/proc/PID/smaps_rollup``.

    USS is ``Private_Clean + Private_Dirty``. Raises :class:`ValueError` when the text
    has no ``Rss:`` line.
    """
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) == 2 and fields[1] == "kB" and fields[0].isdigit():
            kib[name.strip()] = int(fields[0])
    if "Rss" not in kib:
        raise ValueError("no Rss line in smaps_rollup")
    uss = kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)
    return kib["Rss"] * 1024, uss * 1024, kib.get("Pss", 0) * 1024


def _read_small(path: str) -> str:
    """The first :data:`_READ_LIMIT` bytes of *path*, as text: a bounded read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, _READ_LIMIT).decode("ascii", "replace")
    finally:
        os.close(fd)


def _read_host() -> ProcessMemory:
    try:
        rss, uss, pss = parse_smaps_rollup(_read_small(_SMAPS_ROLLUP))
        return ProcessMemory(rss, uss, pss, "smaps_rollup")
    except (OSError, ValueError):
        pass
    try:
        resident_pages = int(_read_small(_STATM).split()[1])
        return ProcessMemory(resident_pages * os.sysconf("SC_PAGE_SIZE"), source="statm")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]  # optional, untyped

        info = psutil.Process().memory_info()
        return ProcessMemory(int(info.rss), source="psutil")
    except Exception:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and the BSDs, in bytes on macOS.
    return ProcessMemory(peak if sys.platform == "darwin" else peak * 1024, source="resource")


def read_process_memory(*, devices: bool = True) -> ProcessMemory:
    """Read what this process holds now: its host memory and, with *devices* and CuPy
    already imported by the program, its memory on each GPU it uses. Never raises for a
    figure the system does not give; it falls back as the module docstring says."""
    host = _read_host()
    if not devices:
        return host
    return ProcessMemory(
        host.rss_bytes, host.uss_bytes, host.pss_bytes, host.source, process_device_memory()
    )


def note_process_memory(ledger: Ledger, memory: ProcessMemory | None = None) -> ProcessMemory:
    """Put *memory* (default: read now) into *ledger*, per device, and return it."""
    if memory is None:
        memory = read_process_memory()
    ledger.note_process(
        "cpu",
        memory.host_bytes,
        rss_bytes=memory.rss_bytes,
        uss_bytes=memory.uss_bytes,
        pss_bytes=memory.pss_bytes,
    )
    for device, process_bytes, pool_bytes in memory.devices:
        ledger.note_process(device, process_bytes, pool_bytes=pool_bytes)
    return memory
