"""The actor system: the nursery every actor runs in, the names, and structured shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, TypeVarTuple

import trio

from ._actor import Actor
from ._cell import Cell
from ._exceptions import ActorNotFoundError, DuplicateNameError
from ._hub import MemoryHub
from ._mailbox import Overflow
from ._policy import DEFAULT_BACKOFF, Backoff, Restart, Strategy
from ._ref import actor_of_task
from ._restarts import Supervision
from ._stall import DEFAULT_STALL_THRESHOLD_S, StallWatch
from ._supervisor import (
    DEFAULT_MAILBOX_SIZE,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_WITHIN_S,
    Supervisor,
)

if TYPE_CHECKING:
    from ._ref import ActorRef

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")
PosArgsT = TypeVarTuple("PosArgsT")


@dataclass(frozen=True, slots=True)
class ActorSpec(Generic[MessageT, ReplyT]):
    """The arguments of one :meth:`ActorSystem.spawn`, for actors the system starts itself.

    System actors start in the order given, before the body of ``async with``, and stop
    after every actor of the user, in reverse order, except the one that drains memory.
    """

    actor: Actor[MessageT, ReplyT] | Callable[[], Actor[MessageT, ReplyT]]
    name: str
    mailbox_size: int = DEFAULT_MAILBOX_SIZE
    overflow: Overflow = Overflow.BLOCK
    restart: Restart = Restart.PERMANENT
    drains_memory: bool = False
    """Stop this actor after every other actor and after the system's :class:`MemoryHub`
    has closed its reporters, so that it can take their last events as it stops (the
    metrics actor does). At most one system actor may drain memory; :func:`open_system`
    and :func:`run_system` raise ``ValueError`` when several do. Without one, the hub
    closes after every actor has stopped."""


def _checked_system_actors(specs: Iterable[ActorSpec[Any, Any]]) -> list[ActorSpec[Any, Any]]:
    """``specs`` as a list, once checked: at most one of them drains memory.

    Raises:
      ValueError: more than one spec has ``drains_memory=True``.
    """
    specs = list(specs)
    drainers = [spec.name for spec in specs if spec.drains_memory]
    if len(drainers) > 1:
        raise ValueError(
            f"at most one system actor may drain memory, not {len(drainers)}: "
            + ", ".join(map(repr, drainers))
        )
    return specs


async def _reraise(error: BaseException) -> None:
    raise error


class ActorSystem:
    """A tree of supervised actors, all running in one nursery. Made by :func:`open_system`.

    It holds two top-level supervisors: one for the system actors given to
    :func:`open_system` (started first, stopped last) and :attr:`root`, where
    :meth:`spawn` and :meth:`add_supervisor` put the user's actors.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        strategy: Strategy,
        max_restarts: int,
        within_s: float,
        memory: MemoryHub | None = None,
        restart_backoff: Backoff = DEFAULT_BACKOFF,
        stall_watch: StallWatch | None = None,
    ) -> None:
        self._nursery = nursery
        self.memory = memory if memory is not None else MemoryHub()
        """Where the actors' memory reporters send their events; see :class:`MemoryHub`."""
        self.stall_watch = stall_watch
        """Times the run's task steps while the system is open (``None``: not watched);
        its ``statistics()`` say how often, and by which task, the loop stalled."""
        self._closing = False
        # The system actor that stops last, after the hub closes; see ActorSpec.
        self._memory_drainer: ActorRef[Any, Any] | None = None
        self._names: dict[str, Cell[Any, Any] | Supervisor] = {}
        self._supervision = Supervision(self)
        self._system_supervisor = Supervisor(
            self,
            "system",
            parent=None,
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=max_restarts,
            within_s=within_s,
            restart_backoff=restart_backoff,
            restart=Restart.PERMANENT,
        )
        self.root = Supervisor(
            self,
            "root",
            parent=None,
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            restart_backoff=restart_backoff,
            restart=Restart.PERMANENT,
        )
        """The top-level supervisor of the user's actors (the one :meth:`spawn` uses)."""

    def __repr__(self) -> str:
        return f"<ActorSystem with {len(self._names)} names>"

    async def spawn(
        self,
        actor: Actor[MessageT, ReplyT] | Callable[[], Actor[MessageT, ReplyT]],
        *,
        name: str,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = Overflow.BLOCK,
        restart: Restart = Restart.PERMANENT,
    ) -> ActorRef[MessageT, ReplyT]:
        """Spawn an actor under :attr:`root`; see :meth:`Supervisor.spawn`."""
        return await self.root.spawn(
            actor, name=name, mailbox_size=mailbox_size, overflow=overflow, restart=restart
        )

    def add_supervisor(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        within_s: float = DEFAULT_WITHIN_S,
        restart: Restart = Restart.PERMANENT,
        restart_backoff: Backoff = DEFAULT_BACKOFF,
    ) -> Supervisor:
        """Add a supervisor under :attr:`root`; see :meth:`Supervisor.add_supervisor`."""
        return self.root.add_supervisor(
            name,
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            restart_backoff=restart_backoff,
            restart=restart,
        )

    def lookup(self, name: str) -> ActorRef[Any, Any]:
        """The ref of the live actor called ``name`` (system actors included).

        Raises:
          ActorNotFoundError: no live actor has that name (it may be a supervisor's).
        """
        cell = self._names.get(name)
        if not isinstance(cell, Cell):
            raise ActorNotFoundError(name)
        return cell.ref

    def refs(self) -> list[ActorRef[Any, Any]]:
        """The refs of all live actors: system actors first, then the tree in start order."""
        return [cell.ref for cell in self._cells()]

    def running_actors(self) -> list[Actor[Any, Any]]:
        """The instances of the live actors' current incarnations, in :meth:`refs`
        order (an actor between incarnations is left out).

        For the runtime's use: the metrics actor reads each one's ``statistics()`` on
        its tick (a chunk processor's are richer than its ref's).
        """
        return [
            cell.incarnation.actor
            for cell in self._cells()
            if cell.incarnation is not None and cell.incarnation.actor is not None
        ]

    def waiting_for_room(self) -> set[str]:
        """The names of the actors one of whose tasks waits now for room in a full
        mailbox (``Overflow.BLOCK``): they are held up by the actor after them.

        For the runtime's use: the metrics actor's tick reads it (a pass over the
        mailboxes' waiting senders, nothing on a send's path).
        """
        names: set[str] = set()
        for cell in self._cells():
            for task in cell.mailbox.waiting_senders():
                sender = actor_of_task(task)
                if sender is not None:
                    names.add(sender.name)
        return names

    def _cells(self) -> Iterator[Cell[Any, Any]]:
        stack: list[Cell[Any, Any] | Supervisor] = [self.root, self._system_supervisor]
        while stack:
            node = stack.pop()
            if isinstance(node, Cell):
                yield node
            else:
                stack.extend(reversed(node.children))

    # ---- the runtime's internal contract: supervisors, cells and supervision ----------

    @property
    def closing(self) -> bool:
        """Whether the system has begun to shut down (or has shut down): from then on no
        actor or supervisor can be added, and nothing is restarted.

        For the runtime's use.
        """
        return self._closing

    @property
    def supervision(self) -> Supervision:
        """The queue and task that decide restarts; cells hand it their ended incarnations.

        For the runtime's use.
        """
        return self._supervision

    def check_open(self) -> None:
        """Raise `trio.ClosedResourceError` if the system is :attr:`closing`.

        For the runtime's use (before adding an actor or a supervisor).
        """
        if self._closing:
            raise trio.ClosedResourceError("the actor system is closed")

    def register_name(self, name: str, owner: Cell[Any, Any] | Supervisor) -> None:
        """Claim ``name`` for a new actor or supervisor.

        For the runtime's use. Raises :class:`DuplicateNameError` if it is taken.
        """
        if name in self._names:
            raise DuplicateNameError(name)
        self._names[name] = owner

    def unregister_name(self, name: str, owner: Cell[Any, Any] | Supervisor) -> None:
        """Free ``name`` if ``owner`` still holds it (a finished actor or supervisor).

        For the runtime's use.
        """
        if self._names.get(name) is owner:
            del self._names[name]

    def start_task(
        self,
        async_fn: Callable[[*PosArgsT], Awaitable[object]],
        *args: *PosArgsT,
        name: str,
    ) -> None:
        """Start a task in the system's nursery, which outlives every actor's.

        For the runtime's use: each incarnation of an actor is such a task. An exception
        escaping the task fails the whole system; the system's shutdown does not cancel it
        (the task must end when its actor is stopped or cancelled).
        """
        self._nursery.start_soon(async_fn, *args, name=name)

    def fail(self, error: BaseException) -> None:
        """Fail the system with ``error``: the body is cancelled and ``async with`` raises
        it in an `ExceptionGroup` (see :func:`open_system`).

        For the runtime's use (an actor that fails while the system shuts down).
        """
        self._nursery.start_soon(_reraise, error)

    # ---- start and shutdown, driven by run_system ---------------------------------------

    async def _start_system_actors(self, specs: list[ActorSpec[Any, Any]]) -> None:
        """Spawn the (checked) system actors in order; see :func:`open_system`."""
        for spec in specs:
            ref = await self._system_supervisor.spawn(
                spec.actor,
                name=spec.name,
                mailbox_size=spec.mailbox_size,
                overflow=spec.overflow,
                restart=spec.restart,
            )
            if spec.drains_memory:
                self._memory_drainer = ref

    async def _shutdown(self, *, graceful: bool) -> None:
        """Stop everything, children before parents, in reverse start order.

        Graceful: each actor drains its mailbox, as :meth:`ActorRef.stop`. Otherwise each
        incarnation is cancelled (and waited for) before the next one is. Idempotent, and
        an abortive shutdown may follow a graceful one that was cancelled.
        """
        self._closing = True
        await self._supervision.aclose()
        await self._stop_in_reverse(self.root.children, graceful=graceful)
        self.root.finish()
        # Every other actor stops before the one that drains memory (the metrics actor in
        # a memory system), and the reporters close just before it: what they could not
        # send stays ready for it to take as it stops.
        system_actors = self._system_supervisor.children
        drainers = [
            child
            for child in system_actors
            if isinstance(child, Cell) and child.ref is self._memory_drainer
        ]
        await self._stop_in_reverse(
            [child for child in system_actors if child not in drainers], graceful=graceful
        )
        self.memory.close()
        await self._stop_in_reverse(drainers, graceful=graceful)
        self._system_supervisor.finish()

    async def _stop_in_reverse(
        self, children: Iterable[Cell[Any, Any] | Supervisor], *, graceful: bool
    ) -> None:
        """Stop and finish each child, last started first; a supervisor's children first."""
        for child in reversed(list(children)):
            if isinstance(child, Supervisor):
                await self._stop_in_reverse(child.children, graceful=graceful)
            elif (incarnation := child.incarnation) is not None:
                if graceful:
                    child.request_stop()
                else:
                    incarnation.terminate()
                await incarnation.done.wait()
            child.finish()


SystemT = TypeVar("SystemT", bound="ActorSystem")


def open_system(
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    within_s: float = DEFAULT_WITHIN_S,
    restart_backoff: Backoff = DEFAULT_BACKOFF,
    system_actors: Iterable[ActorSpec[Any, Any]] = (),
    memory: MemoryHub | None = None,
    stall_threshold_s: float | None = DEFAULT_STALL_THRESHOLD_S,
) -> AbstractAsyncContextManager[ActorSystem]:
    """Open an actor system; every actor in it has stopped when the block is left.

    ``strategy``, ``max_restarts``, ``within_s`` and ``restart_backoff`` (how long a
    restart waits, see :class:`Backoff`; ``Backoff(first_s=0)`` for none) configure
    :attr:`ActorSystem.root`, the top-level supervisor of the user's actors (the backoff
    and intensity also the system actors' supervisor). ``system_actors`` are spawned, in order,
    under a separate top-level supervisor before the block runs, and are stopped after all
    the user's actors, in reverse order: a place for infrastructure such as the metrics
    actor. ``memory`` is the hub the actors' reporters send to (a new one by default); it
    is closed once every actor has stopped, except the system actor whose spec has
    ``drains_memory`` (see :class:`ActorSpec`), which stops last, after the hub closed.

    Leaving the block normally stops the actors gracefully, children before parents and in
    reverse start order: each drains its mailbox as with :meth:`ActorRef.stop`. Leaving it
    with an exception or a cancellation cancels the actors instead, one by one in the same
    order, and waits for each (so ``on_stop`` hooks run in order, in cancelled scopes). If
    the graceful shutdown is cancelled, it turns into the cancelling one. Either way nothing
    is left running, and every ask still waiting gets `trio.BrokenResourceError`.

    Like a nursery, this raises errors in an `ExceptionGroup` (trio's strict exception
    groups): when a top-level supervisor gives up, the body is cancelled and the block
    raises ``ExceptionGroup([original_error])``; an error raised by the body comes out in
    the group too, and so does an error that an actor raises while the system shuts down
    (it can no longer be restarted). Catch them with ``except*``.

    ``stall_threshold_s`` (a quarter of a second by default; ``None`` turns it off) is
    how long one task step may keep the trio loop from running before the system's
    :attr:`ActorSystem.stall_watch` counts it as a stall, names the task, and logs a
    warning (see :class:`StallWatch`).

    ``memactor.open_system`` is this with the metrics actor added.

    Raises:
      ValueError: more than one of ``system_actors`` drains memory (raised by this call,
          before the system opens).
    """

    def make(nursery: trio.Nursery) -> ActorSystem:
        return ActorSystem(
            nursery,
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            restart_backoff=restart_backoff,
            memory=memory,
            stall_watch=None if stall_threshold_s is None else StallWatch(stall_threshold_s),
        )

    return run_system(make, system_actors)


def run_system(
    make: Callable[[trio.Nursery], SystemT],
    system_actors: Iterable[ActorSpec[Any, Any]] = (),
) -> AbstractAsyncContextManager[SystemT]:
    """Run the system that ``make`` builds on a new nursery; see :func:`open_system`.

    For layers that extend :class:`ActorSystem` (the memory system of
    :mod:`memactor.actors`).

    Raises:
      ValueError: more than one of ``system_actors`` drains memory (raised by this call,
          before the system opens).
    """
    return _run_system(make, _checked_system_actors(system_actors))


@asynccontextmanager
async def _run_system(
    make: Callable[[trio.Nursery], SystemT], system_actors: list[ActorSpec[Any, Any]]
) -> AsyncIterator[SystemT]:
    async with trio.open_nursery() as nursery:
        system = make(nursery)
        watch = system.stall_watch
        if watch is not None:
            trio.lowlevel.add_instrument(watch)
        try:
            nursery.start_soon(system.supervision.run, name="memactor supervision")
            try:
                await system._start_system_actors(system_actors)
                yield system
            except BaseException:
                with trio.CancelScope(shield=True):
                    await system._shutdown(graceful=False)
                raise
            try:
                await system._shutdown(graceful=True)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await system._shutdown(graceful=False)
                raise
        finally:
            if watch is not None:
                # Trio drops an instrument that raised; it may be gone already.
                with contextlib.suppress(KeyError):
                    trio.lowlevel.remove_instrument(watch)
