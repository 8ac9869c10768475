"""The codec: versioned msgpack payloads, event batches, and every way decoding can fail."""

from __future__ import annotations

import json
from typing import Any

import msgpack
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
GOOD_ROW: list[Any] = [0, "pool", 1, 4096, "cpu", "decode", 10, 0, None, []]


def events_payload(rows: list[Any]) -> bytes:
    return encode("events", {"events": rows})


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
    data = encode_events([ALLOC] * 11)
    with pytest.raises(
        CodecError,
        match=r"^expected a memactor events payload: not valid msgpack \(.*max_array_len.*\)$",
    ):
        decode_events(data, limits=DecodeLimits(max_items=10))
    assert len(decode_events(data, limits=DecodeLimits(max_items=11))) == 11


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


def test_a_batch_without_events_is_refused() -> None:
    with pytest.raises(CodecError, match=r"^expected an 'events' array in the events payload$"):
        decode_events(encode("events", {}))
    with pytest.raises(CodecError, match=r"^expected an 'events' array in the events payload$"):
        decode_events(encode("events", {"events": {"0": GOOD_ROW}}))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("not a row", r"expected an array of 10 fields"),
        (GOOD_ROW[:9], r"expected an array of 10 fields"),
        ([*GOOD_ROW, None], r"expected an array of 10 fields"),
        ([9, *GOOD_ROW[1:]], r"kind must be one of \['ALLOC', .*\], got 9"),
        (["ALLOC", *GOOD_ROW[1:]], r"kind must be one of .*, got 'ALLOC'"),
        ([0, "", *GOOD_ROW[2:]], r"component must be a non-empty string"),
        ([0, 7, *GOOD_ROW[2:]], r"component must be a non-empty string"),
        ([*GOOD_ROW[:2], -1, *GOOD_ROW[3:]], r"block must be an int from 0 to \d+, got -1"),
        ([*GOOD_ROW[:2], "1", *GOOD_ROW[3:]], r"block must be an int from 0 to \d+, got '1'"),
        ([*GOOD_ROW[:2], 2**63, *GOOD_ROW[3:]], r"block must be an int from 0 to \d+, got \d+"),
        ([*GOOD_ROW[:3], -5, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got -5"),
        ([*GOOD_ROW[:3], 2**48, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got \d+"),
        ([*GOOD_ROW[:3], 1.5, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got 1\.5"),
        ([*GOOD_ROW[:3], True, *GOOD_ROW[4:]], r"size must be an int from 0 to \d+, got True"),
        ([*GOOD_ROW[:4], "gpu", *GOOD_ROW[5:]], r"device must be 'cpu' or 'cuda:N', got 'gpu'"),
        ([*GOOD_ROW[:4], None, *GOOD_ROW[5:]], r"device must be 'cpu' or 'cuda:N', got None"),
        ([*GOOD_ROW[:5], None, *GOOD_ROW[6:]], r"owner must be a string"),
        ([*GOOD_ROW[:6], 1.5, *GOOD_ROW[7:]], r"timestamp_ns must be an int, got 1\.5"),
        ([*GOOD_ROW[:6], None, *GOOD_ROW[7:]], r"timestamp_ns must be an int, got None"),
        (
            [*GOOD_ROW[:6], 2**63, *GOOD_ROW[7:]],
            r"timestamp_ns must fit in a signed 64-bit int, got \d+",
        ),
        ([*GOOD_ROW[:7], -1, *GOOD_ROW[8:]], r"old_size must be an int from 0 to \d+, got -1"),
        ([*GOOD_ROW[:8], "tpu", GOOD_ROW[9]], r"dst_device must be 'cpu' or 'cuda:N', got 'tpu'"),
        ([*GOOD_ROW[:9], [["a"]]], r"tags must be an array of \[key, value\] string pairs"),
        ([*GOOD_ROW[:9], [["a", 1]]], r"tags must be an array of \[key, value\] string pairs"),
        ([*GOOD_ROW[:9], {"a": "b"}], r"tags must be an array of \[key, value\] string pairs"),
    ],
)
def test_a_bad_event_is_named_by_index_and_field(row: object, message: str) -> None:
    data = events_payload([GOOD_ROW, GOOD_ROW, row, GOOD_ROW])
    with pytest.raises(CodecError, match=rf"^event 2: {message}$"):
        decode_events(data)


def test_the_first_bad_event_is_the_one_named() -> None:
    bad = [*GOOD_ROW[:3], -5, *GOOD_ROW[4:]]
    with pytest.raises(CodecError, match=r"^event 1: size "):
        decode_events(events_payload([GOOD_ROW, bad, "junk"]))


def test_decoded_events_skip_kind_consistency_checks() -> None:
    # The codec checks each field's type and range; whether a TRANSFER has a destination
    # is the ledger's business (it counts a bad_device anomaly), not a decoding error.
    row = [5, "gpu", 1, 64, "cuda:0", "", 0, 0, None, []]
    (event,) = decode_events(events_payload([row]))
    assert event.kind is EventKind.TRANSFER
    assert event.dst_device is None
