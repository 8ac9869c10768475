"""ActorRef.ask: replies, handler errors, timeouts, and actors that are or become gone."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from memactor._errors import MemactorError
from memactor.runtime import (
    Actor,
    ActorFailedError,
    ActorRef,
    AskTimeoutError,
    MessageDroppedError,
    Overflow,
    Restart,
    open_system,
)


class Calculator(Actor[str, int]):
    """``"n"`` replies n*2; ``"fail"`` raises; ``"exit"`` exits normally; waits at ``gate``."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.gate.set()
        self.handled: list[str] = []

    async def handle(self, message: str) -> int:
        await self.gate.wait()
        self.handled.append(message)
        if message == "fail":
            raise ValueError("cannot calculate")
        if message == "exit":
            self.exit()
            return 0
        return int(message) * 2


async def test_ask_returns_what_the_handler_returns() -> None:
    async with open_system() as system:
        ref = await system.spawn(Calculator, name="calc")
        assert await ref.ask("21") == 42
        assert await ref.ask("5", timeout=1) == 10


async def test_a_handler_error_fails_the_actor_and_reaches_the_asker() -> None:
    async with open_system() as system:
        ref = await system.spawn(Calculator, name="calc")
        with pytest.raises(ActorFailedError, match=r"^actor 'calc' failed: ValueError") as info:
            await ref.ask("fail")
        assert isinstance(info.value.error, ValueError)
        assert info.value.__cause__ is info.value.error
        assert info.value.actor_name == "calc"

        # PERMANENT (the default): the supervisor restarted it.
        assert await ref.ask("1") == 2
        stats = ref.statistics()
        assert (stats.failures, stats.restarts) == (1, 1)


async def test_asking_after_a_failure_that_is_not_restarted_raises_broken_resource() -> None:
    async with open_system() as system:
        ref = await system.spawn(Calculator, name="calc", restart=Restart.TEMPORARY)
        with pytest.raises(ActorFailedError):
            await ref.ask("fail")
        await trio.testing.wait_all_tasks_blocked()  # let its incarnation end
        with pytest.raises(trio.BrokenResourceError, match=r"^actor 'calc' has stopped$"):
            await ref.ask("1")


async def test_ask_timeout_raises_ask_timeout_and_the_message_is_still_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Calculator()
    actor.gate = trio.Event()
    async with open_system() as system:
        ref = await system.spawn(actor, name="calc")
        with pytest.raises(AskTimeoutError, match=r"^actor 'calc' did not reply within 2.5 s$"):
            await ref.ask("3", timeout=2.5)
        assert trio.current_time() == 2.5
        actor.gate.set()
    assert actor.handled == ["3"]
    assert ref.statistics().messages_handled == 1


def test_ask_timeout_is_a_timeout_error_and_a_memactor_error() -> None:
    assert issubclass(AskTimeoutError, TimeoutError)
    assert issubclass(AskTimeoutError, MemactorError)


async def test_ask_timeout_covers_waiting_for_room(autojump_clock: trio.testing.MockClock) -> None:
    actor = Calculator()
    actor.gate = trio.Event()
    async with open_system() as system:
        ref = await system.spawn(actor, name="calc", mailbox_size=1)
        ref.send_nowait("1")
        ref.send_nowait("2")
        with pytest.raises(AskTimeoutError):
            await ref.ask("3", timeout=1)
        assert ref.statistics().mailbox_depth == 1  # "3" never got in
        actor.gate.set()
    assert actor.handled == ["1", "2"]


async def test_asking_a_stopped_actor_raises_broken_resource() -> None:
    async with open_system() as system:
        ref = await system.spawn(Calculator, name="calc")
        await ref.stop()
        with pytest.raises(trio.BrokenResourceError, match=r"^actor 'calc' has stopped$"):
            await ref.ask("1")


async def test_asks_still_queued_when_the_actor_stops_for_good_raise_broken_resource() -> None:
    actor = Calculator()
    actor.gate = trio.Event()
    errors: list[BaseException] = []

    async def ask(ref: ActorRef[str, int], message: str) -> None:
        try:
            await ref.ask(message)
        except trio.BrokenResourceError as exc:
            errors.append(exc)

    async with open_system() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(actor, name="calc", restart=Restart.TRANSIENT)
        ref.send_nowait("exit")  # a normal exit: TRANSIENT stops for good
        nursery.start_soon(ask, ref, "1")
        await trio.testing.wait_all_tasks_blocked()
        actor.gate.set()
    assert [str(exc) for exc in errors] == ["actor 'calc' stopped before replying"]
    assert actor.handled == ["exit"]
    assert ref.statistics().messages_discarded == 1


async def test_an_ask_in_flight_when_the_system_is_cancelled_raises_broken_resource() -> None:
    actor = Calculator()
    actor.gate = trio.Event()
    errors: list[BaseException] = []

    async def ask(ref: ActorRef[str, int]) -> None:
        try:
            await ref.ask("1")
        except trio.BrokenResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as outside:
        with trio.CancelScope() as scope:
            async with open_system() as system:
                ref = await system.spawn(actor, name="calc")
                outside.start_soon(ask, ref)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
    assert [str(exc) for exc in errors] == ["actor 'calc' stopped before replying"]


@pytest.mark.parametrize("overflow", [Overflow.DROP_NEWEST, Overflow.DROP_OLDEST])
async def test_an_ask_dropped_by_a_lossy_mailbox_raises_message_dropped(
    overflow: Overflow,
) -> None:
    actor = Calculator()
    actor.gate = trio.Event()
    async with open_system() as system, trio.open_nursery() as nursery:
        ref = await system.spawn(actor, name="calc", mailbox_size=1, overflow=overflow)
        ref.send_nowait("1")  # in the handler
        await trio.testing.wait_all_tasks_blocked()
        if overflow is Overflow.DROP_NEWEST:
            ref.send_nowait("2")  # fills the mailbox, so the ask is the newest
            with pytest.raises(MessageDroppedError, match=r"^actor 'calc' dropped the message"):
                await ref.ask("3")
        else:
            dropped: list[BaseException] = []

            async def ask_first() -> None:
                try:
                    await ref.ask("2")
                except MessageDroppedError as exc:
                    dropped.append(exc)

            nursery.start_soon(ask_first)
            await trio.testing.wait_all_tasks_blocked()
            ref.send_nowait("3")  # pushes the asked "2" out
            await trio.testing.wait_all_tasks_blocked()
            assert len(dropped) == 1
        assert ref.statistics().messages_dropped == 1
        actor.gate.set()
