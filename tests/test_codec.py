"""The codec: versioned msgpack payloads, event batches, and every way decoding can fail."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memactor import MemactorError
from memactor.codec import (
    SCHEMA_VERSION,
    CodecError,
    DecodeLimits,
    decode,
    decode_events,
    decode_json,
    encode,
    encode_events,
    frame,
    unframe,
)
from memactor.codec import _events as codec_events
from memactor.events import (
    MAX_BLOCK,
    MAX_SIZE,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    EventKind,
    MemoryEvent,
)

devices = st.sampled_from(["cpu", "cuda:0", "cuda:1", "cuda:9999"])
names = st.text(min_size=1, max_size=12)


@st.composite
def memory_events(draw: st.DrawFn) -> MemoryEvent:
    """Any event that :class:`MemoryEvent` accepts."""
    kind = draw(st.sampled_from(EventKind))
    return MemoryEvent(
        kind,
        draw(names),
        block=draw(st.integers(0, MAX_BLOCK)),
        size=draw(st.integers(0, MAX_SIZE)),
        device=draw(devices),
        owner=draw(st.text(max_size=8)),
        timestamp_ns=draw(st.integers(MIN_TIMESTAMP, MAX_TIMESTAMP)),
        old_size=draw(st.integers(0, MAX_SIZE)) if kind is EventKind.RESIZE else None,
        dst_device=draw(devices) if kind is EventKind.TRANSFER else None,
        tags=draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
    )


ALLOC = MemoryEvent(EventKind.ALLOC, "pool", block=1, size=4096, owner="decode", timestamp_ns=10)
RESIZE = MemoryEvent(EventKind.RESIZE, "pool", block=1, size=8192, old_size=4096, timestamp_ns=20)
TRANSFER = MemoryEvent(
    EventKind.TRANSFER,
    "gpu",
    block=2,
    size=64,
    dst_device="cuda:0",
    timestamp_ns=30,
    tags={"stage": "upload"},
)
GOOD_ROW: list[Any] = [0, "pool", 1, 4096, "cpu", "decode", 10, 0, None, [], 0]
FIELDS = MemoryEvent._fields
STRING_FIELDS = ("component", "device", "owner", "dst_device")


def events_payload(rows: list[list[Any]], **replace: Any) -> bytes:
    """An events payload in columns built from *rows* without any checks, so that tests
    can write bad events. An int in a string field is taken as a raw index into the
    strings table (``None`` is index -1); *replace* overrides whole body entries."""
    strings: dict[str, int] = {}

    def index(value: Any) -> int:
        if value is None:
            return -1
        if isinstance(value, int):
            return value
        return strings.setdefault(value, len(strings))

    columns = dict(zip(FIELDS, zip(*rows, strict=True), strict=True)) if rows else {}
    body: dict[str, Any] = {"count": len(rows)}
    for name in FIELDS:
        values = columns.get(name, ())
        if name == "kind":
            body[name] = np.array(values, dtype="u1").tobytes()
        elif name in STRING_FIELDS:
            body[name] = np.array([index(v) for v in values], dtype="<i4").tobytes()
        elif name == "tags":
            body[name] = [[i, pairs] for i, pairs in enumerate(values) if pairs]
        else:
            body[name] = np.array(values, dtype="<i8").tobytes()
    body["strings"] = list(strings)
    body.update(replace)
    return encode("events", body)


# -- framing -----------------------------------------------------------------------------


def test_codec_error_is_a_memactor_error() -> None:
    assert issubclass(CodecError, MemactorError)


def test_a_payload_carries_marker_version_and_type() -> None:
    data = encode("thing", {"answer": 42, "names": ["a", "b"], "raw": b"\x00\x01"})
    assert msgpack.unpackb(data) == {
        "memactor": SCHEMA_VERSION,
        "type": "thing",
        "answer": 42,
        "names": ["a", "b"],
        "raw": b"\x00\x01",
    }
    assert decode(data, "thing") == {
        "memactor": SCHEMA_VERSION,
        "type": "thing",
        "answer": 42,
        "names": ["a", "b"],
        "raw": b"\x00\x01",
    }


def test_frame_and_unframe_are_inverse() -> None:
    framed = frame("thing", {"x": 1})
    assert framed == {"memactor": SCHEMA_VERSION, "type": "thing", "x": 1}
    assert unframe(framed, "thing") is framed


def test_decode_json_reads_text_and_bytes() -> None:
    text = json.dumps(frame("thing", {"x": [1, 2]}))
    assert decode_json(text, "thing")["x"] == [1, 2]
    assert decode_json(text.encode(), "thing")["x"] == [1, 2]


def test_another_schema_version_is_refused() -> None:
    data = msgpack.packb({"memactor": SCHEMA_VERSION + 1, "type": "events", "events": []})
    with pytest.raises(
        CodecError,
        match=rf"^expected schema version {SCHEMA_VERSION}, found {SCHEMA_VERSION + 1}; "
        r"this payload was written by another memactor version$",
    ):
        decode(data, "events")


def test_another_payload_type_is_refused() -> None:
    with pytest.raises(
        CodecError, match=r"^expected a memactor events payload, found a 'snapshot' payload$"
    ):
        decode(encode("snapshot", {}), "events")
    untyped = msgpack.packb({"memactor": SCHEMA_VERSION})
    with pytest.raises(
        CodecError, match=r"^expected a memactor events payload, found a None payload$"
    ):
        decode(untyped, "events")


@pytest.mark.parametrize(
    "foreign", [[1, 2, 3], {"foo": 1}, "memactor", 1, None, {"type": "events"}]
)
def test_foreign_msgpack_is_refused(foreign: object) -> None:
    with pytest.raises(
        CodecError, match=r"^expected a memactor events payload, found something else$"
    ):
        decode(msgpack.packb(foreign), "events")


def test_foreign_json_is_refused() -> None:
    with pytest.raises(
        CodecError, match=r"^expected a memactor snapshot payload, found something else$"
    ):
        decode_json("[1, 2]", "snapshot")
    with pytest.raises(
        CodecError, match=r"^expected a memactor snapshot payload: not valid JSON \(.*\)$"
    ):
        decode_json("{not json", "snapshot")
    with pytest.raises(
        CodecError, match=r"^expected a memactor snapshot payload: not valid JSON \(.*\)$"
    ):
        decode_json(b"\xff\xfe{", "snapshot")


def test_every_truncation_of_a_payload_is_called_truncated() -> None:
    data = encode_events([ALLOC, RESIZE, TRANSFER])
    for cut in range(len(data)):
        with pytest.raises(CodecError, match=r"^expected a memactor events payload: truncated$"):
            decode(data[:cut], "events")


def test_trailing_bytes_are_refused() -> None:
    data = encode_events([ALLOC])
    with pytest.raises(
        CodecError, match=r"^expected one memactor events payload, found trailing bytes after it$"
    ):
        decode(data + b"\x00", "events")
    with pytest.raises(CodecError, match=r"^expected one memactor events payload, found trailing"):
        decode(data + data, "events")


@pytest.mark.parametrize("garbage", [b"\xc1", b"\xc1\xc1\xc1\xc1", b"\x91\xc1", b"\xd4\x00\x00"])
def test_garbage_is_not_valid_msgpack(garbage: bytes) -> None:
    with pytest.raises(
        CodecError, match=r"^expected a memactor events payload: not valid msgpack \(.*\)$"
    ):
        decode(garbage, "events")


def test_invalid_utf8_in_a_string_is_not_valid_msgpack() -> None:
    with pytest.raises(CodecError, match=r"^expected a memactor events payload: not valid msgpack"):
        decode(b"\xa2\xff\xfe", "events")


def test_extension_types_are_refused() -> None:
    data = msgpack.packb({"memactor": 1, "type": "events", "x": msgpack.ExtType(5, b"abc")})
    with pytest.raises(CodecError, match=r"^expected a memactor events payload: not valid msgpack"):
        decode(data, "events")


@given(st.binary(max_size=64))
def test_any_bytes_either_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        body = decode(data, "events")
    except CodecError:
        return
    assert body["memactor"] == SCHEMA_VERSION


# -- limits ------------------------------------------------------------------------------


def test_a_payload_over_the_byte_limit_is_refused_before_unpacking() -> None:
    data = encode_events([ALLOC] * 10)
    with pytest.raises(
        CodecError, match=rf"^payload of {len(data)} bytes is over the limit of 100$"
    ):
        decode_events(data, limits=DecodeLimits(max_bytes=100))
    assert len(decode_events(data, limits=DecodeLimits(max_bytes=len(data)))) == 10


def test_too_many_items_are_refused() -> None:
    # The payload is a map of 15 entries, so the limit must allow those.
    data = encode_events([ALLOC] * 21)
    with pytest.raises(CodecError, match=r"^21 events in one batch is over the limit of 20$"):
        decode_events(data, limits=DecodeLimits(max_items=20))
    assert len(decode_events(data, limits=DecodeLimits(max_items=21))) == 21
    many_strings = encode("events", {"strings": ["x"] * 11})
    with pytest.raises(
        CodecError,
        match=r"^expected a memactor events payload: not valid msgpack \(.*max_array_len.*\)$",
    ):
        decode_events(many_strings, limits=DecodeLimits(max_items=10))


def test_too_long_a_string_is_refused() -> None:
    data = encode_events([ALLOC._replace(component="x" * 100)])
    with pytest.raises(
        CodecError,
        match=r"^expected a memactor events payload: not valid msgpack \(.*max_str_len.*\)$",
    ):
        decode_events(data, limits=DecodeLimits(max_string_bytes=99))
    assert decode_events(data, limits=DecodeLimits(max_string_bytes=100))[0].component == "x" * 100


def test_a_huge_declared_length_is_refused_without_allocating() -> None:
    # An array header that claims 2**32-1 items, followed by nothing.
    with pytest.raises(CodecError, match=r"^expected a memactor events payload: "):
        decode(b"\xdd\xff\xff\xff\xff", "events", limits=DecodeLimits(max_items=1000))


# -- event batches -----------------------------------------------------------------------


def test_a_batch_round_trips() -> None:
    batch = [ALLOC, RESIZE, TRANSFER]
    decoded = decode_events(encode_events(batch))
    assert decoded == batch
    assert all(isinstance(event, MemoryEvent) for event in decoded)
    assert [event.kind for event in decoded] == [
        EventKind.ALLOC,
        EventKind.RESIZE,
        EventKind.TRANSFER,
    ]
    assert decoded[2].tags == (("stage", "upload"),)


def test_an_empty_batch_round_trips() -> None:
    assert decode_events(encode_events([])) == []


def test_plain_tuples_encode_like_events() -> None:
    assert encode_events([tuple(ALLOC)]) == encode_events([ALLOC])


@given(st.lists(memory_events(), max_size=8))
def test_any_batch_of_valid_events_round_trips(batch: list[MemoryEvent]) -> None:
    decoded = decode_events(encode_events(batch))
    assert decoded == batch
    assert all(type(event.kind) is EventKind for event in decoded)
    assert all(type(event.tags) is tuple for event in decoded)


def test_a_batch_is_columns_with_a_table_of_strings() -> None:
    body = decode(encode_events([ALLOC, RESIZE, TRANSFER]), "events")
    assert body["count"] == 3
    assert body["strings"] == ["pool", "gpu", "cpu", "decode", "", "cuda:0"]
    assert np.frombuffer(body["kind"], dtype="u1").tolist() == [0, 2, 5]
    assert np.frombuffer(body["size"], dtype="<i8").tolist() == [4096, 8192, 64]
    assert np.frombuffer(body["component"], dtype="<i4").tolist() == [0, 0, 1]
    assert np.frombuffer(body["dst_device"], dtype="<i4").tolist() == [-1, -1, 5]
    assert body["tags"] == [[2, [["stage", "upload"]]]]


def test_sequence_numbers_round_trip() -> None:
    batch = [ALLOC._replace(seq=7), RESIZE._replace(seq=2**63 - 1)]
    assert [event.seq for event in decode_events(encode_events(batch))] == [7, 2**63 - 1]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ((*GOOD_ROW[:2], 2**63, *GOOD_ROW[3:]), "must be integers that fit their columns"),
        ((*GOOD_ROW[:6], 1.5, *GOOD_ROW[7:]), "must be integers that fit their columns"),
        ((*GOOD_ROW[:6], None, *GOOD_ROW[7:]), "must be integers that fit their columns"),
        ((0, 7, *GOOD_ROW[2:]), r"component must be a string, got 7"),
        ((*GOOD_ROW[:4], None, *GOOD_ROW[5:]), r"device must be a string, got None"),
        (GOOD_ROW[:10], r"^events must have 11 fields each$"),
    ],
)
def test_what_cannot_be_a_column_is_refused_when_encoding(event: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_events([tuple(GOOD_ROW), event])


def test_a_batch_without_events_is_refused() -> None:
    with pytest.raises(CodecError, match=r"^expected an event 'count' in the events payload$"):
        decode_events(encode("events", {}))
    with pytest.raises(CodecError, match=r"^expected an event 'count' in the events payload$"):
        decode_events(encode("events", {"events": {"0": GOOD_ROW}}))
    with pytest.raises(CodecError, match=r"^expected an event 'count' in the events payload$"):
        decode_events(events_payload([GOOD_ROW], count=-1))


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"count": 2}, r"events payload: column 'kind' must be 2 bytes for 2 events, found 1 "),
        ({"size": b"\x00" * 7}, r"events payload: column 'size' must be 8 bytes for 1 events, "),
        (
            {"owner": [0]},
            r"events payload: column 'owner' must be 4 bytes for 1 events, found list",
        ),
        (
            {"seq": None},
            r"events payload: column 'seq' must be 8 bytes for 1 events, found NoneType",
        ),
        ({"strings": ["pool", 1]}, r"expected a 'strings' array of strings in the events payload"),
        ({"strings": "pool"}, r"expected a 'strings' array of strings in the events payload"),
        ({"tags": None}, r"expected a 'tags' array in the events payload"),
        ({"tags": [[0]]}, r"events payload: each tags entry must be \[event_index, pairs\]"),
        ({"tags": [[1, []]]}, r"events payload: tags entry for event 1 is out of order or range"),
        ({"tags": [[0, []], [0, []]]}, r"events payload: tags entry for event 0 is out of order"),
    ],
)
def test_columns_that_disagree_are_refused(replace: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError, match=rf"^{message}"):
        decode_events(events_payload([GOOD_ROW], **replace))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([9, *GOOD_ROW[1:]], r"kind must be one of \['ALLOC', .*\], got 9"),
        ([0, "", *GOOD_ROW[2:]], r"component must be a non-empty string"),
        ([0, 7, *GOOD_ROW[2:]], r"component must index the strings table, got 7"),
        ([0, None, *GOOD_ROW[2:]], r"component must index the strings table, got -1"),
        ([*GOOD_ROW[:2], -1, *GOOD_ROW[3:]], r"block must be an int from 0 to \d+, got -1"),
        ([*GOOD_ROW[:2], -(2**63), *GOOD_ROW[3:]], r"block must be an int from 0 to \d+, got -\d+"),
        ([*GOOD_ROW[:3], -5, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got -5"),
        ([*GOOD_ROW[:3], 2**48, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got \d+"),
        ([*GOOD_ROW[:4], "gpu", *GOOD_ROW[5:]], r"device must be 'cpu' or 'cuda:N', got 'gpu'"),
        ([*GOOD_ROW[:4], "pool", *GOOD_ROW[5:]], r"device must be 'cpu' or 'cuda:N', got 'pool'"),
        ([*GOOD_ROW[:4], None, *GOOD_ROW[5:]], r"device must index the strings table, got -1"),
        ([*GOOD_ROW[:5], None, *GOOD_ROW[6:]], r"owner must index the strings table, got -1"),
        ([*GOOD_ROW[:5], 99, *GOOD_ROW[6:]], r"owner must index the strings table, got 99"),
        ([*GOOD_ROW[:7], -1, *GOOD_ROW[8:]], r"old_size must be an int from 0 to \d+, got -1"),
        ([*GOOD_ROW[:8], "tpu", *GOOD_ROW[9:]], r"dst_device must be 'cpu' or 'cuda:N', got 'tpu'"),
        ([*GOOD_ROW[:8], -2, *GOOD_ROW[9:]], r"dst_device must index the strings table, got -2"),
        # One past the table: the small-batch path once read it as "no destination".
        ([*GOOD_ROW[:8], 3, *GOOD_ROW[9:]], r"dst_device must index the strings table, got 3"),
        ([*GOOD_ROW[:9], [["a"]], 0], r"tags must be an array of \[key, value\] string pairs"),
        ([*GOOD_ROW[:9], [["a", 1]], 0], r"tags must be an array of \[key, value\] string pairs"),
        ([*GOOD_ROW[:9], {"a": "b"}, 0], r"tags must be an array of \[key, value\] string pairs"),
        ([*GOOD_ROW[:10], -1], r"seq must be an int from 0 to \d+, got -1"),
    ],
)
def test_a_bad_event_is_named_by_index_and_field(row: list[Any], message: str) -> None:
    data = events_payload([GOOD_ROW, GOOD_ROW, row, GOOD_ROW])
    with pytest.raises(CodecError, match=rf"^event 2: {message}$"):
        decode_events(data)


def test_the_first_bad_event_is_the_one_named() -> None:
    bad = [*GOOD_ROW[:3], -5, *GOOD_ROW[4:]]
    worse = [9, "", -1, -1, "gpu", None, 0, -1, "tpu", [["a"]], -1]
    with pytest.raises(CodecError, match=r"^event 1: size "):
        decode_events(events_payload([GOOD_ROW, bad, worse]))
    # Within one event, the first bad field in the event's order is the one named.
    with pytest.raises(CodecError, match=r"^event 0: kind must be one of "):
        decode_events(events_payload([worse, bad]))
    tagged = [*GOOD_ROW[:9], [["a"]], 0]
    with pytest.raises(CodecError, match=r"^event 0: tags must be "):
        decode_events(events_payload([tagged, bad]))


def test_decoded_events_skip_kind_consistency_checks() -> None:
    # The codec checks each field's type and range; whether a TRANSFER has a destination
    # is the ledger's business (it counts a bad_device anomaly), not a decoding error.
    row = [5, "gpu", 1, 64, "cuda:0", "", 0, 0, None, [], 0]
    (event,) = decode_events(events_payload([row]))
    assert event.kind is EventKind.TRANSFER
    assert event.dst_device is None


_COLUMN_NAMES = (
    "kind",
    "block",
    "size",
    "timestamp_ns",
    "old_size",
    "seq",
    "component",
    "device",
    "owner",
    "dst_device",
)


@given(
    st.lists(memory_events(), min_size=1, max_size=6),
    st.sampled_from(_COLUMN_NAMES),
    st.integers(0, 10**6),
    st.integers(0, 255),
)
def test_small_batches_decode_as_large_ones_do(
    batch: list[MemoryEvent], column: str, position: int, byte: int
) -> None:
    # Small batches are checked without numpy; a damaged byte anywhere must give the
    # same events or the same error, naming the same event and field, as the
    # vectorised checks of a large batch.
    body = decode(encode_events(batch), "events")
    raw = bytearray(body[column])
    raw[position % len(raw)] = byte
    body[column] = bytes(raw)
    payload = msgpack.packb(body, use_bin_type=True)

    def outcome() -> object:
        try:
            return decode_events(payload)
        except CodecError as error:
            return str(error)

    small = outcome()
    with mock.patch.object(codec_events, "SMALL_BATCH", -1):
        assert outcome() == small


@pytest.mark.parametrize(
    ("field", "top"),
    [("block", MAX_BLOCK), ("size", MAX_SIZE), ("old_size", MAX_SIZE), ("seq", 2**63 - 1)],
)
def test_a_small_batch_takes_each_upper_bound_and_refuses_one_past_it(field: str, top: int) -> None:
    body = decode(encode_events([ALLOC, ALLOC]), "events")
    for value, good in ((top, True), (top + 1, False), (-1, False)):
        column = np.frombuffer(body[field], dtype="<i8").copy()
        column[1] = value if value < 2**63 else -(2**63)
        payload = msgpack.packb(body | {field: column.tobytes()}, use_bin_type=True)
        if good:
            assert getattr(decode_events(payload)[1], field) == value
        else:
            with pytest.raises(CodecError, match=rf"^event 1: {field} must be an int from 0 to "):
                decode_events(payload)
