"""An actor's bounded mailbox and its overflow policies.

The mailbox is a memory channel with one receiver (the actor's current incarnation) and
any number of senders, written after ``trio/_channel.py`` so that a full lossy mailbox
can drop its oldest message, which a trio channel cannot. It outlives restarts: a
restarted actor finds the messages its previous incarnation left behind.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar, cast

import trio
from outcome import Error, Value

T = TypeVar("T")


class Overflow(enum.Enum):
    """What a mailbox does with a message that arrives when it is full."""

    BLOCK = "block"
    """The sender waits for room (backpressure); ``send_nowait`` raises `trio.WouldBlock`."""

    DROP_NEWEST = "drop_newest"
    """The arriving message is dropped and counted; the sender does not wait."""

    DROP_OLDEST = "drop_oldest"
    """The oldest queued message is dropped and counted to make room; the sender does not
    wait."""


class Mailbox(Generic[T]):
    """A bounded queue with a single receiver and an overflow policy.

    ``on_drop`` is called synchronously with each message that an overflow policy drops.
    """

    __slots__ = (
        "_accepting",
        "_buffer",
        "_on_drop",
        "_owner",
        "_receive_task",
        "_send_tasks",
        "capacity",
        "dropped",
        "overflow",
        "peak_depth",
    )

    def __init__(
        self,
        capacity: int,
        overflow: Overflow,
        *,
        owner: str,
        on_drop: Callable[[T], None],
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a mailbox holds at least one message, not {capacity}")
        self.capacity = capacity
        self.overflow = overflow
        self.peak_depth = 0
        self.dropped = 0
        self._owner = owner
        self._on_drop = on_drop
        self._accepting = True
        self._buffer: deque[T] = deque()
        self._send_tasks: OrderedDict[trio.lowlevel.Task, T] = OrderedDict()
        self._receive_task: trio.lowlevel.Task | None = None

    @property
    def depth(self) -> int:
        """Messages queued now, not counting the one being handled."""
        return len(self._buffer)

    @property
    def senders_waiting(self) -> int:
        """Tasks blocked in :meth:`send` waiting for room."""
        return len(self._send_tasks)

    def waiting_senders(self) -> list[trio.lowlevel.Task]:
        """The tasks blocked in :meth:`send`, first come first."""
        return list(self._send_tasks)

    @property
    def accepting(self) -> bool:
        """False once :meth:`close` was called."""
        return self._accepting

    def _broken(self) -> trio.BrokenResourceError:
        return trio.BrokenResourceError(f"actor {self._owner!r} has stopped")

    @trio.lowlevel.enable_ki_protection
    def send_nowait(self, item: T) -> None:
        """Queue ``item`` or apply the overflow policy; never blocks.

        Raises:
          trio.WouldBlock: the mailbox is full and its policy is ``BLOCK``.
          trio.BrokenResourceError: the mailbox was closed.
        """
        if not self._accepting:
            raise self._broken()
        if self._receive_task is not None:
            task, self._receive_task = self._receive_task, None
            trio.lowlevel.reschedule(task, Value(item))
            return
        buffer = self._buffer
        if len(buffer) < self.capacity:
            buffer.append(item)
            if len(buffer) > self.peak_depth:
                self.peak_depth = len(buffer)
            return
        if self.overflow is Overflow.BLOCK:
            raise trio.WouldBlock
        self.dropped += 1
        if self.overflow is Overflow.DROP_OLDEST:
            buffer.append(item)
            item = buffer.popleft()
        self._on_drop(item)

    @trio.lowlevel.enable_ki_protection
    async def send(self, item: T) -> None:
        """Queue ``item``, waiting for room when the mailbox is full and its policy is BLOCK.

        Senders blocked on a full mailbox are served first come, first served. If the wait
        is cancelled, the item was not queued. If the mailbox is closed while this waits,
        raises `trio.BrokenResourceError` and the item was not queued.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_nowait(item)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return

        task = trio.lowlevel.current_task()
        self._send_tasks[task] = item
        task.custom_sleep_data = self

        def abort_fn(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            del self._send_tasks[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort_fn)

    @trio.lowlevel.enable_ki_protection
    def receive_nowait(self) -> T:
        """Take the oldest message; never blocks.

        Raises:
          trio.WouldBlock: the mailbox is empty.
          trio.EndOfChannel: the mailbox is empty and closed.
        """
        buffer = self._buffer
        if buffer:
            item = buffer.popleft()
            if self._send_tasks:
                task, waiting_item = self._send_tasks.popitem(last=False)
                buffer.append(waiting_item)
                trio.lowlevel.reschedule(task)
            return item
        if not self._accepting:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    @trio.lowlevel.enable_ki_protection
    async def receive(self) -> T:
        """Take the oldest message, waiting while the mailbox is empty.

        Only one task may receive at a time. A cancelled wait takes no message.

        Raises:
          trio.EndOfChannel: the mailbox is empty and closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            item = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item

        if self._receive_task is not None:
            raise trio.BusyResourceError("another task is already receiving from this mailbox")
        task = trio.lowlevel.current_task()
        self._receive_task = task

        def abort_fn(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._receive_task = None
            return trio.lowlevel.Abort.SUCCEEDED

        return cast("T", await trio.lowlevel.wait_task_rescheduled(abort_fn))

    @trio.lowlevel.enable_ki_protection
    def close(self) -> None:
        """Stop accepting messages; those already queued can still be received.

        Tasks blocked in :meth:`send` wake with `trio.BrokenResourceError` (their messages
        were not queued). A receiver waiting on an empty mailbox wakes with
        `trio.EndOfChannel`. Idempotent.
        """
        if not self._accepting:
            return
        self._accepting = False
        for task in self._send_tasks:
            trio.lowlevel.reschedule(task, Error(self._broken()))
        self._send_tasks.clear()
        if self._receive_task is not None:
            task, self._receive_task = self._receive_task, None
            trio.lowlevel.reschedule(task, Error(trio.EndOfChannel()))

    def discard(self) -> list[T]:
        """Close the mailbox and return the messages it still held, oldest first."""
        self.close()
        items = list(self._buffer)
        self._buffer.clear()
        return items
