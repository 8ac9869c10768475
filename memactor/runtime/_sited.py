"""A reporter that tags allocations with their site, for systems with sites on.

Only ``alloc``, ``acquire`` and a growing ``resize`` look for a site; the other emits are
:class:`MemoryReporter`'s own. A system with sites off never makes one of these, so the
plain reporter's emits pay nothing for the feature.
"""

from __future__ import annotations

from collections.abc import Callable
from sys import _getframe

from ..events import REQUESTED_TAG, SiteTable, Tags
from ._reporter import _ACQUIRE, _ALLOC, _RESIZE, MemoryReporter


def _lending(kind: int, name: str) -> Callable[..., None]:
    """The ``alloc`` (or ``acquire``) of :class:`SitedReporter`: as the plain reporter's,
    with the caller's site where this emit is sampled."""

    def lend(
        self: SitedReporter,
        block: int,
        size: int,
        owner: str | None = None,
        device: str | None = None,
        requested: int | None = None,
    ) -> None:
        self._countdown -= 1
        tags: Tags
        if self._countdown:
            tags = () if requested is None else ((REQUESTED_TAG, str(requested)),)
        else:
            self._countdown = self._every
            # The table's fast path, inline: the caller's position, if seen before.
            frame = _getframe(1)
            tags = self._positions.get((id(frame.f_code), frame.f_lasti)) or self._sites.tags_at(
                frame
            )
            if requested is not None:
                tags = ((REQUESTED_TAG, str(requested)), *tags)
        batch = self._batch
        batch.append(
            (kind, self.component, block, size, device or self.device,
             self.owner if owner is None else owner, self._clock(), 0, None, tags, self._seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()

    lend.__name__ = lend.__qualname__ = name
    lend.__doc__ = f"As :meth:`MemoryReporter.{name}`, with the caller's site."
    return lend


class SitedReporter(MemoryReporter):
    """A :class:`MemoryReporter` whose allocations carry their site (see
    :class:`~memactor.events.SiteTable`): every one, or one in ``sites.every``.

    With sampling, the countdown is per reporter: each reporter tags its first
    allocation, then one in ``every``. Sampled-out emits cost a decrement more than a
    plain reporter's. Everything else (modes, flushing, close) is as for the base class.
    """

    __slots__ = ("_countdown", "_every", "_positions", "_sites")

    def use_sites(self, sites: SiteTable) -> None:
        """Tag allocations from now on with sites found through *sites*."""
        self._sites = sites
        self._positions = sites.positions
        self._every = sites.every
        self._countdown = 1

    # alloc and acquire differ only in their kind: one body, made twice, keeps each a
    # single Python call (a shared helper would add a call to every emit).
    alloc = _lending(_ALLOC, "alloc")
    acquire = _lending(_ACQUIRE, "acquire")

    def resize(self, block: int, old_size: int, size: int, device: str | None = None) -> None:
        """As :meth:`MemoryReporter.resize`; a growing resize carries the caller's site,
        which then holds the whole block."""
        tags: Tags = ()
        if size > old_size:
            self._countdown -= 1
            if not self._countdown:
                self._countdown = self._every
                tags = self._sites.tags_at(_getframe(1))
        batch = self._batch
        batch.append(
            (_RESIZE, self.component, block, size, device or self.device, "", self._clock(),
             old_size, None, tags, self._seq())
        )  # fmt: skip
        if len(batch) >= self._limit:
            self._full()
