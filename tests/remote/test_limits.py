"""Hostile clients against a real server on loopback: caps, timeouts, idle and slow peers.

Each test asserts that the connection was closed with a reason, that the program's ledger
is exact afterwards and that the process's file descriptors are back to their baseline.
Time is trio's autojump clock wherever a timeout is the point.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

import memactor
from memactor.actors import MemorySystem
from memactor.remote import (
    HANDSHAKE_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    KEEPALIVE_S,
    MAX_CONNECTIONS,
    MAX_HANDSHAKES,
    SILENT_PINGS,
    Server,
    ServerStatistics,
    connect,
    open_server,
)
from memactor.remote._wire import HELLO, PING, PROTOCOL_VERSION, SUBSCRIBE, pack, with_header

from .helpers import RawClient, raw_client

LIMIT_S = 30  # generous: a bound on a hang, never a timing assertion
VIRTUAL_LIMIT_S = 3600  # the same under the autojump clock, where a hang jumps to it


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def until(check: object, what: str) -> None:
    """Poll *check* (a callable) until true; bounded by the caller's ``fail_after``."""
    assert callable(check)
    for _ in range(100_000):
        if check():
            return
        await trio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def closed_with(raw: RawClient) -> tuple[str, str]:
    """The code and reason of the error frame *raw* was sent, after which it was closed."""
    error = await raw.receive()
    assert error is not None, "closed without a reason"
    assert error.type == "error"
    # Or a reset: the server closed while our bytes were on their way.
    with contextlib.suppress(trio.BrokenResourceError):
        assert await raw.receive() is None
    return error.body["code"], error.body["reason"]


async def closed_while_trickling(raw: RawClient, frame: bytes, pause_s: float) -> tuple[str, str]:
    """Send all of *frame* but its last byte, one byte per *pause_s*, until the server
    closes the connection; the code and reason it gave."""

    async def trickle() -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            for byte in frame[:-1]:
                await raw.send(bytes([byte]))
                await trio.sleep(pause_s)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        ended = await closed_with(raw)
        nursery.cancel_scope.cancel()
    return ended


@asynccontextmanager
async def served_program(
    socket_dir: Path | None = None, **limits: float | None
) -> AsyncIterator[tuple[MemorySystem, Server, int]]:
    """A system with 10 live blocks (1000 bytes), served on TCP loopback (or a Unix socket
    in *socket_dir*); yields it, its server and the fd count once serving."""
    async with memactor.open_system(sample_hz=5) as system:
        loader = system.reporter("loader")
        for block in range(10):
            loader.alloc(block, 100)
        address = ":0" if socket_dir is None else str(socket_dir / "app.sock")
        async with open_server(system, address, **limits) as server:  # type: ignore[arg-type]  # mixed
            yield system, server, open_fds()


async def assert_unharmed(system: MemorySystem, server: Server, baseline_fds: int) -> None:
    """The ledger exact after one more event; every connection gone, fds at baseline."""
    system.reporter("after").alloc(1, 7)
    await system.metrics.flush()
    assert system.ledger.statistics().bytes_in_use == 1007
    assert system.metrics.ref.statistics().restarts == 0
    await until(lambda: server.statistics().connections_now == 0, "every connection closed")
    await until(lambda: open_fds() == baseline_fds, "fds back to baseline")


async def test_beyond_the_caps_a_connection_is_told_busy_and_closed(socket_dir: Path) -> None:
    async with served_program(socket_dir, max_connections=3, max_handshakes=2) as served:
        system, server, baseline = served
        with trio.fail_after(LIMIT_S):
            async with AsyncExitStack() as stack:
                silent = [await stack.enter_async_context(raw_client(server.address)) for _ in "ab"]
                await until(lambda: server.statistics().handshakes_now == 2, "two handshakes")
                async with raw_client(server.address) as third:
                    assert await closed_with(third) == (
                        "busy",
                        "too many connections waiting to say hello (the limit is 2)",
                    )
                for raw in silent:
                    assert (await raw.hello()).type == "welcome"
                async with connect(server.address) as welcomed:
                    async with raw_client(server.address) as fourth:
                        assert await closed_with(fourth) == (
                            "busy",
                            "too many connections (the limit is 3)",
                        )
                    await welcomed.ping()
                    stats = server.statistics()
            await assert_unharmed(system, server, baseline)
    assert (stats.connections_now, stats.connections_peak, stats.turned_away) == (3, 3, 2)
    assert (stats.handshakes_now, stats.handshakes_peak) == (0, 2)
    assert stats.connections_total == 5


async def test_no_hello_in_time_and_a_trickled_hello_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served_program() as (system, server, baseline):
        with trio.fail_after(VIRTUAL_LIMIT_S):
            async with raw_client(server.address) as mute:
                assert await closed_with(mute) == ("timeout", "no hello within 3 s")
            hello = pack(HELLO, {"version": PROTOCOL_VERSION, "client": "slowloris"})
            async with raw_client(server.address) as slowloris:
                assert await closed_while_trickling(slowloris, hello, 1.0) == (
                    "timeout",
                    "no hello within 3 s",
                )
            await assert_unharmed(system, server, baseline)
        assert server.statistics().rejected == 2


async def test_a_silent_or_trickling_viewer_is_closed_as_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served_program(idle_timeout_s=5) as (system, server, baseline):
        with trio.fail_after(VIRTUAL_LIMIT_S):
            async with raw_client(server.address) as silent:
                assert (await silent.hello()).type == "welcome"
                assert await closed_with(silent) == ("idle", "nothing received for 5 s")
            async with raw_client(server.address) as trickler:
                assert (await trickler.hello()).type == "welcome"
                # Bytes keep coming, but never a whole frame within the idle timeout.
                assert await closed_while_trickling(trickler, pack(PING, {"id": 1}), 2.0) == (
                    "idle",
                    "nothing received for 5 s",
                )
            async with raw_client(server.address) as pinger:
                assert (await pinger.hello()).type == "welcome"
                for ping_id in range(5):  # a frame every 4 s keeps it open past 5 s
                    await trio.sleep(4)
                    await pinger.request(PING, id=ping_id)
                    pong = await pinger.receive()
                    assert pong is not None
                    assert pong.type == "pong"
            await assert_unharmed(system, server, baseline)
        assert server.statistics().idle_closed == 2


async def test_garbage_and_oversized_frames_close_with_a_reason_and_harm_nothing() -> None:
    async with served_program() as (system, server, baseline):
        with trio.fail_after(LIMIT_S):
            for data, code in [
                (b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1", "protocol"),
                (with_header(b"\x93\x01\x02\x03"), "protocol"),
                (with_header(b""), "protocol"),
                ((1 << 31).to_bytes(4, "big"), "too_large"),
                (b"\xff" * 4096, "too_large"),
            ]:
                async with raw_client(server.address) as raw:
                    assert (await raw.hello()).type == "welcome"
                    await raw.send(data)
                    assert (await closed_with(raw))[0] == code
            await assert_unharmed(system, server, baseline)
        assert server.statistics().protocol_errors == 5


async def test_many_idle_peers_are_turned_away_timed_out_or_idled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with served_program(max_connections=16, max_handshakes=4, handshake_timeout_s=60.0) as (
        system,
        server,
        baseline,
    ):
        with trio.fail_after(VIRTUAL_LIMIT_S):
            async with AsyncExitStack() as stack:
                peers = []
                for n in range(16):
                    peers.append(await stack.enter_async_context(raw_client(server.address)))
                    if n < 12:  # welcomed, then idle; the last 4 never say hello
                        assert (await peers[-1].hello()).type == "welcome"
                await until(lambda: server.statistics().handshakes_now == 4, "4 handshakes")
                turned_away = []
                for _ in range(30):  # one at a time: each is told why
                    async with raw_client(server.address) as extra:
                        turned_away.append(await closed_with(extra))
                ends = [await closed_with(peer) for peer in peers]
            assert set(turned_away) == {("busy", "too many connections (the limit is 16)")}
            assert (
                ends
                == [("idle", "nothing received for 30 s")] * 12
                + [("timeout", "no hello within 60 s")] * 4
            )
            await assert_unharmed(system, server, baseline)
    stats = server.statistics()
    assert (stats.turned_away, stats.idle_closed, stats.rejected) == (30, 12, 4)
    assert (stats.connections_peak, stats.handshakes_peak, stats.connections_total) == (16, 4, 46)


async def test_statistics_name_every_limit_field_and_bad_limits_are_refused() -> None:
    # The defaults the README documents.
    defaults = (MAX_CONNECTIONS, MAX_HANDSHAKES, HANDSHAKE_TIMEOUT_S, IDLE_TIMEOUT_S)
    assert defaults == (64, 8, 3.0, 30.0)
    assert (KEEPALIVE_S, SILENT_PINGS) == (5.0, 3)
    fresh = ServerStatistics(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert (fresh.handshakes_now, fresh.handshakes_peak, fresh.turned_away) == (0, 0, 0)
    assert (fresh.idle_closed, fresh.accept_failures) == (0, 0)
    async with memactor.open_system() as system:
        for limits, message in [
            ({"max_handshakes": 0}, r"^max_connections and max_handshakes must be at least 1$"),
            ({"max_connections": 0}, r"^max_connections and max_handshakes must be at least 1$"),
            ({"handshake_timeout_s": 0}, r"^handshake_timeout_s must be above 0, got 0$"),
            ({"idle_timeout_s": -1}, r"^idle_timeout_s must be above 0 or None, got -1$"),
        ]:
            with pytest.raises(ValueError, match=message):
                async with open_server(system, ":0", **limits):  # type: ignore[arg-type]  # bad on purpose
                    pass


async def test_a_subscribed_viewer_that_went_silent_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Views keep flowing to it, but it sends nothing: a dead host looks like this.
    async with served_program(idle_timeout_s=5) as (system, server, baseline):
        with trio.fail_after(VIRTUAL_LIMIT_S):
            async with raw_client(server.address) as viewer:
                assert (await viewer.hello()).type == "welcome"
                await viewer.request(SUBSCRIBE, rate_hz=2)
                await until(lambda: server.statistics().idle_closed == 1, "closed as idle")
                frames = []
                while (frame := await viewer.receive()) is not None:
                    frames.append(frame)
            assert frames[-1].type == "error"
            assert (frames[-1].body["code"], frames[-1].body["reason"]) == (
                "idle",
                "nothing received for 5 s",
            )
            assert {frame.type for frame in frames[:-1]} == {"view"}
            await assert_unharmed(system, server, baseline)
