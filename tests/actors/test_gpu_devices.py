"""Which GPU is which: CUDA's devices matched to NVML's by PCI bus id (a pure function,
tested here with the shapes the real calls give), and per-device figures for several
devices in the ledger and the report."""

from __future__ import annotations

import pytest

from memactor.actors import match_nvml_devices, parse_pci_bus_id
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
