"""The Actor base class: lifecycle hooks, background tasks, exit and stop."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from memactor.runtime import (
    NO_BACKOFF,
    Actor,
    ActorFailedError,
    ActorNotFoundError,
    ActorState,
    Restart,
    open_system,
)


class Counter(Actor[str, int]):
    """Counts messages; ``"count"`` replies the count, ``"boom"`` raises."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = [] if log is None else log
        self.count = 0

    async def on_start(self) -> None:
        self.log.append(f"start {self.statistics().state.value}")

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.statistics().state.value}")

    async def handle(self, message: str) -> int:
        if message == "boom":
            raise ValueError("boom")
        if message != "count":
            self.count += 1
        return self.count


async def test_lifecycle_of_an_actor() -> None:
    log: list[str] = []
    async with open_system() as system:
        # Spawning runs on_start and returns a ref to the running actor.
        ref = await system.spawn(lambda: Counter(log), name="pipeline.counter", mailbox_size=4)
        assert ref.name == "pipeline.counter"
        assert ref.statistics().state is ActorState.RUNNING
        assert system.lookup("pipeline.counter") is ref

        # Told messages are handled in order; asks reply.
        await ref.send("a")
        await ref.send("b")
        assert await ref.ask("count") == 2

        # A failing handler fails the actor; the supervisor restarts it from its factory.
        with pytest.raises(ActorFailedError, match=r"^actor 'pipeline\.counter' failed"):
            await ref.ask("boom")
        assert await ref.ask("count") == 0  # a fresh instance
        assert ref.statistics().restarts == 1

        # A graceful stop handles what was queued, runs on_stop and frees the name.
        ref.send_nowait("c")
        await ref.stop()
        assert log == ["start starting", "stop running", "start starting", "stop stopping"]
        assert ref.statistics().state is ActorState.STOPPED
        assert ref.statistics().messages_handled == 5  # a, b, count, count, c
        with pytest.raises(ActorNotFoundError):
            system.lookup("pipeline.counter")

        # A stopped actor stays stopped.
        with pytest.raises(trio.BrokenResourceError):
            await ref.send("d")
        await ref.stop()  # idempotent
    assert log[-1] == "stop stopping"


async def test_a_restarted_instance_keeps_its_attributes() -> None:
    counter = Counter()
    async with open_system() as system:
        ref = await system.spawn(counter, name="counter")
        await ref.send("a")
        with pytest.raises(ActorFailedError):
            await ref.ask("boom")
        assert await ref.ask("count") == 1
        assert counter.name == "counter"
        assert counter.ref is ref
        assert counter.system is system


async def test_on_idle_runs_only_when_the_mailbox_is_empty() -> None:
    class Idler(Actor[int, None]):
        def __init__(self) -> None:
            self.log: list[str] = []

        async def on_idle(self) -> None:
            self.log.append("idle")

        async def handle(self, message: int) -> None:
            self.log.append(f"got {message}")

    idler = Idler()
    async with open_system() as system:
        ref = await system.spawn(idler, name="idler")
        await trio.testing.wait_all_tasks_blocked()
        for message in (1, 2, 3):
            ref.send_nowait(message)
        await trio.testing.wait_all_tasks_blocked()
        assert idler.log == ["idle", "got 1", "got 2", "got 3", "idle"]


async def test_background_tasks_live_inside_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Ticker(Actor[str, int]):
        def __init__(self) -> None:
            self.ticks = 0
            self.log: list[str] = []

        async def on_start(self) -> None:
            self.start_soon(self.tick)

        async def tick(self) -> None:
            try:
                while True:
                    await trio.sleep(1)
                    self.ticks += 1
            finally:
                self.log.append("ticker cancelled")

        async def on_stop(self) -> None:
            self.log.append("stop")

        async def handle(self, message: str) -> int:
            return self.ticks

    ticker = Ticker()
    async with open_system() as system:
        ref = await system.spawn(ticker, name="ticker")
        await trio.sleep(3.5)
        assert await ref.ask("ticks") == 3
        await ref.stop()
        assert ticker.log == ["ticker cancelled", "stop"]
        with pytest.raises(RuntimeError, match=r"^actor 'ticker' is not running$"):
            ticker.nursery  # noqa: B018 - the property raises


async def test_a_failing_background_task_fails_the_actor() -> None:
    class Flaky(Actor[str, None]):
        async def on_start(self) -> None:
            if not self.statistics().restarts:
                self.start_soon(self.crash)

        async def crash(self) -> None:
            raise OSError("lost the device")

        async def handle(self, message: str) -> None:
            pass

    async with open_system(restart_backoff=NO_BACKOFF) as system:
        ref = await system.spawn(Flaky, name="flaky")
        await trio.testing.wait_all_tasks_blocked()
        stats = ref.statistics()
        assert (stats.state, stats.failures, stats.restarts) == (ActorState.RUNNING, 1, 1)


async def test_an_unspawned_actor_has_no_name() -> None:
    actor = Counter()
    assert not actor.spawned
    with pytest.raises(RuntimeError, match=r"has not been spawned$"):
        actor.name  # noqa: B018 - the property raises
    async with open_system() as system:
        await system.spawn(actor, name="counter")
        assert (actor.spawned, actor.name) == (True, "counter")


async def test_exit_must_come_from_the_actor_itself() -> None:
    counter = Counter()
    async with open_system() as system:
        await system.spawn(counter, name="counter")
        with pytest.raises(RuntimeError, match=r"^exit\(\) must be called from actor 'counter'"):
            counter.exit()


async def test_an_actor_cannot_await_its_own_stop() -> None:
    class SelfStopper(Actor[str, str]):
        async def handle(self, message: str) -> str:
            try:
                await self.ref.stop()
            except RuntimeError as exc:
                self.ref.stop_nowait()
                return str(exc)
            return "stopped"  # pragma: no cover

    async with open_system() as system:
        ref = await system.spawn(SelfStopper, name="self")
        reply = await ref.ask("stop yourself")
        assert reply == (
            "actor 'self' cannot wait for its own stop; use self.ref.stop_nowait() or self.exit()"
        )
        await ref.stop()


async def test_a_failure_while_stopping_is_raised_by_stop() -> None:
    class FailsOnStop(Actor[str, None]):
        async def on_stop(self) -> None:
            raise OSError("flush failed")

        async def handle(self, message: str) -> None:
            pass

    async with open_system() as system:
        ref = await system.spawn(FailsOnStop, name="flusher", restart=Restart.PERMANENT)
        with pytest.raises(ActorFailedError, match=r"^actor 'flusher' failed: OSError") as info:
            await ref.stop()
        assert isinstance(info.value.error, OSError)
        assert ref.statistics().state is ActorState.STOPPED


async def test_a_cancelled_stop_still_stops(autojump_clock: trio.testing.MockClock) -> None:
    class Slow(Actor[str, None]):
        async def handle(self, message: str) -> None:
            await trio.sleep(10)

    async with open_system() as system:
        ref = await system.spawn(Slow, name="slow")
        ref.send_nowait("take your time")
        with trio.move_on_after(1):
            await ref.stop()
        assert ref.statistics().state is ActorState.STOPPING
        await trio.sleep(10)
        assert ref.statistics().state is ActorState.STOPPED
