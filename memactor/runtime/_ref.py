"""Addresses of actors: :class:`ActorRef`, what travels through a mailbox, and
:func:`current_actor`, the actor the calling task works for."""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio
from outcome import Error, Outcome, Value

from ._exceptions import ActorFailedError, AskTimeoutError

if TYPE_CHECKING:
    from ._cell import Cell
    from ._stats import ActorStatistics

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")

# Set by each incarnation task for itself (see enter_actor); trio copies the starting
# task's context into every task it starts, so the actor's own tasks inherit it.
_current_actor: ContextVar[ActorRef[Any, Any] | None] = ContextVar(
    "memactor.current_actor", default=None
)


def current_actor() -> ActorRef[Any, Any] | None:
    """The ref of the actor the calling task works for; ``None`` outside any actor.

    That is the actor whose incarnation task is the caller or started it, directly or
    through tasks started in turn: ``on_start``, ``handle``, ``on_idle`` and ``on_stop``,
    the tasks of :meth:`Actor.start_soon` and of :attr:`Actor.nursery`, the tasks those
    start, and the threads of `trio.to_thread.run_sync` called from any of them. It is
    decided by trio's context inheritance (a new task gets a copy of its starter's
    context), not by where a task runs: a task that code outside any actor starts in an
    actor's nursery is not the actor's (``None``, or the actor its starter works for),
    and a task an actor starts in a nursery of someone else's stays the actor's.

    The ref is the same for every incarnation (each one sets it anew when it starts), so
    ``current_actor().name`` is the name memory is attributed to. A task that outlives
    its actor still gets that actor's ref, which then raises `trio.BrokenResourceError`
    on delivery. One context-variable read: cheap enough for a hot path.
    """
    return _current_actor.get()


def actor_of_task(task: trio.lowlevel.Task) -> ActorRef[Any, Any] | None:
    """The :func:`current_actor` of *task* (read from its context), for the runtime's
    use: a blocked task's actor, seen from outside it."""
    return task.context.get(_current_actor, None)


def enter_actor(ref: ActorRef[Any, Any]) -> None:
    """Make ``ref`` the :func:`current_actor` of the calling task and of the tasks it
    starts from now on.

    For the runtime's use: the first thing each incarnation task does. The setting lives
    in the task's own context, so it needs no undoing when the task ends.
    """
    _current_actor.set(ref)


class ReplySlot(Generic[ReplyT]):
    """Where the reply to one ask lands: set once, by the actor or by the runtime."""

    __slots__ = ("_event", "result")

    def __init__(self) -> None:
        self._event = trio.Event()
        self.result: Outcome[ReplyT] | None = None

    def set(self, result: Outcome[ReplyT]) -> None:
        if self.result is None:
            self.result = result
            self._event.set()

    def reply(self, value: ReplyT) -> None:
        self.set(Value(value))

    def fail(self, error: BaseException) -> None:
        self.set(Error(error))

    async def wait(self) -> None:
        await self._event.wait()


class Envelope(Generic[MessageT, ReplyT]):
    """A message in a mailbox, with the slot for its reply when it was asked."""

    __slots__ = ("message", "reply")

    def __init__(self, message: MessageT, reply: ReplySlot[ReplyT] | None) -> None:
        self.message = message
        self.reply = reply


class ActorRef(Generic[MessageT, ReplyT]):
    """The address of a spawned actor; the only way to talk to it.

    A ref stays valid across restarts (the mailbox and the messages queued in it survive
    a restart). Once the actor has stopped for good, every method that delivers a message
    raises `trio.BrokenResourceError`: the receiving side is gone. Refs are created by
    the system, one per actor, and compare by identity.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell[MessageT, ReplyT]) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.name!r}>"

    @property
    def name(self) -> str:
        """The actor's unique name."""
        return self._cell.name

    async def send(self, message: MessageT) -> None:
        """Deliver ``message`` without waiting for it to be handled.

        Under backpressure (``Overflow.BLOCK`` and a full mailbox) this waits for room,
        first come, first served. With a lossy policy it never waits: the newest or oldest
        message is dropped and counted instead. If cancelled while waiting, the message
        was not delivered. The handler's return value is discarded.

        Raises:
          trio.BrokenResourceError: the actor has stopped or is stopping, before or while
              this waited; the message was not delivered.
        """
        await self._cell.mailbox.send(Envelope(message, None))

    def send_nowait(self, message: MessageT) -> None:
        """Like :meth:`send`, but never waits.

        Raises:
          trio.WouldBlock: the mailbox is full and its policy is ``Overflow.BLOCK``
              (lossy mailboxes drop instead).
          trio.BrokenResourceError: the actor has stopped or is stopping.
        """
        self._cell.mailbox.send_nowait(Envelope(message, None))

    async def ask(self, message: MessageT, *, timeout: float | None = None) -> ReplyT:
        """Deliver ``message`` and wait for the value its handler returns.

        The timeout (seconds, or ``None`` to wait as long as it takes) covers waiting for
        room in the mailbox and waiting for the reply. On timeout or cancellation the
        message, if already delivered, is still handled and its reply discarded.

        Raises:
          ActorFailedError: the handler raised for this message; the original exception
              is its ``error`` and ``__cause__``. The actor itself failed, exactly as if
              the message had been sent: its supervisor restarts it (the other queued
              messages wait for the new incarnation) or escalates the original error.
          AskTimeoutError: no reply within ``timeout``.
          MessageDroppedError: a lossy mailbox dropped the message.
          trio.BrokenResourceError: the actor had stopped, or it stopped, was cancelled
              or was restarted by its supervisor before it replied.
        """
        slot: ReplySlot[ReplyT] = ReplySlot()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        with trio.move_on_at(deadline):
            await self._cell.mailbox.send(Envelope(message, slot))
            await slot.wait()
        if slot.result is None:
            assert timeout is not None
            raise AskTimeoutError(self._cell.name, timeout)
        return slot.result.unwrap()

    async def stop(self) -> None:
        """Stop the actor for good, gracefully, and wait until it has stopped.

        The mailbox stops accepting messages at once (senders, including those blocked
        under backpressure, get `trio.BrokenResourceError`); the messages already queued
        are handled; then the actor's background tasks are cancelled, ``on_stop`` runs and
        the name is freed. The actor is not restarted, whatever its policy. Idempotent:
        stopping a stopped actor returns at once.

        If this is cancelled, the stop still happens; only the waiting is cancelled. An
        actor must not await its own stop (it would wait for itself): use
        :meth:`stop_nowait` from inside it.

        Raises:
          ActorFailedError: the actor failed after the stop was requested (it is then not
              restarted, and the error is reported here instead).
          RuntimeError: called from the actor's own task.
        """
        cell = self._cell
        cell.check_not_own_task()
        cell.request_stop()
        await cell.finished.wait()
        if cell.stop_error is not None:
            raise ActorFailedError(cell.name, cell.stop_error)

    def stop_nowait(self) -> None:
        """Request the graceful stop of :meth:`stop` and return at once."""
        self._cell.request_stop()

    def statistics(self) -> ActorStatistics:
        """Return a fresh frozen :class:`ActorStatistics` for this actor (also after stop)."""
        return self._cell.statistics()
