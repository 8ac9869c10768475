"""Stall detection: a task step that keeps the loop from running is counted and named."""

from __future__ import annotations

import logging
import time

import pytest
import trio
import trio.testing

import memactor
from memactor import Actor
from memactor.runtime import StallStatistics, StallWatch
from memactor.runtime import open_system as open_runtime


class ManualClock:
    """Nanoseconds moved by hand."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


async def test_a_step_past_the_threshold_is_a_stall_named_by_its_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    watch = StallWatch(0.25, clock=clock)

    async def busy(step_ns: int) -> None:
        clock.now += step_ns  # this step "took" step_ns

    trio.lowlevel.add_instrument(watch)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, 100_000_000, name="quick")
            nursery.start_soon(busy, 300_000_000, name="slow")
            nursery.start_soon(busy, 900_000_000, name="slower")
            nursery.start_soon(busy, 260_000_000, name="last")
    finally:
        trio.lowlevel.remove_instrument(watch)
    # Trio picks the order of the steps; the stalls are what they are whatever it is.
    assert sorted((s.task, s.duration_ns) for s in watch.take()) == [
        ("last", 260_000_000),
        ("slow", 300_000_000),
        ("slower", 900_000_000),
    ]
    assert watch.take() == []
    assert watch.statistics() == StallStatistics(
        threshold_ns=250_000_000, stalls=3, longest_ns=900_000_000, longest_task="slower"
    )
    assert "stalled for 0.900 s while task 'slower' ran" in caplog.text


def test_only_the_first_keep_stalls_wait_to_be_taken_but_all_are_counted() -> None:
    clock = ManualClock()
    watch = StallWatch(0.001, clock=clock, keep=2)
    task = trio.lowlevel.Task.__new__(trio.lowlevel.Task)  # only its name is read
    object.__setattr__(task, "name", "t")
    for step_ns in (2_000_000, 3_000_000, 4_000_000):
        watch.before_task_step(task)
        clock.now += step_ns
        watch.after_task_step(task)
    assert [s.duration_ns for s in watch.take()] == [2_000_000, 3_000_000]
    assert watch.statistics().stalls == 3


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^stall_threshold_s must be positive, got 0$"):
        StallWatch(0)


class Blocker(Actor[float, None]):
    """Blocks the whole loop for the seconds it is sent (a synchronous computation)."""

    async def handle(self, seconds: float) -> None:
        time.sleep(seconds)


async def test_an_actor_that_never_yields_is_named_in_the_totals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="memactor.runtime")
    async with memactor.open_system(stall_threshold_s=0.02) as system:
        ref = await system.spawn(Blocker, name="blocker")
        await ref.ask(0.6)  # far longer than any other step, even on a loaded machine
        stats = await system.metrics.statistics()
        assert system.stall_watch is not None
        assert system.stall_watch.statistics().stalls >= 1
    assert stats.loop_stalls >= 1
    assert stats.longest_stall_task == "actor blocker"
    assert stats.longest_stall_ns >= 600_000_000
    assert "while task 'actor blocker' ran" in caplog.text


async def test_a_system_opened_without_a_threshold_is_not_watched() -> None:
    async with open_runtime(stall_threshold_s=None) as system:
        assert system.stall_watch is None
    async with memactor.open_system(stall_threshold_s=None) as memory:
        assert memory.stall_watch is None
        assert (await memory.metrics.statistics()).loop_stalls == 0
