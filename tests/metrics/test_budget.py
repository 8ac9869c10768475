"""The one budget rule: ``peak <= budget`` passes, and an unknown name is an error naming it."""

from __future__ import annotations

import pytest

from memactor import EventKind, Ledger, MemoryEvent
from memactor.metrics import BudgetVerdict, Snapshot, UnknownBudgetTargetError, judge_budget

KiB = 1 << 10


def snapshot() -> Snapshot:
    """Peaks in use: decode 3 KiB on cpu; gpu 2 KiB on cuda:0 and 1 KiB on cpu; pool 4 KiB
    (a block it then caches, before it lends 1 KiB more: 5 KiB reserved); the total's
    true peak in use is 5 KiB (decode and gpu@cuda:0 at once)."""
    ledger = Ledger(clock=lambda: 0)

    def event(kind: EventKind, component: str, block: int, size: int, device: str = "cpu") -> None:
        ledger.apply([MemoryEvent(kind, component, block, size, device, "w", 0)])

    event(EventKind.ALLOC, "decode", 1, 3 * KiB)
    event(EventKind.ALLOC, "gpu", 1, 2 * KiB, "cuda:0")
    event(EventKind.FREE, "decode", 1, 3 * KiB)
    event(EventKind.FREE, "gpu", 1, 2 * KiB, "cuda:0")
    event(EventKind.ALLOC, "gpu", 2, KiB)
    event(EventKind.FREE, "gpu", 2, KiB)
    event(EventKind.ALLOC, "pool", 1, 4 * KiB)
    event(EventKind.RELEASE, "pool", 1, 4 * KiB)
    event(EventKind.ALLOC, "pool", 2, KiB)
    return ledger.snapshot("end")


@pytest.mark.parametrize(
    ("budget_bytes", "over"),
    [(5 * KiB - 1, True), (5 * KiB, False), (5 * KiB + 1, False)],
)
def test_a_peak_equal_to_its_budget_is_within_it(budget_bytes: int, over: bool) -> None:
    (verdict,) = judge_budget(snapshot(), budget_bytes)
    assert verdict == BudgetVerdict(None, None, 5 * KiB, budget_bytes)
    assert verdict.over is over


def test_a_component_has_a_verdict_per_device() -> None:
    verdicts = judge_budget(snapshot(), 2 * KiB, component="gpu")
    assert sorted(verdicts, key=lambda v: str(v.device)) == [
        BudgetVerdict("gpu", "cpu", KiB, 2 * KiB),
        BudgetVerdict("gpu", "cuda:0", 2 * KiB, 2 * KiB),
    ]
    assert not any(v.over for v in verdicts)
    assert judge_budget(snapshot(), KiB, component="gpu", device="cuda:0")[0].over


def test_a_device_is_judged_by_its_true_peak() -> None:
    assert judge_budget(snapshot(), 2 * KiB, device="cuda:0") == [
        BudgetVerdict(None, "cuda:0", 2 * KiB, 2 * KiB)
    ]


def test_reserved_reads_the_peak_reserved_instead() -> None:
    assert judge_budget(snapshot(), 4 * KiB, component="pool") == [
        BudgetVerdict("pool", "cpu", 4 * KiB, 4 * KiB)
    ]
    (verdict,) = judge_budget(snapshot(), 4 * KiB, component="pool", reserved=True)
    assert (verdict.peak_bytes, verdict.over) == (5 * KiB, True)


def test_an_unknown_device_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(
        UnknownBudgetTargetError,
        match=r"^no device 'cuda:1' in the snapshot \(devices: cpu, cuda:0\)$",
    ):
        judge_budget(snapshot(), KiB, device="cuda:1")


@pytest.mark.parametrize(
    ("component", "device", "name"),
    [("decoder", None, "decoder"), ("decode", "cuda:0", "decode@cuda:0")],
)
def test_an_unknown_component_is_an_error_naming_the_known_ones(
    component: str, device: str | None, name: str
) -> None:
    with pytest.raises(UnknownBudgetTargetError) as raised:
        judge_budget(snapshot(), KiB, component=component, device=device)
    assert str(raised.value) == (
        f"unknown component {name!r} in the snapshot "
        "(components: decode@cpu, gpu@cpu, gpu@cuda:0, pool@cpu)"
    )


def test_an_empty_snapshot_says_it_holds_none() -> None:
    empty = Ledger(clock=lambda: 0).snapshot()
    with pytest.raises(UnknownBudgetTargetError, match=r"\(components: none\)$"):
        judge_budget(empty, KiB, component="pool")
    with pytest.raises(UnknownBudgetTargetError, match=r"\(devices: none\)$"):
        judge_budget(empty, KiB, device="cpu")
    assert not judge_budget(empty, 0)[0].over
