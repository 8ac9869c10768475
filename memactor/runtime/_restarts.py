"""The system's supervision task: restarts and escalations, one at a time.

When an incarnation ends, :meth:`Supervision.incarnation_ended` decides synchronously,
in the ending task, everything that needs no waiting (stop for good, or not). What needs a
restart is queued for the one supervision task, which applies the parent supervisor's
strategy, restart intensity and backoff and escalates up the tree. Serialising restarts in one task
keeps them simple to reason about: two failures never restart the same siblings at once.
A backoff's wait is the exception: it runs in a task of its own and queues the restart
when it ends, so one supervisor's wait never delays another's restarts (the metrics
actor's included).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ._cell import Cell, Incarnation
from ._exceptions import RestartIntensityError
from ._policy import Restart, Strategy, needs_restart
from ._stats import ActorState
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from ._system import ActorSystem

logger = logging.getLogger("memactor.runtime")

Child = Cell[Any, Any] | Supervisor


@dataclass(frozen=True, slots=True)
class _Due:
    """A restart whose backoff wait has ended: *child* of *parent* restarts now, unless
    it was stopped, or restarted with its siblings, meanwhile."""

    incarnation: Incarnation[Any, Any]
    parent: Supervisor
    child: Child


class Supervision:
    """Owns the queue of incarnations waiting for a restart decision, and its task."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._send, self._receive = trio.open_memory_channel[Incarnation[Any, Any] | _Due](math.inf)
        self._waits: set[trio.CancelScope] = set()
        self._closed = False
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._random = random.Random()  # the backoff's jitter

    async def run(self) -> None:
        """The supervision task; raises the error that a top-level supervisor escalates."""
        try:
            with self._scope:
                async for item in self._receive:
                    if isinstance(item, _Due):
                        await self._restart_due(item)
                    else:
                        await self._restart_after(item)
        finally:
            self._done.set()

    async def aclose(self) -> None:
        """Cancel the task and every backoff wait (no more restarts) and wait until the
        task has ended."""
        self._closed = True
        for wait in self._waits:
            wait.cancel()
        self._scope.cancel()
        await self._done.wait()

    def incarnation_ended(self, incarnation: Incarnation[Any, Any]) -> None:
        """Decide what follows an incarnation's end, in the task that ended. Never raises."""
        cell = incarnation.cell
        error = incarnation.error
        if incarnation.terminated:
            # Whoever terminated it decides what comes next.
            if error is not None:
                logger.error("actor %r failed while terminated", cell.name, exc_info=error)
            if not cell.finished.is_set():
                cell.state = ActorState.RESTARTING
            return
        if incarnation.initial and not incarnation.started:
            cell.finish()  # spawn raises the error
            return
        if self._system.closing:
            if error is not None:
                self._system.fail(error)
            cell.finish()
            return
        if cell.stop_requested:
            if error is not None:
                logger.error("actor %r failed while stopping", cell.name, exc_info=error)
                cell.stop_error = error
            cell.finish()
            return
        if not needs_restart(cell.restart, failed=error is not None):
            if error is not None:
                logger.error(
                    "actor %r failed and is %s: not restarted",
                    cell.name,
                    cell.restart.value,
                    exc_info=error,
                )
            cell.finish()
            return
        if error is not None:
            logger.error("actor %r failed; restarting it", cell.name, exc_info=error)
        cell.state = ActorState.RESTARTING
        self._send.send_nowait(incarnation)

    async def _restart_after(self, incarnation: Incarnation[Any, Any]) -> None:
        cell = incarnation.cell
        if (
            cell.finished.is_set()
            or cell.incarnation is not None
            or cell.last_incarnation is not incarnation
        ):
            return  # stale: restarted meanwhile with its siblings, or stopped
        if cell.stop_requested:
            cell.finish()
            return
        child: Child = cell
        error = incarnation.error
        while True:
            parent = child.parent
            assert parent is not None
            if parent.record_restart(trio.current_time()):
                due = _Due(incarnation, parent, child)
                delay_s = parent.restart_backoff.delay_s(
                    parent.restarts_in_window, self._random.random()
                )
                if delay_s > 0:
                    self._system.start_task(
                        self._back_off, due, delay_s, name="memactor restart backoff"
                    )
                else:
                    await self._restart_due(due)
                return
            # The parent gives up: it fails, with the original error.
            if error is None:
                error = RestartIntensityError(parent.name, parent.max_restarts, parent.within_s)
            else:
                error.add_note(
                    f"memactor: supervisor {parent.name!r} gave up after more than "
                    f"{parent.max_restarts} restarts in {parent.within_s} s"
                )
            if parent.parent is None:
                # The system fails: its cancelling shutdown stops everything, in order.
                raise error
            if not needs_restart(parent.restart, failed=True):
                logger.error(
                    "supervisor %r gave up and is %s: not restarted",
                    parent.name,
                    parent.restart.value,
                    exc_info=error,
                )
                parent.refuse_new_children()
                await self._terminate(parent, starting_too=True)
                parent.finish()
                return
            await self._terminate(parent)
            child = parent

    async def _back_off(self, due: _Due, delay_s: float) -> None:
        """Wait *delay_s*, as the parent's backoff says, then queue the restart; an actor
        stopped meanwhile ends the wait at once, a shutdown (:meth:`aclose`) cancels it."""
        with trio.move_on_after(delay_s) as wait:
            self._waits.add(wait)
            try:
                if isinstance(due.child, Cell):
                    await due.child.stopping.wait()
                else:
                    await trio.sleep_forever()
            finally:
                self._waits.discard(wait)
        if not self._closed:
            self._send.send_nowait(due)

    async def _restart_due(self, due: _Due) -> None:
        child = due.child
        if child.finished.is_set():
            return
        if isinstance(child, Cell):
            if child.stop_requested:
                child.finish()  # stopped during the wait: its stop returns now
                return
            if child.incarnation is not None or child.last_incarnation is not due.incarnation:
                return  # restarted with its siblings during the wait
        await self._restart(due.parent, child)

    async def _restart(self, parent: Supervisor, failed: Child) -> None:
        if parent.strategy is Strategy.ONE_FOR_ONE:
            await self._start(failed)
            return
        siblings = parent.children
        for sibling in reversed(siblings):
            if sibling is not failed:
                await self._terminate(sibling)
        for sibling in siblings:
            await self._start(sibling)

    async def _terminate(self, child: Child, *, starting_too: bool = False) -> None:
        """Cancel a child (all of a supervisor's children) in reverse start order.

        An actor still in its first ``on_start`` (its spawn has not returned) is left
        alone unless ``starting_too``: it joins the restarted group as it is.
        """
        if isinstance(child, Supervisor):
            for grandchild in reversed(child.children):
                await self._terminate(grandchild, starting_too=starting_too)
            return
        incarnation = child.incarnation
        if incarnation is not None and (
            starting_too or incarnation.started or not incarnation.initial
        ):
            await child.terminate()

    async def _start(self, child: Child) -> None:
        """Start a terminated child again (in start order), unless it must stay stopped."""
        if isinstance(child, Supervisor):
            if child.finished.is_set():
                return
            if child.restart is Restart.TEMPORARY:
                child.finish()
                return
            child.forget_restarts()
            for grandchild in child.children:
                await self._start(grandchild)
            return
        if child.finished.is_set() or child.incarnation is not None:
            return
        if child.stop_requested or child.restart is Restart.TEMPORARY:
            child.finish()
            return
        await child.start(initial=False).ready.wait()
