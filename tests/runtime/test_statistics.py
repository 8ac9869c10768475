"""ActorStatistics: every field, fresh and frozen."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from memactor.runtime import (
    NO_BACKOFF,
    Actor,
    ActorState,
    ActorStatistics,
    Overflow,
    Restart,
    open_system,
)


class Stage(Actor[str, None]):
    """Waits at ``gate``; ``"fail"`` raises and ``"exit"`` exits normally."""

    def __init__(self) -> None:
        self.gate = trio.Event()

    async def handle(self, message: str) -> None:
        await self.gate.wait()
        if message == "fail":
            raise ValueError("stage failed")
        if message == "exit":
            self.exit()


async def test_every_statistics_field(autojump_clock: trio.testing.MockClock) -> None:
    checked = {
        "name",
        "state",
        "mailbox_capacity",
        "mailbox_depth",
        "mailbox_peak_depth",
        "senders_waiting",
        "overflow",
        "messages_handled",
        "messages_dropped",
        "messages_discarded",
        "failures",
        "restarts",
        "uptime_s",
    }
    assert {field.name for field in dataclasses.fields(ActorStatistics)} == checked

    stage = Stage()
    async with open_system(restart_backoff=NO_BACKOFF) as system, trio.open_nursery() as nursery:
        ref = await system.spawn(
            stage, name="decode.stage", mailbox_size=2, restart=Restart.TRANSIENT
        )
        lossy_stage = Stage()
        lossy = await system.spawn(
            lossy_stage, name="decode.lossy", mailbox_size=1, overflow=Overflow.DROP_NEWEST
        )
        ref.send_nowait("fail")  # taken at once: the actor waits at the gate with it
        ref.send_nowait("1")
        ref.send_nowait("2")
        nursery.start_soon(ref.send, "3")  # waits for room
        await trio.sleep(5)

        blocked = ActorStatistics(
            name="decode.stage",
            state=ActorState.RUNNING,
            mailbox_capacity=2,
            mailbox_depth=2,
            mailbox_peak_depth=2,
            senders_waiting=1,
            overflow=Overflow.BLOCK,
            messages_handled=0,
            messages_dropped=0,
            messages_discarded=0,
            failures=0,
            restarts=0,
            uptime_s=5.0,
        )
        assert ref.statistics() == blocked

        stage.gate.set()  # "fail" fails; the restarted actor handles 1, 2 and 3
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(1)
        restarted = dataclasses.replace(
            blocked,
            mailbox_depth=0,
            senders_waiting=0,
            messages_handled=3,
            failures=1,
            restarts=1,
            uptime_s=1.0,
        )
        assert ref.statistics() == restarted

        stage.gate = trio.Event()
        for message in ("exit", "x", "y"):
            ref.send_nowait(message)
        await trio.sleep(1)
        stage.gate.set()  # a TRANSIENT normal exit: stopped for good, x and y discarded
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(10)  # uptime is frozen once stopped
        assert ref.statistics() == dataclasses.replace(
            restarted,
            state=ActorState.STOPPED,
            messages_handled=4,
            messages_discarded=2,
            uptime_s=2.0,
        )

        for message in ("a", "b", "c", "d"):
            lossy.send_nowait(message)  # a is handled, b waits, c and d are dropped
        stats = lossy.statistics()
        assert (stats.overflow, stats.messages_dropped, stats.mailbox_depth) == (
            Overflow.DROP_NEWEST,
            2,
            1,
        )
        lossy_stage.gate.set()


async def test_statistics_are_fresh_frozen_values() -> None:
    stage = Stage()
    async with open_system() as system:
        ref = await system.spawn(stage, name="stage")
        ref.send_nowait("1")  # taken by the actor, which waits at the gate
        first = ref.statistics()
        ref.send_nowait("2")
        second = ref.statistics()
        assert first is not second
        assert (first.mailbox_depth, second.mailbox_depth) == (0, 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.mailbox_depth = 5  # type: ignore[misc]  # the point of the test
        stage.gate.set()
