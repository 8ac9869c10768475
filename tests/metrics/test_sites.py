"""Allocation sites in the ledger, in snapshots and their files, in reports and diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memactor.events import REQUESTED_TAG, SITE_TAG, EventKind, Site, SiteTable
from memactor.metrics import (
    Ledger,
    SiteUsage,
    Snapshot,
    diff,
    diff_report_json,
    render_diff,
    render_snapshot,
    snapshot_report_json,
    usage_of,
)

ALLOC, FREE, RESIZE, ACQUIRE, RELEASE = (
    int(EventKind[name]) for name in ("ALLOC", "FREE", "RESIZE", "ACQUIRE", "RELEASE")
)
DATA = Path(__file__).parent / "data"
DECODE = Site("/app/decode.py", 12, "decode")
INDEX = Site("/app/index.py", 40, "Index.add")


class Table(SiteTable):
    """A site table with fixed sites: 1 is DECODE, 2 is INDEX."""

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._sites.extend([DECODE, INDEX])


def event(kind: int, block: int, size: int, site: int = 0, **extra: Any) -> tuple[Any, ...]:
    tags = ((SITE_TAG, str(site)),) if site else ()
    if "requested" in extra:
        tags = ((REQUESTED_TAG, str(extra["requested"])), *tags)
    owner = "" if kind in (FREE, RELEASE, RESIZE) else "worker"
    device = extra.get("device", "cpu")
    old = extra.get("old", 0)
    return (kind, extra.get("component", "pool"), block, size, device, owner, 1, old, None, tags, 0)


def usage(ledger: Ledger) -> list[tuple[str, str, int, int]]:
    return [
        (u.site.function, u.device, u.bytes_in_use, u.blocks) for u in ledger.snapshot().site_usage
    ]


def test_the_ledger_keeps_in_use_bytes_by_site() -> None:
    ledger = Ledger(sites=Table())
    ledger.apply(
        [
            event(ALLOC, 1, 1000, 1),
            event(ALLOC, 2, 300, 2, requested=200),
            event(ALLOC, 3, 50, 1, device="cuda:0"),
            event(ALLOC, 4, 70),  # no site: in use, but on no site
        ]
    )
    assert usage(ledger) == [
        ("decode", "cpu", 1000, 1),
        ("Index.add", "cpu", 300, 1),
        ("decode", "cuda:0", 50, 1),
    ]
    assert ledger.component("pool").requested_bytes_in_use == 200
    ledger.apply([event(RELEASE, 2, 300), event(ACQUIRE, 2, 300, 1)])
    assert usage(ledger)[0] == ("decode", "cpu", 1300, 2)
    ledger.apply([event(RESIZE, 1, 1500, old=1000)])  # no site: stays on its own
    assert usage(ledger)[0] == ("decode", "cpu", 1800, 2)
    ledger.apply([event(RESIZE, 1, 4000, 2, old=1500)])  # a growing one's site takes it
    assert usage(ledger)[:2] == [("Index.add", "cpu", 4000, 1), ("decode", "cpu", 300, 1)]
    ledger.apply(
        [event(FREE, 1, 4000), event(RELEASE, 2, 300), event(FREE, 3, 50, device="cuda:0")]
    )
    assert usage(ledger) == []
    assert ledger.statistics().callsites == 1
    assert ledger.statistics().anomalies == 0


def test_a_bad_site_tag_is_an_anomaly_and_the_lend_stands() -> None:
    ledger = Ledger(sites=Table())
    for block, value in enumerate(("x", "\u0661", "-1")):
        tags = ((SITE_TAG, value),)
        ledger.apply([(ALLOC, "pool", block, 10, "cpu", "w", 1, 0, None, tags, 0)])
    assert dict(ledger.component("pool").anomalies) == {"bad_site": 3}
    assert ledger.statistics().bytes_in_use == 30
    assert usage(ledger) == []


def test_a_ledger_without_a_table_names_no_site() -> None:
    ledger = Ledger()
    ledger.apply([event(ALLOC, 1, 10, 1)])
    snapshot = ledger.snapshot()
    assert snapshot.site_usage == ()
    assert snapshot.blocks.sites == ()
    assert snapshot.totals.callsites == 0
    assert render_snapshot(snapshot).count("by site") == 0


def sited_snapshot(every: int = 1) -> Snapshot:
    ledger = Ledger(sites=Table(every), clock=lambda: 100)
    ledger.apply(
        [
            event(ALLOC, 1, 4096, 1),
            event(ALLOC, 2, 8192, 2),
            event(ALLOC, 3, 100),
            event(ALLOC, 4, 1 << 20, 1, component="gpu", device="cuda:0"),
            event(ALLOC, 5, 512, 2),
            event(RELEASE, 5, 512),  # cached: kept, but on no site
        ]
    )
    return ledger.snapshot("sited")


def test_live_blocks_keep_their_site() -> None:
    snapshot = sited_snapshot()
    assert {b.block: b.site for b in snapshot.blocks if b.component == "pool"} == {
        1: DECODE,
        2: INDEX,
        3: None,
        5: None,
    }
    assert usage_of(snapshot) == (
        SiteUsage(DECODE, "cuda:0", 1 << 20, 1),
        SiteUsage(INDEX, "cpu", 8192, 1),
        SiteUsage(DECODE, "cpu", 4096, 1),
    )
    assert usage_of(snapshot) == snapshot.site_usage


@pytest.mark.parametrize("form", ["msgpack", "json"])
def test_a_snapshot_with_sites_round_trips(form: str, tmp_path: Path) -> None:
    snapshot = sited_snapshot(every=8)
    if form == "msgpack":
        again = Snapshot.from_msgpack(snapshot.to_msgpack())
    else:
        again = Snapshot.from_dict(json.loads(snapshot.to_json()))
    assert again == snapshot
    assert [b.site for b in again.blocks] == [b.site for b in snapshot.blocks]
    assert again.site_usage == snapshot.site_usage
    assert again.totals.callsites == 8
    assert Snapshot.load(snapshot.save(tmp_path / f"s.{form}")) == snapshot


@pytest.mark.parametrize("name", ["schema1-before-sites.msgpack", "schema1-before-sites.json"])
def test_a_file_written_before_sites_still_loads(name: str) -> None:
    snapshot = Snapshot.load(DATA / name)
    assert snapshot.label == "before-sites"
    assert [(b.block, b.size, b.site) for b in snapshot.blocks] == [
        (1, 4096, None),
        (2, 8192, None),
    ]
    assert snapshot.site_usage == ()
    assert snapshot.totals.callsites == 0
    assert snapshot.component("pool").requested_bytes_in_use == 4000
    assert "by site" not in render_snapshot(snapshot)


def test_a_damaged_site_column_is_named() -> None:
    body = sited_snapshot().to_dict()
    body["blocks"]["site"][0] = 7
    with pytest.raises(Exception, match=r"column 'site' points past the sites table"):
        Snapshot.from_dict(body)


def test_the_report_lists_in_use_bytes_by_site() -> None:
    text = render_snapshot(sited_snapshot())
    assert (
        "in use by site (3 sites):\n"
        "  /app/decode.py:12 in decode: 1 MiB in 1 block on cuda:0\n"
        "  /app/index.py:40 in Index.add: 8 KiB in 1 block\n"
        "  /app/decode.py:12 in decode: 4 KiB in 1 block\n"
    ) in text
    top = render_snapshot(sited_snapshot(), sites=1)
    assert "in use by site (top 1 of 3):\n  /app/decode.py:12 in decode: 1 MiB" in top
    assert "in use by site" not in render_snapshot(sited_snapshot(), sites=0)
    report = snapshot_report_json(sited_snapshot())
    assert report["callsites"] == 1
    assert report["sites"][1] == {
        "file": "/app/index.py",
        "line": 40,
        "function": "Index.add",
        "device": "cpu",
        "bytes_in_use": 8192,
        "blocks": 1,
    }


def test_sampled_sites_say_so() -> None:
    text = render_snapshot(sited_snapshot(every=16))
    assert (
        "in use by site (3 sites; sampled: one allocation in 16 recorded, bytes not scaled):"
        in text
    )


def test_diff_suspects_name_the_sites_of_their_new_bytes() -> None:
    ledger = Ledger(sites=Table(every=4), clock=lambda: 100)
    ledger.apply([event(ALLOC, 1, 100, 1)])
    before = ledger.snapshot("before")
    ledger.apply(
        [
            event(ALLOC, 2, 5000, 2),
            event(ALLOC, 3, 7000, 2),
            event(ALLOC, 4, 300, 1),
            event(ALLOC, 5, 9, 0),
        ]
    )
    result = diff(before, ledger.snapshot("after"))
    (suspect,) = result.suspects
    assert suspect.top_sites == (
        SiteUsage(INDEX, "cpu", 12_000, 2),
        SiteUsage(DECODE, "cpu", 300, 1),
    )
    text = render_diff(result)
    assert (
        "    at /app/index.py:40 in Index.add: 11.7 KiB in 2 blocks\n"
        "    at /app/decode.py:12 in decode: 300 B in 1 block\n"
        "    (sampled: one allocation in 4 recorded, bytes not scaled)\n"
    ) in text
    assert diff_report_json(result)["suspects"][0]["top_sites"][0]["bytes_in_use"] == 12_000
