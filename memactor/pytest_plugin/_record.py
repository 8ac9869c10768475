"""What one test's memory system leaves for the markers: the system and the snapshots taken.

Both fixtures (``memactor_system`` for trio tests, ``memactor_run`` for plain ones) open
the system through :func:`recorded_system`, which keeps the record on the test item, so
the markers judge either the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from ..actors import MemorySystem, Metrics, ProcessMemory, open_system, read_process_memory
from ..metrics import Snapshot


class _RecordingMetrics(Metrics):
    """The system's metrics client, keeping each snapshot the test takes (for warm-up).

    Each snapshot is a consistent cut: it holds every event emitted before it, so a
    warm-up baseline never misses a reporter's last batch.
    """

    def __init__(
        self, system: MemorySystem, taken: list[Snapshot], readings: list[ProcessMemory]
    ) -> None:
        super().__init__(system)
        self._taken = taken
        self._readings = readings

    async def snapshot(
        self, label: str = "", *, blocks: bool = True, timeout: float | None = None
    ) -> Snapshot:
        result = await super().snapshot(label, blocks=blocks, timeout=timeout)
        self._taken.append(result)
        self._readings.append(read_process_memory(devices=False))
        return result


@dataclass(slots=True)
class TestRecord:
    """One test's memory system, and the snapshots the test took through it."""

    __test__ = False  # a record, not a test class for pytest to collect

    system: MemorySystem
    taken: list[Snapshot] = field(default_factory=list)
    readings: list[ProcessMemory] = field(default_factory=list)
    """The process's memory at the start, then at each snapshot the test took."""


RECORD = pytest.StashKey[TestRecord]()
"""Where a test item keeps its record."""


@asynccontextmanager
async def recorded_system(item: pytest.Item) -> AsyncIterator[MemorySystem]:
    """Open a memory system for the test *item* and keep its record on the item.

    The system closes when the block is left (by an error or a cancellation too); its
    ledger is complete then, and the markers read it after the test's call.
    """
    async with open_system() as system:
        record = TestRecord(system, readings=[read_process_memory(devices=False)])
        system.metrics = _RecordingMetrics(system, record.taken, record.readings)
        item.stash[RECORD] = record
        yield system
