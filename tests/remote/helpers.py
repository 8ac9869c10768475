"""A raw client for the stream tests: it can send what no well-behaved client would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from memactor.remote import UnixAddress, parse_address
from memactor.remote._wire import HELLO, PROTOCOL_VERSION, REPLY_LIMITS, FrameReader, Message, pack


class RawClient:
    """Frames in, frames out, nothing checked."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader(stream, REPLY_LIMITS.max_bytes)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def request(self, type_: str, **body: Any) -> None:
        await self.send(pack(type_, body))

    async def hello(self, **body: Any) -> Message:
        await self.request(HELLO, **{"version": PROTOCOL_VERSION, "client": "raw", **body})
        reply = await self.receive()
        assert reply is not None
        return reply

    async def receive(self) -> Message | None:
        return await self.reader.receive_message(REPLY_LIMITS)


@asynccontextmanager
async def raw_client(address: str) -> AsyncIterator[RawClient]:
    where = parse_address(address)
    if isinstance(where, UnixAddress):
        stream = await trio.open_unix_socket(where.path)
    else:
        stream = await trio.open_tcp_stream(where.host, where.port)
    async with stream:
        yield RawClient(stream)
