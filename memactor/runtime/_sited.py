"""Reporters that tag allocations with their site, for systems with sites on.

Only ``alloc``, ``acquire`` and a growing ``resize`` look for a site; the other emits are
:class:`MemoryReporter`'s own. A system with sites off never makes one of these, so the
plain reporter's emits pay nothing for the feature.

Two classes share one layout: :class:`SitedReporter` tags every allocation, and
:class:`SampledReporter` one in ``N``. :meth:`SitedReporter.use_sites` makes a reporter
the one its table's rate asks for. Their emits are written out in full, each a single
Python call: a shared helper would add a call to every emit (scripts/callgrind_sites.py
counts what each line costs). One body for both, with a countdown that always says
"record" for a rate of 1, would cost every sited emit a ``next``: 1.47x a plain emit's
instructions instead of 1.38x.

Where the emits are compiled, a sited emit finds its tags in Python and hands them to
the compiled ``_lend``, which builds and appends the event: cheaper than building it in
Python. Where they are not, the emit builds it in place (a call would cost more).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain, cycle, repeat
from sys import _getframe
from types import CodeType

from ..events import REQUESTED_TAG, SiteTable, Tags
from ._emits import _ACQUIRE, _ALLOC, _RESIZE
from ._reporter import EMITS_COMPILED, MemoryReporter

_NOT_SEEN: tuple[CodeType | None, Tags] = (None, ())


def _ticks(every: int) -> Iterator[Tags | None]:
    """``None`` (record this allocation's site), then ``every - 1`` times ``()`` (do
    not), over and over: a sampled reporter's countdown, advanced by one C-level
    ``next`` per allocation. Holds nothing per allocation, whatever *every* is."""
    return chain.from_iterable(map(repeat, cycle((None, ())), cycle((1, every - 1))))


def _every_lend(kind: int, name: str) -> Callable[..., None]:
    """The ``alloc`` (or ``acquire``) of :class:`SitedReporter`: the plain reporter's,
    with the caller's site."""
    compiled = EMITS_COMPILED

    def lend(
        self: SitedReporter,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        # The table's fast path, inline: the caller's position, if the caller is a site
        # seen before (its code is checked, so a shared offset is never mistaken).
        frame = _getframe(1)
        code, tags = self._callers.get(frame.f_lasti, _NOT_SEEN)
        if code is not frame.f_code:
            tags = self._sites.tags_at(frame)
        if requested is not None:
            tags = ((REQUESTED_TAG, str(requested)), *tags)
        if compiled:
            self._lend(kind, block, size, owner, device, tags)
            return
        batch = self._batch
        clock = self._clock
        seq = self._seq
        batch.append(
            (kind, self.component, block, size, device or self.device,
             self.owner if owner is None else owner, clock(), 0, None, tags, seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()

    lend.__name__ = lend.__qualname__ = name
    lend.__doc__ = f"As :meth:`MemoryReporter.{name}`, with the caller's site."
    return lend


def _sampled_lend(kind: int, name: str) -> Callable[..., None]:
    """The ``alloc`` (or ``acquire``) of :class:`SampledReporter`: the plain reporter's
    with one ``next`` more, and the caller's site where this emit is sampled."""
    compiled = EMITS_COMPILED

    def lend(
        self: SitedReporter,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        tags = next(self._ticks)
        if tags is None:
            frame = _getframe(1)
            code, site = self._callers.get(frame.f_lasti, _NOT_SEEN)
            if code is not frame.f_code:
                site = self._sites.tags_at(frame)
            tags = site if requested is None else ((REQUESTED_TAG, str(requested)), *site)
        elif requested is not None:
            tags = ((REQUESTED_TAG, str(requested)),)
        if compiled:
            self._lend(kind, block, size, owner, device, tags)
            return
        batch = self._batch
        clock = self._clock
        seq = self._seq
        batch.append(
            (kind, self.component, block, size, device or self.device,
             self.owner if owner is None else owner, clock(), 0, None, tags, seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()

    lend.__name__ = lend.__qualname__ = name
    lend.__doc__ = f"As :meth:`MemoryReporter.{name}`, with the caller's site one in N."
    return lend


class SitedReporter(MemoryReporter):
    """A :class:`MemoryReporter` whose allocations carry their site (see
    :class:`~memactor.events.SiteTable`): every one, or, once :meth:`use_sites` is
    given a sampling table, one in ``sites.every`` (it becomes a
    :class:`SampledReporter`).

    Everything else (modes, flushing, close) is as for the base class. Emits before
    :meth:`use_sites` raise ``AttributeError``.
    """

    __slots__ = ("_callers", "_sites", "_ticks")

    def use_sites(self, sites: SiteTable) -> None:
        """Tag allocations from now on with sites found through *sites*, one in
        ``sites.every``; the sampling countdown starts anew (the next allocation is
        tagged). Makes this reporter a :class:`SampledReporter` for a rate above 1, a
        :class:`SitedReporter` for 1."""
        self._sites = sites
        self._callers = sites.callers
        self._ticks = _ticks(sites.every)
        # Same slots, other emits: the rate is fixed per table, so the choice is made
        # once here rather than tested on every emit.
        kind = SampledReporter if sites.every > 1 else SitedReporter
        if type(self) is not kind:
            self.__class__ = kind

    # alloc and acquire differ only in their kind: one body, made twice, keeps each a
    # single Python call (a shared helper would add a call to every emit).
    alloc = _every_lend(_ALLOC, "alloc")
    acquire = _every_lend(_ACQUIRE, "acquire")

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        """As :meth:`MemoryReporter.resize`; a growing resize carries the caller's site,
        which then holds the whole block."""
        tags: Tags = ()
        if size > old_size and next(self._ticks) is None:
            tags = self._sites.tags_at(_getframe(1))
        batch = self._batch
        batch.append(
            (_RESIZE, self.component, block, size, device or self.device, "", self._clock(),
             old_size, None, tags, self._seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()


class SampledReporter(SitedReporter):
    """A :class:`SitedReporter` that tags one allocation in ``sites.every``.

    The countdown is per reporter: each reporter tags its first allocation, then one in
    ``every``. A sampled-out emit costs one C-level ``next`` more than a plain
    reporter's. Made by :meth:`SitedReporter.use_sites` with a sampling table.
    """

    __slots__ = ()

    alloc = _sampled_lend(_ALLOC, "alloc")
    acquire = _sampled_lend(_ACQUIRE, "acquire")
