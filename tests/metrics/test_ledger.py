"""The ledger, one story at a time: pools, peaks, owners, devices and every anomaly."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from memactor.events import MAX_SIZE, EventKind, MemoryEvent
from memactor.metrics import (
    HISTOGRAM_BUCKETS,
    TOTAL,
    ComponentStats,
    DeviceStats,
    Ledger,
    LedgerStats,
    LiveBlock,
    OwnerStats,
    histogram_bucket_bounds,
)
from memactor.metrics._accounts import RECENT_FREES
from memactor.metrics._stats import component_stats

KiB = 1024


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now_ns: int = 1_000_000) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def ev(
    kind: EventKind | int,
    component: str = "pool",
    block: Any = 1,
    size: Any = 4 * KiB,
    *,
    device: Any = "cpu",
    owner: Any = "decode",
    ts: Any = 0,
    old_size: Any = 0,
    dst: Any = None,
) -> MemoryEvent:
    """An event built without checks, so that tests can send what no producer should."""
    return MemoryEvent.unchecked(kind, component, block, size, device, owner, ts, old_size, dst)  # type: ignore[arg-type]  # bad fields on purpose


ALLOC, FREE, RESIZE = EventKind.ALLOC, EventKind.FREE, EventKind.RESIZE
ACQUIRE, RELEASE, TRANSFER = EventKind.ACQUIRE, EventKind.RELEASE, EventKind.TRANSFER


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(clock=FakeClock())


def anomalies(ledger: Ledger, component: str = "pool", device: str = "cpu") -> dict[str, int]:
    return dict(ledger.component(component, device).anomalies)


# -- an empty ledger ---------------------------------------------------------------------


def test_a_fresh_ledger_knows_nothing(ledger: Ledger) -> None:
    assert ledger.statistics() == LedgerStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert ledger.components() == ()
    assert ledger.owners() == ()
    assert ledger.devices() == ()
    assert ledger.transfers() == ()
    assert len(ledger.series()) == 0
    snapshot = ledger.snapshot("empty")
    assert len(snapshot.blocks) == 0
    assert snapshot.components == ()


def test_apply_returns_how_many_events_it_took(ledger: Ledger) -> None:
    assert ledger.apply([]) == 0
    assert ledger.apply([ev(ALLOC, block=1), ev(ALLOC, block=2)]) == 2
    assert ledger.apply(ev(ALLOC, block=b) for b in range(3, 6)) == 3  # any iterable
    assert ledger.apply((ev(FREE, block=1),)) == 1
    assert ledger.events_applied == 6
    assert ledger.statistics().events_applied == 6


def test_statistics_are_frozen_copies(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC)])
    stats, component = ledger.statistics(), ledger.component("pool")
    ledger.apply([ev(FREE)])
    assert (stats.bytes_in_use, component.bytes_in_use) == (4 * KiB, 4 * KiB)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.bytes_in_use = 0  # type: ignore[misc]  # the point of the test


# -- the pool story: reserved versus in use ------------------------------------------------


def test_a_pool_caches_what_is_released_and_lends_it_again(ledger: Ledger) -> None:
    # The pool takes 4 KiB from the system and lends it to "decode" at once.
    ledger.apply([ev(ALLOC, owner="decode", ts=100)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_in_use, pool.bytes_cached) == (4 * KiB, 4 * KiB, 0)

    # "decode" gives it back: the pool still holds it, nobody uses it. Not a leak.
    ledger.apply([ev(RELEASE, owner="decode", ts=200)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_in_use, pool.bytes_cached) == (4 * KiB, 0, 4 * KiB)
    assert ledger.owners() == (OwnerStats("decode", 0, 4 * KiB),)
    assert ledger.snapshot().blocks.owners == ()  # the cached block belongs to nobody
    assert [block.owner for block in ledger.snapshot().blocks] == [None]

    # "encode" gets the same block from the cache: a pool hit, no new memory.
    ledger.apply([ev(ACQUIRE, owner="encode", ts=300)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_in_use) == (4 * KiB, 4 * KiB)
    assert (pool.allocations, pool.acquires, pool.hit_ratio) == (1, 1, 0.5)
    assert ledger.owners() == (
        OwnerStats("decode", 0, 4 * KiB),
        OwnerStats("encode", 4 * KiB, 4 * KiB),
    )

    # Back to the cache, then the pool trims it: the memory goes back to the system.
    ledger.apply([ev(RELEASE, owner="encode", ts=400), ev(FREE, ts=1_100)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_in_use, pool.live_blocks) == (0, 0, 0)
    assert (pool.releases, pool.frees) == (2, 1)
    assert (pool.peak_bytes_reserved, pool.peak_bytes_in_use) == (4 * KiB, 4 * KiB)
    assert (pool.lifetimes, pool.lifetime_total_ns, pool.lifetime_max_ns) == (1, 1_000, 1_000)
    assert pool.anomaly_count == 0
    assert ledger.statistics().anomalies == 0


def test_freeing_a_cached_block_does_not_touch_in_use(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, block=1), ev(ALLOC, block=2), ev(RELEASE, block=1)])
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (8 * KiB, 4 * KiB)
    ledger.apply([ev(FREE, block=1)])
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (4 * KiB, 4 * KiB)
    assert ledger.owners() == (OwnerStats("decode", 4 * KiB, 8 * KiB),)


# -- peaks ---------------------------------------------------------------------------------


def test_the_global_peak_is_the_peak_of_the_sum_not_the_sum_of_peaks(ledger: Ledger) -> None:
    # Two stages that never hold memory at the same time.
    ledger.apply([ev(ALLOC, "decode", size=100), ev(FREE, "decode", size=100)])
    ledger.apply([ev(ALLOC, "encode", size=60), ev(FREE, "encode", size=60)])
    peaks = [c.peak_bytes_in_use for c in ledger.components()]
    assert peaks == [100, 60]
    assert ledger.peak_bytes_in_use == 100  # not 160
    assert ledger.peak_bytes_reserved == 100
    # Now both at once: the true peak is the overlap.
    ledger.apply([ev(ALLOC, "decode", block=2, size=90), ev(ALLOC, "encode", block=2, size=50)])
    assert ledger.statistics().peak_bytes_in_use == 140
    assert sum(c.peak_bytes_in_use for c in ledger.components()) == 160  # unchanged


def test_each_device_keeps_its_own_true_peak(ledger: Ledger) -> None:
    ledger.apply(
        [
            ev(ALLOC, "upload", block=1, size=300, device="cuda:0"),
            ev(ALLOC, "decode", block=1, size=200, device="cuda:0"),
            ev(FREE, "upload", block=1, size=300, device="cuda:0"),
            ev(ALLOC, "decode", block=1, size=50, device="cpu"),
            ev(RELEASE, "decode", block=1, size=200, device="cuda:0"),
        ]
    )
    assert ledger.devices() == (
        DeviceStats("cpu", 50, 50, 50, 50),
        DeviceStats("cuda:0", 200, 0, 500, 500),
    )
    # The same component on two devices has two sets of books.
    assert ledger.component("decode", "cpu").bytes_in_use == 50
    assert ledger.component("decode", "cuda:0").bytes_cached == 200
    assert [(c.component, c.device) for c in ledger.components()] == [
        ("decode", "cpu"),
        ("decode", "cuda:0"),
        ("upload", "cuda:0"),
    ]


def test_a_resize_moves_reserved_and_in_use_and_their_peaks(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, size=100), ev(RESIZE, size=250, old_size=100)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_in_use, pool.peak_bytes_in_use) == (250, 250, 250)
    assert (pool.resizes, pool.bytes_allocated) == (1, 250)  # growth counts as allocated
    ledger.apply([ev(RESIZE, size=40, old_size=250)])
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.peak_bytes_reserved, pool.bytes_allocated) == (40, 250, 250)
    assert ledger.owners() == (OwnerStats("decode", 40, 250),)
    # A cached block that grows grows the reserve only.
    ledger.apply([ev(RELEASE, size=40), ev(RESIZE, size=1_000, old_size=40)])
    assert (ledger.bytes_reserved, ledger.bytes_in_use, ledger.peak_bytes_in_use) == (1_000, 0, 250)
    assert ledger.peak_bytes_reserved == 1_000
    # The histogram counts ALLOC sizes only.
    assert sum(ledger.component("pool").size_histogram) == 1


# -- owners ----------------------------------------------------------------------------------


def test_memory_is_attributed_to_whoever_holds_it(ledger: Ledger) -> None:
    ledger.apply(
        [
            ev(ALLOC, "pool", block=1, size=100, owner="decode"),
            ev(ALLOC, "chunks", block=1, size=30, owner="decode", device="cuda:0"),
            ev(ALLOC, "pool", block=2, size=10, owner="encode"),
            ev(RELEASE, "pool", block=1, size=100),
            ev(ACQUIRE, "pool", block=1, size=100, owner="encode"),
            ev(ALLOC, "pool", block=3, size=1, owner=""),  # an anonymous owner is an owner
        ]
    )
    assert ledger.owners() == (
        OwnerStats("", 1, 1),
        OwnerStats("decode", 30, 130),
        OwnerStats("encode", 110, 110),
    )
    blocks = sorted(ledger.snapshot().blocks)
    assert [(b.component, b.block, b.owner) for b in blocks] == [
        ("chunks", 1, "decode"),
        ("pool", 1, "encode"),
        ("pool", 2, "encode"),
        ("pool", 3, ""),
    ]


# -- transfers, lifetimes, histogram -----------------------------------------------------


def test_transfers_are_counted_per_component_and_route_and_move_no_bytes(ledger: Ledger) -> None:
    ledger.apply(
        [
            ev(TRANSFER, "upload", size=100, dst="cuda:0"),
            ev(TRANSFER, "upload", size=50, dst="cuda:0"),
            ev(TRANSFER, "upload", size=7, device="cuda:0", dst="cpu"),
            ev(TRANSFER, "download", size=1, device="cuda:0", dst="cpu"),
        ]
    )
    assert ledger.transfers() == (("cpu", "cuda:0", 2, 150), ("cuda:0", "cpu", 2, 8))
    upload = ledger.component("upload", "cpu")
    assert (upload.transfers, upload.bytes_transferred) == (2, 150)
    assert ledger.component("upload", "cuda:0").transfers == 1
    assert (ledger.bytes_reserved, ledger.bytes_in_use, ledger.statistics().live_blocks) == (
        0,
        0,
        0,
    )


def test_lifetimes_run_from_alloc_to_free(ledger: Ledger) -> None:
    ledger.apply(
        [
            ev(ALLOC, block=1, ts=1_000),
            ev(ALLOC, block=2, ts=1_000),
            ev(ALLOC, block=3, ts=5_000),
            ev(FREE, block=1, ts=1_500),
            ev(FREE, block=2, ts=4_000),
            ev(FREE, block=3, ts=5_000),  # zero: counted, adds nothing
        ]
    )
    pool = ledger.component("pool")
    assert (pool.lifetimes, pool.lifetime_total_ns, pool.lifetime_max_ns) == (3, 3_500, 3_000)
    assert pool.lifetime_mean_ns == pytest.approx(3_500 / 3)


def test_a_free_stamped_before_its_alloc_adds_no_lifetime(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, ts=9_000), ev(FREE, ts=1_000)])
    pool = ledger.component("pool")
    assert (pool.lifetimes, pool.lifetime_total_ns, pool.lifetime_max_ns) == (1, 0, 0)
    assert pool.lifetime_mean_ns == 0.0
    assert ComponentStats("x", "cpu").lifetime_mean_ns == 0.0
    assert ComponentStats("x", "cpu").hit_ratio == 0.0


def test_the_ledgers_fast_constructor_builds_the_very_value_of_the_public_one() -> None:
    fields = dataclasses.fields(ComponentStats)
    values: list[Any] = ["pool", "cuda:0"]
    values += [n * 1_000_003 for n in range(1, len(fields) - 3)]  # every count distinct
    values[15:15] = [tuple(range(HISTOGRAM_BUCKETS))]
    values.append((("double_free", 2), ("unknown_block", 1)))
    assert [f.name for f in fields][15] == "size_histogram"
    built = component_stats(*values)
    assert type(built) is ComponentStats
    assert built == ComponentStats(*values)
    assert dataclasses.astuple(built) == tuple(values)
    assert hash(built) == hash(ComponentStats(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.bytes_in_use = 0  # type: ignore[misc]  # the point of the test


@pytest.mark.parametrize(
    ("size", "bucket"),
    [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (4095, 12), (4096, 13), (MAX_SIZE, 48)],
)
def test_alloc_sizes_fill_power_of_two_buckets(ledger: Ledger, size: int, bucket: int) -> None:
    ledger.apply([ev(ALLOC, size=size)])
    histogram = ledger.component("pool").size_histogram
    assert len(histogram) == HISTOGRAM_BUCKETS
    assert histogram[bucket] == 1
    assert sum(histogram) == 1
    low, high = histogram_bucket_bounds(bucket)
    assert low <= size <= high


def test_histogram_buckets_tile_the_sizes() -> None:
    assert histogram_bucket_bounds(0) == (0, 0)
    for bucket in range(1, HISTOGRAM_BUCKETS):
        low, high = histogram_bucket_bounds(bucket)
        assert low == histogram_bucket_bounds(bucket - 1)[1] + 1
        assert high == 2 * low - 1
    assert histogram_bucket_bounds(HISTOGRAM_BUCKETS - 1)[1] == MAX_SIZE


# -- anomalies: counted per component, never applied, never raised ----------------------


def test_freeing_a_block_nobody_allocated_is_an_unknown_block(ledger: Ledger) -> None:
    ledger.apply([ev(FREE, block=7)])
    assert anomalies(ledger) == {"unknown_block": 1}
    assert ledger.component("pool").frees == 0


@pytest.mark.parametrize("kind", [RELEASE, ACQUIRE, RESIZE])
def test_using_a_block_nobody_allocated_is_an_unknown_block(
    ledger: Ledger, kind: EventKind
) -> None:
    ledger.apply([ev(kind, block=7, old_size=4 * KiB)])
    assert anomalies(ledger) == {"unknown_block": 1}
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (0, 0)


def test_freeing_twice_is_a_double_free(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC), ev(FREE), ev(FREE)])
    assert anomalies(ledger) == {"double_free": 1}
    assert ledger.component("pool").frees == 1
    assert ledger.bytes_reserved == 0  # not negative


@pytest.mark.parametrize("kind", [RELEASE, ACQUIRE, RESIZE])
def test_touching_a_freed_block_is_a_use_after_free(ledger: Ledger, kind: EventKind) -> None:
    ledger.apply([ev(ALLOC), ev(FREE), ev(kind, old_size=4 * KiB)])
    assert anomalies(ledger) == {"use_after_free": 1}
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (0, 0)


def test_releasing_twice_is_a_double_release(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC), ev(RELEASE), ev(RELEASE)])
    assert anomalies(ledger) == {"double_release": 1}
    assert ledger.bytes_in_use == 0  # not -4 KiB
    assert ledger.owners() == (OwnerStats("decode", 0, 4 * KiB),)


def test_acquiring_a_lent_block_is_a_double_acquire(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, owner="decode"), ev(ACQUIRE, owner="encode")])
    assert anomalies(ledger) == {"double_acquire": 1}
    assert ledger.bytes_in_use == 4 * KiB  # not 8
    assert [block.owner for block in ledger.snapshot().blocks] == ["decode"]


def test_allocating_a_live_block_again_is_a_duplicate_alloc(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, size=100, ts=1), ev(ALLOC, size=999, owner="other", ts=2)])
    assert anomalies(ledger) == {"duplicate_alloc": 1}
    assert list(ledger.snapshot().blocks) == [LiveBlock("pool", "cpu", 1, 100, "decode", 1)]
    assert ledger.owners() == (OwnerStats("decode", 100, 100),)


def test_a_block_id_may_be_reused_after_its_free(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, size=100), ev(FREE, size=100), ev(ALLOC, size=200), ev(FREE, size=200)])
    assert anomalies(ledger) == {}
    assert ledger.component("pool").allocations == 2
    ledger.apply([ev(FREE, size=200)])
    assert anomalies(ledger) == {"double_free": 1}


@pytest.mark.parametrize("kind", [FREE, RELEASE, ACQUIRE])
def test_a_wrong_size_is_counted_and_the_recorded_size_applied(
    ledger: Ledger, kind: EventKind
) -> None:
    setup = [ev(ALLOC, size=100)] + ([ev(RELEASE, size=100)] if kind is ACQUIRE else [])
    ledger.apply([*setup, ev(kind, size=5)])
    assert anomalies(ledger) == {"size_mismatch": 1}
    expected_in_use = {FREE: 0, RELEASE: 0, ACQUIRE: 100}[kind]
    expected_reserved = {FREE: 0, RELEASE: 100, ACQUIRE: 100}[kind]
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (expected_reserved, expected_in_use)


def test_a_resize_from_the_wrong_old_size_applies_the_recorded_one(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, size=100), ev(RESIZE, size=150, old_size=120)])
    assert anomalies(ledger) == {"size_mismatch": 1}
    pool = ledger.component("pool")
    assert (pool.bytes_reserved, pool.bytes_allocated) == (150, 150)  # +50, not +30


@pytest.mark.parametrize("size", [-1, -4096, MAX_SIZE + 1, 2**64])
@pytest.mark.parametrize("kind", [ALLOC, RESIZE, TRANSFER])
def test_a_size_out_of_range_is_a_bad_size(ledger: Ledger, kind: EventKind, size: int) -> None:
    if kind is RESIZE:
        ledger.apply([ev(ALLOC, size=100)])
    ledger.apply([ev(kind, size=size, old_size=100, dst="cuda:0")])
    assert anomalies(ledger) == {"bad_size": 1}
    assert ledger.bytes_reserved == (100 if kind is RESIZE else 0)
    assert ledger.transfers() == ()


@pytest.mark.parametrize("dst", [None, "gpu", "cuda:01", "cpu\n", 5])
def test_a_transfer_to_nowhere_is_a_bad_device(ledger: Ledger, dst: object) -> None:
    ledger.apply([ev(TRANSFER, dst=dst)])
    assert anomalies(ledger) == {"bad_device": 1}
    assert ledger.transfers() == ()
    assert ledger.component("pool").transfers == 0


@pytest.mark.parametrize("kind", [6, 99, -1, "ALLOC", None])
def test_an_unknown_kind_is_counted(ledger: Ledger, kind: Any) -> None:
    ledger.apply([ev(kind)])
    assert anomalies(ledger) == {"unknown_kind": 1}
    assert ledger.statistics().live_blocks == 0


@pytest.mark.parametrize("block", [-1, 2**63, "7", 1.0, True, None])
def test_an_alloc_of_a_block_id_a_snapshot_cannot_store_is_a_bad_block(
    ledger: Ledger, block: object
) -> None:
    ledger.apply([ev(ALLOC, block=block)])
    assert anomalies(ledger) == {"bad_block": 1}
    assert len(ledger.snapshot().blocks) == 0  # and the snapshot still works


@pytest.mark.parametrize("ts", [2**63, -(2**63) - 1])
def test_an_alloc_time_a_snapshot_cannot_store_is_a_bad_timestamp(ledger: Ledger, ts: int) -> None:
    ledger.apply([ev(ALLOC, ts=ts)])
    assert anomalies(ledger) == {"bad_timestamp": 1}
    assert len(ledger.snapshot().blocks) == 0


def test_the_extreme_storable_values_are_fine(ledger: Ledger) -> None:
    ledger.apply(
        [
            ev(ALLOC, block=2**63 - 1, size=MAX_SIZE, ts=2**63 - 1),
            ev(ALLOC, block=0, size=0, ts=-(2**63)),
        ]
    )
    assert anomalies(ledger) == {}
    assert sorted(ledger.snapshot().blocks) == [
        LiveBlock("pool", "cpu", 0, 0, "decode", -(2**63)),
        LiveBlock("pool", "cpu", 2**63 - 1, MAX_SIZE, "decode", 2**63 - 1),
    ]


def test_anomalies_stay_with_their_component(ledger: Ledger) -> None:
    ledger.apply([ev(ALLOC, "decode"), ev(FREE, "encode"), ev(FREE, "encode", device="cuda:0")])
    assert anomalies(ledger, "decode") == {}
    assert anomalies(ledger, "encode") == {"unknown_block": 1}
    assert anomalies(ledger, "encode", "cuda:0") == {"unknown_block": 1}
    assert ledger.statistics().anomalies == 2
    assert ledger.component("decode").bytes_in_use == 4 * KiB


def test_anomalies_are_sorted_by_name(ledger: Ledger) -> None:
    ledger.apply([ev(FREE, block=9), ev(99), ev(ALLOC, size=-1), ev(FREE, block=9)])
    assert ledger.component("pool").anomalies == (
        ("bad_size", 1),
        ("unknown_block", 2),
        ("unknown_kind", 1),
    )
    assert ledger.component("pool").anomaly_count == 4


def test_a_double_free_is_recognised_within_the_recent_frees_window(ledger: Ledger) -> None:
    # Freed ids are remembered in two generations of RECENT_FREES: a free that
    # comes back within RECENT_FREES frees is always a double free, and one
    # that comes back after 2 * RECENT_FREES others is a stranger.
    ledger.apply([ev(ALLOC, block=-1 + 1), ev(FREE, block=0)])
    ledger.apply(ev(ALLOC, block=b) for b in range(1, RECENT_FREES))
    ledger.apply(ev(FREE, block=b) for b in range(1, RECENT_FREES))
    ledger.apply([ev(FREE, block=0)])
    assert anomalies(ledger) == {"double_free": 1}
    ledger.apply(ev(ALLOC, block=b) for b in range(RECENT_FREES, 3 * RECENT_FREES))
    ledger.apply(ev(FREE, block=b) for b in range(RECENT_FREES, 3 * RECENT_FREES))
    ledger.apply([ev(FREE, block=0)])
    assert anomalies(ledger) == {"double_free": 1, "unknown_block": 1}


# -- malformed events: counted, attributed to nobody, changing nothing ---------------------


MALFORMED: list[Any] = [
    None,
    42,
    "not an event",
    (ALLOC, "pool", 1, 10, "cpu", "o", 0, 0, None, ()),
    (ALLOC, "pool", 1, 10, "cpu", "o", 0, 0, None, (), 0, "extra"),
    (ALLOC, "", 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, 5, 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, None, 1, 10, None, "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "gpu", "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "cpu\n", "o", 0, 0, None, (), 0),
    (ALLOC, ["pool"], 1, 10, "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, "10", "cpu", "o", 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "cpu", None, 0, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "cpu", "o", None, 0, None, (), 0),
    (ALLOC, "pool", 1, 10, "cpu", "o", 1.5, 0, None, (), 0),
    (ALLOC, "pool", 1, 1.5, "cpu", "o", 0, 0, None, (), 0),
    (TRANSFER, "pool", 1, 1.5, "cpu", "o", 0, 0, "cuda:0", (), 0),
    (TRANSFER, "pool", 1, "10", "cpu", "o", 0, 0, "cuda:0", (), 0),
]


@pytest.mark.parametrize("event", MALFORMED)
def test_a_malformed_event_is_counted_and_changes_nothing(event: Any) -> None:
    # Two ledgers get the same events, one with a malformed event in the middle of a
    # batch; apart from the counters of events, their books must be the same.
    events = [ev(ALLOC, block=9, owner="keeper"), ev(TRANSFER, dst="cuda:0")]
    later = [ev(ALLOC, block=10, owner="keeper"), ev(RELEASE, block=9)]
    ledger, control = Ledger(clock=FakeClock()), Ledger(clock=FakeClock())
    assert ledger.apply([*events, event, *later]) == 5
    control.apply([*events, *later])

    def books(one: Ledger) -> tuple[object, ...]:
        return (
            one.components(),
            one.owners(),
            one.devices(),
            one.transfers(),
            one.snapshot().blocks,
        )

    assert books(ledger) == books(control)
    stats = ledger.statistics()
    assert (stats.malformed, stats.anomalies, stats.events_applied) == (1, 0, 5)
    assert stats == dataclasses.replace(control.statistics(), malformed=1, events_applied=5)


@pytest.mark.parametrize("kind", [FREE, RESIZE, ACQUIRE])
def test_a_malformed_event_on_a_live_block_changes_nothing(ledger: Ledger, kind: EventKind) -> None:
    # Each branch must fail before it touches the books: a FREE with no usable time,
    # a RESIZE to a non-integer size, an ACQUIRE by a non-string owner.
    ledger.apply(
        [ev(ALLOC, size=100, ts=10)] + ([ev(RELEASE, size=100)] if kind is ACQUIRE else [])
    )
    before = (ledger.components(), ledger.owners(), ledger.devices())
    bad = {
        FREE: ev(FREE, size=5, ts=None),
        RESIZE: ev(RESIZE, size=1.5, old_size=7),
        ACQUIRE: ev(ACQUIRE, size=5, owner=None),
    }[kind]
    ledger.apply([bad])
    assert (ledger.components(), ledger.owners(), ledger.devices()) == before
    assert (ledger.statistics().malformed, ledger.statistics().anomalies) == (1, 0)


def test_an_event_with_neither_component_nor_device_does_not_crash(ledger: Ledger) -> None:
    # None is what a naive "last component seen" cache starts from.
    assert ledger.apply([(ALLOC, None, 1, 10, None, "o", 0, 0, None, (), 0)] * 2) == 2
    assert ledger.statistics().malformed == 2


def test_equal_names_that_are_different_objects_share_books(ledger: Ledger) -> None:
    # The ledger may cache the last account by identity; equality must decide.
    names = ["".join(["po", "ol"]) for _ in range(3)]
    assert names[0] is not names[1]
    ledger.apply(
        [ev(ALLOC, names[0], block=1), ev(ALLOC, names[1], block=2), ev(FREE, names[2], block=1)]
    )
    assert [c.component for c in ledger.components()] == ["pool"]
    assert ledger.component("pool").live_blocks == 1


def test_dropped_events_are_counted(ledger: Ledger) -> None:
    ledger.note_dropped(3)
    ledger.note_dropped(0)
    assert ledger.statistics().events_dropped == 3
    with pytest.raises(ValueError, match=r"^count must not be negative, got -1$"):
        ledger.note_dropped(-1)


# -- reading -------------------------------------------------------------------------------


def test_an_unknown_component_is_a_key_error_naming_it_and_the_known_ones(ledger: Ledger) -> None:
    with pytest.raises(KeyError, match=r"unknown component 'pool' on 'cpu' \(known: none yet\)"):
        ledger.component("pool")
    ledger.apply([ev(ALLOC, "decode"), ev(ALLOC, "pool", device="cuda:0")])
    with pytest.raises(
        KeyError, match=r"unknown component 'pool' on 'cpu' \(known: decode@cpu, pool@cuda:0\)"
    ):
        ledger.component("pool")


def test_every_component_statistic_field(ledger: Ledger) -> None:
    clock = FakeClock()
    ledger = Ledger(clock=clock)
    ledger.apply(
        [
            ev(ALLOC, block=1, size=100, ts=10),
            ev(ALLOC, block=2, size=5_000, ts=20),
            ev(RELEASE, block=1, size=100),
            ev(ACQUIRE, block=1, size=100, owner="encode"),
            ev(RELEASE, block=1, size=100),
            ev(RESIZE, block=2, size=6_000, old_size=5_000),
            ev(FREE, block=1, size=100, ts=110),
            ev(TRANSFER, block=2, size=6_000, dst="cuda:0"),
            ev(FREE, block=1, size=100, ts=120),
        ]
    )
    assert ledger.component("pool") == ComponentStats(
        component="pool",
        device="cpu",
        bytes_reserved=6_000,
        bytes_in_use=6_000,
        peak_bytes_reserved=6_100,
        peak_bytes_in_use=6_000,
        live_blocks=1,
        allocations=2,
        frees=1,
        acquires=1,
        releases=2,
        resizes=1,
        transfers=1,
        bytes_allocated=6_100,
        bytes_transferred=6_000,
        size_histogram=tuple(1 if i in (7, 13) else 0 for i in range(HISTOGRAM_BUCKETS)),
        lifetimes=1,
        lifetime_total_ns=100,
        lifetime_max_ns=100,
        anomalies=(("double_free", 1),),
    )
    assert ledger.statistics() == LedgerStats(
        bytes_reserved=6_000,
        bytes_in_use=6_000,
        peak_bytes_reserved=6_100,
        peak_bytes_in_use=6_000,
        live_blocks=1,
        events_applied=9,
        events_dropped=0,
        anomalies=1,
        malformed=0,
    )


# -- sampling ------------------------------------------------------------------------------


def test_sampling_records_each_component_and_the_total() -> None:
    clock = FakeClock(now_ns=100)
    ledger = Ledger(clock=clock)
    ledger.apply([ev(ALLOC, "decode", size=10), ev(ALLOC, "encode", size=5)])
    ledger.sample()
    clock.now_ns = 200
    ledger.apply([ev(RELEASE, "decode", size=10)])
    ledger.sample()
    ledger.sample(now_ns=250)
    decode = ledger.series("decode")
    assert decode.times_ns.tolist() == [100, 200, 250]
    assert decode.bytes_reserved.tolist() == [10, 10, 10]
    assert decode.bytes_in_use.tolist() == [10, 0, 0]
    total = ledger.series(TOTAL)
    assert total.bytes_reserved.tolist() == [15, 15, 15]
    assert total.bytes_in_use.tolist() == [15, 5, 5]
    assert ledger.series() == total
    assert len(ledger.series("decode", "cuda:0")) == 0
    assert len(ledger.series("never")) == 0


def test_a_snapshot_without_series_keeps_everything_else() -> None:
    ledger = Ledger(clock=FakeClock(now_ns=100))
    ledger.apply([ev(ALLOC, "decode", size=10)])
    ledger.sample()
    full = ledger.snapshot("view", blocks=False)
    lean = ledger.snapshot("view", blocks=False, series=False)
    assert [s.component for s in full.series] == ["decode", TOTAL]
    assert lean.series == ()
    assert (lean.totals, lean.components, lean.owners) == (
        full.totals,
        full.components,
        full.owners,
    )
    assert len(ledger.snapshot(series=False).blocks) == 1


def test_series_capacity_bounds_each_series() -> None:
    ledger = Ledger(clock=FakeClock(), series_capacity=8)
    ledger.apply([ev(ALLOC)])
    for now in range(100):
        ledger.sample(now_ns=now)
    assert len(ledger.series("pool")) <= 8
    assert len(ledger.series(TOTAL)) <= 8


def test_the_clock_is_the_ledgers_now() -> None:
    clock = FakeClock(now_ns=42)
    ledger = Ledger(clock=clock)
    assert ledger.now_ns() == 42
    assert ledger.snapshot().monotonic_ns == 42
    assert ledger.snapshot(now_ns=7).monotonic_ns == 7


def test_numpy_integers_count_as_integers_and_floats_change_nothing() -> None:
    import numpy as np

    ledger = Ledger(clock=lambda: 0)
    ledger.apply(
        [
            (EventKind.ALLOC, "a", 1, np.int64(4096), "cpu", "o", np.int64(5), 0, None, (), 0),
            (EventKind.FREE, "a", 1, 4096, "cpu", "", 7.5, 0, None, (), 0),  # malformed: kept
            (EventKind.FREE, "a", 1, np.int64(4096), "cpu", "", np.int64(15), 0, None, (), 0),
        ]
    )
    stats = ledger.component("a")
    assert (stats.allocations, stats.frees, stats.bytes_in_use) == (1, 1, 0)
    assert (stats.lifetime_total_ns, type(stats.lifetime_total_ns)) == (10, int)
    assert ledger.statistics().malformed == 1
