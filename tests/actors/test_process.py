"""Sampling the process's own memory: the unattributed remainder beside the ledger."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import trio

import memactor
from memactor.actors import (
    ProcessMemory,
    note_process_memory,
    parse_smaps_rollup,
    read_process_memory,
)
from memactor.actors._gpu_devices import process_device_memory
from memactor.metrics import Ledger

ROLLUP = """\
55d0c1a2b000-7ffd5d1f0000 ---p 00000000 00:00 0                          [rollup]
Rss:               43288 kB
Pss:               33830 kB
Pss_Anon:          24108 kB
Shared_Clean:      17676 kB
Shared_Dirty:          0 kB
Private_Clean:      1240 kB
Private_Dirty:     24372 kB
Swap:                  0 kB
"""


def test_smaps_rollup_gives_rss_uss_and_pss_in_bytes() -> None:
    rss, uss, pss = parse_smaps_rollup(ROLLUP)
    assert (rss, uss, pss) == (43288 * 1024, (1240 + 24372) * 1024, 33830 * 1024)
    with pytest.raises(ValueError, match=r"^no Rss line"):
        parse_smaps_rollup("Pss: 1 kB\n")


def test_the_host_figure_is_uss_where_known_else_rss() -> None:
    assert ProcessMemory(rss_bytes=100, uss_bytes=60).host_bytes == 60
    assert ProcessMemory(rss_bytes=100).host_bytes == 100


def test_an_allocation_outside_memactor_shows_as_unattributed() -> None:
    ledger = Ledger()
    before = note_process_memory(ledger)
    first = ledger.process()[0]
    assert first.device == "cpu"
    assert first.bytes_reserved == 0
    assert first.unattributed_bytes == first.process_bytes == before.host_bytes > 0
    # Above glibc's largest mmap threshold (32 MiB): fresh pages, not reused heap ones.
    allocated = 64 * 2**20
    held = np.ones(allocated // 8)  # np.ones touches every page
    note_process_memory(ledger)
    after = ledger.process()[0]
    grown = after.unattributed_bytes - first.unattributed_bytes
    assert grown >= 0.9 * allocated
    assert held.sum() == allocated // 8
    # Reporting the array moves its bytes from unattributed to reserved.
    ledger.apply([memactor.MemoryEvent(memactor.EventKind.ALLOC, "arrays", 1, allocated)])
    note_process_memory(ledger)
    reported = ledger.process()[0]
    assert reported.bytes_reserved == allocated
    assert reported.unattributed_bytes < after.unattributed_bytes - 0.9 * allocated
    series = ledger.snapshot().process_series
    assert [(s.component, s.device, len(s.series)) for s in series] == [("(process)", "cpu", 3)]


def test_reading_never_imports_cupy() -> None:
    had_cupy = "cupy" in sys.modules
    memory = read_process_memory()
    if not had_cupy:
        assert process_device_memory() == ()
        assert memory.devices == ()
        assert "cupy" not in sys.modules
    assert memory.source in ("smaps_rollup", "statm", "psutil", "resource")


def test_note_process_refuses_bad_figures() -> None:
    ledger = Ledger()
    with pytest.raises(ValueError, match=r"^device must be"):
        ledger.note_process("tpu", 1)
    with pytest.raises(ValueError, match=r"^process memory figures must not be negative"):
        ledger.note_process("cpu", -1)


async def test_the_metrics_actor_samples_the_process_on_its_tick() -> None:
    async with memactor.open_system(sample_hz=50) as system:
        await trio.sleep(0.1)
        snapshot = await system.metrics.snapshot(blocks=False)
    (cpu,) = snapshot.process
    assert cpu.device == "cpu"
    assert cpu.process_bytes > 0
    assert cpu.rss_bytes > 0
    assert [s.component for s in snapshot.process_series] == ["(process)"]
