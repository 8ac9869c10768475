"""The stream server over real sockets: handshakes, refusals, bad input, slow viewers."""

from __future__ import annotations

import math
import os
import re
import socket
import stat
from functools import partial
from pathlib import Path

import pytest
import trio

import memactor
from memactor.remote import (
    ConnectionLost,
    Feed,
    RefusedError,
    RemoteError,
    ServerStatistics,
    ViewUpdate,
    connect,
    open_server,
    watch,
)
from memactor.remote._wire import PING, SNAPSHOT, SUBSCRIBE, VIEW, with_header

from .helpers import raw_client

LIMIT_S = 30  # generous: a bound on a hang, never a timing assertion


async def test_a_viewer_is_welcomed_with_the_source(socket_dir: Path) -> None:
    async with memactor.open_system() as system:
        address = f"unix:{socket_dir / 'app.sock'}"
        async with open_server(system, address, name="pipeline") as server:
            assert server.address == address
            assert server.source.address == address
            assert (server.source.name, server.source.pid) == ("pipeline", os.getpid())
            with trio.fail_after(LIMIT_S):
                async with connect(address) as connection:
                    assert connection.source == server.source
                    await connection.ping()
                async with raw_client(address) as raw:
                    welcome = await raw.hello()
                    assert welcome.type == "welcome"
                    assert (welcome.body["version"], welcome.body["source"]["pid"]) == (
                        1,
                        os.getpid(),
                    )
                    await raw.request(PING, id="abc")
                    pong = await raw.receive()
                    assert pong is not None
                    assert (pong.type, pong.body["id"]) == ("pong", "abc")


async def test_another_protocol_version_is_refused_with_its_reason(socket_dir: Path) -> None:
    async with (
        memactor.open_system() as system,
        open_server(system, str(socket_dir / "app.sock")) as server,
    ):
        with trio.fail_after(LIMIT_S):
            async with raw_client(server.address) as raw:
                error = await raw.hello(version=99)
                assert (error.type, error.body["code"]) == ("error", "version")
                assert error.body["reason"].startswith(
                    "protocol version 99 is not spoken here (this server speaks 1)"
                )
                assert await raw.receive() is None  # and it hangs up
            async with raw_client(server.address) as raw:
                # A payload of another schema version altogether.
                await raw.send(with_header(b"\x82\xa8memactor\x02\xa4type\xa5hello"))
                error_frame = await raw.receive()
                assert error_frame is not None
                assert error_frame.body["code"] == "version"
        assert server.statistics().rejected == 2


async def test_a_missing_or_wrong_token_is_refused_and_other_viewers_go_on() -> None:
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        async with open_server(system, ":0", token="s3cret") as server:
            assert server.address.startswith("tcp://127.0.0.1:")
            assert not server.address.endswith(":0")
            send, receive = trio.open_memory_channel[Feed](math.inf)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(watch, server.address, send.send_nowait, token="s3cret"))
                with trio.fail_after(LIMIT_S):
                    assert isinstance(await receive.receive(), ViewUpdate)
                    async with raw_client(server.address) as raw:
                        error = await raw.hello()
                        assert error.body == {
                            "memactor": 1,
                            "type": "error",
                            "code": "token",
                            "reason": "this server needs a token "
                            "(--token-file, MEMACTOR_TOKEN or --token)",
                        }
                    with pytest.raises(
                        RefusedError, match=r"refused the connection: the token"
                    ) as info:
                        await watch(server.address, send.send_nowait, token="nope")
                    assert info.value.code == "token"
                    # The good viewer was never disturbed.
                    for _ in range(3):
                        update = await receive.receive()
                        assert isinstance(update, ViewUpdate)
                nursery.cancel_scope.cancel()
            stats = server.statistics()
            assert (stats.rejected, stats.protocol_errors, stats.connections_total) == (2, 0, 3)


@pytest.mark.parametrize(
    ("after_hello", "data", "code", "reason"),
    [
        (False, b"GET / HTTP/1.1\r\n\r\n", "too_large", r"^a frame of 1195725856 bytes is over"),
        (False, with_header(b"\xc1garbage"), "protocol", r"^a frame that is not msgpack"),
        (True, (1 << 20).to_bytes(4, "big") + b"x" * 1000, "too_large", r"^a frame of 1048576 "),
        (True, with_header(b"garbage"), "protocol", r"^a frame that is not msgpack"),
        (True, with_header(b"\x81\xa4type\xa4ping"), "protocol", r"^expected a memactor ping"),
    ],
)
async def test_bad_input_closes_only_that_connection(
    socket_dir: Path, after_hello: bool, data: bytes, code: str, reason: str
) -> None:
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            with trio.fail_after(LIMIT_S):
                async with connect(server.address) as good:
                    await good.subscribe(20)
                    await good.receive_view()
                    async with raw_client(server.address) as bad:
                        if after_hello:
                            assert (await bad.hello()).type == "welcome"
                        await bad.send(data)
                        error = await bad.receive()
                        assert error is not None
                        assert (error.type, error.body["code"]) == ("error", code)
                        assert re.search(reason, error.body["reason"])
                        assert await bad.receive() is None
                    await good.receive_view()
                    await good.ping()
            assert server.statistics().protocol_errors == 1


@pytest.mark.parametrize(
    ("request_type", "body", "reason"),
    [
        ("shutdown", {}, "an unknown request type 'shutdown'"),
        (SUBSCRIBE, {"rate_hz": 0}, "rate_hz must be above 0 and at most 1000"),
        (SUBSCRIBE, {"rate_hz": "fast"}, "a subscribe frame with a bad or missing 'rate_hz' field"),
        (SNAPSHOT, {"label": 3, "blocks": True}, "a snapshot frame with a bad or missing 'label'"),
        (SNAPSHOT, {"label": "", "blocks": 1}, "a snapshot frame with a bad or missing 'blocks'"),
        (PING, {"id": [1]}, "a ping frame with a bad or missing 'id' field"),
    ],
)
async def test_a_bad_request_is_named_in_the_error(
    socket_dir: Path, request_type: str, body: dict[str, object], reason: str
) -> None:
    async with (
        memactor.open_system() as system,
        open_server(system, str(socket_dir / "app.sock")) as server,
    ):
        with trio.fail_after(LIMIT_S):
            async with raw_client(server.address) as raw:
                await raw.hello()
                await raw.request(request_type, **body)
                error = await raw.receive()
                assert error is not None
                assert error.type == "error"
                assert error.body["reason"].startswith(reason)
                assert await raw.receive() is None


async def test_a_slow_viewer_misses_views_and_slows_nobody(socket_dir: Path) -> None:
    # Views big enough (about 70 KB) that a viewer who stops reading soon fills its outbox
    # and its kernel buffer.
    async with memactor.open_system(sample_hz=20) as system:
        reporters = [system.reporter(f"stage{n:03}") for n in range(200)]
        for reporter in reporters:
            reporter.alloc(1, 100)
        await system.metrics.flush()
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            fast: list[Feed] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(watch, server.address, fast.append, rate_hz=20.0))
                with trio.fail_after(LIMIT_S):
                    async with connect(server.address) as slow:
                        await slow.subscribe(20)
                        while server.statistics().views_dropped < 5:
                            await trio.sleep(0.05)
                        # The pipeline goes on: new events reach the ledger...
                        reporters[0].alloc(2, 1000)
                        await system.metrics.flush()
                        assert system.ledger.statistics().bytes_in_use == 200 * 100 + 1000
                        # ... and the fast viewer sees them.
                        while not any(
                            isinstance(f, ViewUpdate) and f.view.totals.bytes_in_use == 21_000
                            for f in fast
                        ):
                            await trio.sleep(0.05)
                        # The slow viewer resumes: it reads what was queued, then a gap.
                        missed = 0
                        while not missed:
                            _, missed = await slow.receive_view()
                        assert 1 <= missed <= server.statistics().views_dropped
                nursery.cancel_scope.cancel()
            assert all(isinstance(f, ViewUpdate) for f in fast)
            assert system.metrics.ref.statistics().restarts == 0


async def test_leaving_the_block_says_goodbye_and_removes_the_socket(socket_dir: Path) -> None:
    path = socket_dir / "app.sock"
    got: list[Feed] = []
    async with memactor.open_system(sample_hz=20) as system, trio.open_nursery() as nursery:
        async with open_server(system, str(path)) as server:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_ISSOCK(path.stat().st_mode)
            nursery.start_soon(watch, server.address, got.append)
            with trio.fail_after(LIMIT_S):
                while not got:
                    await trio.sleep(0.01)
        assert not path.exists()
        with trio.fail_after(LIMIT_S):
            while not any(isinstance(f, ConnectionLost) for f in got):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    lost = next(f for f in got if isinstance(f, ConnectionLost))
    assert lost.reason == f"unix:{path} closed the connection: the server is closing"
    assert (lost.attempt, lost.retry_in_s) == (1, 0.1)


async def test_the_default_socket_lives_in_the_runtime_directory(runtime: Path) -> None:
    async with memactor.open_system() as system:
        async with open_server(system) as server:
            path = runtime / f"{os.getpid()}.sock"
            assert server.address == f"unix:{path}"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
            with pytest.raises(RemoteError, match=r"is already served by a running process$"):
                async with open_server(system):
                    pass
            assert path.exists()  # the failed second server left the first one's socket
        assert not path.exists()


async def test_a_stale_socket_is_replaced_and_a_file_is_not(socket_dir: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_dir / "app.sock"))
    stale.close()
    (socket_dir / "notes").write_text("mine")
    async with memactor.open_system() as system:
        async with open_server(system, str(socket_dir / "app.sock")):
            pass
        with pytest.raises(RemoteError, match=r"/notes exists and is not a socket"):
            async with open_server(system, str(socket_dir / "notes")):
                pass
        with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] cannot listen on unix:/.*/no/x"):
            async with open_server(system, str(socket_dir / "no" / "x")):
                pass
    assert (socket_dir / "notes").read_text() == "mine"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org"])
async def test_serving_beyond_loopback_needs_a_token(host: str) -> None:
    address = f"[{host}]:0" if ":" in host else f"{host}:0"
    async with memactor.open_system() as system:
        with pytest.raises(ValueError, match=r"\(not a loopback address\) needs a token"):
            async with open_server(system, address):
                pass


async def test_beyond_loopback_with_a_token_is_served() -> None:
    async with memactor.open_system() as system:
        async with open_server(system, "0.0.0.0:0", token="s3cret") as server:
            port = server.address.rpartition(":")[2]
            with trio.fail_after(LIMIT_S):
                async with connect(f"127.0.0.1:{port}", token="s3cret") as connection:
                    await connection.ping()
        with pytest.raises(ValueError, match=r"^token must not be empty"):
            async with open_server(system, ":0", token=""):
                pass


async def test_statistics_count_every_kind_of_thing(socket_dir: Path) -> None:
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            assert server.statistics() == ServerStatistics(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            with trio.fail_after(LIMIT_S):
                async with connect(server.address) as one, connect(server.address) as two:
                    await one.subscribe(20)
                    await two.subscribe(5)
                    for _ in range(3):
                        await one.receive_view()
                    await two.receive_view()
                    await two.snapshot("now")
                    middle = server.statistics()
                while server.statistics().connections_now:
                    await trio.sleep(0.01)
                async with raw_client(server.address) as raw:
                    await raw.hello(version=2)
                async with raw_client(server.address) as raw:
                    await raw.send(with_header(b"?"))
                    await raw.receive()
                while server.statistics().connections_now:
                    await trio.sleep(0.01)
            end = server.statistics()
    assert (middle.connections_now, middle.connections_peak, middle.viewers_now) == (2, 2, 2)
    assert middle.views_sent >= 4
    assert middle.snapshots_sent == 1
    assert middle.bytes_sent > 0
    assert (end.connections_now, end.connections_peak, end.connections_total) == (0, 2, 4)
    assert (end.viewers_now, end.rejected, end.protocol_errors) == (0, 1, 1)
    assert end.views_sent >= middle.views_sent
    # views_dropped: see test_a_slow_viewer_misses_views_and_slows_nobody.
    assert end.bytes_sent > middle.bytes_sent


async def test_views_are_encoded_once_and_only_the_first_carries_series(socket_dir: Path) -> None:
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            with trio.fail_after(LIMIT_S):
                async with raw_client(server.address) as one, raw_client(server.address) as two:
                    for raw in (one, two):
                        await raw.hello()
                        await raw.request(SUBSCRIBE, rate_hz=20)
                    firsts = [await one.receive(), await two.receive()]
                    assert all(m is not None and m.body["seq"] == 1 for m in firsts)
                    # Later views: the same bytes for both viewers, at the same seq.
                    by_seq: dict[int, list[bytes]] = {}
                    while not any(len(v) == 2 for v in by_seq.values()):
                        for raw in (one, two):
                            message = await raw.receive()
                            assert message is not None
                            assert message.type == VIEW
                            by_seq.setdefault(message.body["seq"], []).append(message.body["view"])
    shared = next(v for v in by_seq.values() if len(v) == 2)
    assert shared[0] == shared[1]
    first = memactor.Snapshot.from_msgpack(firsts[0].body["view"])  # type: ignore[union-attr]  # not None
    later = memactor.Snapshot.from_msgpack(shared[0])
    assert first.series != ()
    assert later.series == ()
    assert (first.label, later.label) == ("live", "live")
    assert len(first.blocks) == len(later.blocks) == 0
