"""The memory event: what a component tells the metrics actor about its memory.

An event is a flat tuple so that the ledger can unpack it at full speed; the public
constructor validates every field, and :meth:`MemoryEvent.unchecked` skips that for
producers (the reporter, the codec) that have validated already.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

MAX_SIZE: Final = 2**48 - 1
"""The largest size one event can carry: 256 TiB less one byte."""

MAX_BLOCK: Final = 2**63 - 1
"""Block ids are non-negative and fit in a signed 64-bit integer."""

MAX_SEQ: Final = 2**63 - 1
"""Sequence numbers are non-negative and fit in a signed 64-bit integer."""

MIN_TIMESTAMP: Final = -(2**63)
MAX_TIMESTAMP: Final = 2**63 - 1
"""Timestamps fit in a signed 64-bit integer, as snapshots and msgpack store them."""

_DEVICE_RE = re.compile(r"cpu|cuda:(?:0|[1-9][0-9]{0,3})")

Tags = tuple[tuple[str, str], ...]


class EventKind(enum.IntEnum):
    """What happened to a block. The docs' concepts page has a table of what each counts."""

    ALLOC = 0
    """The component took ``size`` bytes from the system for ``block`` and lent it out."""
    FREE = 1
    """The block's memory went back to the system."""
    RESIZE = 2
    """The block changed from ``old_size`` to ``size`` bytes."""
    ACQUIRE = 3
    """A cached block was lent out again (a pool hit)."""
    RELEASE = 4
    """A lent block came back to its pool's cache; the pool still holds it."""
    TRANSFER = 5
    """``size`` bytes were copied from ``device`` to ``dst_device``."""


def check_kind(kind: object) -> EventKind:
    """Return the :class:`EventKind` that *kind* names (a member or its int value).

    Raises :class:`ValueError` listing the kinds for anything else, booleans included.
    """
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise ValueError(f"kind must be one of {[k.name for k in EventKind]}, got {kind!r}")
    try:
        return EventKind(kind)
    except ValueError:
        raise ValueError(
            f"kind must be one of {[k.name for k in EventKind]}, got {kind!r}"
        ) from None


def check_device(device: str, *, field: str = "device") -> str:
    """Return *device* if it names a device (``"cpu"`` or ``"cuda:N"``), else raise.

    Raises :class:`ValueError` naming *field* and the bad value.
    """
    if not isinstance(device, str) or _DEVICE_RE.fullmatch(device) is None:
        raise ValueError(f"{field} must be 'cpu' or 'cuda:N', got {device!r}")
    return device


def is_device(name: object) -> bool:
    """Whether *name* names a device (``"cpu"`` or ``"cuda:N"``); never raises."""
    return isinstance(name, str) and _DEVICE_RE.fullmatch(name) is not None


def check_timestamp(timestamp_ns: object) -> int:
    """Return *timestamp_ns* if it is an int that fits a signed 64-bit integer, else raise.

    Raises :class:`ValueError` naming the bad value (booleans are not timestamps).
    """
    if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int):
        raise ValueError(f"timestamp_ns must be an int, got {timestamp_ns!r}")
    if not MIN_TIMESTAMP <= timestamp_ns <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp_ns must fit in a signed 64-bit int, got {timestamp_ns}")
    return timestamp_ns


REQUESTED_TAG: Final = "requested"
"""The tag under which an ALLOC or ACQUIRE carries the bytes its requester asked for,
in decimal, when the component lent a bigger block (a pool's size class):
``tags={"requested": "120000"}`` on a 131,072-byte block. The ledger counts requested
bytes beside lent ones from it (see ``ComponentStats.requested_bytes_in_use``)."""


def requested_of(tags: Tags) -> int | None:
    """The requested bytes that *tags* carry under :data:`REQUESTED_TAG`, or ``None``
    where they carry none. Raises ``ValueError`` for a value that is not a decimal
    number of bytes from 0 to :data:`MAX_SIZE`."""
    return _decimal_tag(tags, REQUESTED_TAG, MAX_SIZE, "a decimal size", "bytes")


def _decimal_tag(tags: Tags, name: str, limit: int, what: str, unit: str) -> int | None:
    """The number *tags* carry under *name* (decimal digits, at most *limit*), or
    ``None``; ``ValueError`` naming the tag, *what* it must be and its *unit*."""
    for key, value in tags:
        if key == name:
            if value.__class__ is not str or not value.isascii() or not value.isdigit():
                raise ValueError(f"tag {name!r} must be {what}, got {value!r}")
            number = int(value)
            if number > limit:
                raise ValueError(f"tag {name!r} is over {limit} {unit}: {value}")
            return number
    return None


DURATION_TAG: Final = "duration_ns"
"""The tag under which a TRANSFER carries how long its copy took, in nanoseconds, in
decimal: ``tags={"duration_ns": "41000000"}`` on a 256 MiB copy that took 41 ms. The
ledger adds it up per route beside the bytes of the copies that carried it, so views
can show bandwidth per direction (see ``Ledger.transfer_timings``)."""

PINNED_TAG: Final = "pinned"
"""The tag (value ``"1"``) on the ALLOC of a page-locked host buffer: host memory
(device ``"cpu"``) that the operating system may not swap out, which a GPU copies to
and from without staging (see ``GpuBufferManager.alloc_pinned``)."""


def duration_of(tags: Tags) -> int | None:
    """The nanoseconds that *tags* carry under :data:`DURATION_TAG`, or ``None`` where
    they carry none. Raises ``ValueError`` for a value that is not a decimal number of
    nanoseconds that fits a signed 64-bit integer."""
    return _decimal_tag(tags, DURATION_TAG, MAX_TIMESTAMP, "decimal nanoseconds", "ns")


def _check_size(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an int number of bytes, got {value!r}")
    if value < 0:
        raise ValueError(f"{field} must not be negative, got {value}")
    if value > MAX_SIZE:
        raise ValueError(f"{field} must be at most {MAX_SIZE} bytes, got {value}")
    return value


def _normalize_tags(tags: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Tags:
    if not tags:
        return ()
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    return tuple(sorted((str(key), str(value)) for key, value in pairs))


class _EventFields(NamedTuple):
    kind: EventKind
    component: str
    block: int
    size: int
    device: str
    owner: str
    timestamp_ns: int
    old_size: int
    dst_device: str | None
    tags: Tags
    seq: int


class MemoryEvent(_EventFields):
    """One memory event, immutable and flat.

    ``MemoryEvent(EventKind.ALLOC, "pool", block=1, size=4096, owner="decode")`` checks
    every field and raises :class:`ValueError` naming the first bad one: a negative or
    oversized ``size`` or ``old_size``, an empty ``component``, a negative ``block``, a
    device that is not ``"cpu"`` or ``"cuda:N"``, a RESIZE without ``old_size`` or a
    TRANSFER without ``dst_device``. ``timestamp_ns`` defaults to
    :func:`time.monotonic_ns`.

    Fields: ``kind, component, block, size, device, owner, timestamp_ns`` and, where the kind
    uses them, ``old_size`` (RESIZE), ``dst_device`` (TRANSFER) and ``tags`` (sorted
    ``(key, value)`` pairs). Last comes ``seq``, the event's place in its process's order
    of emission: reporters number every event they emit from one counter per system, so
    that the metrics actor applies events in the order they happened, whichever batch
    reaches it first. ``0`` (the default) means "not numbered"; the ledger applies events
    in the order it is given them and never reads ``seq``.
    """

    __slots__ = ()

    def __new__(
        cls,
        kind: EventKind | int,
        component: str,
        block: int,
        size: int,
        device: str = "cpu",
        owner: str = "",
        timestamp_ns: int | None = None,
        old_size: int | None = None,
        dst_device: str | None = None,
        tags: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        seq: int = 0,
    ) -> MemoryEvent:
        event_kind = check_kind(kind)
        if not isinstance(component, str) or not component:
            raise ValueError(f"component must be a non-empty string, got {component!r}")
        if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block <= MAX_BLOCK:
            raise ValueError(f"block must be an int id from 0 to 2**63-1, got {block!r}")
        _check_size(size, "size")
        check_device(device)
        if not isinstance(owner, str):
            raise ValueError(f"owner must be a string, got {owner!r}")
        if timestamp_ns is None:
            timestamp_ns = time.monotonic_ns()
        else:
            check_timestamp(timestamp_ns)
        if event_kind is EventKind.RESIZE:
            if old_size is None:
                raise ValueError("old_size is required for a RESIZE event")
            _check_size(old_size, "old_size")
        elif old_size not in (None, 0):
            raise ValueError(f"old_size is only for RESIZE events, got {old_size!r}")
        if event_kind is EventKind.TRANSFER:
            if dst_device is None:
                raise ValueError("dst_device is required for a TRANSFER event")
            check_device(dst_device, field="dst_device")
        elif dst_device is not None:
            raise ValueError(f"dst_device is only for TRANSFER events, got {dst_device!r}")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"seq must be an int from 0 to 2**63-1, got {seq!r}")
        return tuple.__new__(
            cls,
            (
                event_kind,
                component,
                block,
                size,
                device,
                owner,
                timestamp_ns,
                old_size or 0,
                dst_device,
                _normalize_tags(tags),
                seq,
            ),
        )

    @classmethod
    def unchecked(
        cls,
        kind: EventKind,
        component: str,
        block: int,
        size: int,
        device: str,
        owner: str,
        timestamp_ns: int,
        old_size: int = 0,
        dst_device: str | None = None,
        tags: Tags = (),
        seq: int = 0,
    ) -> MemoryEvent:
        """Build an event without checking it, for producers that already have.

        The ledger still counts a bad field as an anomaly rather than failing, so an
        unchecked event can never crash it; it can only be counted as wrong.
        """
        return tuple.__new__(
            cls,
            (
                kind,
                component,
                block,
                size,
                device,
                owner,
                timestamp_ns,
                old_size,
                dst_device,
                tags,
                seq,
            ),
        )
