"""The memory reporter: cheap, synchronous emission of memory events in batches.

An emit call (``alloc``, ``free``, ``resize``, ``acquire``, ``release``, ``transfer``)
stamps the component, the owner and the time onto an event tuple and appends it to a
local batch; nothing awaits. Batches travel to the metrics actor over one trio memory
channel, cloned per reporter, when they are full, when their owner yields
(:meth:`MemoryReporter.flush`) and on the system's flush interval.

Two modes:

* **lossless** (the default) never drops an event. A full batch that finds the channel
  full keeps growing until the next :meth:`~MemoryReporter.flush`, which waits for room:
  that wait is the backpressure, paid at a point where the owner may block.
* **lossy** never blocks and never grows past its batch size: a full batch that finds the
  channel full is dropped and counted, and the count travels with the next batch that
  gets through, so the ledger's ``events_dropped`` says how much is missing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import trio

from ..events import EventKind, check_device

DEFAULT_BATCH_SIZE: Final = 256

EventTuple = tuple[Any, ...]
"""An event in :class:`~memactor.events.MemoryEvent`'s field order, as a plain tuple."""

# Kinds go into event tuples as plain ints: a tuple of only ints, strings and None is
# one the garbage collector stops tracking, where an enum member would keep it tracked
# (and every batch in flight would cost every collection). The ledger reads either.
_ALLOC, _FREE, _RESIZE, _ACQUIRE, _RELEASE, _TRANSFER = (
    int(EventKind.ALLOC),
    int(EventKind.FREE),
    int(EventKind.RESIZE),
    int(EventKind.ACQUIRE),
    int(EventKind.RELEASE),
    int(EventKind.TRANSFER),
)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """What travels to the metrics actor: events in order, and what was lost before them."""

    events: list[EventTuple]
    dropped: int = 0
    """Events the sender dropped (lossy mode) since its last delivered batch."""


class MemoryReporter:
    """Emits one component's memory events; see the module docstring for the modes.

    Emits are synchronous and never raise for a bad value: the ledger counts it as an
    anomaly. A reporter belongs to one trio thread (the one its actor runs in); for other
    threads use :class:`ThreadReporter`.

    After :meth:`close`, emits raise ``trio.ClosedResourceError``.
    """

    __slots__ = (
        "_batch",
        "_batch_size",
        "_blocks",
        "_channel",
        "_clock",
        "_closed",
        "_dropped",
        "_limit",
        "_lossy",
        "_on_close",
        "_sending",
        "_seq",
        "component",
        "device",
        "owner",
    )

    def __init__(
        self,
        component: str,
        channel: trio.MemorySendChannel[EventBatch],
        *,
        owner: str | None = None,
        device: str = "cpu",
        lossy: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Callable[[], int] = time.monotonic_ns,
        on_close: Callable[[EventBatch], None] | None = None,
        blocks: Iterator[int] | None = None,
        seq: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(component, str) or not component:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        check_device(device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.component = component
        """The component every event is stamped with."""
        self.owner = component if owner is None else owner
        """The owner stamped when an emit names none."""
        self.device = device
        """The device stamped when an emit names none."""
        self._channel = channel
        self._lossy = lossy
        self._batch_size = batch_size
        self._limit = batch_size
        self._clock = clock
        self._seq = seq if seq is not None else itertools.count(1).__next__
        self._batch: list[EventTuple] = []
        self._dropped = 0
        self._closed = False
        self._blocks = blocks if blocks is not None else itertools.count(1)
        self._on_close = on_close
        # Set while a flush waits for room with a taken batch; later flushes wait for it,
        # so that batches reach the channel in the order they were emitted.
        self._sending: trio.Event | None = None

    # -- emits ---------------------------------------------------------------------------
    # Each emit builds its tuple and appends it in place rather than through a shared
    # helper: a second Python call would cost more than the append itself, and emits
    # are the hot path of every actor (scripts/bench_events.py measures them).

    def next_block(self) -> int:
        """A fresh block id: a counter from 1, shared by every reporter the hub made for
        this component, so ids stay unique across restarts and sibling reporters."""
        return next(self._blocks)

    def alloc(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        """``size`` bytes were taken from the system for ``block`` and lent to ``owner``."""
        batch = self._batch
        batch.append(
            (
                _ALLOC,
                self.component,
                block,
                size,
                device or self.device,
                self.owner if owner is None else owner,
                self._clock(),
                0,
                None,
                (),
                self._seq(),
            )
        )
        if len(batch) >= self._limit:
            self._full()

    def free(self, block: int, size: int, device: str | None = None) -> None:
        """``block``'s ``size`` bytes went back to the system."""
        batch = self._batch
        batch.append(
            (
                _FREE,
                self.component,
                block,
                size,
                device or self.device,
                "",
                self._clock(),
                0,
                None,
                (),
                self._seq(),
            )
        )
        if len(batch) >= self._limit:
            self._full()

    def acquire(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        """A cached ``block`` was lent to ``owner`` again (a pool hit)."""
        batch = self._batch
        batch.append(
            (
                _ACQUIRE,
                self.component,
                block,
                size,
                device or self.device,
                self.owner if owner is None else owner,
                self._clock(),
                0,
                None,
                (),
                self._seq(),
            )
        )
        if len(batch) >= self._limit:
            self._full()

    def release(self, block: int, size: int, device: str | None = None) -> None:
        """A lent ``block`` came back to the cache; the component still holds it."""
        batch = self._batch
        batch.append(
            (
                _RELEASE,
                self.component,
                block,
                size,
                device or self.device,
                "",
                self._clock(),
                0,
                None,
                (),
                self._seq(),
            )
        )
        if len(batch) >= self._limit:
            self._full()

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        """``block`` changed from ``old_size`` to ``size`` bytes."""
        batch = self._batch
        batch.append(
            (
                _RESIZE,
                self.component,
                block,
                size,
                device or self.device,
                "",
                self._clock(),
                old_size,
                None,
                (),
                self._seq(),
            )
        )
        if len(batch) >= self._limit:
            self._full()

    def transfer(self, size: int, src: str, dst: str, block: int = 0) -> None:
        """``size`` bytes were copied from device ``src`` to ``dst``."""
        batch = self._batch
        batch.append(
            (
                _TRANSFER,
                self.component,
                block,
                size,
                src,
                self.owner,
                self._clock(),
                0,
                dst,
                (),
                self._seq(),
            )  # fmt: skip
        )
        if len(batch) >= self._limit:
            self._full()

    # -- flushing ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events emitted and not yet handed to the channel."""
        return len(self._batch)

    @property
    def backlogged(self) -> bool:
        """A full batch found no room in the channel (lossless): the owner should flush."""
        return len(self._batch) >= self._batch_size

    @property
    def dropped(self) -> int:
        """Events dropped (lossy mode) and not yet reported to the metrics actor."""
        return self._dropped

    def _full(self) -> None:
        if self._closed:
            # Only the event just appended: a batch a waiting flush still has to hand on
            # stays whole.
            self._batch.pop()
            raise trio.ClosedResourceError(f"reporter {self.component!r} is closed")
        if not self._send_or_drop():
            # Keep the batch: it grows until the owner's next flush() waits. Try the
            # channel again only after another batch's worth, not on every emit.
            self._limit = len(self._batch) + self._batch_size

    def _send_or_drop(self) -> bool:
        """Hand the batch to the channel without waiting or, in lossy mode, drop and count
        it; False when a lossless batch found no room and stays."""
        if self.flush_nowait():
            return True
        if self._lossy:
            self._dropped += len(self._batch)
            self._batch = []
            return True
        return False

    def _take(self) -> EventBatch:
        batch = EventBatch(self._batch, self._dropped)
        self._batch = []
        self._dropped = 0
        self._limit = self._batch_size
        return batch

    def flush_nowait(self) -> bool:
        """Hand the batch to the channel if it has room; return whether it did (or was empty).

        Raises ``trio.BrokenResourceError`` when the metrics actor is gone.
        """
        if not self._batch and not self._dropped:
            return True
        try:
            self._channel.send_nowait(EventBatch(self._batch, self._dropped))
        except trio.WouldBlock:
            return False
        self._batch = []
        self._dropped = 0
        self._limit = self._batch_size
        return True

    async def flush(self) -> None:
        """Hand the batch to the channel, waiting for room in lossless mode.

        In lossy mode it never waits: a batch that finds no room is dropped and counted.
        On cancellation while waiting, the batch stays with the reporter, whole.
        Raises ``trio.BrokenResourceError`` when the metrics actor is gone.
        """
        while self._sending is not None:
            # Another task's flush waits for room: its batch goes first.
            await self._sending.wait()
        if self._send_or_drop():
            await trio.lowlevel.checkpoint()
            return
        batch = self._take()
        sending = self._sending = trio.Event()
        try:
            await self._channel.send(batch)
        except BaseException:
            # Not delivered (trio guarantees it on cancellation): put it back in front of
            # what was emitted while we waited, so nothing is lost or reordered.
            self._batch = batch.events + self._batch
            self._dropped += batch.dropped
            self._limit = len(self._batch) + self._batch_size
            raise
        finally:
            self._sending = None
            sending.set()
            if self._closed:
                # close() came while we waited and left the rest to us.
                self._hand_on_last()

    def close(self) -> None:
        """Flush what is pending without waiting, then close; idempotent.

        What cannot be handed to the channel (it is full, or already closed) goes to the
        ``on_close`` callback the system installed, which applies it directly, so a
        lossless reporter loses nothing even when it is closed by a cancellation. If a
        flush is waiting for room, it keeps waiting and hands on the rest when its batch
        is delivered or cancelled (the channel stays open until then), so that nothing is
        reordered.
        """
        if self._closed:
            return
        self._closed = True
        self._limit = 0  # every later emit reaches _full(), which refuses it
        if self._sending is None:
            self._hand_on_last()

    def _hand_on_last(self) -> None:
        try:
            sent = self.flush_nowait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            sent = False
        if not sent and self._on_close is not None:
            self._on_close(self._take())
        self._limit = 0
        self._channel.close()


class NullReporter(MemoryReporter):
    """A reporter that reports nothing, for a system opened with tracking off.

    Every emit returns at once; ``next_block`` still counts, so code that uses it works
    unchanged. It exists to measure (and to remove) what tracking costs.
    """

    __slots__ = ()

    def alloc(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        pass

    def free(self, block: int, size: int, device: str | None = None) -> None:
        pass

    def acquire(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        pass

    def release(self, block: int, size: int, device: str | None = None) -> None:
        pass

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        pass

    def transfer(self, size: int, src: str, dst: str, block: int = 0) -> None:
        pass


class ThreadReporter:
    """A reporter for code outside trio: worker threads, library callbacks.

    Emits append to a queue under a lock; the metrics actor takes them on its interval,
    in order. Emitting never blocks and never drops; after :meth:`close` it raises
    ``trio.ClosedResourceError``, and an emit that raced with the close either got in
    before it (and will be applied) or raises.
    """

    def __init__(
        self,
        component: str,
        *,
        owner: str | None = None,
        device: str = "cpu",
        clock: Callable[[], int] = time.monotonic_ns,
        blocks: Iterator[int] | None = None,
        seq: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(component, str) or not component:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        check_device(device)
        self.component = component
        self.owner = component if owner is None else owner
        self.device = device
        self._clock = clock
        self._seq = seq if seq is not None else itertools.count(1).__next__
        self._queue: list[EventTuple] = []
        self._closed = False
        self._lock = threading.Lock()
        self._blocks = blocks if blocks is not None else itertools.count(1)

    def next_block(self) -> int:
        """A fresh block id, unique within the component; safe from any thread."""
        with self._lock:
            return next(self._blocks)

    def _emit(
        self,
        kind: int,
        block: int,
        size: int,
        device: str | None,
        owner: str,
        old_size: int = 0,
        dst: str | None = None,
    ) -> None:
        event = (kind, self.component, block, size, device or self.device, owner,
                 self._clock(), old_size, dst, (), self._seq())  # fmt: skip
        with self._lock:
            if self._closed:
                raise trio.ClosedResourceError(f"reporter {self.component!r} is closed")
            self._queue.append(event)

    def alloc(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        self._emit(_ALLOC, block, size, device, self.owner if owner is None else owner)

    def free(self, block: int, size: int, device: str | None = None) -> None:
        self._emit(_FREE, block, size, device, "")

    def acquire(
        self, block: int, size: int, owner: str | None = None, device: str | None = None
    ) -> None:
        self._emit(_ACQUIRE, block, size, device, self.owner if owner is None else owner)

    def release(self, block: int, size: int, device: str | None = None) -> None:
        self._emit(_RELEASE, block, size, device, "")

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        self._emit(_RESIZE, block, size, device, "", old_size)

    def transfer(self, size: int, src: str, dst: str, block: int = 0) -> None:
        self._emit(_TRANSFER, block, size, src, self.owner, 0, dst)

    def drain(self) -> list[EventTuple]:
        """Take every queued event, oldest first (the metrics actor calls this)."""
        with self._lock:
            taken, self._queue = self._queue, []
        return taken

    def close(self) -> None:
        """Refuse further emits; what is queued stays to be drained. Idempotent."""
        with self._lock:
            self._closed = True


def events_of(batches: Iterable[EventBatch]) -> list[EventTuple]:
    """All events of *batches*, in order (for tests and tools)."""
    return [event for batch in batches for event in batch.events]
