"""Allocation sites: the line of user code behind an allocation, interned once.

A :class:`SiteTable` finds, for an emit, the first frame outside memactor, trio and the
few modules between them and user code (outcome, contextlib), and gives the event a tag
``("site", "ID")`` where ``ID`` is a small number that the table maps back to a
:class:`Site` (file, line, function). Each distinct line is interned once, so a site
costs its strings once however many events point at it. An emit called straight from a
known line costs one frame look-up and one dict look-up (``SiteTable.callers``); one
called from inside memactor (a pool's lend) walks the few frames out to the site.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Iterable
from types import CodeType, FrameType
from typing import Final, NamedTuple

from ._event import REQUESTED_TAG, Tags

_NOT_SEEN: Final[tuple[CodeType | None, Tags]] = (None, ())

SITE_TAG: Final = "site"
"""The tag under which an ALLOC, ACQUIRE or RESIZE carries its site's id, in decimal."""

NO_SITE: Final = 0
"""The site id of an event that carries none."""

CALLSITES_ENV: Final = "MEMACTOR_CALLSITES"
"""The environment variable that turns sites on for systems that do not say:
``1`` records every allocation's site, ``N`` one allocation in ``N``, ``0`` or unset none."""

INTERNAL_MODULES: Final = ("memactor", "trio", "outcome", "contextlib")
"""Modules whose frames are never a site: the walk goes past them to their caller."""


class Site(NamedTuple):
    """Where an allocation was asked for: the first frame outside memactor and trio."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


def site_of(tags: Tags) -> int:
    """The site id that *tags* carry under :data:`SITE_TAG`, or :data:`NO_SITE`.

    Raises ``ValueError`` for a value that is not a positive decimal id."""
    for key, value in tags:
        if key == SITE_TAG:
            if value.__class__ is not str or not value.isascii() or not value.isdigit():
                raise ValueError(f"tag {SITE_TAG!r} must be a decimal site id, got {value!r}")
            return int(value)
    return NO_SITE


def check_callsites(callsites: bool | int) -> int:
    """The sampling rate that *callsites* names: ``0`` (off), ``1`` (every allocation,
    also ``True``) or ``N`` (one in ``N``). Raises ``ValueError`` for a negative number
    or anything that is not a bool or an int."""
    if callsites is True:
        return 1
    if callsites is False:
        return 0
    if not isinstance(callsites, int) or callsites < 0:
        raise ValueError(
            f"callsites must be True, False or a sampling rate N >= 0, got {callsites!r}"
        )
    return callsites


def callsites_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> int:
    """The sampling rate :data:`CALLSITES_ENV` asks for (``0`` when unset or empty).

    Raises ``ValueError`` naming the variable for a value that is not a whole number."""
    raw = (os.environ if environ is None else environ).get(CALLSITES_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(
            f"{CALLSITES_ENV} must be 0, 1 or a sampling rate N (one allocation in N), got {raw!r}"
        )
    return int(raw)


def _module_root(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    if spec.submodule_search_locations:
        return os.path.dirname(spec.origin) + os.sep
    return spec.origin


class SiteTable:
    """Interns allocation sites and finds the one behind the current emit.

    ``every`` is the sampling rate the reporters use (1: every allocation; N: one in N);
    the table only records it, so that whatever shows sites can say they are sampled.
    ``internal`` names more modules whose frames the walk passes (a library that wraps
    memactor's reporters), besides :data:`INTERNAL_MODULES`.

    Safe from any thread: a known line is found without a lock, a new one is interned
    under one. A table never forgets a site (a program has finitely many lines), and
    keeps every code object it found one in alive.
    """

    def __init__(self, every: int = 1, *, internal: Iterable[str] = ()) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (one allocation in N), got {every!r}")
        self.every = every
        roots = (_module_root(name) for name in (*INTERNAL_MODULES, *internal))
        self._roots = tuple(root for root in roots if root)
        # Whether each file's frames are internal, by file name (a string's hash is
        # cached; a code object's is computed anew each time, over all its constants).
        self._internal: dict[str, bool] = {}
        self.positions: dict[tuple[int, int], Tags] = {}
        """``(id(code), instruction offset)`` of a frame outside memactor -> the tags of
        its site: the emit's fast path, one look-up; the line is worked out only when a
        position is first seen. Its codes are kept alive in ``_codes``, so that no id
        is reused while it is a key here."""
        self.callers: dict[int, tuple[CodeType, Tags]] = {}
        """Instruction offset of an emit's caller that is itself a site -> ``(its code,
        the site's tags)``: the reporters' fast path, one look-up and an identity test
        of the code. The last code seen at an offset holds it; another code calling
        from the same offset is found through ``positions`` and takes it over."""
        self._codes: dict[int, CodeType] = {}
        self._ids: dict[Site, int] = {}
        self._sites: list[Site] = [Site("(no site)", 0, "")]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many sites were interned."""
        return len(self._sites) - 1

    def site(self, site_id: int) -> Site | None:
        """The site with id *site_id*, or ``None`` for :data:`NO_SITE` or an unknown id."""
        if 0 < site_id < len(self._sites):
            return self._sites[site_id]
        return None

    def tags(self, requested: int | None, depth: int = 2) -> Tags:
        """The tags of an emit made *depth* frames above this call: its site's tag and,
        if *requested* is not ``None``, the requested tag, in key order. No site tag
        when every frame is internal."""
        frame = sys._getframe(depth)
        code, tags = self.callers.get(frame.f_lasti, _NOT_SEEN)
        if code is not frame.f_code:
            tags = self.tags_at(frame)
        if requested is None:
            return tags
        return ((REQUESTED_TAG, str(requested)), *tags)

    def tags_at(self, frame: FrameType | None) -> Tags:
        """The site tags of the first frame outside memactor from *frame* outwards (the
        frame that called an emit), ``()`` if there is none; interns the site if new."""
        internal = self._internal
        caller = frame
        while frame is not None:
            code = frame.f_code
            skip = internal.get(code.co_filename)
            if skip is None:
                skip = internal[code.co_filename] = code.co_filename.startswith(self._roots)
            if not skip:
                break
            frame = frame.f_back
        if frame is None:
            return ()
        lasti = frame.f_lasti
        key = (id(code), lasti)
        tags = self.positions.get(key)
        if tags is not None:
            if frame is caller:
                self.callers[lasti] = (code, tags)
            return tags
        site = Site(code.co_filename, frame.f_lineno, code.co_qualname)
        with self._lock:
            site_id = self._ids.get(site)
            if site_id is None:
                site_id = self._ids[site] = len(self._sites)
                self._sites.append(site)
            tags = self.positions[key] = ((SITE_TAG, str(site_id)),)
            self._codes[id(code)] = code
        if frame is caller:
            self.callers[lasti] = (code, tags)
        return tags
