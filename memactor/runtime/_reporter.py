"""Memory reporters: cheap, synchronous emission of memory events in batches.

An emit call (``alloc``, ``free``, ``resize``, ``acquire``, ``release``, ``transfer``)
stamps the component, the owner, the time and the event's number onto an event tuple and
appends it to a local batch; nothing awaits. Every reporter of a system numbers its events
from one counter (``seq``), so the metrics actor can apply them in the order they were
emitted, whichever batch reaches it first.

Batches reach the metrics actor through the hub's inbox when they are full, when their
owner yields (:meth:`MemoryReporter.flush`), and at every round of the metrics actor,
which also takes what reporters still hold (each round is a consistent cut).

Two modes:

* **lossless** (the default) never drops an event. A full batch that finds the inbox
  full keeps growing until the next :meth:`~MemoryReporter.flush`, which waits for room
  (or for the metrics actor's next round, which takes it): that wait is the backpressure,
  paid at a point where the owner may block.
* **lossy** never blocks and never grows past its batch size: a full batch that finds the
  inbox full is dropped and counted, and the count travels with the next batch that gets
  through, so the ledger's ``events_dropped`` says how much is missing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol

import trio

from .._native import load
from ..events import DURATION_TAG, REQUESTED_TAG, SiteTable, Tags, check_device
from ._emits import _ACQUIRE, _ALLOC, _FREE, _RELEASE, _RESIZE, _TRANSFER, PyEmits
from ._inbox import EventBatch, EventTuple, Inbox

DEFAULT_BATCH_SIZE: Final = 256

_compiled = load("_emit")
# The emits' base: compiled where the extension loads, else the pure-Python reference.
# Both hold the same fields and build the same tuples; type checkers see the reference.
if TYPE_CHECKING or _compiled is None:
    _Emits = PyEmits
else:
    _Emits = _compiled.EmitCore

EMITS_COMPILED: Final = _Emits is not PyEmits
"""Whether :class:`MemoryReporter`'s emits are the compiled ones."""

if _compiled is not None:
    # A Batch reads as a sequence of event tuples: say so to isinstance.
    Sequence.register(_compiled.Batch)


def new_numbering() -> Callable[[], int]:
    """A fresh numbering from 1: ``itertools.count(1).__next__``, or where the emits are
    compiled their ``Counter``, which counts the same and which they read without
    making an int (up to 2**63 - 2)."""
    if _compiled is None:
        return itertools.count(1).__next__
    counter: Callable[[], int] = _compiled.Counter(1)
    return counter


class Reporter(Protocol):
    """What every reporter offers: :class:`MemoryReporter`, :class:`NullReporter` and
    :class:`ThreadReporter`. Type an actor's or a library's reporting code against it."""

    component: str
    owner: str
    device: str

    def next_block(self) -> int:
        """A fresh block id, unique within the component."""
        ...

    def alloc(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        """``size`` bytes were taken from the system for ``block`` and lent to ``owner``.

        ``requested``: the bytes the requester asked for, where it got a bigger block (a
        pool's size class); it travels as the event's ``"requested"`` tag, and the ledger
        counts requested bytes beside lent ones. ``None`` (the default) adds nothing."""
        ...

    def free(self, block: int, size: int, device: str | None = None) -> None:
        """``block``'s ``size`` bytes went back to the system."""
        ...

    def acquire(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        """A cached ``block`` was lent to ``owner`` again (a pool hit); ``requested`` as
        for :meth:`alloc`."""
        ...

    def release(self, block: int, size: int, device: str | None = None) -> None:
        """A lent ``block`` came back to the cache; the component still holds it."""
        ...

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        """``block`` changed from ``old_size`` to ``size`` bytes."""
        ...

    def transfer(self, size: int, src: str, dst: str, block: int = 0) -> None:
        """``size`` bytes were copied from device ``src`` to ``dst``."""
        ...

    def close(self) -> None:
        """Refuse further emits; nothing emitted before is lost. Idempotent."""
        ...


class MemoryReporter(_Emits):
    """Emits one component's memory events; see the module docstring for the modes.

    Emits are synchronous and never raise for a bad value: the ledger counts it as an
    anomaly. A reporter belongs to one trio thread (the one its actor runs in); for other
    threads use :class:`ThreadReporter`. Made by :meth:`MemoryHub.reporter`.

    After :meth:`close`, emits raise ``trio.ClosedResourceError``.

    The six emits are compiled where memactor's C extension was built (its base is then
    ``memactor._native._emit.EmitCore``), and pure Python otherwise or under
    ``MEMACTOR_PURE_PYTHON=1``; both build the same events (see the guide to the
    compiled emits).
    """

    # The fields an emit reads are the base's (_batch, _limit, _clock, _seq, component,
    # owner, device); these are the rest.
    __slots__ = ("_batch_size", "_blocks", "_closed", "_dropped", "_inbox", "_lossy")

    # Compiled emits write compact records into a Batch; pure-Python ones tuples into a
    # list (PyEmits's). Either reads as a sequence of the same event tuples.
    if not TYPE_CHECKING and _compiled is not None:
        _new_batch = staticmethod(_compiled.Batch)

    def __init__(
        self,
        component: str,
        inbox: Inbox,
        *,
        owner: str | None = None,
        device: str = "cpu",
        lossy: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Callable[[], int] = time.monotonic_ns,
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
        self._inbox = inbox
        self._lossy = lossy
        self._batch_size = batch_size
        # An emit calls _full() once len(batch) reaches _limit: at the first event of a
        # batch (to tell the inbox this reporter holds events), when the batch is full,
        # and after close (to refuse the emit). So the hot path has one comparison.
        self._limit = 1
        self._clock = clock
        self._seq = seq if seq is not None else new_numbering()
        self._batch = self._new_batch()
        self._dropped = 0
        self._closed = False
        self._blocks = blocks if blocks is not None else itertools.count(1)

    # -- emits: the base's (see memactor/runtime/_emits.py) ------------------------------

    def next_block(self) -> int:
        """A fresh block id: a counter from 1, shared by every reporter the hub made for
        this component, so ids stay unique across restarts and sibling reporters."""
        return next(self._blocks)

    # Named here too, so that the API reference lists them as the reporter's own.
    alloc = _Emits.alloc
    free = _Emits.free
    acquire = _Emits.acquire
    release = _Emits.release
    resize = _Emits.resize
    transfer = _Emits.transfer

    # -- flushing ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events emitted and not yet handed on."""
        return len(self._batch)

    @property
    def backlogged(self) -> bool:
        """A full batch found no room in the inbox (lossless): the owner should flush."""
        return len(self._batch) >= self._batch_size

    @property
    def dropped(self) -> int:
        """Events dropped (lossy mode) and not yet reported to the metrics actor."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _full(self) -> None:
        batch = self._batch
        if self._closed:
            batch.pop()
            raise trio.ClosedResourceError(f"reporter {self.component!r} is closed")
        if len(batch) == 1:
            # The first event since the batch was taken: the next round must look here.
            self._inbox.note_pending(self)
            self._limit = self._batch_size
            if self._batch_size > 1:
                return
        if not self._send_or_drop():
            # Keep the batch: it grows until the owner's next flush() waits or the next
            # round takes it. Try the inbox again only after another batch's worth.
            self._limit = len(batch) + self._batch_size

    def _send_or_drop(self) -> bool:
        """Hand the batch on without waiting or, in lossy mode, drop and count it; False
        when a lossless batch found no room and stays."""
        if self.flush_nowait():
            return True
        if self._lossy:
            self._dropped += len(self._batch)
            self._batch = self._new_batch()
            self._limit = 1
            return True
        return False

    def take(self) -> EventBatch:
        """Take the batch and the drop count as they are (for the runtime's use: the
        metrics actor's rounds take what reporters hold)."""
        batch = EventBatch(self._batch, self._dropped)
        self._batch = self._new_batch()
        self._dropped = 0
        self._limit = 0 if self._closed else 1
        return batch

    def flush_nowait(self) -> bool:
        """Hand the batch on if the inbox has room; return whether it did (or was empty)."""
        if not self._batch and not self._dropped:
            return True
        if not self._inbox.offer(EventBatch(self._batch, self._dropped)):
            return False
        self._batch = self._new_batch()
        self._dropped = 0
        self._limit = 0 if self._closed else 1
        return True

    async def flush(self) -> None:
        """Hand the batch on, waiting for room in lossless mode.

        In lossy mode it never waits: a batch that finds no room is dropped and counted.
        On cancellation while waiting, the batch stays with the reporter, whole, in front
        of what was emitted meanwhile. Order never depends on flushes: every event carries
        its number, and the metrics actor applies them by it.
        """
        if self._send_or_drop():
            await trio.lowlevel.checkpoint()
            return
        # Cancelled already: raise with the batch still here. Otherwise this does not
        # yield, so the inbox has the batch before any round can run.
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._inbox.put(self.take(), self._put_back)

    def _put_back(self, batch: EventBatch) -> None:
        """Take back *batch*, which a cancelled :meth:`flush` could not hand on, in front
        of what was emitted since (the inbox calls this as the cancellation happens)."""
        events = self._new_batch()
        events.extend(batch.events)
        events.extend(self._batch)
        self._batch = events
        self._dropped += batch.dropped
        if self._closed:
            self._hand_over_rest()
        else:
            self._inbox.note_pending(self)
            self._limit = len(self._batch) + self._batch_size

    def close(self) -> None:
        """Hand on what is pending, whatever the inbox's room, then close; idempotent.

        A lossless reporter loses nothing, even when it is closed by a cancellation. A
        flush waiting for room keeps waiting; its batch is taken by the next round.
        """
        if self._closed:
            return
        self._closed = True
        self._hand_over_rest()

    def _hand_over_rest(self) -> None:
        batch = self.take()
        if batch.events or batch.dropped:
            self._inbox.hand_over(batch)


def _pure_reporter_class() -> type[MemoryReporter]:
    """:class:`MemoryReporter` on the pure-Python emits, whichever base it has: the
    same methods, on a :class:`PyEmits` base."""
    if _Emits is PyEmits:
        return MemoryReporter
    own_fields = set(MemoryReporter.__slots__)
    namespace = {
        name: value
        for name, value in vars(MemoryReporter).items()
        if name not in own_fields and name not in ("alloc", "free", "acquire", "release",
                                                   "resize", "transfer", "_new_batch")
    }  # fmt: skip
    namespace["__qualname__"] = "PyMemoryReporter"
    kind: type[MemoryReporter] = type("PyMemoryReporter", (PyEmits,), namespace)
    return kind


PyMemoryReporter: Final = _pure_reporter_class()
""":class:`MemoryReporter` with the pure-Python emits (the reference), even where the
compiled core loads; :class:`MemoryReporter` itself where it does not. For the
differential tests and the benchmarks, which run the two side by side."""


class NullReporter(MemoryReporter):
    """A reporter that reports nothing, for a system opened with tracking off.

    Every emit returns at once, even after :meth:`close`; ``next_block`` still counts,
    so code that uses it works unchanged. It exists to measure (and to remove) what
    tracking costs.
    """

    __slots__ = ()

    def alloc(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        pass

    def free(self, block: int, size: int, device: str | None = None) -> None:
        pass

    def acquire(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
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

    Emits append to a queue under a lock; the metrics actor takes them at each of its
    rounds and applies them in the order they were emitted among all reporters' events.
    Emitting never blocks and never drops; after :meth:`close` it raises
    ``trio.ClosedResourceError``, and an emit that raced with the close either got in
    before it (and will be applied) or raises.

    With ``sites`` (a system with sites on), allocations, acquires and growing resizes
    carry the site of the thread's code that emitted them, one in ``sites.every``
    (counted per reporter, across its threads).
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
        sites: SiteTable | None = None,
    ) -> None:
        if not isinstance(component, str) or not component:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        check_device(device)
        self._sites = sites
        self._countdown = 1
        self.component = component
        self.owner = component if owner is None else owner
        self.device = device
        self._clock = clock
        self._seq = seq if seq is not None else new_numbering()
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
        tags: Tags = (),
    ) -> None:
        with self._lock:
            # Numbered and stamped under the lock that drain() takes: once the metrics
            # actor has drawn a number and drained, every event numbered below it is in
            # hand (see MemoryHub.collect).
            if self._closed:
                raise trio.ClosedResourceError(f"reporter {self.component!r} is closed")
            self._queue.append(
                (kind, self.component, block, size, device or self.device, owner,
                 self._clock(), old_size, dst, tags, self._seq())
            )  # fmt: skip

    def alloc(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
        *,
        tags: Tags = (),
    ) -> None:
        """As :meth:`MemoryReporter.alloc`; ``tags``: more sorted ``(key, value)`` pairs
        to carry (a pinned buffer's :data:`~memactor.events.PINNED_TAG`)."""
        found = self._tags(requested)
        found = tuple(sorted((*found, *tags))) if tags else found
        self._emit(_ALLOC, block, size, device, self.owner if owner is None else owner, tags=found)

    def free(self, block: int, size: int, device: str | None = None) -> None:
        self._emit(_FREE, block, size, device, "")

    def acquire(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        tags = self._tags(requested)
        self._emit(_ACQUIRE, block, size, device, self.owner if owner is None else owner, tags=tags)

    def release(self, block: int, size: int, device: str | None = None) -> None:
        self._emit(_RELEASE, block, size, device, "")

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        tags = self._tags(None) if size > old_size else ()
        self._emit(_RESIZE, block, size, device, "", old_size, tags=tags)

    def _tags(self, requested: int | None) -> Tags:
        """The tags of an allocation: the requested size, if any, and the site of the
        code that called the emit, where sites are on and this one is sampled."""
        sites = self._sites
        if sites is not None:
            self._countdown -= 1
            if not self._countdown:
                self._countdown = sites.every
                return sites.tags(requested, depth=3)
        return () if requested is None else ((REQUESTED_TAG, str(requested)),)

    def transfer(
        self, size: int, src: str, dst: str, block: int = 0, *, duration_ns: int | None = None
    ) -> None:
        """As :meth:`MemoryReporter.transfer`; ``duration_ns``: how long the copy took,
        carried as the :data:`~memactor.events.DURATION_TAG` tag."""
        tags = () if duration_ns is None else ((DURATION_TAG, str(duration_ns)),)
        self._emit(_TRANSFER, block, size, src, self.owner, 0, dst, tags)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: no event can be queued any more."""
        return self._closed

    def drain(self) -> list[EventTuple]:
        """Take every queued event, oldest first (the metrics actor calls this)."""
        with self._lock:
            taken, self._queue = self._queue, []
        return taken

    def close(self) -> None:
        """Refuse further emits; what is queued stays to be drained. Idempotent."""
        with self._lock:
            self._closed = True


class NullThreadReporter(ThreadReporter):
    """A thread reporter that reports nothing, for a system opened with tracking off:
    every emit returns at once (``next_block`` still counts), as for
    :class:`NullReporter`."""

    def _emit(
        self,
        kind: int,
        block: int,
        size: int,
        device: str | None,
        owner: str,
        old_size: int = 0,
        dst: str | None = None,
        tags: Tags = (),
    ) -> None:
        pass


def events_of(batches: Iterable[EventBatch]) -> list[EventTuple]:
    """All events of *batches*, in order (for tests and tools)."""
    return [event for batch in batches for event in batch.events]
