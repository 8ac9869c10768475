"""Requested versus lent: the ledger's books of what lends asked for beside what they got."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from memactor.events import REQUESTED_TAG, EventKind, requested_of
from memactor.metrics import Ledger, Snapshot

ALLOC, FREE, ACQUIRE, RELEASE = (
    int(EventKind.ALLOC),
    int(EventKind.FREE),
    int(EventKind.ACQUIRE),
    int(EventKind.RELEASE),
)


def lend(kind: int, block: int, size: int, requested: Any = None, ts: int = 1) -> tuple[Any, ...]:
    tags = () if requested is None else ((REQUESTED_TAG, str(requested)),)
    return (kind, "pool", block, size, "cpu", "decode", ts, 0, None, tags, 0)


def back(kind: int, block: int, size: int) -> tuple[Any, ...]:
    return (kind, "pool", block, size, "cpu", "", 2, 0, None, (), 0)


def test_requested_of_reads_the_tag() -> None:
    assert requested_of(()) is None
    assert requested_of((("note", "x"),)) is None
    assert requested_of((("note", "x"), (REQUESTED_TAG, "120000"))) == 120_000
    with pytest.raises(ValueError, match=r"^tag 'requested' must be a decimal size"):
        requested_of(((REQUESTED_TAG, "-5"),))
    with pytest.raises(ValueError, match=r"^tag 'requested' is over"):
        requested_of(((REQUESTED_TAG, str(2**48)),))


def test_the_ledger_counts_requested_beside_lent_bytes() -> None:
    ledger = Ledger()
    ledger.apply(
        [
            lend(ALLOC, 1, 131_072, 120_000),
            lend(ALLOC, 2, 8192, 8000),
            back(RELEASE, 1, 131_072),
            lend(ACQUIRE, 1, 131_072, 100_000),
            back(RELEASE, 2, 8192),
        ]
    )
    stats = ledger.component("pool")
    assert stats.requested_bytes_in_use == 100_000
    assert stats.peak_requested_bytes_in_use == 128_000
    assert stats.requested_lends == 3
    assert stats.bytes_lent == 131_072 * 2 + 8192
    assert stats.requested_bytes_lent == 228_000
    assert stats.slack_ratio == pytest.approx(1 - 228_000 / 270_336)
    assert stats.reuse_ratio == pytest.approx(228_000 / 128_000)
    ledger.apply([back(FREE, 1, 131_072)])  # freed while lent: its request ends too
    assert ledger.component("pool").requested_bytes_in_use == 0


def test_a_bad_requested_size_is_an_anomaly_and_the_lend_stands() -> None:
    ledger = Ledger()
    ledger.apply([lend(ALLOC, 1, 4096, 5000), lend(ALLOC, 2, 4096, "x")])
    stats = ledger.component("pool")
    assert stats.bytes_in_use == 8192
    assert stats.anomalies == (("bad_requested", 2),)
    assert (stats.requested_lends, stats.bytes_lent, stats.requested_bytes_in_use) == (0, 0, 0)


def test_components_without_requested_sizes_show_no_figures() -> None:
    ledger = Ledger()
    ledger.apply([lend(ALLOC, 1, 4096), back(RELEASE, 1, 4096), lend(ACQUIRE, 1, 4096)])
    stats = ledger.component("pool")
    assert (stats.requested_lends, stats.bytes_lent, stats.requested_bytes_lent) == (0, 0, 0)
    assert (stats.slack_ratio, stats.reuse_ratio) == (0.0, 0.0)


def test_requested_figures_round_trip_and_old_files_load_without_them() -> None:
    ledger = Ledger()
    ledger.apply([lend(ALLOC, 1, 131_072, 120_000)])
    snapshot = ledger.snapshot()
    assert Snapshot.from_msgpack(snapshot.to_msgpack()) == snapshot
    assert Snapshot.from_dict(json.loads(snapshot.to_json())) == snapshot
    body = json.loads(snapshot.to_json())
    for row in body["components"]:
        for name in (
            "requested_bytes_in_use",
            "peak_requested_bytes_in_use",
            "requested_lends",
            "bytes_lent",
            "requested_bytes_lent",
        ):
            del row[name]
    (stats,) = Snapshot.from_dict(body).components
    assert stats == dataclasses.replace(
        ledger.component("pool"),
        requested_bytes_in_use=0,
        peak_requested_bytes_in_use=0,
        requested_lends=0,
        bytes_lent=0,
        requested_bytes_lent=0,
    )
