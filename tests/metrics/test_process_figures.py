"""The process's figures in the ledger's books: snapshots, files, reports and diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memactor.codec import SCHEMA_VERSION, CodecError
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import (
    PROCESS,
    Ledger,
    ProcessStats,
    Snapshot,
    diff,
    diff_report_json,
    render_diff,
    render_snapshot,
    snapshot_report_json,
)

MIB = 2**20
SECOND_NS = 10**9


class Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def sampled_ledger(*, outside_per_s: int, seconds: int = 12) -> tuple[Ledger, Clock]:
    """A ledger that reserves 4 MiB on cpu while the process grows *outside_per_s* a
    second beyond it, sampled once a second."""
    clock = Clock()
    ledger = Ledger(clock=clock)
    ledger.apply([MemoryEvent(EventKind.ALLOC, "pool", 1, 4 * MIB)])
    for second in range(seconds):
        clock.now_ns = second * SECOND_NS
        process = 20 * MIB + second * outside_per_s
        ledger.note_process("cpu", process, rss_bytes=process + MIB, uss_bytes=process)
        ledger.sample()
    return ledger, clock


def test_the_ledger_keeps_process_unattributed_and_a_process_series() -> None:
    ledger, _ = sampled_ledger(outside_per_s=MIB, seconds=3)
    (cpu,) = ledger.process()
    assert cpu == ProcessStats(
        "cpu",
        22 * MIB,
        4 * MIB,
        18 * MIB,
        2 * SECOND_NS,
        rss_bytes=23 * MIB,
        uss_bytes=22 * MIB,
    )
    snapshot = ledger.snapshot("x")
    assert snapshot.process == (cpu,)
    assert snapshot.process_on("cpu") == cpu
    assert snapshot.process_on("cuda:0") is None
    (series,) = snapshot.process_series
    assert (series.component, series.device) == (PROCESS, "cpu")
    assert series.series.bytes_reserved.tolist() == [20 * MIB, 21 * MIB, 22 * MIB]
    assert series.series.bytes_in_use.tolist() == [16 * MIB, 17 * MIB, 18 * MIB]
    assert ledger.snapshot(series=False).process_series == ()


def test_process_figures_round_trip_through_msgpack_and_json(tmp_path: Path) -> None:
    ledger, _ = sampled_ledger(outside_per_s=MIB, seconds=3)
    ledger.note_process("cuda:0", 8 * MIB, pool_bytes=6 * MIB)
    snapshot = ledger.snapshot("process")
    assert len(snapshot.process) == 2
    assert Snapshot.from_msgpack(snapshot.to_msgpack()) == snapshot
    assert Snapshot.from_dict(json.loads(snapshot.to_json())) == snapshot
    for name in ("s.msgpack", "s.json"):
        assert Snapshot.load(snapshot.save(tmp_path / name)) == snapshot
    assert snapshot.to_dict()["memactor"] == SCHEMA_VERSION == 1


def test_a_schema_1_file_without_process_figures_loads_with_none() -> None:
    path = Path(__file__).parent / "data" / "schema1-layout1.msgpack"
    loaded = Snapshot.load(path)
    assert loaded.process == ()
    assert loaded.process_series == ()
    # And one written just before the fields existed (a current file, less them).
    body = Ledger().snapshot("older").to_dict()
    del body["process"], body["process_series"]
    assert Snapshot.from_dict(body).process == ()


def test_a_damaged_process_entry_names_the_field() -> None:
    ledger, _ = sampled_ledger(outside_per_s=0, seconds=1)
    body = ledger.snapshot().to_dict()
    body["process"][0]["process_bytes"] = "many"
    with pytest.raises(CodecError, match=r"^damaged snapshot: field 'process_bytes' has a str"):
        Snapshot.from_dict(body)


def test_the_report_shows_the_process_and_the_outside_growth_verdict() -> None:
    ledger, _ = sampled_ledger(outside_per_s=3 * MIB + MIB // 10)
    snapshot = ledger.snapshot("grows")
    text = render_snapshot(snapshot)
    assert (
        "process on cpu: 54.1 MiB USS (RSS 55.1 MiB, USS 54.1 MiB); reported by memactor "
        "4 MiB reserved; unattributed +50.1 MiB"
    ) in text
    assert "memory outside memactor grows at 3.1 MiB/s on cpu" in text
    report = snapshot_report_json(snapshot)
    assert report["process"][0]["unattributed_bytes"] == snapshot.process[0].unattributed_bytes
    assert report["outside_growing"] is True
    assert report["leak_suspected"] is False  # no component leaks: nobody reported it


def test_a_steady_process_gets_no_outside_verdict_and_a_bare_ledger_no_lines() -> None:
    steady, _ = sampled_ledger(outside_per_s=0)
    text = render_snapshot(steady.snapshot())
    assert "memory outside memactor: no steady growth over 11.0 s of samples" in text
    bare = render_snapshot(Ledger().snapshot())
    assert "process on" not in bare
    assert "outside memactor" not in bare


def test_diff_reports_unattributed_growth_and_its_steady_verdict() -> None:
    ledger, clock = sampled_ledger(outside_per_s=0, seconds=1)
    before = ledger.snapshot("before")
    for second in range(1, 12):
        clock.now_ns = second * SECOND_NS
        ledger.note_process("cpu", 20 * MIB + second * 3 * MIB)
        ledger.sample()
    after = ledger.snapshot("after")
    result = diff(before, after)
    (delta,) = result.unattributed
    assert delta.unattributed_bytes_delta == delta.process_bytes_delta == 33 * MIB
    text = render_diff(result)
    assert "unattributed on cpu (memory outside memactor): +16 MiB -> +49 MiB (+33 MiB)" in text
    assert "memory outside memactor grows at 3 MiB/s on cpu" in text
    assert "verdict: no leak suspected" in text
    report = diff_report_json(result)
    assert report["unattributed"][0]["unattributed_bytes_delta"] == 33 * MIB
    assert report["outside_growing"] is True
    assert report["leak_suspected"] is False
    # Without process figures the diff says nothing about them.
    assert "unattributed" not in render_diff(diff(Ledger().snapshot(), Ledger().snapshot()))
