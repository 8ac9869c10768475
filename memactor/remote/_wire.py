"""The stream protocol's frames: a 4-byte big-endian length, then one msgpack payload.

Every payload is a memactor payload (``{"memactor": SCHEMA_VERSION, "type": ...}``, see
:mod:`memactor.codec`). The client speaks first::

    client                                   server
    hello {version, token, client}   ->
                                     <-      welcome {version, source}
                                             | error {code, reason}, then closes
    subscribe {rate_hz}              ->
                                     <-      view {seq, view}  (rate_hz times a second)
    snapshot {label, blocks}         ->
                                     <-      snapshot (a Snapshot payload, as saved)
    ping {id}                        ->
                                     <-      pong {id}

``view.view`` holds a snapshot payload without blocks, encoded once per tick and shared by
every viewer; only the first view after a subscribe carries the time series. ``seq``
counts the views due to that viewer since it subscribed, starting at 1, so a gap is the
number of views dropped because it read too slowly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from ..codec import (
    DEFAULT_LIMITS,
    SCHEMA_VERSION,
    CodecError,
    DecodeLimits,
    encode,
    unframe,
)
from ..codec import unpack as unpack_value
from ._errors import ProtocolError

_MARKER: Final = "memactor"
"""The key of every memactor payload's schema version (see :func:`memactor.codec.frame`)."""

PROTOCOL_VERSION: Final = 1
"""The version a hello and a welcome carry; a server refuses any other."""

HEADER_BYTES: Final = 4
MAX_RATE_HZ: Final = 1000.0
"""The fastest views a subscribe may ask for; a server refuses a faster one."""
MAX_REQUEST_BYTES: Final = 64 * 1024
"""The largest frame a server accepts from a client."""
REQUEST_LIMITS: Final = DecodeLimits(
    max_bytes=MAX_REQUEST_BYTES, max_items=64, max_string_bytes=4096
)
REPLY_LIMITS: Final = DEFAULT_LIMITS
"""What a client accepts from a server: snapshots with millions of blocks are large."""

HELLO: Final = "hello"
WELCOME: Final = "welcome"
ERROR: Final = "error"
SUBSCRIBE: Final = "subscribe"
VIEW: Final = "view"
SNAPSHOT: Final = "snapshot"
PING: Final = "ping"
PONG: Final = "pong"


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded frame: its type and its whole map (marker and version included)."""

    type: str
    body: dict[str, Any]


def rate_allowed(rate_hz: float) -> bool:
    """Whether a subscribe may ask for *rate_hz* views a second (above 0, at most
    :data:`MAX_RATE_HZ`)."""
    return 0 < rate_hz <= MAX_RATE_HZ and math.isfinite(rate_hz)


def with_header(payload: bytes) -> bytes:
    """Prefix *payload* with its length."""
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def pack(type_: str, body: Mapping[str, Any]) -> bytes:
    """A whole frame of *type_*, length included."""
    return with_header(encode(type_, body))


def error_frame(code: str, reason: str) -> bytes:
    """A whole error frame: the server says why it closes (see the protocol above)."""
    return pack(ERROR, {"code": code, "reason": reason})


def unpack(payload: bytes, *, limits: DecodeLimits) -> Message:
    """Decode one frame's payload, whatever its type.

    Raises :class:`ProtocolError`: code ``"version"`` for a payload of another schema
    version, ``"protocol"`` for anything else that is wrong.
    """
    try:
        obj = unpack_value(payload, limits=limits, what="msgpack frame")
    except CodecError as exc:
        raise ProtocolError(f"a frame that is not msgpack ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("a frame that is not a memactor payload")
    if _MARKER in obj and obj[_MARKER] != SCHEMA_VERSION:
        raise ProtocolError(
            f"a payload of schema version {obj[_MARKER]!r}, this side speaks {SCHEMA_VERSION}",
            code="version",
        )
    try:
        body = unframe(obj, obj["type"])
    except CodecError as exc:
        raise ProtocolError(str(exc)) from None
    return Message(obj["type"], body)


class FrameReader:
    """Reads whole frames from a stream, refusing any announced as larger than
    *max_frame_bytes* before reading its body."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self._max = max_frame_bytes
        self._buffer = bytearray()

    def raise_limit(self, max_frame_bytes: int) -> None:
        """Accept frames of up to *max_frame_bytes* from now on: a peer that has shaken
        hands may send larger frames than one that has not."""
        self._max = max_frame_bytes

    async def receive(self) -> bytes | None:
        """The next frame's payload; ``None`` when the stream ends between frames.

        Raises :class:`ProtocolError` for an oversized frame (code ``"too_large"``) or a
        stream that ends inside one, and what the stream raises
        (:class:`trio.BrokenResourceError` when the other side reset it).
        """
        buffer = self._buffer
        while True:
            if len(buffer) >= HEADER_BYTES:
                size = int.from_bytes(buffer[:HEADER_BYTES], "big")
                if size > self._max:
                    raise ProtocolError(
                        f"a frame of {size} bytes is over the limit of {self._max}",
                        code="too_large",
                    )
                end = HEADER_BYTES + size
                if len(buffer) >= end:
                    payload = bytes(buffer[HEADER_BYTES:end])
                    del buffer[:end]
                    return payload
            chunk = await self._stream.receive_some(1 << 16)
            if not chunk:
                if buffer:
                    raise ProtocolError("the stream ended inside a frame")
                return None
            buffer += chunk

    async def receive_message(self, limits: DecodeLimits) -> Message | None:
        """The next frame, decoded; ``None`` at the end of the stream."""
        payload = await self.receive()
        return None if payload is None else unpack(payload, limits=limits)


def get_field(message: Message, name: str, kind: type | tuple[type, ...]) -> Any:
    """A field of *message* of the given type(s); :class:`ProtocolError` otherwise."""
    value = message.body.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
        raise ProtocolError(f"a {message.type} frame with a bad or missing {name!r} field")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
