"""Supervisors: the nodes of the supervision tree, and where actors are spawned.

Every actor has exactly one parent supervisor. The system owns two top-level
supervisors, one for its own system actors and one (``system.root``) for the user's;
more can be nested with :meth:`Supervisor.add_supervisor`. A supervisor is not a task:
the system's supervision task (see ``_restarts.py``) applies its policy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ._actor import Actor
from ._cell import Cell
from ._mailbox import Overflow
from ._policy import DEFAULT_BACKOFF, Backoff, Restart, Strategy

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._system import ActorSystem

MessageT = TypeVar("MessageT")
ReplyT = TypeVar("ReplyT")

DEFAULT_MAILBOX_SIZE = 64
DEFAULT_MAX_RESTARTS = 3
DEFAULT_WITHIN_S = 5.0


def check_name(name: str) -> None:
    """Names are non-empty, dotted paths of non-empty segments without whitespace."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an actor name is a non-empty string, not {name!r}")
    if any(not segment for segment in name.split(".")) or any(c.isspace() for c in name):
        raise ValueError(
            f"invalid actor name {name!r}: use dotted segments without spaces, "
            "such as 'decode.chunks'"
        )


class Supervisor:
    """A node of the supervision tree: children in start order, a strategy, an intensity.

    When a child ends and its :class:`Restart` policy asks for a restart, the supervisor
    first counts the restart: more than ``max_restarts`` restarts within ``within_s``
    seconds (measured with `trio.current_time`, so an autojump clock works) and it gives
    up. Giving up terminates all its children in reverse start order and escalates the
    original error (with a note saying who gave up) to its parent, which handles it as a
    failure of this supervisor, according to this supervisor's own ``restart`` policy:
    restarting a supervisor starts its children again in start order, with a fresh restart
    history. A top-level supervisor that gives up fails the whole system, whose
    ``async with`` then raises the original error (see :func:`open_system`).

    A restart within the intensity waits first, longer for each restart in a row, as
    ``restart_backoff`` says (see :class:`Backoff`).

    Created by :meth:`ActorSystem.add_supervisor` or :meth:`Supervisor.add_supervisor`.
    """

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        *,
        parent: Supervisor | None,
        strategy: Strategy,
        max_restarts: int,
        within_s: float,
        restart: Restart,
        restart_backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, not {max_restarts}")
        if not within_s > 0:
            raise ValueError(f"within_s must be positive, not {within_s}")
        self.name = name
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within_s = within_s
        self.restart = restart
        self.restart_backoff = restart_backoff
        """How long to wait before each restart of a child; see :class:`Backoff`."""
        self.system = system
        self.parent = parent
        self._children: list[Cell[Any, Any] | Supervisor] = []
        self._refusing = False  # no new children
        self.finished = trio.Event()
        """Set once the supervisor has stopped for good (see :meth:`finish`)."""
        self._restart_times: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.strategy.value}>"

    async def spawn(
        self,
        actor: Actor[MessageT, ReplyT] | Callable[[], Actor[MessageT, ReplyT]],
        *,
        name: str,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        overflow: Overflow = Overflow.BLOCK,
        restart: Restart = Restart.PERMANENT,
    ) -> ActorRef[MessageT, ReplyT]:
        """Start an actor under this supervisor and return its ref once ``on_start`` returned.

        ``actor`` is an :class:`Actor` instance or a factory (usually the class) called for
        every incarnation. A restart of an instance runs ``on_start`` again on the *same*
        object, keeping its attributes; pass a factory when a restart must start afresh.

        ``name`` must be unique among the system's live actors and supervisors and may be
        dotted (``"decode.chunks"``). ``mailbox_size`` messages can wait in the mailbox
        before ``overflow`` applies.

        If ``on_start`` (or the factory) raises, the actor is not supervised: spawn raises
        that exception and frees the name. If this call is cancelled while ``on_start``
        runs, the actor is cancelled too (``on_stop`` runs only if ``on_start`` had
        returned) and the name is freed once it has ended.

        Raises:
          DuplicateNameError: the name is taken.
          ValueError: an invalid name or mailbox size.
          RuntimeError: this instance was spawned already.
          trio.ClosedResourceError: the system is closing or closed.
          trio.BrokenResourceError: this supervisor gave up and was not restarted (also
              while ``on_start`` runs).
        """
        self._check_can_add(name)
        factory: Callable[[], Actor[MessageT, ReplyT]]
        if isinstance(actor, Actor):
            if actor.spawned:
                raise RuntimeError(f"{actor!r} was already spawned as {actor.name!r}")
            instance = actor

            def factory() -> Actor[MessageT, ReplyT]:
                return instance

        else:
            factory = actor
        cell = Cell(
            self.system,
            self,
            name,
            factory,
            mailbox_size=mailbox_size,
            overflow=overflow,
            restart=restart,
        )
        self.system.register_name(name, cell)
        self._children.append(cell)
        incarnation = cell.start(initial=True)
        try:
            await incarnation.ready.wait()
        except BaseException:
            cell.request_stop()
            incarnation.scope.cancel()
            raise
        if incarnation.started:
            return cell.ref
        if incarnation.error is not None:
            raise incarnation.error
        if self.system.closing:
            raise trio.ClosedResourceError(f"the actor system closed while {name!r} was starting")
        raise trio.BrokenResourceError(
            f"supervisor {self.name!r} stopped while {name!r} was starting"
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
        """Add an empty child supervisor; spawn into it with its own :meth:`spawn`.

        Its name shares the namespace of actor names. Under a ``ONE_FOR_ALL`` parent, the
        whole child supervisor (all its actors) is terminated and restarted as one child.

        Raises:
          DuplicateNameError: the name is taken.
          trio.ClosedResourceError: the system is closing or closed.
        """
        self._check_can_add(name)
        child = Supervisor(
            self.system,
            name,
            parent=self,
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            restart=restart,
            restart_backoff=restart_backoff,
        )
        self.system.register_name(name, child)
        self._children.append(child)
        return child

    def _check_can_add(self, name: str) -> None:
        check_name(name)
        self.system.check_open()
        if self._refusing:
            raise trio.BrokenResourceError(f"supervisor {self.name!r} has stopped")

    # ---- the runtime's internal contract: the supervision task, cells and the system ----

    @property
    def children(self) -> tuple[Cell[Any, Any] | Supervisor, ...]:
        """The live children, in start order: a copy, safe to iterate while they change.

        For the runtime's use (shutdown and restarts walk the tree through it).
        """
        return tuple(self._children)

    def record_restart(self, now: float) -> bool:
        """Count one restart at ``now``; False when that exceeds the restart intensity.

        For the runtime's use (the supervision task).
        """
        times = self._restart_times
        times.append(now)
        while now - times[0] > self.within_s:
            times.popleft()
        return len(times) <= self.max_restarts

    @property
    def restarts_in_window(self) -> int:
        """How many restarts :meth:`record_restart` counted within the last ``within_s``
        (as of the last one): the number of the latest restart in a row, for the backoff.

        For the runtime's use (the supervision task).
        """
        return len(self._restart_times)

    def forget_restarts(self) -> None:
        """Start a fresh restart history (the supervisor itself was restarted).

        For the runtime's use (the supervision task).
        """
        self._restart_times.clear()

    def refuse_new_children(self) -> None:
        """From now on :meth:`spawn` and :meth:`add_supervisor` raise
        `trio.BrokenResourceError`; the children it has are left alone. Idempotent.

        For the runtime's use: a supervisor that gave up and will not be restarted.
        """
        self._refusing = True

    def remove_child(self, child: Cell[Any, Any] | Supervisor) -> None:
        """Forget a child that has finished (it calls this from its ``finish``).

        For the runtime's use.
        """
        self._children.remove(child)

    def finish(self) -> None:
        """Stop for good: finish every child (none may be running), free the name.

        Idempotent; afterwards the supervisor refuses new children and :attr:`finished`
        is set. For the runtime's use.
        """
        if self.finished.is_set():
            return
        for child in reversed(list(self._children)):
            child.finish()
        self._refusing = True
        self.finished.set()
        if self.parent is not None:
            self.parent.remove_child(self)
            self.system.unregister_name(self.name, self)
