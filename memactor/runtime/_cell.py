"""The runtime side of one spawned actor: its mailbox, its incarnations and its counters.

A :class:`Cell` is created by ``spawn`` and lives until the actor stops for good. Each
incarnation is one trio task in the system's nursery running one :class:`Actor` instance
from ``on_start`` to ``on_stop``; a restart is a new incarnation with the same cell, so the
ref, the mailbox and the counters survive it. When an incarnation ends, the cell hands it
to the system's supervision, which decides what happens next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from ._actor import Actor, bind
from ._exceptions import ActorFailedError, MessageDroppedError
from ._mailbox import Mailbox, Overflow
from ._ref import ActorRef, Envelope, enter_actor
from ._stats import ActorState, ActorStatistics

if TYPE_CHECKING:
    from ._policy import Restart
    from ._reporter import MemoryReporter
    from ._supervisor import Supervisor
    from ._system import ActorSystem

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")


class Incarnation(Generic[MessageT, ReplyT]):
    """One run of an actor instance, from ``on_start`` to ``on_stop``, in one task.

    ``scope`` is shielded so that cancelling the system's scope does not reach every actor
    at once: the system cancels incarnations one by one, in reverse start order.
    """

    __slots__ = (
        "actor",
        "cell",
        "done",
        "error",
        "exit_requested",
        "initial",
        "nursery",
        "ready",
        "scope",
        "started",
        "stopped",
        "task",
        "terminated",
    )

    def __init__(self, cell: Cell[MessageT, ReplyT], *, initial: bool) -> None:
        self.cell = cell
        self.initial = initial
        self.actor: Actor[MessageT, ReplyT] | None = None
        self.task: trio.lowlevel.Task | None = None
        self.nursery: trio.Nursery | None = None
        self.scope = trio.CancelScope(shield=True)
        # Set once on_start has returned, or once the incarnation has ended.
        self.ready = trio.Event()
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.started = False
        self.stopped = False  # the mailbox was closed and drained
        self.exit_requested = False
        self.terminated = False  # cancelled by a supervisor or the system, which decides next

    def terminate(self) -> None:
        self.terminated = True
        self.scope.cancel()


class Cell(Generic[MessageT, ReplyT]):
    """Everything about one actor that outlives its incarnations."""

    def __init__(
        self,
        system: ActorSystem,
        parent: Supervisor,
        name: str,
        factory: Callable[[], Actor[MessageT, ReplyT]],
        *,
        mailbox_size: int,
        overflow: Overflow,
        restart: Restart,
    ) -> None:
        self.system = system
        self.parent = parent
        self.name = name
        self.restart = restart
        self._factory = factory
        self.mailbox: Mailbox[Envelope[MessageT, ReplyT]] = Mailbox(
            mailbox_size, overflow, owner=name, on_drop=self._dropped
        )
        self.ref: ActorRef[MessageT, ReplyT] = ActorRef(self)
        self.state = ActorState.STARTING
        self.incarnation: Incarnation[MessageT, ReplyT] | None = None
        self.last_incarnation: Incarnation[MessageT, ReplyT] | None = None
        self.stop_requested = False
        self.stopping = trio.Event()
        """Set when a stop is requested (a restart's backoff wait ends on it)."""
        self.stop_error: BaseException | None = None
        self.finished = trio.Event()
        self.handled = 0
        self.discarded = 0
        self.failures = 0
        self.restarts = 0
        self._started_at: float | None = None
        self._ended_at: float | None = None
        # Made on the actor's first use of ``self.reporter``; it outlives restarts.
        self.reporter: MemoryReporter | None = None

    def __repr__(self) -> str:
        return f"<Cell {self.name!r} {self.state.value}>"

    # ---- lifecycle, driven by spawn, the supervision and the system -------------------

    def start(self, *, initial: bool) -> Incarnation[MessageT, ReplyT]:
        """Start a new incarnation task; await its ``ready`` to know how ``on_start`` went."""
        assert self.incarnation is None
        assert not self.finished.is_set()
        if not initial:
            self.restarts += 1
        incarnation = Incarnation(self, initial=initial)
        self.incarnation = self.last_incarnation = incarnation
        self.state = ActorState.STARTING
        self._started_at = self._ended_at = None
        self.system.start_task(self._run, incarnation, name=f"actor {self.name}")
        return incarnation

    async def terminate(self) -> None:
        """Cancel the running incarnation (if any) and wait until it has ended.

        The caller decides what happens next: the incarnation is not handed to supervision.
        """
        incarnation = self.incarnation
        if incarnation is not None:
            incarnation.terminate()
            await incarnation.done.wait()

    def request_stop(self) -> None:
        """Close the mailbox so that the incarnation drains it and ends; see ActorRef.stop."""
        if self.stop_requested or self.finished.is_set():
            return
        self.stop_requested = True
        self.stopping.set()
        self.state = ActorState.STOPPING
        self.mailbox.close()

    def finish(self) -> None:
        """End the actor for good: fail what is still queued, free the name. Idempotent."""
        if self.finished.is_set():
            return
        assert self.incarnation is None
        self.state = ActorState.STOPPED
        for envelope in self.mailbox.discard():
            self.discarded += 1
            if envelope.reply is not None:
                envelope.reply.fail(self._stopped_before_replying())
        if self.reporter is not None:
            self.system.memory.forget(self.reporter)
        self.parent.remove_child(self)
        self.system.unregister_name(self.name, self)
        self.finished.set()

    # ---- what the Actor base class delegates to -----------------------------------------

    def _own_incarnation(self) -> Incarnation[MessageT, ReplyT] | None:
        incarnation = self.incarnation
        if incarnation is not None and incarnation.task is trio.lowlevel.current_task():
            return incarnation
        return None

    def check_not_own_task(self) -> None:
        if self._own_incarnation() is not None:
            raise RuntimeError(
                f"actor {self.name!r} cannot wait for its own stop; "
                "use self.ref.stop_nowait() or self.exit()"
            )

    def request_exit(self) -> None:
        incarnation = self._own_incarnation()
        if incarnation is None:
            raise RuntimeError(f"exit() must be called from actor {self.name!r}'s own task")
        incarnation.exit_requested = True

    def current_nursery(self) -> trio.Nursery:
        incarnation = self.incarnation
        if incarnation is None or incarnation.nursery is None:
            raise RuntimeError(f"actor {self.name!r} is not running")
        return incarnation.nursery

    def statistics(self) -> ActorStatistics:
        mailbox = self.mailbox
        if self._started_at is None:
            uptime_s = 0.0
        else:
            end = trio.current_time() if self._ended_at is None else self._ended_at
            uptime_s = end - self._started_at
        return ActorStatistics(
            name=self.name,
            state=self.state,
            mailbox_capacity=mailbox.capacity,
            mailbox_depth=mailbox.depth,
            mailbox_peak_depth=mailbox.peak_depth,
            senders_waiting=mailbox.senders_waiting,
            overflow=mailbox.overflow,
            messages_handled=self.handled,
            messages_dropped=mailbox.dropped,
            messages_discarded=self.discarded,
            failures=self.failures,
            restarts=self.restarts,
            uptime_s=uptime_s,
        )

    # ---- the incarnation task ---------------------------------------------------------

    def _stopped_before_replying(self) -> trio.BrokenResourceError:
        return trio.BrokenResourceError(f"actor {self.name!r} stopped before replying")

    def _dropped(self, envelope: Envelope[MessageT, ReplyT]) -> None:
        if envelope.reply is not None:
            envelope.reply.fail(MessageDroppedError(self.name))

    async def _run(self, incarnation: Incarnation[MessageT, ReplyT]) -> None:
        # Set here, not by whoever starts the incarnation: a restart is started by the
        # supervision task, and a spawn from an actor's handler by that other actor.
        enter_actor(self.ref)
        incarnation.task = trio.lowlevel.current_task()
        try:
            with incarnation.scope:
                await self._live(incarnation)
        except BaseException:
            # Only KeyboardInterrupt and the like get here (the shielded scope is cancelled
            # by the runtime alone): the whole system goes down, so nothing restarts it.
            incarnation.terminated = True
            raise
        finally:
            self.incarnation = None
            if self._started_at is not None:
                self._ended_at = trio.current_time()
            if incarnation.error is not None:
                self.failures += 1
            incarnation.ready.set()
            incarnation.done.set()
            self.system.supervision.incarnation_ended(incarnation)

    async def _live(self, incarnation: Incarnation[MessageT, ReplyT]) -> None:
        try:
            actor = self._factory()
            bind(actor, self)
        except Exception as exc:
            incarnation.error = exc
            return
        incarnation.actor = actor
        try:
            async with trio.open_nursery() as nursery:
                incarnation.nursery = nursery
                try:
                    await actor.on_start()
                    self._mark_started(incarnation)
                    await self._message_loop(incarnation, actor)
                except Exception as exc:
                    incarnation.error = exc
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Failures of background tasks; Cancelled and KeyboardInterrupt go on up.
            errors, others = group.split(Exception)
            if errors is not None and incarnation.error is None:
                incarnation.error = errors.exceptions[0] if len(errors.exceptions) == 1 else errors
            if others is not None:
                raise others from None
        finally:
            incarnation.nursery = None
            if incarnation.started:
                try:
                    await actor.on_stop()
                except Exception as exc:
                    if incarnation.error is None:
                        incarnation.error = exc

    def _mark_started(self, incarnation: Incarnation[MessageT, ReplyT]) -> None:
        incarnation.started = True
        self._started_at = trio.current_time()
        if self.state is ActorState.STARTING:
            self.state = ActorState.RUNNING
        incarnation.ready.set()

    async def _message_loop(
        self, incarnation: Incarnation[MessageT, ReplyT], actor: Actor[MessageT, ReplyT]
    ) -> None:
        mailbox = self.mailbox
        idle_hook = type(actor).on_idle is not Actor.on_idle
        while True:
            idle = not mailbox.depth
            if idle and idle_hook:
                await actor.on_idle()
            # About to wait, or a full batch found no room while messages keep coming: hand
            # the reporter's batch on (lossless: waiting for room, the backpressure).
            reporter = self.reporter
            if reporter is not None and (reporter.backlogged or (idle and reporter.pending)):
                await reporter.flush()
            if incarnation.exit_requested:
                return
            try:
                envelope = await mailbox.receive()
            except trio.EndOfChannel:
                incarnation.stopped = True
                return
            reply = envelope.reply
            if reply is None:
                await actor.handle(envelope.message)
            else:
                try:
                    value = await actor.handle(envelope.message)
                except Exception as exc:
                    reply.fail(ActorFailedError(self.name, exc))
                    raise
                except BaseException:
                    reply.fail(self._stopped_before_replying())
                    raise
                reply.reply(value)
            self.handled += 1
