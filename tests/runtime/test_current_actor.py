"""current_actor(): which actor a task works for, decided by trio's context inheritance."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from memactor.runtime import NO_BACKOFF, Actor, ActorRef, current_actor, open_system

Seen = list[tuple[str, ActorRef[Any, Any] | None]]


class Recorder(Actor[str, None]):
    """Records current_actor() in each hook, in its background tasks and in a thread.

    "fail" fails it (a restart follows); "spawn" spawns a child Recorder named "child"
    from the handler, so that the child's incarnation task is started by this actor.
    """

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def record(self, where: str) -> None:
        self.seen.append((f"{self.name} {where}", current_actor()))

    async def on_start(self) -> None:
        self.record("on_start")
        self.start_soon(self.background)

    async def background(self) -> None:
        self.record("background")
        self.nursery.start_soon(self.grandchild)

    async def grandchild(self) -> None:
        self.record("grandchild")

    async def handle(self, message: str) -> None:
        self.record(f"handle {message}")
        if message == "fail":
            raise ValueError("fail")
        if message == "spawn":
            await self.system.spawn(Recorder(self.seen), name="child")
        if message == "thread":
            ref = await trio.to_thread.run_sync(current_actor)
            self.seen.append((f"{self.name} thread", ref))

    async def on_stop(self) -> None:
        self.record("on_stop")


async def test_outside_any_actor_there_is_none() -> None:
    assert current_actor() is None
    async with open_system() as system:
        await system.spawn(Recorder([]), name="r")
        assert current_actor() is None


async def test_hooks_handlers_their_tasks_and_threads_work_for_the_actor() -> None:
    seen: Seen = []
    async with open_system() as system:
        ref = await system.spawn(Recorder(seen), name="r")
        await ref.ask("hello")
        await ref.ask("thread")
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(where for where, _ in seen) == [
        "r background",
        "r grandchild",
        "r handle hello",
        "r handle thread",
        "r on_start",
        "r on_stop",
        "r thread",
    ]
    assert all(actor is ref for _, actor in seen)


async def test_an_actor_spawned_by_another_works_for_itself() -> None:
    seen: Seen = []
    async with open_system() as system:
        parent = await system.spawn(Recorder(seen), name="parent")
        await parent.ask("spawn")
        child = system.lookup("child")
        await trio.testing.wait_all_tasks_blocked()
    actors = dict(seen)
    assert actors["parent handle spawn"] is parent
    assert actors["child on_start"] is child
    assert actors["child background"] is child


async def test_a_restarted_incarnation_sets_it_anew() -> None:
    seen: Seen = []
    async with open_system(restart_backoff=NO_BACKOFF) as system:
        ref = await system.spawn(Recorder(seen), name="r")
        await ref.send("fail")
        await trio.testing.wait_all_tasks_blocked()
        assert ref.statistics().restarts == 1
    starts = [actor for where, actor in seen if where == "r on_start"]
    assert starts == [ref, ref]  # the second started by the supervision task, no actor's


async def test_a_task_started_in_an_actor_nursery_from_outside_is_not_the_actors() -> None:
    seen: Seen = []
    recorder = Recorder(seen)

    async def visitor() -> None:
        seen.append(("visitor", current_actor()))

    async with open_system() as system:
        await system.spawn(recorder, name="r")
        recorder.nursery.start_soon(visitor)
        await trio.testing.wait_all_tasks_blocked()
    assert ("visitor", None) in seen
