"""The reporter's six emits in pure Python: the reference, and the fallback.

:class:`PyEmits` holds the fields an emit reads and builds each event tuple. Where the
compiled core loads (:mod:`memactor._native`), :class:`~memactor.runtime.MemoryReporter`
derives from ``memactor._native._emit.EmitCore`` instead, which builds exactly the same
tuples from the same fields, calling the clock and the numbering in the same order; the
differential tests (``tests/native/test_emit.py``) hold the two to that. Everything else
a reporter does (handing on, drops, close) is :class:`MemoryReporter`'s, in Python, for
both.
"""

from __future__ import annotations

from collections.abc import Callable

from ..events import REQUESTED_TAG, EventKind, Tags
from ._inbox import Events

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


class PyEmits:
    """The fields an emit reads, and the six emits, in pure Python.

    Each emit appends one event tuple to ``_batch``: kind, component, block, size,
    device, owner, ``_clock()``, old size, destination device, tags, ``_seq()``, the
    clock called before the numbering. Once ``len(_batch)`` reaches ``_limit`` it calls
    ``_full()``, which the reporter defines (and which raises after close).
    """

    __slots__ = ("_batch", "_clock", "_limit", "_seq", "component", "device", "owner")

    _batch: Events
    _limit: int
    _clock: Callable[[], int]
    _seq: Callable[[], int]
    component: str
    owner: str
    device: str

    @staticmethod
    def _new_batch() -> Events:
        """An empty batch: a list here; the compiled emits' reporter makes a ``Batch``."""
        return []

    def _full(self) -> None:
        """The batch reached ``_limit``: the reporter's to decide (see
        :class:`~memactor.runtime.MemoryReporter`)."""
        raise NotImplementedError

    def _lend(
        self, kind: int, block: int, size: int, owner: str | None, device: str | None, tags: Tags
    ) -> None:
        """Append a lending event (an alloc or an acquire, *kind*) with *tags* as given:
        the sited reporters' emits, once they have found their tags, where the emits are
        compiled (here, they build their tuples in place, which costs less than a call)."""
        batch = self._batch
        batch.append(
            (kind, self.component, block, size, device or self.device,
             self.owner if owner is None else owner, self._clock(), 0, None, tags, self._seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()

    # Each emit builds its tuple and appends it in place rather than through a shared
    # helper: a second Python call would cost more than the append itself, and emits
    # are the hot path of every actor (scripts/bench_events.py measures them).

    def alloc(
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        """``size`` bytes were taken from the system for ``block`` and lent to ``owner``;
        ``requested``: the bytes asked for, if fewer (see :meth:`Reporter.alloc`)."""
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
                () if requested is None else ((REQUESTED_TAG, str(requested)),),
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
        self,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        """A cached ``block`` was lent to ``owner`` again (a pool hit); ``requested`` as
        for :meth:`alloc`."""
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
                () if requested is None else ((REQUESTED_TAG, str(requested)),),
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
            )
        )
        if len(batch) >= self._limit:
            self._full()
