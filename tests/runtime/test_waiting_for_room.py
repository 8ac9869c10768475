"""What the metrics actor's tick reads of the runtime: the running actor instances, and
which actors wait for room in a full mailbox (read from the blocked senders' tasks)."""

from __future__ import annotations

import trio
import trio.testing

from memactor.runtime import Actor, ActorRef, open_system


class Stuck(Actor[int, None]):
    """Handles nothing until released."""

    def __init__(self, release: trio.Event) -> None:
        self.release = release

    async def handle(self, message: int) -> None:
        await self.release.wait()


class Forward(Actor[int, None]):
    def __init__(self, to: ActorRef[int, None]) -> None:
        self.to = to

    async def handle(self, message: int) -> None:
        await self.to.send(message)


async def test_the_actors_held_up_by_a_full_mailbox_are_named() -> None:
    release = trio.Event()
    async with open_system() as system:
        stuck_actor = Stuck(release)
        stuck = await system.spawn(stuck_actor, name="stuck", mailbox_size=1)
        forward = await system.spawn(Forward(stuck), name="forward", mailbox_size=1)
        assert stuck_actor in system.running_actors()
        assert system.waiting_for_room() == set()
        async with trio.open_nursery() as nursery:
            for item in range(3):  # one handled (stuck), one queued, one forward sends
                await forward.send(item)
            await trio.testing.wait_all_tasks_blocked()
            assert stuck.statistics().senders_waiting == 1
            assert system.waiting_for_room() == {"forward"}
            # A task outside any actor that waits for room is nobody's: not named.
            nursery.start_soon(forward.send, 3)
            nursery.start_soon(forward.send, 4)
            await trio.testing.wait_all_tasks_blocked()
            assert forward.statistics().senders_waiting == 1
            assert system.waiting_for_room() == {"forward"}
            release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert system.waiting_for_room() == set()
