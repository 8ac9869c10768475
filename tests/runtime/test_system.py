"""The actor system: names, spawning, structured shutdown and cancellation."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from memactor.runtime import (
    NO_BACKOFF,
    Actor,
    ActorNotFoundError,
    ActorSpec,
    ActorState,
    DuplicateNameError,
    open_system,
)


class Worker(Actor[str, str]):
    """Logs its lifecycle and each message; waits at ``gate`` (open unless ``gated``)."""

    def __init__(self, log: list[str], *, gated: bool = False) -> None:
        self.log = log
        self.gate = trio.Event()
        if not gated:
            self.gate.set()

    async def on_start(self) -> None:
        self.log.append(f"start {self.name}")

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.name}")

    async def handle(self, message: str) -> str:
        await self.gate.wait()
        if message == "fail":
            raise ValueError(f"{self.name} failed")
        self.log.append(f"{self.name} got {message}")
        return message


class SlowStart(Actor[str, None]):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("starting")
        await trio.sleep_forever()

    async def on_stop(self) -> None:  # pragma: no cover - must not run
        self.log.append("stopped")

    async def handle(self, message: str) -> None:  # pragma: no cover - never started
        pass


class BrokenStart(Actor[str, None]):
    async def on_start(self) -> None:
        raise OSError("no device")

    async def handle(self, message: str) -> None:  # pragma: no cover - never started
        pass


def tasks_living() -> int:
    return trio.lowlevel.current_statistics().tasks_living


async def test_duplicate_names_are_refused_until_the_first_stops() -> None:
    log: list[str] = []
    async with open_system() as system:
        ref = await system.spawn(partial(Worker, log), name="decode.chunks")
        with pytest.raises(
            DuplicateNameError,
            match=r"^an actor or supervisor named 'decode\.chunks' already exists in this system$",
        ):
            await system.spawn(partial(Worker, log), name="decode.chunks")
        with pytest.raises(DuplicateNameError, match=r"'decode\.chunks'"):
            system.add_supervisor("decode.chunks")
        await ref.stop()
        await system.spawn(partial(Worker, log), name="decode.chunks")


@pytest.mark.parametrize("name", ["", "decode.", ".decode", "a..b", "decode chunks"])
async def test_invalid_names_are_refused(name: str) -> None:
    async with open_system() as system:
        with pytest.raises(ValueError, match=r"^(an actor name|invalid actor name)"):
            await system.spawn(partial(Worker, []), name=name)


async def test_lookup_and_refs() -> None:
    log: list[str] = []
    spec = ActorSpec(partial(Worker, log), name="metrics")
    async with open_system(system_actors=[spec]) as system:
        a = await system.spawn(partial(Worker, log), name="a")
        stage = system.add_supervisor("stage")
        x = await stage.spawn(partial(Worker, log), name="stage.x")
        c = await system.spawn(partial(Worker, log), name="c")

        assert system.lookup("a") is a
        assert [ref.name for ref in system.refs()] == ["metrics", "a", "stage.x", "c"]
        assert system.refs()[1:] == [a, x, c]
        with pytest.raises(ActorNotFoundError, match=r"^no live actor named 'stage' in this"):
            system.lookup("stage")
        await a.stop()
        with pytest.raises(ActorNotFoundError, match=r"^no live actor named 'a' in this system$"):
            system.lookup("a")


async def test_a_failing_on_start_makes_spawn_raise_and_frees_the_name() -> None:
    async with open_system() as system:
        with pytest.raises(OSError, match=r"^no device$"):
            await system.spawn(BrokenStart, name="gpu")
        assert system.refs() == []
        await system.spawn(partial(Worker, []), name="gpu")


async def test_a_cancelled_spawn_cancels_the_actor_and_frees_the_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with open_system() as system:
        with trio.move_on_after(1):
            await system.spawn(partial(SlowStart, log), name="slow")
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["starting"]  # and no "stopped": on_start never returned
        await system.spawn(partial(Worker, log), name="slow")


async def test_spawning_into_a_closed_system_raises_closed_resource() -> None:
    async with open_system() as system:
        pass
    with pytest.raises(trio.ClosedResourceError, match=r"^the actor system is closed$"):
        await system.spawn(partial(Worker, []), name="late")
    with pytest.raises(trio.ClosedResourceError, match=r"^the actor system is closed$"):
        system.add_supervisor("late")


async def test_an_instance_can_be_spawned_once() -> None:
    worker = Worker([])
    async with open_system() as system:
        await system.spawn(worker, name="a")
        with pytest.raises(RuntimeError, match=r"already spawned as 'a'$"):
            await system.spawn(worker, name="b")


async def run_tree(log: list[str], ending: str) -> None:
    """Spawn metrics (a system actor), a, b, stage.x, stage.y, c; then end as told."""
    spec = ActorSpec(partial(Worker, log), name="metrics")
    with trio.CancelScope() as scope:
        async with open_system(system_actors=[spec]) as system:
            await system.spawn(partial(Worker, log), name="a")
            await system.spawn(partial(Worker, log), name="b")
            stage = system.add_supervisor("stage")
            await stage.spawn(partial(Worker, log), name="stage.x")
            await stage.spawn(partial(Worker, log), name="stage.y")
            await system.spawn(partial(Worker, log), name="c")
            assert log == [
                f"start {name}" for name in ("metrics", "a", "b", "stage.x", "stage.y", "c")
            ]
            log.clear()
            if ending == "error":
                raise KeyError("body")
            if ending == "cancel":
                scope.cancel()
                await trio.sleep_forever()


@pytest.mark.parametrize("ending", ["normal", "error", "cancel"])
async def test_shutdown_stops_children_in_reverse_start_order_and_system_actors_last(
    ending: str,
) -> None:
    log: list[str] = []
    before = tasks_living()
    if ending == "error":
        with pytest.RaisesGroup(pytest.RaisesExc(KeyError, match=r"^'body'$")):
            await run_tree(log, ending)
    else:
        await run_tree(log, ending)
    assert log == ["stop c", "stop stage.y", "stop stage.x", "stop b", "stop a", "stop metrics"]
    assert tasks_living() == before


async def test_a_normal_exit_drains_the_mailboxes() -> None:
    log: list[str] = []
    worker = Worker(log, gated=True)
    async with open_system() as system:
        ref = await system.spawn(worker, name="w")
        for message in ("1", "2", "3"):
            ref.send_nowait(message)
        worker.gate.set()
    assert log == ["start w", "w got 1", "w got 2", "w got 3", "stop w"]
    stats = ref.statistics()
    assert (stats.messages_handled, stats.messages_discarded) == (3, 0)


async def test_an_error_in_the_body_cancels_the_actors_and_discards_their_mailboxes() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(KeyError, match=r"^'body'$")):
        async with open_system() as system:
            ref = await system.spawn(partial(Worker, log, gated=True), name="w")
            for message in ("1", "2", "3"):
                ref.send_nowait(message)
            await trio.testing.wait_all_tasks_blocked()
            raise KeyError("body")
    assert log == ["start w", "stop w"]
    stats = ref.statistics()
    assert (stats.state, stats.messages_handled, stats.messages_discarded) == (
        ActorState.STOPPED,
        0,
        2,
    )


@pytest.mark.parametrize("blocked_in", ["send", "ask"])
async def test_cancelling_the_system_mid_send_or_ask_leaves_nothing_running(
    blocked_in: str, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    before = tasks_living()
    with trio.move_on_after(1) as scope:
        async with open_system() as system:
            ref = await system.spawn(partial(Worker, log, gated=True), name="w", mailbox_size=1)
            if blocked_in == "send":
                ref.send_nowait("1")
                ref.send_nowait("2")
                await ref.send("3")  # blocked by backpressure until the cancel
            else:
                await ref.ask("1")  # its handler waits at the gate until the cancel
    assert scope.cancelled_caught
    assert tasks_living() == before
    assert log == ["start w", "stop w"]
    assert ref.statistics().state is ActorState.STOPPED


async def test_cancelling_a_stuck_graceful_shutdown_turns_it_into_a_cancelling_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    before = tasks_living()
    with trio.move_on_after(1) as scope:
        async with open_system() as system:
            await system.spawn(partial(Worker, log), name="a")
            stuck = await system.spawn(partial(Worker, log, gated=True), name="stuck")
            await system.spawn(partial(Worker, log), name="c")
            stuck.send_nowait("1")  # its handler never returns: the drain never ends
    assert scope.cancelled_caught
    assert log == ["start a", "start stuck", "start c", "stop c", "stop stuck", "stop a"]
    assert tasks_living() == before


async def test_an_escalation_while_the_body_asks_raises_only_the_original_error() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^bad failed\n")):
        async with open_system(max_restarts=0) as system:
            stuck = await system.spawn(partial(Worker, log, gated=True), name="stuck")
            bad = await system.spawn(partial(Worker, log), name="bad")
            bad.send_nowait("fail")
            await stuck.ask("1")
    assert log == ["start stuck", "start bad", "stop bad", "stop stuck"]


async def test_an_actor_failing_during_the_graceful_shutdown_fails_the_system() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^w failed$")):
        async with open_system() as system:
            ref = await system.spawn(partial(Worker, log), name="w")
            await system.spawn(partial(Worker, log), name="last")
            ref.send_nowait("fail")  # handled once the shutdown has begun: no restart
    assert log == ["start w", "start last", "stop w", "stop last"]


async def test_system_actors_are_supervised_too() -> None:
    log: list[str] = []
    spec = ActorSpec(partial(Worker, log), name="metrics")
    async with open_system(restart_backoff=NO_BACKOFF, system_actors=[spec]) as system:
        metrics = system.lookup("metrics")
        await metrics.send("fail")
        await trio.testing.wait_all_tasks_blocked()
        assert metrics.statistics().restarts == 1
        assert await metrics.ask("ping") == "ping"


class Drainer(Worker):
    """As it stops, takes what the reporters left in the hub (as the metrics actor does)."""

    async def on_stop(self) -> None:
        if not self.system.memory.closed:  # a restart, or a stop before the hub closed
            await super().on_stop()
            return
        taken = sum(len(batch.events) for batch in self.system.memory.collect().batches)
        self.log.append(f"stop {self.name} took {taken}")


async def run_system_actors(log: list[str], *, drains_memory: bool, ending: str) -> None:
    """System actors a, b (a Drainer) and c; one event left unflushed in the hub."""
    specs = [
        ActorSpec(partial(Worker, log), name="a"),
        ActorSpec(partial(Drainer, log), name="b", drains_memory=drains_memory),
        ActorSpec(partial(Worker, log), name="c"),
    ]
    with trio.CancelScope() as scope:
        async with open_system(restart_backoff=NO_BACKOFF, system_actors=specs) as system:
            await system.spawn(partial(Worker, log), name="user")
            system.memory.reporter("loader").alloc(1, 64)  # the hub's close hands it on
            if ending == "normal":
                b = system.lookup("b")
                await b.send("fail")  # a restart keeps the actor the one that drains
                await trio.testing.wait_all_tasks_blocked()
                assert b.statistics().restarts == 1
            else:
                scope.cancel()
                await trio.sleep_forever()


@pytest.mark.parametrize("ending", ["normal", "cancel"])
async def test_the_system_actor_that_drains_memory_stops_last_after_the_hub_closes(
    ending: str,
) -> None:
    log: list[str] = []
    await run_system_actors(log, drains_memory=True, ending=ending)
    stops = [entry for entry in log if entry.startswith("stop")]
    assert stops[-4:] == ["stop user", "stop c", "stop a", "stop b took 1"]


async def test_without_a_drainer_system_actors_stop_in_reverse_and_then_the_hub_closes() -> None:
    log: list[str] = []
    await run_system_actors(log, drains_memory=False, ending="cancel")
    assert log[-4:] == ["stop user", "stop c", "stop b", "stop a"]


def test_at_most_one_system_actor_drains_memory() -> None:
    specs = [
        ActorSpec(partial(Worker, []), name="metrics", drains_memory=True),
        ActorSpec(partial(Worker, []), name="archive", drains_memory=True),
    ]
    message = r"^at most one system actor may drain memory, not 2: 'metrics', 'archive'$"
    with pytest.raises(ValueError, match=message):
        open_system(system_actors=specs)
