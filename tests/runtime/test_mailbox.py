"""Mailboxes: backpressure, send_nowait, overflow policies and closing, seen through refs."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from memactor.runtime import Actor, ActorRef, Overflow, open_system


class Gated(Actor[int, None]):
    """Records each message once ``gate`` is open, so the mailbox fills while it is shut."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.seen: list[int] = []

    async def handle(self, message: int) -> None:
        await self.gate.wait()
        self.seen.append(message)


async def fill(ref: ActorRef[int, None], first: int, last: int) -> None:
    for message in range(first, last + 1):
        ref.send_nowait(message)


async def test_send_waits_while_the_mailbox_is_full() -> None:
    actor = Gated()
    async with open_system() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(actor, name="gated", mailbox_size=2)
        await ref.send(0)  # taken by the actor, which then waits at the gate
        await trio.testing.wait_all_tasks_blocked()
        await ref.send(1)
        await ref.send(2)
        nursery.start_soon(ref.send, 3)
        await trio.testing.wait_all_tasks_blocked()

        stats = ref.statistics()
        assert (stats.mailbox_depth, stats.senders_waiting) == (2, 1)
        actor.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert actor.seen == [0, 1, 2, 3]
        assert ref.statistics().senders_waiting == 0


async def test_blocked_senders_are_admitted_first_come_first_served() -> None:
    actor = Gated()
    async with open_system() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(actor, name="gated", mailbox_size=1)
        await fill(ref, 0, 1)
        for message in (2, 3, 4):
            nursery.start_soon(ref.send, message)
            await trio.testing.wait_all_tasks_blocked()
        assert ref.statistics().senders_waiting == 3
        actor.gate.set()
    assert actor.seen == [0, 1, 2, 3, 4]


async def test_send_nowait_raises_would_block_when_full() -> None:
    actor = Gated()
    async with open_system() as system:
        ref = await system.spawn(actor, name="gated", mailbox_size=1)
        ref.send_nowait(0)
        ref.send_nowait(1)
        with pytest.raises(trio.WouldBlock):
            ref.send_nowait(2)
        actor.gate.set()
    assert actor.seen == [0, 1]


async def test_a_cancelled_send_delivers_nothing(autojump_clock: trio.testing.MockClock) -> None:
    actor = Gated()
    async with open_system() as system:
        ref = await system.spawn(actor, name="gated", mailbox_size=1)
        await fill(ref, 0, 1)
        with trio.move_on_after(5) as scope:
            await ref.send(2)
        assert scope.cancelled_caught
        assert ref.statistics().senders_waiting == 0
        actor.gate.set()
    assert actor.seen == [0, 1]


@pytest.mark.parametrize(
    ("overflow", "handled"),
    [
        (Overflow.DROP_NEWEST, [0, 1, 2, 3]),
        (Overflow.DROP_OLDEST, [0, 8, 9, 10]),
    ],
)
async def test_lossy_mailboxes_count_every_drop(overflow: Overflow, handled: list[int]) -> None:
    actor = Gated()
    async with open_system() as system:
        ref = await system.spawn(actor, name="lossy", mailbox_size=3, overflow=overflow)
        await ref.send(0)  # in the handler, at the gate
        await trio.testing.wait_all_tasks_blocked()
        for message in range(1, 11):
            if message % 2:
                ref.send_nowait(message)
            else:
                await ref.send(message)  # never waits on a lossy mailbox

        stats = ref.statistics()
        assert (stats.mailbox_depth, stats.messages_dropped, stats.senders_waiting) == (3, 7, 0)
        actor.gate.set()
    assert actor.seen == handled
    assert ref.statistics().messages_dropped == 7


async def test_a_blocking_mailbox_never_drops() -> None:
    actor = Gated()
    async with open_system() as system:
        ref = await system.spawn(actor, name="gated", mailbox_size=3)
        await fill(ref, 0, 3)
        for message in range(4, 11):
            with pytest.raises(trio.WouldBlock):
                ref.send_nowait(message)
        assert ref.statistics().messages_dropped == 0
        actor.gate.set()
    assert actor.seen == [0, 1, 2, 3]


async def test_stop_wakes_blocked_senders_and_drains_what_was_queued() -> None:
    actor = Gated()
    failures: list[BaseException] = []

    async def blocked_send(ref: ActorRef[int, None]) -> None:
        try:
            await ref.send(9)
        except trio.BrokenResourceError as exc:
            failures.append(exc)

    async with open_system() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(actor, name="gated", mailbox_size=2)
        await fill(ref, 0, 2)
        nursery.start_soon(blocked_send, ref)
        await trio.testing.wait_all_tasks_blocked()

        ref.stop_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert [str(exc) for exc in failures] == ["actor 'gated' has stopped"]
        actor.gate.set()
        await ref.stop()
        assert actor.seen == [0, 1, 2]


async def test_sending_to_a_stopped_actor_raises_broken_resource() -> None:
    async with open_system() as system:
        ref = await system.spawn(Gated(), name="gated")
        await ref.stop()
        with pytest.raises(trio.BrokenResourceError, match=r"^actor 'gated' has stopped$"):
            await ref.send(1)
        with pytest.raises(trio.BrokenResourceError, match=r"^actor 'gated' has stopped$"):
            ref.send_nowait(1)


async def test_mailbox_size_must_be_positive() -> None:
    async with open_system() as system:
        with pytest.raises(ValueError, match=r"^a mailbox holds at least one message, not 0$"):
            await system.spawn(Gated(), name="gated", mailbox_size=0)
