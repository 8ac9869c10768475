"""Text and JSON reports: deterministic, complete, exact."""

from __future__ import annotations

import json

import pytest

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import (
    Ledger,
    diff,
    diff_report_json,
    render_diff,
    render_snapshot,
    render_table,
    snapshot_report_json,
    table_width,
)
from memactor.metrics._report import OWNERS_SHOWN

SECOND = 1_000_000_000


def leaky_ledger() -> Ledger:
    """20 s at 10 Hz: a pool that lends and takes back, a cache that keeps 1 KiB a tick."""
    now = 0
    ledger = Ledger(clock=lambda: now)
    make = MemoryEvent.unchecked
    for tick in range(200):
        now = tick * SECOND // 10
        ledger.apply(
            [
                make(EventKind.ALLOC, "pool", 2 * tick, 4096, "cpu", "worker", now),
                make(EventKind.RELEASE, "pool", 2 * tick, 4096, "cpu", "worker", now),
                make(EventKind.FREE, "pool", 2 * tick, 4096, "cpu", "", now),
                make(EventKind.ALLOC, "cache", tick, 1024, "cpu", "indexer", now),
            ]
        )
        ledger.sample()
    ledger.apply([make(EventKind.FREE, "ghost", 1, 1, "cuda:0", "", now)])
    return ledger


def test_table_layout() -> None:
    table = render_table(["name", "bytes"], [["a", "1"], ["long name", "1000"]], right="1")
    assert table.splitlines() == [
        "name       bytes",
        "---------  -----",
        "a              1",
        "long name   1000",
    ]


WIDE = (
    ["component", "device", "in use", "peak in use", "reserved", "blocks"],
    [
        ["decode.chunks", "cuda:0", "64 MiB", "128.5 MiB", "64 MiB", "1,234"],
        ["[bold]pool", "cpu", "1.5 KiB", "3 KiB", "1 GiB", "1"],
    ],
)


def test_a_table_fits_the_width_it_is_given_and_loses_nothing() -> None:
    headers, rows = WIDE
    wide = render_table(headers, rows, right="2345")
    assert wide.splitlines()[0] == ("component      device   in use  peak in use  reserved  blocks")
    assert wide.splitlines()[3].startswith("[bold]pool")  # cells are text, not markup
    with table_width(56):  # one space between columns is enough
        assert render_table(headers, rows, right="2345").splitlines() == [
            "component     device  in use peak in use reserved blocks",
            "------------- ------ ------- ----------- -------- ------",
            "decode.chunks cuda:0  64 MiB   128.5 MiB   64 MiB  1,234",
            "[bold]pool    cpu    1.5 KiB       3 KiB    1 GiB      1",
        ]
    with table_width(48):  # then the widest cells wrap at a space
        narrow = render_table(headers, rows, right="2345").splitlines()
    assert max(map(len, narrow)) <= 48
    assert narrow == [
        "                       in   peak",
        "component     device  use in use reserved blocks",
        "------------- ------ ---- ------ -------- ------",
        "decode.chunks cuda:0   64  128.5   64 MiB  1,234",
        "                      MiB    MiB",
        "[bold]pool    cpu     1.5  3 KiB    1 GiB      1",
        "                      KiB",
    ]
    with table_width(20):  # and when no word fits whole, within words
        folded = render_table(headers, rows, right="2345").splitlines()
    assert max(map(len, folded)) <= 20

    def characters(lines: list[str]) -> list[str]:
        return sorted(char for line in lines if line.strip("- ") for char in line if char != " ")

    assert characters(folded) == characters(wide.splitlines())  # folded, but all there
    assert render_table(headers, rows, right="2345") == wide  # the width is restored


def test_table_width_refuses_a_width_below_one_column() -> None:
    with (
        pytest.raises(ValueError, match=r"^a table width must be at least 1 column, got 0$"),
        table_width(0),
    ):
        pass


def test_snapshot_report_names_the_leak_and_the_numbers() -> None:
    text = render_snapshot(leaky_ledger().snapshot("end"))
    lines = text.splitlines()
    assert lines[0] == 'memactor snapshot "end": 200 KiB in use, 200 KiB reserved, 200 live blocks'
    assert lines[1] == (
        "peak: 203 KiB in use, 203 KiB reserved; "
        "events: 801 applied, 0 dropped, 1 anomaly, 0 malformed"
    )
    assert "  ghost@cuda:0: unknown_block 1" in lines
    assert "leak verdict: LEAK SUSPECTED in 1 of 2 components" in lines
    verdict = lines[lines.index("leak verdict: LEAK SUSPECTED in 1 of 2 components") + 3]
    assert verdict.split()[:4] == ["cache", "cpu", "10", "KiB/s"]
    # The pool lends and takes back: it is in the table but not in the verdict.
    assert any(line.startswith("pool ") for line in lines)
    assert text == render_snapshot(leaky_ledger().snapshot("end"))


def test_snapshot_json_has_every_number() -> None:
    snapshot = leaky_ledger().snapshot("end")
    report = snapshot_report_json(snapshot)
    assert json.loads(json.dumps(report)) == report
    assert report["leak_suspected"] is True
    assert report["totals"]["bytes_in_use"] == 200 * 1024
    # The peak: 199 KiB cached by the leak plus the pool's 4 KiB buffer, in the last tick.
    assert report["totals"]["peak_bytes_reserved"] == 199 * 1024 + 4096
    cache = next(c for c in report["components"] if c["component"] == "cache")
    assert cache["allocations"] == 200
    assert cache["size_histogram"][11] == 200  # 1024 is in [2**10, 2**11)
    ghost = next(c for c in report["components"] if c["component"] == "ghost")
    assert ghost["anomalies"] == {"unknown_block": 1}
    growing = [t["component"] for t in report["trends"] if t["growing"]]
    assert growing == ["cache"]


def test_diff_reports() -> None:
    ledger = leaky_ledger()
    before = ledger.snapshot("before")
    ledger.apply([MemoryEvent.unchecked(EventKind.ALLOC, "new", 1, 512, "cpu", "x", 0)])
    result = diff(before, ledger.snapshot("after"))
    text = render_diff(result)
    assert text.startswith('memactor diff "before" -> "after"')
    assert "verdict: LEAK SUSPECTED in 1 component\n  new@cpu: appeared holding memory" in text
    assert "3 components unchanged" in text
    report = diff_report_json(result)
    assert json.loads(json.dumps(report)) == report
    assert report["leak_suspected"] is True
    assert report["bytes_in_use_delta"] == 512
    assert report["suspects"][0]["top_owners"] == [["x", 512]]
    quiet = render_diff(diff(before, before))
    assert quiet.rstrip().endswith("verdict: no leak suspected")


def test_reports_show_slack_and_reuse_where_requested_sizes_were_reported() -> None:
    make = MemoryEvent.unchecked
    requested = (("requested", "120000"),)
    ledger = Ledger(clock=lambda: 0)
    ledger.apply(
        [
            make(EventKind.ALLOC, "pool", 1, 131_072, "cpu", "decode", 1, tags=requested),
            make(EventKind.RELEASE, "pool", 1, 131_072, "cpu", "", 2),
            make(EventKind.ACQUIRE, "pool", 1, 131_072, "cpu", "decode", 3, tags=requested),
            make(EventKind.RELEASE, "pool", 1, 131_072, "cpu", "", 4),
            make(EventKind.ALLOC, "cache", 1, 1024, "cpu", "indexer", 5),
        ]
    )
    snapshot = ledger.snapshot("end")
    lines = render_snapshot(snapshot).splitlines()
    start = lines.index("requested versus lent:")
    assert lines[start + 1 : start + 3] == [
        "  pool@cpu: 8% of lent bytes are slack (21.6 KiB of 256 KiB lent over 2 lends); "
        "reuse ratio 2.0 (234.4 KiB requested, peak 117.2 KiB in use)",
        "",
    ]
    report = snapshot_report_json(snapshot)
    pool, cache = (
        next(c for c in report["components"] if c["component"] == name)
        for name in ("pool", "cache")
    )
    assert (pool["bytes_lent"], pool["requested_bytes_lent"]) == (262_144, 240_000)
    assert pool["slack_ratio"] == (262_144 - 240_000) / 262_144
    assert pool["reuse_ratio"] == 2.0
    assert (cache["slack_ratio"], cache["reuse_ratio"]) == (None, None)
    assert "requested versus lent:" not in render_snapshot(leaky_ledger().snapshot("end"))


def test_counts_of_one_read_in_the_singular() -> None:
    ledger = Ledger(clock=lambda: 0)
    for owner in range(OWNERS_SHOWN + 1):
        ledger.apply([MemoryEvent(EventKind.ALLOC, "pool", owner, 1, owner=f"o{owner}")])
    ledger.apply([MemoryEvent(EventKind.FREE, "pool", o, 1) for o in range(1, OWNERS_SHOWN + 1)])
    text = render_snapshot(ledger.snapshot("one"))
    assert text.startswith('memactor snapshot "one": 1 B in use, 1 B reserved, 1 live block\n')
    assert "\n... and 1 more owner\n" in text
