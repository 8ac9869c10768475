"""Keepalive both ways: clients ping while they wait, and give up a server gone silent.

Time is trio's autojump clock: a timeout of 15 s passes at once, and nothing here asserts
how long anything took on the wall clock.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import trio
import trio.testing

import memactor
from memactor.remote import (
    ConnectionLost,
    Feed,
    RemoteError,
    ViewUpdate,
    connect,
    open_server,
    watch,
)
from memactor.remote._wire import (
    PING,
    PROTOCOL_VERSION,
    REQUEST_LIMITS,
    WELCOME,
    FrameReader,
    pack,
)

VIRTUAL_LIMIT_S = 3600  # a bound on a hang: under the autojump clock a hang jumps to it

SOURCE = {"name": "mute", "pid": 1, "host": "h", "started_wall_ns": 0, "address": ""}


class MuteServer:
    """Welcomes every connection, then reads what it is sent and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.pings = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        reader = FrameReader(stream, REQUEST_LIMITS.max_bytes)
        await reader.receive_message(REQUEST_LIMITS)
        await stream.send_all(pack(WELCOME, {"version": PROTOCOL_VERSION, "source": SOURCE}))
        while (message := await reader.receive_message(REQUEST_LIMITS)) is not None:
            self.pings += message.type == PING


async def test_watch_gives_up_a_silent_server_and_reconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mute = MuteServer()
    got: list[Feed] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, mute.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(partial(watch, f"127.0.0.1:{port}", got.append, keepalive_s=2.0))
        with trio.fail_after(VIRTUAL_LIMIT_S):
            while len(got) < 2:
                await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert all(isinstance(f, ConnectionLost) for f in got)
    assert [f.reason for f in got] == [f"127.0.0.1:{port} sent nothing for 6 s"] * 2  # type: ignore[union-attr]  # all ConnectionLost
    # Each connection was welcomed: the retry starts over.
    assert [(f.attempt, f.retry_in_s) for f in got] == [(1, 0.1)] * 2  # type: ignore[union-attr]  # as above
    assert mute.connections >= 2
    assert mute.pings >= 4  # two unanswered pings a connection before giving up


async def test_a_slow_watcher_stays_connected_past_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One view per 100 s; the server closes a connection silent for 30 s; the watcher's
    # pings (every 5 s) keep it open, and their pongs tell the watcher the server lives.
    send, receive = trio.open_memory_channel[Feed](math.inf)
    async with memactor.open_system(sample_hz=1) as system:
        system.reporter("loader").alloc(1, 100)
        async with open_server(system, ":0") as server, trio.open_nursery() as nursery:
            nursery.start_soon(partial(watch, server.address, send.send_nowait, rate_hz=0.01))
            with trio.fail_after(VIRTUAL_LIMIT_S):
                for _ in range(3):
                    assert isinstance(await receive.receive(), ViewUpdate)
            nursery.cancel_scope.cancel()
        stats = server.statistics()
    assert (stats.connections_total, stats.idle_closed) == (1, 0)


async def test_a_connection_that_never_pings_is_closed_as_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memactor.open_system(sample_hz=1) as system:
        async with open_server(system, ":0", idle_timeout_s=10) as server:
            with trio.fail_after(VIRTUAL_LIMIT_S):
                async with connect(server.address) as connection:
                    await trio.sleep(11)  # no receive_view: nobody pings
                    with pytest.raises(RemoteError, match=r"nothing received"):
                        await connection.ping()
        assert server.statistics().idle_closed == 1


async def test_keepalive_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^keepalive_s must be above 0, got 0$"):
        await watch(":1", print, keepalive_s=0)
    with pytest.raises(ValueError, match=r"^keepalive_s must be above 0, got -1$"):
        async with connect(":1", keepalive_s=-1):
            pass
