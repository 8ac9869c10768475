"""``memactor diff``: two snapshot files, their suspects, tolerance, trend and exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from memactor import EventKind, Ledger, MemoryEvent, Snapshot

from .helpers import memactor

KiB = 1 << 10


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``warm``: a pool caching 64 KiB. ``clean``: the pool cached more, nothing lent.
    ``leak``: a ``cache`` component appeared holding 5 KiB, growing steadily for 10 s."""
    folder = tmp_path_factory.mktemp("diff")
    now = [0]
    ledger = Ledger(clock=lambda: now[0])

    def event(kind: EventKind, component: str, block: int, size: int, owner: str) -> MemoryEvent:
        return MemoryEvent(kind, component, block, size, owner=owner, timestamp_ns=now[0])

    ledger.apply(
        [
            event(EventKind.ALLOC, "pool", 1, 64 * KiB, "decoder"),
            event(EventKind.RELEASE, "pool", 1, 64 * KiB, "decoder"),
        ]
    )
    paths = {"warm": ledger.snapshot("warm").save(folder / "warm.msgpack")}
    ledger.apply(
        [
            event(EventKind.ALLOC, "pool", 2, 32 * KiB, "decoder"),
            event(EventKind.RELEASE, "pool", 2, 32 * KiB, "decoder"),
        ]
    )
    paths["clean"] = ledger.snapshot("clean").save(folder / "clean.json")
    for step in range(1, 21):
        now[0] = step * 500_000_000
        ledger.apply([event(EventKind.ALLOC, "cache", step, 256, "indexer")])
        ledger.sample()
    paths["leak"] = ledger.snapshot("leak").save(folder / "leak.msgpack")
    return paths


def test_no_leak_exits_0_even_when_failing_on_one(files: dict[str, Path]) -> None:
    result = memactor("diff", files["warm"], files["clean"], "--fail-on-leak")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        'memactor diff "warm" -> "clean" over 0.0 s (tolerance 0 B): in use 0 B, '
        "reserved +32 KiB, 1 new live block"
    )
    assert "verdict: no leak suspected" in result.stdout


def test_files_saved_with_the_same_label_are_named_by_file(
    files: dict[str, Path], tmp_path: Path
) -> None:
    # Two runs of one program both save "end": the labels cannot tell them apart.
    first = Snapshot.load(files["warm"])
    second = Snapshot.load(files["leak"])
    monday = dataclasses.replace(first, label="end").save(tmp_path / "monday.msgpack")
    tuesday = dataclasses.replace(second, label="end").save(tmp_path / "tuesday.json")
    result = memactor("diff", monday, tuesday)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"memactor diff {monday} -> {tuesday} over ")
    assert "verdict: LEAK SUSPECTED in 1 component\n" in result.stdout


def test_a_leak_exits_1_only_with_fail_on_leak(files: dict[str, Path]) -> None:
    shown = memactor("diff", files["warm"], files["leak"])
    assert shown.returncode == 0
    failed = memactor("diff", files["warm"], files["leak"], "--fail-on-leak")
    assert failed.returncode == 1
    assert failed.stdout == shown.stdout
    assert "verdict: LEAK SUSPECTED in 1 component" in failed.stdout
    assert (
        "  cache@cpu: appeared holding memory in use, +5 KiB in use; 20 new blocks lent out "
        "(5 KiB); held by indexer 5 KiB"
    ) in failed.stdout
    assert failed.stderr == ""


def test_tolerance_forgives_growth_but_the_trend_still_sees_it(files: dict[str, Path]) -> None:
    forgiven = memactor(
        "diff", files["warm"], files["leak"], "--tolerance", "5KiB", "--fail-on-leak"
    )
    assert forgiven.returncode == 0
    assert "(tolerance 5 KiB)" in forgiven.stdout
    trend = memactor(
        "diff", files["warm"], files["leak"], "--tolerance", "5 KiB", "--fail-on-leak", "--trend"
    )
    assert trend.returncode == 1
    assert "leak verdict: LEAK SUSPECTED in 1 of 2 components" in trend.stdout
    assert "\nleaks: 1 of 2 components flagged\n  SUSPECT  cache: grows steadily" in trend.stdout


def test_json_has_every_number_and_the_verdict(files: dict[str, Path]) -> None:
    result = memactor(
        "diff", files["warm"], files["leak"], "--format", "json", "--trend", "--fail-on-leak"
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["before_file"], report["after_file"]) == (
        str(files["warm"]),
        str(files["leak"]),
    )
    assert report["bytes_in_use_delta"] == 5 * KiB
    assert report["bytes_reserved_delta"] == 32 * KiB + 5 * KiB
    (suspect,) = report["suspects"]
    assert suspect["component"] == "cache"
    assert suspect["top_owners"] == [["indexer", 5 * KiB]]
    assert [t["component"] for t in report["trends"] if t["growing"]] == ["cache"]
    (flagged,) = [v for v in report["verdicts"] if v["flagged"]]
    assert (flagged["component"], flagged["verdict"]) == ("cache", "suspect")
    assert flagged["reason"].startswith("cache: grows steadily by the line fit, +512 B/s")
    assert report["leak_suspected"] is True
    plain = json.loads(memactor("diff", files["warm"], files["clean"], "--format", "json").stdout)
    assert "trends" not in plain
    assert plain["leak_suspected"] is False


def test_bad_tolerance_and_unreadable_files_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    result = memactor("diff", files["warm"], files["leak"], "--tolerance", "-5")
    assert result.returncode == 2
    assert "argument --tolerance: cannot read '-5' as a size" in result.stderr
    damaged = tmp_path / "after.msgpack"
    damaged.write_bytes(files["leak"].read_bytes()[:-10])
    result = memactor("diff", files["warm"], damaged, "--fail-on-leak")
    assert result.returncode == 2
    assert result.stderr == (
        f"memactor diff: cannot read a snapshot from {damaged}: "
        "expected a memactor snapshot payload: truncated\n"
    )
    result = memactor("diff", files["warm"])
    assert result.returncode == 2
    assert "the following arguments are required: AFTER" in result.stderr
