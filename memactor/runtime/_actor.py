"""The base class users subclass to write an actor."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    import trio

    from ._cell import Cell
    from ._ref import ActorRef
    from ._reporter import MemoryReporter
    from ._stats import ActorStatistics
    from ._system import ActorSystem

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")
PosArgsT = TypeVarTuple("PosArgsT")


class Actor(abc.ABC, Generic[MessageT, ReplyT]):
    """A trio task with a bounded mailbox: subclass it, then ``await system.spawn(...)``.

    The runtime calls the hooks of one incarnation in this order, in one task::

        on_start()                    # the actor's nursery is open already
        loop:
            on_idle()                 # only when the mailbox is empty, before waiting
            handle(message)           # one message at a time, in arrival order
        (background tasks cancelled)
        on_stop()                     # only if on_start returned

    An exception escaping ``on_start``, ``handle``, ``on_stop`` or a background task is
    the actor's failure: its supervisor restarts it (a new incarnation, see
    :meth:`ActorSystem.spawn`) or escalates. On cancellation (the supervisor terminating
    it for a restart of its siblings, or the system closing on an error or a cancel),
    the current ``await`` raises `trio.Cancelled` and ``on_stop`` still runs, in the
    cancelled scope: it may clean up synchronously, but any ``await`` in it raises
    `trio.Cancelled` again.

    ``self.name``, ``self.system`` and ``self.ref`` are available from ``on_start`` on.
    A subclass's ``__init__`` need not call ``super().__init__()``.
    """

    _cell: Cell[MessageT, ReplyT] | None = None

    lossy_reporter: bool = False
    """Set to True in a subclass to give its :attr:`reporter` the lossy mode: emits never
    wait for the metrics actor, and what finds no room is dropped and counted."""

    async def on_start(self) -> None:
        """Prepare the actor; runs before any message is handled.

        :meth:`ActorSystem.spawn` returns only after this returned, and raises what it
        raises. During a restart, an exception here is the new incarnation's failure.
        """

    async def on_stop(self) -> None:
        """Release what :meth:`on_start` took; runs on every exit once it had returned.

        Runs after the actor's background tasks have finished. After a cancellation it
        runs in the cancelled scope (see the class docstring).
        """

    async def on_idle(self) -> None:
        """Called each time the mailbox is found empty, just before waiting for a message.

        The place to flush batched work (such as a memory reporter's batch). Not called
        between messages while the mailbox holds more. The default does nothing and is
        skipped at no cost; an override adds one call per empty-mailbox wait.
        """

    @abc.abstractmethod
    async def handle(self, message: MessageT) -> ReplyT:
        """Handle one message; what it returns is the reply to :meth:`ActorRef.ask`.

        An exception raised here fails the actor (see the class docstring); an asker of
        this message gets :class:`ActorFailedError` with the original exception.
        """

    @property
    def _bound_cell(self) -> Cell[MessageT, ReplyT]:
        if self._cell is None:
            raise RuntimeError(f"{self!r} has not been spawned")
        return self._cell

    @property
    def spawned(self) -> bool:
        """Whether the actor has been spawned (and so has a :attr:`name`); it stays true
        after the actor stopped."""
        return self._cell is not None

    @property
    def name(self) -> str:
        """The unique name this actor was spawned under."""
        return self._bound_cell.name

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor runs in."""
        return self._bound_cell.system

    @property
    def ref(self) -> ActorRef[MessageT, ReplyT]:
        """This actor's own ref (for handing to others, or for ``self.ref.stop_nowait()``)."""
        return self._bound_cell.ref

    @property
    def reporter(self) -> MemoryReporter:
        """This actor's memory reporter: component and default owner are its name.

        Made on first use and kept across restarts, so block ids stay unique. The runtime
        flushes it whenever the actor is about to wait for a message, and also between
        messages once a full batch has found no room (lossless: waiting for room in the
        hub's inbox, which is the backpressure), and closes it when the actor stops for
        good; every round of the metrics actor (at least once per flush interval) takes
        what it still holds.
        """
        cell = self._bound_cell
        if cell.reporter is None:
            cell.reporter = cell.system.memory.reporter(cell.name, lossy=self.lossy_reporter)
        return cell.reporter

    @property
    def nursery(self) -> trio.Nursery:
        """A nursery that lives as long as this incarnation.

        Its tasks are cancelled when the message loop ends (stop, exit, failure or
        cancellation), before ``on_stop``; an exception in one of them fails the actor.
        The tasks this actor starts in it work for it (see :func:`current_actor`); a task
        that code outside the actor starts in it works for whoever started it.

        Raises:
          RuntimeError: the actor is not running (before ``on_start`` or after the loop).
        """
        return self._bound_cell.current_nursery()

    def start_soon(
        self,
        async_fn: Callable[[*PosArgsT], Awaitable[object]],
        *args: *PosArgsT,
        name: object = None,
    ) -> None:
        """Run a background task inside this actor's lifetime (``self.nursery.start_soon``)."""
        self.nursery.start_soon(async_fn, *args, name=name)

    def exit(self) -> None:
        """End this incarnation normally once the current hook or handler returns.

        Messages still queued stay in the mailbox. A normal exit restarts a ``PERMANENT``
        actor (which then handles them); a ``TRANSIENT`` or ``TEMPORARY`` one stops for
        good and its queued messages are discarded. To stop for good after handling the
        queue, use ``self.ref.stop_nowait()`` instead.

        Raises:
          RuntimeError: the actor is not running.
        """
        self._bound_cell.request_exit()

    def statistics(self) -> ActorStatistics:
        """Return a fresh frozen :class:`ActorStatistics` (same as ``self.ref.statistics()``)."""
        return self._bound_cell.statistics()


def bind(actor: Actor[MessageT, ReplyT], cell: Cell[MessageT, ReplyT]) -> None:
    """Attach ``actor`` to the cell it runs in: from now on :attr:`Actor.spawned` is true and
    its name, system, ref and reporter are the cell's.

    For the runtime's use: each incarnation binds the instance it is about to start.
    """
    actor._cell = cell
