"""The inbox: where reporters hand on batches of events for the metrics actor's next round.

It replaces a plain memory channel because the metrics actor must be able to take
*everything* that was emitted before a moment, synchronously: batches handed on, batches
whose flush waits for room, and what reporters still hold. A channel hides a batch that
was received but not yet processed by the receiving task; the inbox has no such limbo,
which is what lets every round be a consistent cut (see :meth:`MemoryHub.collect`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import trio

if TYPE_CHECKING:
    from .._native._emit import Batch
    from ._reporter import MemoryReporter

EventTuple = tuple[Any, ...]
"""An event in :class:`~memactor.events.MemoryEvent`'s field order, as a plain tuple."""

Events: TypeAlias = "list[EventTuple] | Batch"
"""A run of events in emission order: a list of event tuples (the pure-Python emits', a
thread reporter's), or, from the compiled emits, a ``memactor._native._emit.Batch`` of
compact records, which reads as the same tuples."""


@dataclass(frozen=True, slots=True)
class EventBatch:
    """What travels to the metrics actor: events in emission order, and what was lost
    before them."""

    events: Events
    """The events: a list of tuples, or a compiled ``Batch`` that reads as one."""
    dropped: int = 0
    """Events the sender dropped (lossy mode) since its last delivered batch."""


class _Put:
    __slots__ = ("batch", "task")

    def __init__(self, batch: EventBatch, task: trio.lowlevel.Task) -> None:
        self.batch = batch
        self.task = task


class Inbox:
    """Batches waiting for the metrics actor, bounded by *capacity* batches.

    For the runtime's use: reporters call :meth:`offer`, :meth:`put`, :meth:`hand_over`
    and :meth:`note_pending`; the hub calls :meth:`take_all`; the metrics actor awaits
    :meth:`wait_handed_on`. Everything runs in the system's trio thread.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"channel_size must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ready: list[EventBatch] = []
        self._waiting: list[_Put] = []
        self._pending: dict[MemoryReporter, None] = {}
        self._handed_on = trio.Event()

    def offer(self, batch: EventBatch) -> bool:
        """Take *batch* if fewer than ``capacity`` batches wait; never blocks."""
        ready = self._ready
        if len(ready) >= self.capacity:
            return False
        ready.append(batch)
        self._handed_on.set()
        return True

    async def put(self, batch: EventBatch, give_back: Callable[[EventBatch], object]) -> None:
        """Take *batch*, waiting while the inbox is full (lossless backpressure).

        Waits until the metrics actor's next round takes it. If there is room it is taken
        at once, even in a cancelled scope (the cancellation then comes at the caller's
        next checkpoint). On cancellation while waiting, *batch* was not taken:
        ``give_back(batch)`` is called in the step that cancels, before any other task
        (a round of the metrics actor included) can run, then the cancellation is raised.
        Giving it back later, when the cancelled task resumes, would let a round take
        events emitted after *batch* without it.
        """
        if self.offer(batch):
            # Taken: a cancellation now must not tell the caller otherwise.
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        put = _Put(batch, trio.lowlevel.current_task())
        self._waiting.append(put)
        self._handed_on.set()  # the round that makes room takes it too

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            # Synchronous with the cancellation: no later round can take the batch, and
            # its owner has it back before any round can look there.
            self._waiting.remove(put)
            give_back(batch)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def hand_over(self, batch: EventBatch) -> None:
        """Take *batch* whatever the capacity: a closing reporter's last one."""
        self._ready.append(batch)
        self._handed_on.set()

    def note_pending(self, reporter: MemoryReporter) -> None:
        """*reporter* holds events the next round must take from it."""
        self._pending[reporter] = None

    @property
    def waiting(self) -> int:
        """Batches whose :meth:`put` waits for room."""
        return len(self._waiting)

    def take_handed_on(self) -> list[EventBatch]:
        """Every batch handed on, then every batch waiting for room (their puts return);
        never waits."""
        taken = self._ready
        self._ready = []
        if self._waiting:
            for put in self._waiting:
                taken.append(put.batch)
                trio.lowlevel.reschedule(put.task)
            self._waiting.clear()
        if self._handed_on.is_set():
            self._handed_on = trio.Event()
        return taken

    def take_all(self) -> list[EventBatch]:
        """What :meth:`take_handed_on` takes, and every event a reporter still holds;
        never waits."""
        taken = self.take_handed_on()
        if self._pending:
            for reporter in self._pending:
                batch = reporter.take()
                if batch.events or batch.dropped:
                    taken.append(batch)
            self._pending.clear()
        return taken

    async def wait_handed_on(self) -> None:
        """Wait until a batch has been handed on since the last :meth:`take_all`."""
        await self._handed_on.wait()
