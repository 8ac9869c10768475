"""diff(): deltas, appeared and vanished components, new blocks and leak suspects."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Change, Ledger, LiveBlocks, Snapshot, diff
from memactor.metrics import _diff as diff_module
from memactor.metrics._diff import _not_in

ALLOC, FREE, ACQUIRE, RELEASE = (
    EventKind.ALLOC,
    EventKind.FREE,
    EventKind.ACQUIRE,
    EventKind.RELEASE,
)


def event(
    kind: EventKind, component: str, block: int, size: int, owner: str = "w", device: str = "cpu"
) -> MemoryEvent:
    return MemoryEvent(kind, component, block, size, device=device, owner=owner, timestamp_ns=0)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(clock=lambda: 1_000)


def test_pool_that_caches_is_not_a_suspect(ledger: Ledger) -> None:
    ledger.apply([event(ALLOC, "pool", 1, 4096)])
    before = ledger.snapshot("before")
    ledger.apply(
        [
            event(RELEASE, "pool", 1, 4096),
            event(ALLOC, "pool", 2, 8192),
            event(RELEASE, "pool", 2, 8192),
        ]
    )
    result = diff(before, ledger.snapshot("after"))
    (pool,) = result.components
    assert pool.change is Change.CHANGED
    assert pool.bytes_reserved_delta == 8192
    assert pool.bytes_in_use_delta == -4096
    assert result.suspects == ()
    assert not result.leaked
    # The new cached block is a new live block, but not lent out, so no evidence.
    assert [b.block for b in result.new_blocks] == [2]
    assert [b.in_use for b in result.new_blocks] == [False]


def test_component_that_appears_holding_memory_is_a_suspect(ledger: Ledger) -> None:
    ledger.apply([event(ALLOC, "pool", 1, 4096)])
    before = ledger.snapshot("before")
    ledger.apply(
        [event(ALLOC, "cache", 1, 1000, owner="indexer"), event(ALLOC, "cache", 2, 24, "x")]
    )
    result = diff(before, ledger.snapshot("after"))
    assert [c.component for c in result.appeared] == ["cache"]
    (suspect,) = result.suspects
    assert (suspect.component, suspect.device) == ("cache", "cpu")
    assert suspect.reason == "appeared holding memory in use"
    assert suspect.bytes_in_use_delta == 1024
    assert (suspect.new_blocks, suspect.new_bytes) == (2, 1024)
    assert suspect.top_owners == (("indexer", 1000), ("x", 24))


def test_vanished_component_and_unchanged_one(ledger: Ledger) -> None:
    ledger.apply([event(ALLOC, "a", 1, 10), event(ALLOC, "b", 1, 20)])
    before = ledger.snapshot()
    after_ledger = Ledger(clock=lambda: 2_000)
    after_ledger.apply([event(ALLOC, "b", 1, 20)])
    result = diff(before, after_ledger.snapshot())
    changes = {c.component: c.change for c in result.components}
    assert changes == {"a": Change.VANISHED, "b": Change.UNCHANGED}
    assert [c.component for c in result.vanished] == ["a"]
    assert result.bytes_in_use_delta == -10
    assert result.elapsed_ns == 1_000
    assert result.suspects == ()


def test_tolerance_forgives_small_growth(ledger: Ledger) -> None:
    before = ledger.snapshot()
    ledger.apply([event(ALLOC, "a", 1, 100)])
    after = ledger.snapshot()
    assert diff(before, after, tolerance_bytes=100).suspects == ()
    assert [s.component for s in diff(before, after, tolerance_bytes=99).suspects] == ["a"]
    with pytest.raises(ValueError, match=r"^tolerance_bytes must not be negative"):
        diff(before, after, tolerance_bytes=-1)


def test_new_blocks_are_keyed_by_component_device_and_block(ledger: Ledger) -> None:
    ledger.apply([event(ALLOC, "a", 1, 10), event(ALLOC, "a", 1, 10, device="cuda:0")])
    before = ledger.snapshot()
    ledger.apply(
        [
            event(FREE, "a", 1, 10),
            event(ALLOC, "a", 1, 30),  # the same id again, but a new block
            event(ALLOC, "b", 1, 40),
        ]
    )
    result = diff(before, ledger.snapshot())
    # Block 1 of "a" on the CPU was alive in both; the id alone cannot tell it was replaced.
    assert sorted((b.component, b.device, b.block) for b in result.new_blocks) == [("b", "cpu", 1)]
    assert {s.component: s.bytes_in_use_delta for s in result.suspects} == {"a": 20, "b": 40}


def test_suspect_of_growth_lists_only_its_new_lent_blocks(ledger: Ledger) -> None:
    ledger.apply([event(ALLOC, "a", 1, 10, owner="old")])
    before = ledger.snapshot()
    ledger.apply(
        [event(ALLOC, "a", 2, 20, owner="new"), event(ALLOC, "a", 3, 5), event(RELEASE, "a", 3, 5)]
    )
    (suspect,) = diff(before, ledger.snapshot()).suspects
    assert suspect.reason == "memory in use grew"
    assert (suspect.new_blocks, suspect.new_bytes, suspect.top_owners) == (1, 20, (("new", 20),))


def test_diff_of_loaded_snapshots_equals_diff_of_live_ones(ledger: Ledger, tmp_path: Path) -> None:
    ledger.apply([event(ALLOC, "a", 1, 10), event(RELEASE, "a", 1, 10)])
    before = ledger.snapshot("b")
    ledger.apply([event(ALLOC, "c", 7, 70), event(ACQUIRE, "a", 1, 10)])
    after = ledger.snapshot("a")
    loaded = [Snapshot.load(s.save(tmp_path / f"{s.label}.json")) for s in (before, after)]
    assert diff(*loaded) == diff(before, after)


_ACCOUNTS = (("a", "cpu"), ("b", "cpu"), ("a", "cuda:0"))


@st.composite
def live_blocks(draw: st.DrawFn) -> LiveBlocks:
    """Blocks over three accounts, grouped by account or shuffled, with dense or sparse ids."""
    ids = st.integers(0, 40) | st.integers(-(2**63), 2**63 - 1)
    rows = draw(st.lists(st.tuples(st.integers(0, 2), ids), max_size=30))
    if draw(st.booleans()):
        rows.sort(key=lambda row: row[0])
    return LiveBlocks.from_columns(
        _ACCOUNTS,
        (),
        {
            "account": [account for account, _ in rows],
            "block": [block for _, block in rows],
            "size": [1] * len(rows),
            "owner": [-1] * len(rows),
            "allocated_ns": [0] * len(rows),
        },
    )


@given(live_blocks(), live_blocks())
def test_new_blocks_are_those_whose_account_and_id_are_not_before(
    before: LiveBlocks, after: LiveBlocks
) -> None:
    # The chunked id table, the slices of grouped rows and the fallbacks agree with sets.
    seen = {(b.component, b.device, b.block) for b in before}
    expected = [b for b in after if (b.component, b.device, b.block) not in seen]
    assert list(after.select(_not_in(after, before))) == expected
    with mock.patch.object(diff_module, "_CHUNK", 4):  # columns of many chunks
        assert list(after.select(_not_in(after, before))) == expected
