"""Which GPU is which: CUDA's devices matched to NVML's by PCI bus id (a pure function,
tested here with the shapes the real calls give), the process's memory per device read
through it (from stand-ins for CuPy and NVML, which cannot run without a GPU; the `gpu`
tests in test_gpu.py run the real ones), and per-device figures for several devices in
the ledger and the report."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import pytest

from memactor.actors import match_nvml_devices, note_process_memory, parse_pci_bus_id
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, render_snapshot, snapshot_report_json

# What cudaDeviceGetPCIBusId and NVML's busId say on a 4-GPU machine run with
# CUDA_VISIBLE_DEVICES=3,1: CUDA's 0 is NVML's 3, CUDA's 1 is NVML's 1. NVML gives an
# 8-digit domain (bytes from older pynvml), CUDA a 4-digit one.
CUDA = {0: "0000:BD:00.0", 1: "0000:3B:00.0"}
NVML: dict[int, str | bytes] = {
    0: b"00000000:18:00.0",
    1: "00000000:3B:00.0",
    2: "00000000:86:00.0",
    3: b"00000000:BD:00.0\x00",
}


def test_devices_are_matched_by_bus_id_not_by_index() -> None:
    assert match_nvml_devices(CUDA, NVML) == {0: 3, 1: 1}
    # Without CUDA_VISIBLE_DEVICES both number the same way.
    same = {0: "0000:18:00.0", 1: "0000:3B:00.0", 2: "0000:86:00.0", 3: "0000:BD:00.0"}
    assert match_nvml_devices(same, NVML) == {0: 0, 1: 1, 2: 2, 3: 3}


def test_a_cuda_device_nvml_does_not_list_has_no_match() -> None:
    assert match_nvml_devices({0: "0000:3B:00.0", 1: "0000:AF:00.0"}, NVML) == {0: 1}
    assert match_nvml_devices(CUDA, {}) == {}
    assert match_nvml_devices({}, NVML) == {}


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("0000:3B:00.0", (0, 0x3B, 0, 0)),
        ("00000000:3b:00.0", (0, 0x3B, 0, 0)),
        (b"00000001:AF:1f.7", (1, 0xAF, 0x1F, 7)),
        ("3b:00.0", (0, 0x3B, 0, 0)),
        (" 0000:3B:00.0\n", (0, 0x3B, 0, 0)),
    ],
)
def test_bus_ids_parse_however_they_are_written(
    text: str | bytes, numbers: tuple[int, ...]
) -> None:
    assert parse_pci_bus_id(text) == numbers


@pytest.mark.parametrize("text", ["", "GPU-1234", "0000:3B:00", "0000:3B:00.8", "x:3B:00.0"])
def test_a_bad_bus_id_is_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not a PCI bus id: .* \(expected DOMAIN:BUS"):
        parse_pci_bus_id(text)


def test_two_nvml_devices_with_one_bus_id_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^NVML devices 0 and 1 share the PCI bus id"):
        match_nvml_devices(CUDA, {0: "0000:3B:00.0", 1: "00000000:3b:00.0"})


def test_several_devices_keep_their_own_totals_in_the_ledger_and_report() -> None:
    ledger = Ledger(clock=lambda: 10)
    mib = 1 << 20
    ledger.apply(
        [
            MemoryEvent(EventKind.ALLOC, "gpu0", 1, 64 * mib, device="cuda:0", owner="a"),
            MemoryEvent(EventKind.ALLOC, "gpu1", 1, 32 * mib, device="cuda:1", owner="b"),
            MemoryEvent(EventKind.ALLOC, "gpu1", 2, 8 * mib, device="cuda:1", owner="b"),
            MemoryEvent(EventKind.ALLOC, "gpu0.pinned", 1, 16 * mib, owner="a"),
            MemoryEvent(EventKind.FREE, "gpu1", 2, 8 * mib, device="cuda:1"),
        ]
    )
    ledger.note_process("cuda:0", 70 * mib, pool_bytes=64 * mib)
    ledger.note_process("cuda:1", 40 * mib, pool_bytes=32 * mib)
    devices = {d.device: (d.bytes_reserved, d.peak_bytes_reserved) for d in ledger.devices()}
    assert devices == {
        "cpu": (16 * mib, 16 * mib),
        "cuda:0": (64 * mib, 64 * mib),
        "cuda:1": (32 * mib, 40 * mib),
    }
    unattributed = {p.device: p.unattributed_bytes for p in ledger.process()}
    assert unattributed == {"cuda:0": 6 * mib, "cuda:1": 8 * mib}
    snapshot = ledger.snapshot("two gpus")
    lines = [line.split() for line in render_snapshot(snapshot).splitlines()]
    assert ["cuda:0", "64", "MiB", "64", "MiB", "64", "MiB", "64", "MiB"] in lines
    assert ["cuda:1", "32", "MiB", "40", "MiB", "32", "MiB", "40", "MiB"] in lines
    assert [
        "gpu0.pinned",
        "cpu",
        "16",
        "MiB",
        "16",
        "MiB",
        "16",
        "MiB",
        "16",
        "MiB",
        "1",
        "1",
        "0",
        "0",
    ] in lines
    report = snapshot_report_json(snapshot)
    assert [d["device"] for d in report["devices"]] == ["cpu", "cuda:0", "cuda:1"]
    assert [p["unattributed_bytes"] for p in report["process"]] == [6 * mib, 8 * mib]


class StandInCupy:
    """What :func:`process_device_memory` reads of CuPy, on the machine of :data:`CUDA`
    and :data:`NVML` (CuPy does not run here: no GPU). Device 0 is current; the pool
    holds 64 MiB on device 0 and 32 MiB on device 1."""

    def __init__(self) -> None:
        self.current = 0
        self.pool_bytes = {0: 64 << 20, 1: 32 << 20}
        stand_in = self

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            def __enter__(self) -> None:
                self.before, stand_in.current = stand_in.current, self.index

            def __exit__(self, *exc: object) -> None:
                stand_in.current = self.before

        class Runtime:
            @staticmethod
            def getDevice() -> int:  # CuPy's name
                return stand_in.current

            @staticmethod
            def getDeviceCount() -> int:
                return len(CUDA)

            @staticmethod
            def deviceGetPCIBusId(index: int) -> str:
                return CUDA[index]

        class Pool:
            @staticmethod
            def total_bytes() -> int:
                return stand_in.pool_bytes[stand_in.current]

        self.cuda = types.SimpleNamespace(runtime=Runtime, Device=Device)
        self.get_default_memory_pool = Pool


class StandInNvml(types.ModuleType):
    """What it reads of NVML: this process holds 70 MiB on NVML's device 3 (CUDA's 0)
    and 40 MiB on NVML's 1 (CUDA's 1); another process uses NVML's 0."""

    def __init__(self) -> None:
        super().__init__("pynvml")
        me = os.getpid()
        self.processes = {
            0: [types.SimpleNamespace(pid=me + 1, usedGpuMemory=999)],
            1: [types.SimpleNamespace(pid=me, usedGpuMemory=40 << 20)],
            3: [types.SimpleNamespace(pid=me, usedGpuMemory=70 << 20)],
        }

    def nvmlInit(self) -> None:  # NVML's names
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(NVML)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetPciInfo(self, handle: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(busId=NVML[handle])

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return self.processes.get(handle, [])


def test_process_memory_per_device_follows_the_bus_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from memactor.actors import _gpu_devices

    monkeypatch.setitem(sys.modules, "cupy", StandInCupy())
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml())
    monkeypatch.setattr(_gpu_devices, "_handles", None)
    monkeypatch.setattr(_gpu_devices, "_nvml_started", False)
    assert _gpu_devices.process_device_memory() == (
        ("cuda:0", 70 << 20, 64 << 20),  # NVML's device 3, not its device 0
        ("cuda:1", 40 << 20, 32 << 20),
    )
    ledger = Ledger(clock=lambda: 1)
    ledger.apply([MemoryEvent(EventKind.ALLOC, "gpu", 1, 64 << 20, device="cuda:0")])
    note_process_memory(ledger)
    outside = {p.device: p.unattributed_bytes for p in ledger.process() if p.device != "cpu"}
    assert outside == {"cuda:0": 6 << 20, "cuda:1": 40 << 20}


def test_without_nvml_the_current_device_reads_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    from memactor.actors import _gpu_devices

    monkeypatch.setitem(sys.modules, "cupy", StandInCupy())
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    monkeypatch.setattr(_gpu_devices, "_handles", None)
    monkeypatch.setattr(_gpu_devices, "_nvml_started", False)
    assert _gpu_devices.process_device_memory() == (("cuda:0", 64 << 20, 64 << 20),)
