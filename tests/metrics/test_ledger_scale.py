"""The ledger at scale: ticks that cost what changed, retirement, and a bounded owner table.

Each test checks that the shortcuts (re-freezing only marked accounts, filling idle series
in later, folding idle components and owners away) give the same answers as doing
everything every time would.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import TOTAL, ComponentStats, Ledger, TimeSeries
from memactor.metrics._accounts import (
    MIN_RECENT_FREES,
    RECENT_FREES,
    RECENT_FREES_BUDGET,
    Account,
    DeviceAccount,
    recent_frees_limit,
)
from memactor.metrics._rows import CHUNK_ROWS, ComponentRows, SortedRows

ALLOC, FREE, RESIZE = EventKind.ALLOC, EventKind.FREE, EventKind.RESIZE
ACQUIRE, RELEASE, TRANSFER = EventKind.ACQUIRE, EventKind.RELEASE, EventKind.TRANSFER
RETIRED, OTHER_OWNERS = "(retired)", "(other owners)"
SECOND = 10**9


class FakeClock:
    def __init__(self, now_ns: int = SECOND) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def ev(
    kind: EventKind,
    component: str = "pool",
    block: int = 1,
    size: int = 4096,
    *,
    device: str = "cpu",
    owner: str = "decode",
    ts: int = 0,
    old_size: int = 0,
    dst: str | None = None,
) -> MemoryEvent:
    return MemoryEvent.unchecked(kind, component, block, size, device, owner, ts, old_size, dst)


COUNTERS = [
    f.name
    for f in dataclasses.fields(ComponentStats)
    if f.name not in ("component", "device", "size_histogram", "anomalies")
    and not f.name.startswith("peak")
    and f.name != "lifetime_max_ns"
]


def assert_rows_add_up(ledger: Ledger) -> None:
    """The component rows sum to the totals, to the byte and event."""
    rows = ledger.components()
    totals = ledger.statistics()
    assert sum(r.bytes_reserved for r in rows) == totals.bytes_reserved
    assert sum(r.bytes_in_use for r in rows) == totals.bytes_in_use
    assert sum(r.live_blocks for r in rows) == totals.live_blocks
    assert sum(r.anomaly_count for r in rows) == totals.anomalies
    assert sum(o.bytes_in_use for o in ledger.owners()) == totals.bytes_in_use


def test_retired_components_fold_into_one_exact_row_per_device() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    before: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    for number in range(30):
        name, device = f"request.{number}", "cuda:0" if number % 3 == 0 else "cpu"
        ledger.apply(
            [
                ev(ALLOC, name, 1, 1000 + number, device=device, ts=number),
                ev(RESIZE, name, 1, 3000 + number, device=device, old_size=1000 + number),
                ev(RELEASE, name, 1, 3000 + number, device=device),
                ev(TRANSFER, name, 1, 10, device=device, dst="cpu"),
                ev(FREE, name, 1, 3000 + number, device=device, ts=2 * number + 50),
                ev(FREE, name, 1, 3000 + number, device=device),  # a double free
            ]
        )
        ledger.sample()
    ledger.apply([ev(ALLOC, "steady", 7, 64)])  # holds a block: never retires
    everything = ledger.components()
    for row in everything:
        for name in COUNTERS:
            before[name] += getattr(row, name)
    totals_before = ledger.statistics()
    clock.now_ns += 61 * SECOND
    ledger.sample()
    rows = ledger.components()
    assert [(r.component, r.device) for r in rows] == [
        (RETIRED, "cpu"),
        (RETIRED, "cuda:0"),
        ("steady", "cpu"),
    ]
    for name in COUNTERS:
        assert sum(getattr(r, name) for r in rows) == before[name], name
    retired = ledger.component(RETIRED)
    gone = [r for r in everything if r.component.startswith("request") and r.device == "cpu"]
    assert retired.size_histogram == tuple(
        map(sum, zip(*(r.size_histogram for r in gone), strict=True))
    )
    assert retired.anomalies == (("double_free", len(gone)),)
    assert retired.peak_bytes_reserved == max(r.peak_bytes_reserved for r in gone)
    assert retired.lifetime_max_ns == 79
    assert ledger.statistics() == totals_before
    assert_rows_add_up(ledger)
    assert len(ledger.series("request.1")) == 0
    with pytest.raises(KeyError, match=r"^\"unknown component 'request.1' on 'cpu'"):
        ledger.component("request.1")
    assert ledger.snapshot().component(RETIRED, "cuda:0").allocations == 10


def test_a_component_retires_only_when_empty_and_idle_for_the_whole_while() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock, retire_after_ns=10 * SECOND)
    ledger.apply([ev(ALLOC, "holder"), ev(ALLOC, "idle"), ev(FREE, "idle")])
    ledger.sample()
    clock.now_ns += 9 * SECOND
    ledger.apply([ev(ALLOC, "busy"), ev(FREE, "busy")])
    ledger.sample()
    clock.now_ns += 1 * SECOND
    ledger.sample()
    assert [r.component for r in ledger.components()] == [RETIRED, "busy", "holder"]
    clock.now_ns += 60 * SECOND
    ledger.sample()
    assert [r.component for r in ledger.components()] == [RETIRED, "holder"]
    ledger.apply([ev(FREE, "holder")])  # empties it: the idle clock starts again
    ledger.sample()
    clock.now_ns += 10 * SECOND
    ledger.sample()
    assert [r.component for r in ledger.components()] == [RETIRED]
    assert ledger.component(RETIRED).allocations == 3


def test_a_returning_component_starts_a_fresh_account() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock, retire_after_ns=SECOND)
    ledger.apply([ev(ALLOC, "job", 1, 5000), ev(FREE, "job", 1, 5000)])
    ledger.sample()
    clock.now_ns += 2 * SECOND
    ledger.sample()
    ledger.apply([ev(FREE, "job", 1, 5000), ev(ALLOC, "job", 2, 100)])
    job = ledger.component("job")
    assert (job.allocations, job.frees, job.peak_bytes_reserved) == (1, 0, 100)
    assert job.anomalies == (("unknown_block", 1),)  # no longer known as a double free
    assert ledger.component(RETIRED).allocations == 1
    ledger.sample()
    assert ledger.series("job").bytes_reserved.tolist() == [100]
    assert_rows_add_up(ledger)


def test_retirement_can_be_turned_off_and_the_reserved_names_are_not_for_events() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock, retire_after_ns=None)
    ledger.apply([ev(ALLOC, "job"), ev(FREE, "job")])
    ledger.sample()
    clock.now_ns += 10**6 * SECOND
    ledger.sample()
    assert [r.component for r in ledger.components()] == ["job"]
    ledger.apply([ev(ALLOC, RETIRED), ev(ALLOC, "job", 5, owner=OTHER_OWNERS)])
    assert ledger.statistics().malformed == 2
    with pytest.raises(ValueError, match=r"^retire_after_ns must not be negative, got -1$"):
        Ledger(retire_after_ns=-1)
    with pytest.raises(ValueError, match=r"^owner_limit must be at least 1, got 0$"):
        Ledger(owner_limit=0)


# -- owners --------------------------------------------------------------------------------


def test_the_other_owners_row_is_the_exact_remainder() -> None:
    ledger = Ledger(clock=FakeClock(), owner_limit=3)
    sizes = [700, 100, 900, 0, 300, 50, 800]
    ledger.apply(
        [ev(ALLOC, "pool", n, size, owner=f"task-{n}") for n, size in enumerate(sizes)]
        + [ev(ALLOC, "pool", 99, 5000, owner="task-5"), ev(FREE, "pool", 99, 5000)]
    )
    owners = {o.owner: o for o in ledger.owners()}
    assert sorted(owners) == [OTHER_OWNERS, "task-0", "task-2", "task-6"]
    other = owners[OTHER_OWNERS]
    assert other.bytes_in_use == 100 + 0 + 300 + 50
    assert other.peak_bytes_in_use == 5050  # the highest peak of one owner left out
    assert_rows_add_up(ledger)
    assert ledger.snapshot().owners == ledger.owners()


def test_folded_owners_free_their_index_without_touching_a_live_blocks_owner() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock, owner_limit=2)
    expected: dict[int, str | None] = {}
    block = 0
    for wave in range(6):
        for number in range(7):
            owner, block = f"task-{wave}-{number}", block + 1
            size = 0 if number == 1 else 64 * (number + 1)
            ledger.apply([ev(ALLOC, "pool", block, size, owner=owner)])
            expected[block] = owner
            if number % 3 == 0:  # most requests end, some blocks stay lent, one cached
                ledger.apply([ev(FREE, "pool", block, size)])
                del expected[block]
            elif number == 5:
                ledger.apply([ev(RELEASE, "pool", block, size)])
                expected[block] = None
        ledger.sample()
        live = {b.block: b.owner for b in ledger.snapshot().blocks}
        assert live == expected
        assert_rows_add_up(ledger)
    assert len(ledger._owners) <= 2 * 2 + len({o for o in expected.values() if o})
    assert len(ledger._holders) < 6 * 7  # indexes came back and were used again
    assert ledger.owners()[0].owner == OTHER_OWNERS


# -- ticks that cost what changed ------------------------------------------------------------


def every_kind(block: int) -> list[list[MemoryEvent]]:
    """One batch per kind of change, each to be applied after a tick."""
    return [
        [ev(ALLOC, "pool", block, 512, owner="a")],
        [ev(RELEASE, "pool", block, 512)],
        [ev(ACQUIRE, "pool", block, 512, owner="b")],
        [ev(RESIZE, "pool", block, 2048, old_size=512)],
        [ev(TRANSFER, "pool", block, 100, dst="cuda:0")],
        [ev(FREE, "pool", block, 2048, ts=40)],
        [ev(FREE, "pool", block, 2048)],  # an anomaly only
        [ev(ALLOC, "pool", block, 64, device="cuda:0")],  # a new account
    ]


@pytest.mark.parametrize("step", range(8))
def test_a_tick_sees_a_change_made_through_every_kind_of_event(step: int) -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.apply([ev(ALLOC, "other", 1)])
    for batch in every_kind(5)[:step]:
        ledger.apply(batch)
    ledger.sample()
    before = ledger.snapshot("live", blocks=False, series=False)
    ledger.apply(every_kind(5)[step])
    ledger.sample()
    after = ledger.snapshot("live", blocks=False, series=False)
    fresh = tuple(ledger.component(r.component, r.device) for r in after.components)
    assert after.components == fresh
    assert after.components != before.components
    assert after.owners == tuple(sorted(after.owners, key=lambda o: o.owner))
    assert after.totals.anomalies == sum(r.anomaly_count for r in fresh)
    assert after.totals.live_blocks == sum(r.live_blocks for r in fresh)


class Reference:
    """Samples every component every tick, as the ledger once did."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.series: dict[tuple[str, str], TimeSeries] = {}

    def sample(self, ledger: Ledger, now_ns: int) -> None:
        for row in ledger.components():
            key = (row.component, row.device)
            one = self.series.get(key)
            if one is None:
                one = self.series[key] = TimeSeries(self.capacity)
            one.append(now_ns, row.bytes_reserved, row.bytes_in_use)


NAMES = ("a", "b", "c", "d")
steps = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), st.sampled_from(NAMES), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("sample"), st.integers(1, 5)),
        st.tuples(st.just("view"), st.booleans()),
    ),
    max_size=80,
)


@settings(max_examples=120, deadline=None)
@given(capacity=st.sampled_from([2, 4, 6]), window=st.sampled_from([2, 3, 8]), steps=steps)
def test_sampling_what_changed_gives_the_series_of_sampling_everything(
    capacity: int, window: int, steps: list[Any]
) -> None:
    clock = FakeClock(now_ns=0)
    ledger = Ledger(clock=clock, series_capacity=capacity, sample_window=window)
    reference = Reference(capacity)
    for step in steps:
        if step[0] == "apply":
            _, name, block, free = step
            live = {(b.component, b.block) for b in ledger.snapshot().blocks}
            kind = FREE if free and (name, block) in live else ALLOC
            ledger.apply([ev(kind, name, block, 100 * (block + 1))])
        elif step[0] == "sample":
            clock.now_ns += step[1]
            ledger.sample()
            reference.sample(ledger, clock.now_ns)
        elif step[1]:
            view = ledger.snapshot(blocks=False)
            shown = {(s.component, s.device): s.series for s in view.series}
            assert shown.pop((TOTAL, "*")) == ledger.series(TOTAL)
            assert shown == {key: one.view() for key, one in reference.series.items()}
        else:
            for component, device in reference.series:
                expected = reference.series[component, device].view()
                assert ledger.series(component, device) == expected


# -- the rows of a view ------------------------------------------------------------------


def stats(name: str, device: str = "cpu") -> ComponentStats:
    return ComponentStats(name, device, bytes_reserved=len(name))


def test_component_rows_behave_as_the_tuple_of_their_rows() -> None:
    rows = tuple(stats(name) for name in "abcdefg")
    chunked = ComponentRows._of_chunks((rows[:2], rows[2:3], rows[3:]), len(rows))
    for sequence in (chunked, ComponentRows(rows)):
        assert sequence == rows
        assert rows == sequence
        assert (sequence != rows) is False
        assert hash(sequence) == hash(rows)
        assert len(sequence) == 7
        assert bool(sequence)
        assert list(sequence) == list(rows)
        assert [sequence[i] for i in range(-7, 7)] == [rows[i] for i in range(-7, 7)]
        assert sequence[1:6:2] == rows[1:6:2]
        assert isinstance(sequence[::-1], tuple)
        assert list(reversed(sequence)) == list(reversed(rows))
        assert rows[4] in sequence
        assert stats("z") not in sequence
        assert (sequence.index(rows[3]), sequence.count(rows[3])) == (3, 1)
        assert pickle.loads(pickle.dumps(sequence)) == rows
        assert repr(sequence) == f"ComponentRows({rows!r})"
        assert sequence != rows[:-1]
        assert sequence != list(rows)
        with pytest.raises(IndexError, match=r"^ComponentRows index out of range$"):
            sequence[7]
        with pytest.raises(IndexError, match=r"^ComponentRows index out of range$"):
            sequence[-8]
    assert chunked == ComponentRows(rows)
    assert chunked != ComponentRows(rows[1:])
    assert ComponentRows() == ()
    assert not ComponentRows()


def test_a_view_shares_the_chunks_that_did_not_change_with_the_last_one() -> None:
    ledger = Ledger(clock=FakeClock())
    ledger.apply([ev(ALLOC, f"c{n:04d}", 1, 64) for n in range(4 * CHUNK_ROWS)])
    before = ledger.components()
    ledger.apply([ev(ALLOC, "c0100", 2, 64)])
    after = ledger.components()
    assert after is not before
    assert len(after) == len(before) == 4 * CHUNK_ROWS
    shared = [a is b for a, b in zip(after._chunks, before._chunks, strict=True)]
    assert shared.count(False) == 1
    assert after[100].live_blocks == 2
    assert before[100].live_blocks == 1
    assert ledger.components() is after  # nothing changed since


row_steps = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 39), st.sampled_from(["cpu", "cuda:0"])),
        st.tuples(st.just("free"), st.integers(0, 39), st.sampled_from(["cpu", "cuda:0"])),
        st.tuples(st.just("sample"), st.integers(0, 3)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(steps=row_steps, chunk_rows=st.sampled_from([1, 2, 3, 8]))
def test_the_rows_stay_sorted_and_fresh_as_accounts_come_change_and_retire(
    steps: list[Any], chunk_rows: int
) -> None:
    clock = FakeClock()
    with mock.patch("memactor.metrics._rows.CHUNK_ROWS", chunk_rows):
        ledger = Ledger(clock=clock, retire_after_ns=2 * SECOND)
        views: list[tuple[ComponentRows, tuple[ComponentStats, ...]]] = []
        for step in steps:
            if step[0] == "sample":
                clock.now_ns += step[1] * SECOND
                ledger.sample()
            else:
                kind, number, device = step
                ledger.apply(
                    [ev(ALLOC if kind == "alloc" else FREE, f"c{number}", 1, device=device)]
                )
            rows = ledger.components()
            keys = sorted([*ledger._accounts, *((RETIRED, d) for d in ledger._retired)])
            assert rows == tuple(ledger.component(*key) for key in keys)
            assert [rows[i] for i in range(len(rows))] == list(rows)
            views.append((rows, tuple(rows)))
        for view, copy in views:  # a view never changes once taken
            assert view == copy


@pytest.mark.parametrize("seed", range(4))
def test_sorted_rows_match_a_sorted_table_through_inserts_changes_and_removals(
    seed: int,
) -> None:
    rng = random.Random(seed)
    device = DeviceAccount("cpu")
    table: dict[str, Account] = {}
    with mock.patch("memactor.metrics._rows.CHUNK_ROWS", 4):
        rows = SortedRows()
        for step in range(3000):
            name = f"c{rng.randrange(60 if step < 2000 else 200):03d}"
            account = table.get(name)
            if account is not None and rng.random() < 0.4:
                rows.remove(table.pop(name))
            else:
                if account is None:
                    account = table[name] = Account(name, "cpu", device)
                rows.put(account, ComponentStats(name, "cpu", bytes_reserved=step))
            view = rows.view()
            assert [r.component for r in view] == sorted(table)
            assert len(view) == len(rows) == len(table)
        assert [r.bytes_reserved for r in view] == [rows_of(table[n]) for n in sorted(table)]


def rows_of(account: Account) -> int:
    assert account.row_chunk is not None
    return account.row_chunk.rows[account.row_chunk.position(account)].bytes_reserved


# -- remembered frees ----------------------------------------------------------------------


def test_the_remembered_frees_are_shared_out_of_one_budget() -> None:
    assert recent_frees_limit(0) == recent_frees_limit(1) == RECENT_FREES
    assert recent_frees_limit(RECENT_FREES_BUDGET // RECENT_FREES) == RECENT_FREES
    assert recent_frees_limit(RECENT_FREES_BUDGET // RECENT_FREES + 1) == RECENT_FREES // 2
    assert recent_frees_limit(RECENT_FREES_BUDGET // 100) == 64
    assert recent_frees_limit(10**9) == MIN_RECENT_FREES
    for accounts in range(1, 20_000, 97):
        limit = recent_frees_limit(accounts)
        assert limit & (limit - 1) == 0  # a power of two
        assert limit * accounts <= RECENT_FREES_BUDGET or limit == MIN_RECENT_FREES


def test_many_accounts_each_remember_fewer_frees_and_the_total_stays_bounded() -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock, retire_after_ns=SECOND)
    ledger.apply([ev(ALLOC, "busy", b, 8) for b in range(1001)])  # 1000 stays: never retires
    ledger.apply([ev(FREE, "busy", b, 8) for b in range(1000)])
    busy = ledger._accounts["busy", "cpu"]
    assert len(busy.freed) == 1000  # one generation of up to RECENT_FREES
    many = RECENT_FREES_BUDGET // MIN_RECENT_FREES + 1
    ledger.apply([ev(ALLOC, f"c{n}", 1, 8) for n in range(many)])
    ledger.sample()
    assert busy.free_limit == MIN_RECENT_FREES
    assert len(busy.freed) + len(busy.freed_before) == 0  # over the new share: forgotten
    ledger.apply([ev(FREE, "busy", 999, 8)])
    assert ledger.component("busy").anomalies == (("unknown_block", 1),)
    ledger.apply([ev(ALLOC, "busy", b, 8) for b in range(2000, 2200)])
    ledger.apply([ev(FREE, "busy", b, 8) for b in range(2000, 2200)])
    ledger.apply([ev(FREE, "busy", 2199, 8), ev(FREE, "busy", 2000, 8)])
    assert ledger.component("busy").anomalies == (("double_free", 1), ("unknown_block", 2))
    remembered = sum(len(a.freed) + len(a.freed_before) for a in ledger._accounts.values())
    assert remembered <= 2 * MIN_RECENT_FREES * len(ledger._accounts)
    ledger.apply([ev(FREE, f"c{n}", 1, 8) for n in range(many)])
    ledger.sample()
    clock.now_ns += 2 * SECOND
    ledger.sample()  # all but "busy" retire: the whole budget is shared again
    assert list(ledger._accounts) == [("busy", "cpu")]
    assert busy.free_limit == RECENT_FREES
