"""Supervision: restart policies, strategies, restart intensity and escalation."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from memactor.runtime import (
    NO_BACKOFF,
    Actor,
    ActorState,
    Restart,
    RestartIntensityError,
    Strategy,
    Supervisor,
    open_system,
)


class Worker(Actor[str, None]):
    """``"fail"`` raises, ``"exit"`` exits normally; anything else is logged as handled."""

    def __init__(self, log: list[str], *, fail_restarts: bool = False) -> None:
        self.log = log
        self.fail_restarts = fail_restarts

    async def on_start(self) -> None:
        if self.fail_restarts and self.statistics().restarts:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.name}")

    async def handle(self, message: str) -> None:
        if message == "fail":
            raise ValueError(f"{self.name} failed")
        if message == "exit":
            self.exit()
        else:
            self.log.append(f"{self.name} got {message}")


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ONE, Strategy.ONE_FOR_ALL])
@pytest.mark.parametrize(
    ("restart", "ending", "restarted"),
    [
        (Restart.PERMANENT, "fail", True),
        (Restart.PERMANENT, "exit", True),
        (Restart.TRANSIENT, "fail", True),
        (Restart.TRANSIENT, "exit", False),
        (Restart.TEMPORARY, "fail", False),
        (Restart.TEMPORARY, "exit", False),
    ],
)
async def test_restart_policy_under_each_strategy(
    strategy: Strategy, restart: Restart, ending: str, restarted: bool
) -> None:
    log: list[str] = []
    async with open_system(restart_backoff=NO_BACKOFF, strategy=strategy) as system:
        a = await system.spawn(partial(Worker, log), name="a")
        b = await system.spawn(partial(Worker, log), name="b", restart=restart)
        c = await system.spawn(partial(Worker, log), name="c")
        log.clear()

        await b.send(ending)
        await trio.testing.wait_all_tasks_blocked()

        if not restarted:
            assert log == ["stop b"]
        elif strategy is Strategy.ONE_FOR_ONE:
            assert log == ["stop b", "start b"]
        else:
            assert log == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]
        assert b.statistics().state is (ActorState.RUNNING if restarted else ActorState.STOPPED)
        assert b.statistics().restarts == int(restarted)
        assert b.statistics().failures == int(ending == "fail")
        siblings_restarted = int(restarted and strategy is Strategy.ONE_FOR_ALL)
        assert [a.statistics().restarts, c.statistics().restarts] == [siblings_restarted] * 2


async def test_one_for_all_does_not_restart_a_temporary_sibling() -> None:
    log: list[str] = []
    async with open_system(restart_backoff=NO_BACKOFF, strategy=Strategy.ONE_FOR_ALL) as system:
        a = await system.spawn(partial(Worker, log), name="a", restart=Restart.TEMPORARY)
        b = await system.spawn(partial(Worker, log), name="b")
        log.clear()

        await b.send("fail")
        await trio.testing.wait_all_tasks_blocked()

        assert log == ["stop b", "stop a", "start b"]
        assert a.statistics().state is ActorState.STOPPED


async def test_messages_queued_behind_a_failure_survive_the_restart() -> None:
    log: list[str] = []
    async with open_system(restart_backoff=NO_BACKOFF) as system:
        ref = await system.spawn(partial(Worker, log), name="w")
        ref.send_nowait("fail")
        ref.send_nowait("hello")
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["start w", "stop w", "start w", "w got hello"]


async def test_restarts_within_the_intensity_are_measured_with_trio_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match=r"^w failed\nmemactor: supervisor 'root' gave up")
    ):
        async with open_system(max_restarts=1, within_s=10) as system:
            ref = await system.spawn(partial(Worker, log), name="w")
            for _ in range(3):
                await ref.send("fail")
                await trio.sleep(10.5)  # the previous restart is out of the window
            assert ref.statistics().restarts == 3
            await ref.send("fail")
            await ref.send("fail")  # two restarts within 10 s: one too many
            await trio.sleep_forever()


async def test_exceeding_the_intensity_escalates_the_original_error_to_the_system() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^b failed\n")) as info:
        async with open_system(max_restarts=2, within_s=10) as system:
            await system.spawn(partial(Worker, log), name="a")
            b = await system.spawn(partial(Worker, log), name="b")
            for _ in range(3):
                await b.send("fail")
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep_forever()  # pragma: no cover - cancelled by the escalation
    [error] = info.value.exceptions
    assert error.__notes__ == [
        "memactor: supervisor 'root' gave up after more than 2 restarts in 10 s"
    ]
    assert log[-3:] == ["start b", "stop b", "stop a"]  # then everything was stopped


async def test_an_on_start_that_fails_on_restart_counts_towards_the_intensity() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match=r"^w cannot start\n")):
        async with open_system(max_restarts=2) as system:
            ref = await system.spawn(partial(Worker, log, fail_restarts=True), name="w")
            await ref.send("fail")
            await trio.sleep_forever()
    assert log == ["start w", "stop w"]  # on_stop does not run when on_start failed


async def test_normal_exits_beyond_the_intensity_escalate_restart_intensity_error() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            RestartIntensityError, match=r"^supervisor 'root' exceeded 1 restarts in 5.0 s$"
        )
    ):
        async with open_system(max_restarts=1) as system:
            ref = await system.spawn(partial(Worker, log), name="w")
            await ref.send("exit")
            await ref.send("exit")
            await trio.sleep_forever()


async def test_a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    log: list[str] = []
    async with open_system(restart_backoff=NO_BACKOFF) as system:
        first = await system.spawn(partial(Worker, log), name="first")
        stage = system.add_supervisor("stage", restart_backoff=NO_BACKOFF, max_restarts=0)
        x = await stage.spawn(partial(Worker, log), name="stage.x")
        y = await stage.spawn(partial(Worker, log), name="stage.y")
        log.clear()

        await x.send("fail")
        await trio.testing.wait_all_tasks_blocked()

        assert log == ["stop stage.x", "stop stage.y", "start stage.x", "start stage.y"]
        assert [x.statistics().restarts, y.statistics().restarts] == [1, 1]
        assert first.statistics().restarts == 0


async def test_escalation_through_nested_supervisors_reaches_the_system() -> None:
    log: list[str] = []
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^stage\.x failed\n")) as info:
        async with open_system(max_restarts=0) as system:
            stage = system.add_supervisor("stage", max_restarts=0)
            x = await stage.spawn(partial(Worker, log), name="stage.x")
            await x.send("fail")
            await trio.sleep_forever()
    [error] = info.value.exceptions
    assert error.__notes__ == [
        "memactor: supervisor 'stage' gave up after more than 0 restarts in 5.0 s",
        "memactor: supervisor 'root' gave up after more than 0 restarts in 5.0 s",
    ]


async def test_a_temporary_nested_supervisor_that_gives_up_stops_for_good() -> None:
    log: list[str] = []
    async with open_system() as system:
        other = await system.spawn(partial(Worker, log), name="other")
        stage = system.add_supervisor("stage", max_restarts=0, restart=Restart.TEMPORARY)
        x = await stage.spawn(partial(Worker, log), name="stage.x")
        y = await stage.spawn(partial(Worker, log), name="stage.y")

        await x.send("fail")
        await trio.testing.wait_all_tasks_blocked()

        assert [x.statistics().state, y.statistics().state] == [ActorState.STOPPED] * 2
        with pytest.raises(trio.BrokenResourceError, match=r"^supervisor 'stage' has stopped$"):
            await stage.spawn(partial(Worker, log), name="stage.z")
        system.add_supervisor("stage")  # the name is free again
        assert other.statistics().state is ActorState.RUNNING


async def test_one_for_all_restarts_a_nested_supervisor_as_one_child() -> None:
    log: list[str] = []
    async with open_system(restart_backoff=NO_BACKOFF, strategy=Strategy.ONE_FOR_ALL) as system:
        a = await system.spawn(partial(Worker, log), name="a")
        stage = system.add_supervisor("stage", restart_backoff=NO_BACKOFF)
        await stage.spawn(partial(Worker, log), name="stage.x")
        await stage.spawn(partial(Worker, log), name="stage.y")
        await system.spawn(partial(Worker, log), name="c")
        log.clear()

        await a.send("fail")
        await trio.testing.wait_all_tasks_blocked()

        assert log == [
            "stop a",
            "stop c",
            "stop stage.y",
            "stop stage.x",
            "start a",
            "start stage.x",
            "start stage.y",
            "start c",
        ]


async def test_intensity_arguments_are_checked() -> None:
    async with open_system() as system:
        with pytest.raises(ValueError, match=r"^max_restarts must be 0 or more, not -1$"):
            system.add_supervisor("s", max_restarts=-1)
        with pytest.raises(ValueError, match=r"^within_s must be positive, not 0$"):
            system.add_supervisor("s", within_s=0)


class GatedStart(Worker):
    """A Worker whose first ``on_start`` waits at ``gate``."""

    def __init__(self, log: list[str], gate: trio.Event) -> None:
        super().__init__(log)
        self.gate = gate

    async def on_start(self) -> None:
        await self.gate.wait()
        await super().on_start()


async def test_one_for_all_leaves_a_sibling_that_is_still_being_spawned_alone() -> None:
    log: list[str] = []
    gate = trio.Event()
    async with (
        open_system(restart_backoff=NO_BACKOFF, strategy=Strategy.ONE_FOR_ALL) as system,
        trio.open_nursery() as n,
    ):
        a = await system.spawn(partial(Worker, log), name="a")
        n.start_soon(partial(system.spawn, GatedStart(log, gate), name="slow"))
        await trio.testing.wait_all_tasks_blocked()

        await a.send("fail")
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["start a", "stop a", "start a"]

        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert system.lookup("slow").statistics().state is ActorState.RUNNING


async def test_a_spawn_under_a_supervisor_that_gives_up_for_good_raises_broken_resource() -> None:
    log: list[str] = []
    errors: list[BaseException] = []

    async def spawn_slow(stage: Supervisor) -> None:
        try:
            await stage.spawn(GatedStart(log, trio.Event()), name="stage.slow")
        except trio.BrokenResourceError as exc:
            errors.append(exc)

    async with open_system() as system, trio.open_nursery() as nursery:
        stage = system.add_supervisor("stage", max_restarts=0, restart=Restart.TEMPORARY)
        x = await stage.spawn(partial(Worker, log), name="stage.x")
        nursery.start_soon(spawn_slow, stage)
        await trio.testing.wait_all_tasks_blocked()

        await x.send("fail")
        await trio.testing.wait_all_tasks_blocked()
        assert [str(exc) for exc in errors] == [
            "supervisor 'stage' stopped while 'stage.slow' was starting"
        ]
        assert system.refs() == []
