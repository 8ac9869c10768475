"""Frames: a length, then one memactor payload; sizes are checked before bodies are read."""

from __future__ import annotations

import msgpack
import pytest
import trio
import trio.testing

from memactor.codec import encode
from memactor.remote import ProtocolError
from memactor.remote._wire import REQUEST_LIMITS, FrameReader, pack, unpack, with_header


async def frames_of(data: bytes, max_frame_bytes: int = 1024) -> list[bytes]:
    send, receive = trio.testing.memory_stream_pair()
    reader = FrameReader(receive, max_frame_bytes)
    await send.send_all(data)
    await send.aclose()
    found = []
    while (payload := await reader.receive()) is not None:
        found.append(payload)
    return found


async def test_frames_split_anywhere_come_back_whole() -> None:
    data = pack("ping", {"id": 1}) + pack("ping", {"id": 2}) + with_header(b"")
    assert [
        unpack(p, limits=REQUEST_LIMITS).body.get("id") for p in (await frames_of(data))[:2]
    ] == [
        1,
        2,
    ]
    assert (await frames_of(data))[2] == b""


async def test_an_oversized_frame_is_refused_before_its_body_arrives() -> None:
    with pytest.raises(ProtocolError, match=r"^a frame of 1025 bytes is over the limit of 1024$"):
        await frames_of((1025).to_bytes(4, "big"))


async def test_a_stream_that_ends_inside_a_frame_is_an_error() -> None:
    with pytest.raises(ProtocolError, match=r"^the stream ended inside a frame$"):
        await frames_of(pack("ping", {"id": 1})[:-1])


@pytest.mark.parametrize(
    ("payload", "message", "code"),
    [
        (b"\xc1", r"^a frame that is not msgpack", "protocol"),
        (b"hello", r"^a frame that is not msgpack", "protocol"),
        (msgpack.packb([1, 2]), r"^a frame that is not a memactor payload$", "protocol"),
        (msgpack.packb({"type": "ping"}), r"^expected a memactor ping payload", "protocol"),
        (
            msgpack.packb({"memactor": 99, "type": "hello"}),
            r"^a payload of schema version 99, this side speaks 1$",
            "version",
        ),
        (encode("ping", {"id": "x" * 5000}), r"^a frame that is not msgpack", "protocol"),
    ],
)
def test_a_bad_payload_is_a_protocol_error(payload: bytes, message: str, code: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        unpack(payload, limits=REQUEST_LIMITS)
    assert info.value.code == code
