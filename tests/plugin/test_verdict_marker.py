"""``memactor_no_leaks(verdict=True)``: the leak verdict fails a test whose in-use bytes
stayed within the tolerance, and a failure's message carries the verdict's sentences."""

from __future__ import annotations

import pytest

from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, Snapshot
from memactor.pytest_plugin._markers import NoLeaks

KiB = 1024
TICK = 100_000_000


def held_but_dead() -> Snapshot:
    """``parse`` lends and frees 16 KiB blocks for 60 s; 10 ``orphan`` blocks taken at
    30 s are never freed."""
    now = [0]
    ledger = Ledger(clock=lambda: now[0])
    for tick in range(600):
        now[0] = tick * TICK
        events = []
        if tick:
            events.append(MemoryEvent(EventKind.FREE, "parse", tick, 16 * KiB, "cpu", "", now[0]))
        events.append(MemoryEvent(EventKind.ALLOC, "parse", tick + 1, 16 * KiB, "cpu", "w", now[0]))
        if tick == 300:
            for orphan in range(10):
                events.append(
                    MemoryEvent(
                        EventKind.ALLOC, "parse", 10_000 + orphan, 16 * KiB, "cpu", "orphan", now[0]
                    )
                )
        ledger.apply(events)
        ledger.sample()
    return ledger.snapshot("end")


def mark(**kwargs: object) -> pytest.Mark:
    return pytest.mark.memactor_no_leaks(**kwargs).mark


def test_verdict_true_fails_on_blocks_held_but_dead_within_the_tolerance() -> None:
    end = held_but_dead()
    assert NoLeaks.from_mark(mark(tolerance="1 MiB")).judge([], end) is None
    message = NoLeaks.from_mark(mark(tolerance="1 MiB", verdict=True)).judge([], end)
    assert message is not None
    lines = message.splitlines()
    assert lines[0] == "memactor_no_leaks(verdict=True): the leak verdict flags parse"
    assert lines[2] == "leaks: 1 of 1 components flagged"
    assert lines[3].startswith("  SUSPECT  parse: 10 blocks, 160 KiB, older than 10x the typical ")
    assert lines[4].startswith("    SUSPECT  orphan in parse: 10 blocks, 160 KiB")
    # Another component's verdict does not fail a marker about one component.
    assert (
        NoLeaks.from_mark(mark(tolerance="1 MiB", verdict=True, component="io")).judge([], end)
        is None
    )


def test_a_failure_carries_the_verdicts() -> None:
    message = NoLeaks.from_mark(mark()).judge([], held_but_dead())
    assert message is not None
    assert "memactor_no_leaks: the test ended with 176 KiB" in message
    assert "\nleaks: 1 of 1 components flagged\n  SUSPECT  parse: 10 blocks" in message


def test_verdict_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^verdict must be True or False, not 'yes'$"):
        NoLeaks.from_mark(mark(verdict="yes"))
