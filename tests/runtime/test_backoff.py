"""Restart backoff: exponential waits with jitter before restarts, measured in trio time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from memactor.runtime import (
    DEFAULT_BACKOFF,
    Actor,
    ActorRef,
    ActorState,
    ActorSystem,
    Backoff,
    open_system,
)


class Crasher(Actor[str, None]):
    """Records the trio time of every start; ``"fail"`` raises."""

    def __init__(self, starts: list[float]) -> None:
        self.starts = starts

    async def on_start(self) -> None:
        self.starts.append(trio.current_time())

    async def handle(self, message: str) -> None:
        if message == "fail":
            raise ValueError(f"{self.name} failed")


async def fail_and_wait(ref: ActorRef[str, None], pauses: list[float]) -> list[float]:
    """Fail the actor, pausing after each failure; return the trio times of the failures."""
    failed_at: list[float] = []
    for pause in pauses:
        failed_at.append(trio.current_time())
        await ref.send("fail")
        await trio.sleep(pause)
    return failed_at


def waits(failed_at: list[float], starts: list[float]) -> list[float]:
    """How long each restart came after its failure."""
    return [round(start - failed, 9) for failed, start in zip(failed_at, starts[1:], strict=True)]


async def test_restarts_wait_exponentially_longer_up_to_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    backoff = Backoff(first_s=0.1, factor=2, max_s=0.5, jitter=0)
    async with open_system(max_restarts=10, within_s=100, restart_backoff=backoff) as system:
        ref = await system.spawn(lambda: Crasher(starts), name="c")
        failed_at = await fail_and_wait(ref, [5] * 5)  # well past any wait, in the window
        assert ref.statistics().restarts == 5
    assert waits(failed_at, starts) == [0.1, 0.2, 0.4, 0.5, 0.5]


async def test_jitter_lengthens_each_wait_by_at_most_its_fraction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    backoff = Backoff(first_s=1.0, factor=1, max_s=1.0, jitter=0.5)
    async with open_system(max_restarts=50, within_s=1000, restart_backoff=backoff) as system:
        ref = await system.spawn(lambda: Crasher(starts), name="c")
        failed_at = await fail_and_wait(ref, [10] * 20)
    jittered = waits(failed_at, starts)
    assert all(1.0 <= wait <= 1.5 for wait in jittered)
    assert len(set(jittered)) > 1  # not one fixed wait: many failing actors spread out


async def test_the_backoff_starts_over_once_the_restart_window_is_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    backoff = Backoff(first_s=0.1, factor=10, max_s=100, jitter=0)
    async with open_system(max_restarts=5, within_s=20, restart_backoff=backoff) as system:
        ref = await system.spawn(lambda: Crasher(starts), name="c")
        failed_at = await fail_and_wait(ref, [5, 30, 5])
    # The second in the window waits ten times longer; after 30 s without one, 0.1 s again.
    assert waits(failed_at, starts) == [0.1, 1.0, 0.1]


LONG_WAIT = Backoff(first_s=60, max_s=60, jitter=0)


async def crashed_into_the_wait(system: ActorSystem, starts: list[float]) -> ActorRef[str, None]:
    """A crasher that failed once and now waits for its restart."""
    ref = await system.spawn(lambda: Crasher(starts), name="c")
    await ref.send("fail")
    await trio.testing.wait_all_tasks_blocked()
    assert ref.statistics().state is ActorState.RESTARTING
    return ref


async def test_a_stop_during_the_wait_ends_it_and_the_actor_stays_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    async with open_system(restart_backoff=LONG_WAIT) as system:
        ref = await crashed_into_the_wait(system, starts)
        before = trio.current_time()
        await ref.stop()
        assert trio.current_time() == before  # no waiting out the backoff
        assert (ref.statistics().state, ref.statistics().restarts) == (ActorState.STOPPED, 0)
        await trio.sleep(120)  # nothing restarts it later either
    assert len(starts) == 1


async def test_a_shutdown_during_the_wait_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    async with open_system(restart_backoff=LONG_WAIT) as system:
        ref = await crashed_into_the_wait(system, starts)
        before = trio.current_time()
    assert trio.current_time() == before
    assert (ref.statistics().state, len(starts)) == (ActorState.STOPPED, 1)


async def test_restarts_that_wait_still_count_towards_the_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match=r"^c failed\nmemactor: supervisor 'root' gave up")
    ):
        async with open_system(max_restarts=2, within_s=10) as system:
            ref = await system.spawn(lambda: Crasher(starts), name="c")
            for _ in range(3):
                await ref.send("fail")
                await trio.sleep(0.5)
            await trio.sleep_forever()
    assert len(starts) == 3  # restarted twice, after the default waits


async def test_nested_supervisors_take_their_own_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    async with open_system() as system:
        backoff = Backoff(first_s=3, max_s=3, jitter=0)
        stage = system.add_supervisor("stage", restart_backoff=backoff)
        ref = await stage.spawn(lambda: Crasher(starts), name="stage.c")
        failed_at = await fail_and_wait(ref, [10])
    assert waits(failed_at, starts) == [3.0]


async def test_one_supervisors_wait_does_not_delay_anothers_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow_starts: list[float] = []
    quick_starts: list[float] = []
    async with open_system(restart_backoff=Backoff(first_s=0.01, jitter=0)) as system:
        slow = system.add_supervisor("slow", restart_backoff=Backoff(first_s=3, max_s=3, jitter=0))
        waiting = await slow.spawn(lambda: Crasher(slow_starts), name="slow.c")
        quick = await system.spawn(lambda: Crasher(quick_starts), name="quick")
        await waiting.send("fail")
        await trio.testing.wait_all_tasks_blocked()  # slow.c waits out its 3 s
        failed_at = await fail_and_wait(quick, [10])
    assert waits(failed_at, quick_starts) == [0.01]
    assert round(slow_starts[1] - slow_starts[0], 9) == 3.0


def test_the_default_waits_briefly_and_grows_to_a_second() -> None:
    assert Backoff(first_s=0.01, factor=2.0, max_s=1.0, jitter=0.2) == DEFAULT_BACKOFF
    delays = [DEFAULT_BACKOFF.delay_s(attempt) for attempt in range(1, 10)]
    assert delays == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    assert DEFAULT_BACKOFF.delay_s(1, 0.999) == pytest.approx(0.01 * 1.1998)
    assert DEFAULT_BACKOFF.delay_s(10**9) == 1.0  # no overflow however many in a row
    assert Backoff(first_s=0).delay_s(5) == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"first_s": -1.0}, r"^first_s must be a finite number of 0 or more, not -1.0$"),
        ({"max_s": float("inf")}, r"^max_s must be a finite number of 0 or more, not inf$"),
        ({"jitter": float("nan")}, r"^jitter must be a finite number of 0 or more, not nan$"),
        ({"factor": 0.5}, r"^factor must be a finite number of 1 or more, not 0.5$"),
    ],
)
def test_bad_backoffs_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**options)
    with pytest.raises(ValueError, match=r"^attempt counts from 1, not 0$"):
        DEFAULT_BACKOFF.delay_s(0)
