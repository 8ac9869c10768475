"""Timed copies: the duration a TRANSFER carries adds up per route beside its bytes, and
reaches snapshots (both formats), the report and its JSON; older files load without."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memactor.events import DURATION_TAG, EventKind, MemoryEvent, duration_of
from memactor.metrics import (
    Ledger,
    Snapshot,
    TransferTiming,
    render_snapshot,
    snapshot_report_json,
)

MIB = 2**20


def copy(src: str, dst: str, size: int, duration_ns: int | None, *, block: int = 0) -> MemoryEvent:
    tags = {} if duration_ns is None else {DURATION_TAG: str(duration_ns)}
    return MemoryEvent(
        EventKind.TRANSFER, "gpu", block, size, device=src, dst_device=dst, tags=tags
    )


def copies() -> Ledger:
    """Two timed uploads, one untimed, and one timed download; deterministic."""
    ledger = Ledger(clock=lambda: 5)
    ledger.apply(
        [
            copy("cpu", "cuda:0", 64 * MIB, 8_000_000),  # 64 MiB in 8 ms
            copy("cpu", "cuda:0", 64 * MIB, 8_000_000),
            copy("cpu", "cuda:0", MIB, None),  # reported by hand, without a duration
            copy("cuda:0", "cpu", 32 * MIB, 16_000_000),  # 32 MiB in 16 ms
        ]
    )
    return ledger


def test_durations_add_up_per_route_beside_the_timed_bytes() -> None:
    ledger = copies()
    assert ledger.transfers() == (
        ("cpu", "cuda:0", 3, 129 * MIB),
        ("cuda:0", "cpu", 1, 32 * MIB),
    )
    up, down = ledger.transfer_timings()
    assert up == TransferTiming("cpu", "cuda:0", 2, 128 * MIB, 16_000_000)
    assert down == TransferTiming("cuda:0", "cpu", 1, 32 * MIB, 16_000_000)
    # The untimed copy counts in the route, not in its bandwidth: 128 MiB in 16 ms.
    assert up.bytes_per_s == 128 * MIB / 0.016
    assert down.bytes_per_s == 32 * MIB / 0.016
    assert ledger.component("gpu", "cpu").transfers == 3
    assert ledger.statistics().anomalies == 0


def test_a_route_never_timed_has_no_timing_and_zero_time_has_no_bandwidth() -> None:
    ledger = Ledger()
    ledger.apply([copy("cpu", "cpu", 100, None), copy("cuda:1", "cuda:0", 100, 0)])
    (timing,) = ledger.transfer_timings()
    assert (timing.src, timing.dst, timing.transfers, timing.duration_ns) == (
        "cuda:1",
        "cuda:0",
        1,
        0,
    )
    assert timing.bytes_per_s is None
    snapshot = ledger.snapshot()
    assert snapshot.timing_of("cpu", "cpu") is None
    assert snapshot.timing_of("cuda:1", "cuda:0") == timing


@pytest.mark.parametrize("bad", ["-5", "1.5", "soon", "", "9" * 30, "١٢"])
def test_a_bad_duration_is_an_anomaly_and_the_copy_counts_untimed(bad: str) -> None:
    ledger = Ledger()
    event = (
        int(EventKind.TRANSFER),
        "gpu",
        0,
        64,
        "cpu",
        "gpu",
        1,
        0,
        "cuda:0",
        ((DURATION_TAG, bad),),
        1,
    )
    assert ledger.apply([event]) == 1
    assert ledger.transfers() == (("cpu", "cuda:0", 1, 64),)
    assert ledger.transfer_timings() == ()
    assert dict(ledger.component("gpu").anomalies) == {"bad_duration": 1}


def test_duration_of_reads_the_tag() -> None:
    assert duration_of(()) is None
    assert duration_of((("other", "x"), (DURATION_TAG, "12"))) == 12
    with pytest.raises(ValueError, match=r"^tag 'duration_ns' must be decimal nanoseconds"):
        duration_of(((DURATION_TAG, "-1"),))
    with pytest.raises(ValueError, match=r"^tag 'duration_ns' is over"):
        duration_of(((DURATION_TAG, str(2**63)),))


@pytest.mark.parametrize("suffix", [".msgpack", ".json"])
def test_timings_survive_a_snapshot_file_round_trip(tmp_path: Path, suffix: str) -> None:
    snapshot = copies().snapshot("copies")
    assert len(snapshot.transfer_timings) == 2
    loaded = Snapshot.load(snapshot.save(tmp_path / f"copies{suffix}"))
    assert loaded == snapshot
    assert loaded.transfer_timings == snapshot.transfer_timings
    assert Snapshot.from_msgpack(snapshot.to_msgpack()) == snapshot


def test_a_snapshot_without_timed_copies_is_written_as_before() -> None:
    ledger = Ledger(clock=lambda: 5)
    ledger.apply([copy("cpu", "cpu", 10, None)])
    body = ledger.snapshot().to_dict()
    assert "transfer_timings" not in str(body)


def test_a_file_written_before_copies_were_timed_still_loads() -> None:
    loaded = Snapshot.load(Path(__file__).parent / "data" / "schema1-layout1.msgpack")
    assert loaded.transfer_timings == ()
    assert loaded.transfers  # their copies are there, untimed
    assert all(loaded.timing_of(s, d) is None for s, d, _, _ in loaded.transfers)


def test_the_report_shows_time_and_bandwidth_per_direction() -> None:
    snapshot = copies().snapshot("copies")
    text = render_snapshot(snapshot)
    lines = [line.split() for line in text.splitlines()]
    assert ["from", "to", "copies", "bytes", "time", "bandwidth"] in lines
    assert ["cpu", "cuda:0", "3", "129", "MiB", "0.016", "s", "7.8", "GiB/s"] in lines
    assert ["cuda:0", "cpu", "1", "32", "MiB", "0.016", "s", "2.0", "GiB/s"] in lines
    report = snapshot_report_json(snapshot)
    up, down = report["transfers"]
    assert up == {
        "from": "cpu",
        "to": "cuda:0",
        "transfers": 3,
        "bytes": 129 * MIB,
        "timed_transfers": 2,
        "timed_bytes": 128 * MIB,
        "duration_ns": 16_000_000,
        "bytes_per_s": 128 * MIB / 0.016,
    }
    assert (down["duration_ns"], down["timed_bytes"]) == (16_000_000, 32 * MIB)


def test_a_report_without_timed_copies_keeps_its_old_table() -> None:
    ledger = Ledger(clock=lambda: 5)
    ledger.apply([copy("cpu", "cuda:0", MIB, None)])
    snapshot = ledger.snapshot()
    lines = [line.split() for line in render_snapshot(snapshot).splitlines()]
    assert ["from", "to", "copies", "bytes"] in lines
    (row,) = snapshot_report_json(snapshot)["transfers"]
    assert (row["timed_transfers"], row["duration_ns"], row["bytes_per_s"]) == (0, 0, None)


def test_timing_fields_are_plain_values() -> None:
    timing = TransferTiming("cpu", "cuda:0", 1, 2, 3)
    assert dataclasses.astuple(timing) == ("cpu", "cuda:0", 1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timing.bytes = 5  # type: ignore[misc]  # frozen: the assignment must fail
