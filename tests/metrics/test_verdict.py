"""Leak verdicts: floors that rise in every window, stale blocks, owners, plateaus, steps.

Each test drives a real ledger with seeded events and samples it as the metrics actor
would (10 Hz), then judges the snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import LeakVerdict, Ledger, Verdict, VerdictConfig, judge_leaks

KiB = 1024
SECOND = 1_000_000_000
TICK = SECOND // 10


class Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def event(
    kind: EventKind, component: str, block: int, size: int, owner: str, ts: int
) -> MemoryEvent:
    return MemoryEvent(kind, component, block, size, "cpu", owner, ts)


def stamped(
    clock: Clock, kind: EventKind, component: str, block: int, size: int, owner: str = "w"
) -> MemoryEvent:
    return event(kind, component, block, size, owner, clock.now_ns)


def run(
    seconds: int, step: Callable[[int, int, Callable[..., None]], None], *, seed: int = 1
) -> Ledger:
    """Call *step(tick, now_ns, emit)* every 100 ms for *seconds*, sampling each tick."""
    clock = Clock()
    ledger = Ledger(clock=clock)
    for tick in range(seconds * 10):
        clock.now_ns = tick * TICK
        batch: list[MemoryEvent] = []
        step(tick, clock.now_ns, lambda *fields, into=batch: into.append(stamped(clock, *fields)))
        ledger.apply(batch)
        ledger.sample()
    return ledger


def churn(seed: int = 1, *, leak_every: int = 0, orphans_at: int = -1, orphans: int = 0,
          startup: int = 0) -> Callable[[int, int, Callable[..., None]], None]:  # fmt: skip
    """``parse``: two 16 KiB blocks a tick, each freed one to three ticks later; every
    *leak_every* ticks one block of owner ``leaky`` is never freed; at tick *orphans_at*,
    *orphans* blocks of owner ``orphan`` are never freed; at tick 1, *startup* blocks of
    owner ``setup`` are never freed."""
    rng = random.Random(seed)
    due: dict[int, list[int]] = {}
    ids = iter(range(1, 1 << 30))

    def step(tick: int, now: int, emit: Callable[..., None]) -> None:
        for block in due.pop(tick, []):
            emit(EventKind.FREE, "parse", block, 16 * KiB)
        for _ in range(2):
            block = next(ids)
            emit(EventKind.ALLOC, "parse", block, 16 * KiB)
            due.setdefault(tick + rng.randint(1, 3), []).append(block)
        if leak_every and tick % leak_every == 0:
            emit(EventKind.ALLOC, "parse", next(ids), 16 * KiB, "leaky")
        if tick == orphans_at:
            for _ in range(orphans):
                emit(EventKind.ALLOC, "parse", next(ids), 16 * KiB, "orphan")
        if tick == 1:
            for _ in range(startup):
                emit(EventKind.ALLOC, "parse", next(ids), 16 * KiB, "setup")

    return step


def verdict_of(ledger: Ledger, component: str = "parse") -> LeakVerdict:
    (found,) = [v for v in judge_leaks(ledger.snapshot()) if v.component == component]
    return found


def test_a_steady_leak_is_a_leak_with_its_numbers_and_its_owner() -> None:
    found = verdict_of(run(60, churn(leak_every=5)))
    assert found.verdict is Verdict.LEAK
    assert found.flagged
    assert found.windows == 4
    assert found.windows_rising == 3
    # The last window's floor is at its start, 45 s in: 90 blocks leaked by then.
    assert 90 * 16 * KiB <= found.floor_rise_bytes <= 92 * 16 * KiB
    assert found.reason.startswith("parse: the in-use floor rose in each of 4 windows, +")
    (owner,) = found.owners
    assert (owner.owner, owner.verdict) == ("leaky", Verdict.LEAK)
    assert "left behind in every one of 4 windows of the run" in owner.reason
    assert found.to_dict()["verdict"] == "leak"
    assert found.owners[0].to_dict()["owner"] == "leaky"


def test_churn_alone_is_ok_and_says_no_block_is_stale() -> None:
    found = verdict_of(run(60, churn()))
    assert found.verdict is Verdict.OK
    assert not found.flagged
    assert found.stale_blocks == 0
    assert found.owners == ()
    assert 100_000_000 <= found.typical_lifetime_ns <= 300_000_000
    assert found.reason.startswith("parse: no consistent growth, no block stale")


def test_blocks_held_but_dead_without_growth_are_suspect() -> None:
    found = verdict_of(run(60, churn(orphans_at=200, orphans=10)))
    assert found.verdict is Verdict.SUSPECT
    assert (found.stale_blocks, found.stale_bytes) == (10, 160 * KiB)
    assert found.reason.startswith("parse: 10 blocks, 160 KiB, older than 10x the typical ")
    assert "held but dead" in found.reason
    assert [o.owner for o in found.owners] == ["orphan"]


def test_buffers_set_up_at_start_are_not_stale() -> None:
    found = verdict_of(run(60, churn(startup=10)))
    assert found.verdict is Verdict.OK
    assert found.stale_blocks == 0


def test_a_cache_that_fills_then_holds_is_a_plateau() -> None:
    def fill(tick: int, now: int, emit: Callable[..., None]) -> None:
        if 10 <= tick < 150:
            emit(EventKind.ALLOC, "cache", tick, 32 * KiB)

    found = verdict_of(run(60, fill), "cache")
    assert found.verdict is Verdict.PLATEAU
    assert not found.flagged
    assert 130 * 32 * KiB <= found.floor_rise_bytes <= 140 * 32 * KiB
    assert "a cache warming up or a pool filling" in found.reason


def test_a_step_is_reported_with_its_size_and_time() -> None:
    found = verdict_of(run(60, churn(orphans_at=300, orphans=40)))
    assert found.verdict is Verdict.SUSPECT
    assert found.step_at_s == pytest.approx(30.0, abs=0.2)
    assert found.step_bytes == pytest.approx(40 * 16 * KiB, rel=0.1)
    assert "; it stepped +" in found.reason
    assert " at 30 s" in found.reason


def test_too_short_a_run_is_ok_for_want_of_evidence() -> None:
    def hold(tick: int, now: int, emit: Callable[..., None]) -> None:
        emit(EventKind.ALLOC, "buffers", tick + 1, KiB)

    found = verdict_of(run(1, hold), "buffers")
    assert found.verdict is Verdict.OK
    assert found.reason == "buffers: too early to judge (1 s of samples, judged from 20 s)"
    (anyway,) = judge_leaks(run(1, hold).snapshot(), VerdictConfig(min_duration_s=0))
    assert anyway.reason == "buffers: too few samples to judge growth, and no freed blocks to age"


def test_verdicts_come_worst_first() -> None:
    def two(tick: int, now: int, emit: Callable[..., None]) -> None:
        emit(EventKind.ALLOC, "grows", tick + 1, 64 * KiB)
        emit(EventKind.ALLOC, "idle", 1, KiB) if tick == 0 else None

    verdicts = judge_leaks(run(30, two).snapshot())
    assert [(v.component, v.verdict) for v in verdicts] == [
        ("grows", Verdict.LEAK),
        ("idle", Verdict.OK),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"windows": 1}, "^windows must be at least 2, got 1$"),
        ({"stale_multiple": 1.0}, "^stale_multiple must exceed 1"),
        ({"startup_fraction": 1.0}, "^startup_fraction must be within"),
        ({"min_stale_blocks": 0}, "^min_points_per_window and min_stale_blocks"),
        ({"min_growth_bytes": -1}, "^min_growth_bytes must not be negative"),
    ],
)
def test_bad_config_names_the_field(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerdictConfig(**fields)  # type: ignore[arg-type]  # int fields get ints here
