"""Event batches as columns: one payload per batch, one packed array per field.

A batch of ``n`` events is the payload ``{"memactor": 1, "type": "events", ...}`` with

- ``count``: ``n``;
- ``strings``: the distinct strings the batch names (components, devices, owners and
  destinations), each once;
- ``kind``: ``n`` unsigned bytes;
- ``block``, ``size``, ``timestamp_ns``, ``old_size``, ``seq``: ``n`` little-endian int64;
- ``component``, ``device``, ``owner``, ``dst_device``: ``n`` little-endian int32 indexes
  into ``strings`` (``dst_device`` is ``-1`` for an event without a destination);
- ``tags``: ``[[event_index, [[key, value], ...]], ...]`` for the events that have tags,
  in ascending event order.

A large batch is checked with vectorised comparisons, a few numpy operations per field;
a batch of up to :data:`SMALL_BATCH` events (what reporters send) is checked with
:mod:`array` columns and builtin ``min``/``max``, as numpy's fixed cost per call would
outweigh its work there. Either way the first bad event is named with its index and
field, as a per-event decoder would: when a small batch fails a check, the vectorised
checks find which event and field. This module uses numpy, a core dependency.
"""

from __future__ import annotations

import array
import functools
import gc
import operator
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from ..events import MAX_BLOCK, MAX_SEQ, MAX_SIZE, EventKind, MemoryEvent, is_device
from ._codec import DEFAULT_LIMITS, CodecError, DecodeLimits, decode, encode

EVENTS_TYPE: Final = "events"

NO_DEVICE: Final = -1
"""The ``dst_device`` index of an event that has no destination."""

_INT64: Final = np.dtype("<i8")
_INDEX: Final = np.dtype("<i4")
_KIND: Final = np.dtype("u1")
_INT_FIELDS: Final = ("block", "size", "timestamp_ns", "old_size", "seq")
_STRING_FIELDS: Final = ("component", "device", "owner", "dst_device")
_COLUMNS: Final[dict[str, np.dtype[Any]]] = {
    "kind": _KIND,
    **dict.fromkeys(_INT_FIELDS, _INT64),
    **dict.fromkeys(_STRING_FIELDS, _INDEX),
}
# The event's fields in their order; the first bad field of an event is the one named.
_FIELD_ORDER: Final = {name: index for index, name in enumerate(MemoryEvent._fields)}
_KINDS: Final = tuple(EventKind)
_new_event: Final[Callable[[tuple[Any, ...]], MemoryEvent]] = functools.partial(
    tuple.__new__, MemoryEvent
)
_TAGS_ERROR: Final = "tags must be an array of [key, value] string pairs"
_RANGES: Final = (
    ("block", MAX_BLOCK),
    ("size", MAX_SIZE),
    ("old_size", MAX_SIZE),
    ("seq", MAX_SEQ),
)

SMALL_BATCH: Final = 8192
"""Batches of at most this many events are decoded without numpy."""

_SWAP: Final = sys.byteorder != "little"
# The small-batch path reads int32 and int64 columns with array codes "i" and "q".
_SMALL_OK: Final = array.array("i").itemsize == 4 and array.array("q").itemsize == 8
_GOOD_KINDS: Final = bytes(range(len(EventKind)))
_NON_NEGATIVE: Final = bytes(range(128))
"""The top bytes of a non-negative little-endian integer."""
# Per int64 column: byte offsets (within an 8-byte item) that must be zero, and the bytes
# allowed at offset 7 (the top one): MAX_SIZE is 2**48 - 1, the others 2**63 - 1.
_BYTE_RANGES: Final = (
    ("size", (6,), b"\x00"),
    ("old_size", (6,), b"\x00"),
    ("block", (), _NON_NEGATIVE),
    ("seq", (), _NON_NEGATIVE),
)


def encode_events(events: Iterable[Sequence[Any]]) -> bytes:
    """Pack a batch of eleven-field events (:class:`MemoryEvent` or plain tuples) as columns.

    Raises :class:`ValueError` when an event has not eleven fields, an int field is not an
    integer that fits its column, or a string field is not a string (``dst_device`` may be
    ``None``). Ranges (a negative size, an unknown kind) are the decoder's to refuse.
    """
    rows = events if isinstance(events, list | tuple) else list(events)
    count = len(rows)
    try:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if count else [()] * 11
    except ValueError:
        columns = []
    if len(columns) != 11:
        raise ValueError("events must have 11 fields each")
    kind, component, block, size, device, owner, ts, old_size, dst, tags, seq = columns
    strings: dict[str, int] = {}
    body: dict[str, Any] = {"count": count, "kind": _int_column(kind, _KIND)}
    for name, values in zip(_INT_FIELDS, (block, size, ts, old_size, seq), strict=True):
        body[name] = _int_column(values, _INT64)
    for name, values in zip(_STRING_FIELDS, (component, device, owner, dst), strict=True):
        body[name] = _index_column(name, values, strings)
    body["strings"] = list(strings)
    body["tags"] = [
        [index, [[key, value] for key, value in pairs]] for index, pairs in enumerate(tags) if pairs
    ]
    return encode(EVENTS_TYPE, body)


def _int_column(values: Sequence[Any], dtype: np.dtype[Any]) -> bytes:
    """*values* as a column of *dtype*; floats, strings, None and overflows are refused."""
    array = np.array(values) if len(values) else np.zeros(0, dtype=np.int64)
    info = np.iinfo(dtype)
    if (
        array.dtype.kind != "i"
        or array.ndim != 1
        or (len(array) and (array.min() < info.min or array.max() > info.max))
    ):
        raise ValueError(
            "event fields kind, block, size, timestamp_ns, old_size and seq must be "
            "integers that fit their columns"
        )
    return array.astype(dtype).tobytes()


def _index_column(name: str, values: Sequence[Any], strings: dict[str, int]) -> bytes:
    """The indexes of *values* in *strings*, adding the strings not there yet."""
    for value in dict.fromkeys(values):
        if value is None and name == "dst_device":
            continue
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        strings.setdefault(value, len(strings))
    lookup: dict[str | None, int] = {None: NO_DEVICE}
    lookup.update(strings)
    return np.fromiter(map(lookup.__getitem__, values), dtype=_INDEX, count=len(values)).tobytes()


def decode_events(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> list[MemoryEvent]:
    """Unpack a batch packed by :func:`encode_events`, checking every field of every event.

    Returns :class:`MemoryEvent` values whose fields are checked one by one (as the
    codec's per-field checks go: kind, ranges, device names, tag pairs), not for
    consistency between fields, which is the ledger's business. Raises
    :class:`CodecError` for a payload that :func:`decode` refuses, for more than
    ``limits.max_items`` events, for a column of the wrong length or a string index
    outside the strings table, and naming the first bad event and field
    (``"event 2: size must be ..."``) otherwise.
    """
    body = decode(data, EVENTS_TYPE, limits=limits)
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CodecError("expected an event 'count' in the events payload")
    if count > limits.max_items:
        raise CodecError(f"{count} events in one batch is over the limit of {limits.max_items}")
    strings = body.get("strings")
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise CodecError("expected a 'strings' array of strings in the events payload")
    raws = {name: _column_bytes(body, name, dtype, count) for name, dtype in _COLUMNS.items()}
    tags = _tags(body.get("tags"), count)
    if count <= SMALL_BATCH:
        events = _small_batch(raws, strings, tags, count)
        if events is not None:
            return events
    columns = {name: np.frombuffer(raws[name], dtype=dtype) for name, dtype in _COLUMNS.items()}
    first = _first_bad(columns, strings, tags)
    if first is not None:
        raise CodecError(f"event {first[0]}: {first[1]}")
    return _build(columns, strings, tags, count)


def _column_bytes(body: dict[str, Any], name: str, dtype: np.dtype[Any], count: int) -> bytes:
    raw = body.get(name)
    expected = count * dtype.itemsize
    if not isinstance(raw, bytes) or len(raw) != expected:
        found = f"{len(raw)} bytes" if isinstance(raw, bytes) else type(raw).__name__
        raise CodecError(
            f"events payload: column {name!r} must be {expected} bytes for {count} events, "
            f"found {found}"
        )
    return raw


def _small_batch(
    raws: dict[str, bytes], strings: list[str], tags: dict[int, object], count: int
) -> list[MemoryEvent] | None:
    """A small batch's events, or ``None`` when any check fails (the vectorised checks
    then name the first bad event and field).

    Ranges are checked on the little-endian bytes: every upper bound is ``2**k - 1``, so
    a value is in range when the bytes above bit ``k`` of its item are zero.
    """
    if not _SMALL_OK or raws["kind"].translate(None, _GOOD_KINDS):
        return None
    for name, high_bytes, top_byte_ok in _BYTE_RANGES:
        raw = raws[name]
        for offset in high_bytes:
            if raw[offset::8].count(0) != count:
                return None
        if raw[7::8].translate(None, top_byte_ok):
            return None
    for name in ("component", "device", "owner"):
        if raws[name][3::4].translate(None, _NON_NEGATIVE):  # a negative index
            return None
    table = tuple(strings)
    try:
        text = {
            name: _strings_of(_ints(raws[name], "i"), table)
            for name in ("component", "device", "owner")
        }
        dst = _ints(raws["dst_device"], "i")
        # Not through the table below: its extra last entry stands for index -1 only.
        if dst and (min(dst) < NO_DEVICE or max(dst) >= len(table)):
            return None
        text["dst_device"] = _strings_of(dst, (*table, None))
    except IndexError:  # an index past the strings table
        return None
    if not all(map(is_device, {*text["device"], *text["dst_device"]} - {None})):
        return None
    if "" in table and "" in text["component"]:
        return None
    if not _tags_good(tags):
        return None
    ints = {name: _ints(raws[name], "q") for name in _INT_FIELDS}
    kinds = _strings_of(list(raws["kind"]), _KINDS)
    return _events(kinds, text, ints, _tag_column(tags, count))


def _ints(raw: bytes, code: str) -> list[int]:
    column = array.array(code)
    column.frombytes(raw)
    if _SWAP:
        column.byteswap()
    return column.tolist()


def _tags_good(tags: dict[int, object]) -> bool:
    return all(map(_is_pairs, tags.values()))


def _tags(raw: object, count: int) -> dict[int, object]:
    """The sparse tags column as ``{event_index: pairs}``; the pairs are checked later."""
    if not isinstance(raw, list):
        raise CodecError("expected a 'tags' array in the events payload")
    tags: dict[int, object] = {}
    previous = -1
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise CodecError("events payload: each tags entry must be [event_index, pairs]")
        index = entry[0]
        if isinstance(index, bool) or not isinstance(index, int) or not previous < index < count:
            raise CodecError(
                f"events payload: tags entry for event {index!r} is out of order or range"
            )
        tags[index] = entry[1]
        previous = index
    return tags


def _first_bad(
    columns: dict[str, npt.NDArray[Any]], strings: list[str], tags: dict[int, object]
) -> tuple[int, str] | None:
    """The first bad event and what is wrong with it, or ``None`` when all are good."""
    table_size = len(strings)
    empty = np.array([s == "" for s in strings] + [False], dtype=bool)
    not_device = np.array([not is_device(s) for s in strings] + [False], dtype=bool)
    found: list[tuple[int, int, str]] = []

    def check(name: str, bad: npt.NDArray[np.bool_], message: Callable[[Any], str]) -> None:
        if bad.any():
            index = int(np.argmax(bad))
            found.append((index, _FIELD_ORDER[name], message(columns[name][index].item())))

    def in_table(name: str, *, allow_none: bool = False) -> npt.NDArray[np.bool_]:
        index = columns[name]
        bad: npt.NDArray[np.bool_] = (index >= table_size) | (index < (-1 if allow_none else 0))
        check(name, bad, lambda v: f"{name} must index the strings table, got {v}")
        return np.where(bad | (index < 0), table_size, index)

    check(
        "kind",
        columns["kind"] >= len(_KINDS),
        lambda v: f"kind must be one of {[k.name for k in _KINDS]}, got {v}",
    )
    check(
        "component", empty[in_table("component")], lambda _: "component must be a non-empty string"
    )
    in_table("owner")  # any string is an owner; only the index range matters
    device = in_table("device")
    check(
        "device",
        not_device[device],
        lambda v: f"device must be 'cpu' or 'cuda:N', got {strings[v]!r}",
    )
    dst = columns["dst_device"]
    dst_index = in_table("dst_device", allow_none=True)
    check(
        "dst_device",
        (dst >= 0) & not_device[dst_index],
        lambda v: f"dst_device must be 'cpu' or 'cuda:N', got {strings[v]!r}",
    )
    for name, top in _RANGES:
        values = columns[name]
        check(name, (values < 0) | (values > top), _out_of_range(name, top))
    for index, pairs in tags.items():
        if not _is_pairs(pairs):
            found.append((index, _FIELD_ORDER["tags"], _TAGS_ERROR))
            break
    return min(found)[::2] if found else None


def _out_of_range(name: str, top: int) -> Callable[[Any], str]:
    return lambda value: f"{name} must be an int from 0 to {top}, got {value}"


def _is_pairs(pairs: object) -> bool:
    return isinstance(pairs, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)
        for p in pairs
    )


def _build(
    columns: dict[str, npt.NDArray[Any]], strings: list[str], tags: dict[int, object], count: int
) -> list[MemoryEvent]:
    table: tuple[str | None, ...] = (*strings, None)  # index -1: no destination
    text = {name: _strings_of(columns[name].tolist(), table) for name in _STRING_FIELDS}
    kinds = _strings_of(columns["kind"].tolist(), _KINDS)
    ints = {name: columns[name].tolist() for name in _INT_FIELDS}
    return _events(kinds, text, ints, _tag_column(tags, count))


def _tag_column(tags: dict[int, object], count: int) -> list[tuple[tuple[str, str], ...]]:
    column: list[tuple[tuple[str, str], ...]] = [()] * count
    for index, pairs in tags.items():
        column[index] = tuple((key, value) for key, value in cast(list[list[str]], pairs))
    return column


def _events(
    kinds: Sequence[EventKind],
    text: dict[str, Sequence[Any]],
    ints: dict[str, list[int]],
    tag_column: list[tuple[tuple[str, str], ...]],
) -> list[MemoryEvent]:
    # Building a million tuples would set off the cyclic collector over and over, each
    # time walking the whole heap; none of them can be part of a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return list(
            map(
                _new_event,
                zip(
                    kinds,
                    text["component"],
                    ints["block"],
                    ints["size"],
                    text["device"],
                    text["owner"],
                    ints["timestamp_ns"],
                    ints["old_size"],
                    text["dst_device"],
                    tag_column,
                    ints["seq"],
                    strict=True,
                ),
            )
        )
    finally:
        if collecting:
            gc.enable()


def _strings_of(index: list[int], table: tuple[Any, ...]) -> Sequence[Any]:
    """The strings *index* points at; :class:`IndexError` past the end of *table*."""
    if len(index) < 2 or index.count(index[0]) == len(index):
        return [table[index[0]]] * len(index) if index else []
    # One C call for the whole column (itemgetter of two or more items gives a tuple).
    strings: tuple[Any, ...] = operator.itemgetter(*index)(table)
    return strings
