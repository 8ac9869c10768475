"""JSON lines: every line loads, names its schema, and the series is the metrics actor's."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

import memactor
from memactor.exporters import JSONL_SCHEMA, JSONL_VERSION, export_jsonl, jsonl_line

from .helpers import seeded_ledger, view_of


def trio_clock_ns() -> int:
    return int(trio.current_time() * 1e9)


async def test_the_lines_are_the_metrics_actors_series(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    path = tmp_path / "run.jsonl"
    async with memactor.open_system(clock=trio_clock_ns, sample_hz=10) as system:
        reporter = system.reporter("pool", owner="decode")
        reporter.alloc(0, 100)
        async with export_jsonl(system, path, rate_hz=10) as writer:
            for block in range(1, 30):
                reporter.alloc(block, 1000 * block)
                if block % 3 == 0:
                    reporter.release(block - 1, 1000 * (block - 1))
                await trio.sleep(0.1)
            await system.metrics.flush()
            series = system.ledger.series("pool")
        assert writer.lines > 20
    lines = path.read_text().splitlines()
    assert len(lines) == writer.lines
    records = [json.loads(line) for line in lines]
    assert all(r["schema"] == JSONL_SCHEMA and r["version"] == JSONL_VERSION for r in records)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    got = []
    for record in records:
        (pool,) = [c for c in record["components"] if c["component"] == "pool"]
        got.append((record["monotonic_ns"], pool["bytes_reserved"], pool["bytes_in_use"]))
    points = list(
        zip(
            series.times_ns.tolist(),
            series.bytes_reserved.tolist(),
            series.bytes_in_use.tolist(),
            strict=True,
        )
    )
    first = points.index(got[0])
    assert got == points[first : first + len(got)]  # one line per tick, none missed
    assert got[-1][1] > got[-1][2] > 0  # some cached: reserved and in use differ


def test_a_line_is_self_describing() -> None:
    view = view_of(seeded_ledger())
    record = json.loads(jsonl_line(view, seq=1))
    assert record["totals"]["bytes_reserved"] == view.totals.bytes_reserved
    assert record["totals"]["events_dropped"] == 3
    c0 = next(c for c in record["components"] if c["component"] == "c0")
    stats = view.component("c0")
    assert c0["bytes_in_use"] == stats.bytes_in_use
    assert c0["acquires"] == stats.acquires
    assert c0["anomalies"] == 1
    assert record["process"] == [
        {
            "device": "cpu",
            "process_bytes": view.process[0].process_bytes,
            "unattributed_bytes": view.process[0].unattributed_bytes,
        }
    ]
    assert jsonl_line(view, seq=1).count("\n") == 1


async def test_a_stream_is_written_and_left_open(autojump_clock: trio.abc.Clock) -> None:
    out = io.StringIO()
    async with memactor.open_system() as system, export_jsonl(system, out, rate_hz=5):
        await trio.sleep(1)
    assert not out.closed
    assert len(out.getvalue().splitlines()) >= 4


async def test_bad_targets_and_rates_fail_at_once(tmp_path: Path) -> None:
    async with memactor.open_system() as system:
        with pytest.raises(FileNotFoundError):
            async with export_jsonl(system, tmp_path / "no" / "such.jsonl"):
                pass
        with pytest.raises(ValueError, match=r"^rate_hz must be a positive number, got nan"):
            async with export_jsonl(system, tmp_path / "x.jsonl", rate_hz=float("nan")):
                pass
