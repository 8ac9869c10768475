"""The client: fetching snapshots, watching views, reconnecting with backoff."""

from __future__ import annotations

import dataclasses
import math
import sys
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import memactor
from memactor.events import Site
from memactor.metrics import SiteUsage
from memactor.remote import (
    ConnectionLost,
    Feed,
    RefusedError,
    RemoteError,
    ViewUpdate,
    connect,
    fetch_snapshot,
    follow,
    open_server,
    watch,
)

LIMIT_S = 30  # generous: a bound on a hang, never a timing assertion


async def test_a_fetched_snapshot_equals_the_systems_own_to_the_byte(socket_dir: Path) -> None:
    # A slow sample rate: no sample lands between the two snapshots.
    async with memactor.open_system(sample_hz=0.01) as system:
        loader = system.reporter("loader", owner="decode")
        gpu = system.reporter("gpu", device="cuda:0")
        for block in range(1, 50):
            loader.alloc(block, block * 64)
        loader.free(7, 7 * 64)
        gpu.alloc(1, 1 << 20)
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            with trio.fail_after(LIMIT_S):
                fetched = await fetch_snapshot(server.address, label="remote")
                lean = await fetch_snapshot(server.address, blocks=False)
            own = await system.metrics.snapshot("own")
            # The label is the viewer's own: the program keeps only its own labels.
            with pytest.raises(memactor.MemactorError, match=r"^no snapshot labelled 'remote'"):
                await system.metrics.diff("remote", "own")
            diff = memactor.metrics.diff(fetched, own)
    assert len(fetched.blocks) == 49
    same_moment = dataclasses.replace(
        own, label="remote", wall_time_ns=fetched.wall_time_ns, monotonic_ns=fetched.monotonic_ns
    )
    assert fetched.to_msgpack() == same_moment.to_msgpack()
    assert (lean.totals, lean.components, len(lean.blocks)) == (own.totals, own.components, 0)
    assert diff.suspects == ()


async def test_watch_reconnects_when_the_server_comes_back(socket_dir: Path) -> None:
    address = f"unix:{socket_dir / 'app.sock'}"
    send, receive = trio.open_memory_channel[Feed](math.inf)
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(LIMIT_S):
                async with open_server(system, address, name="first"):
                    nursery.start_soon(watch, address, send.send_nowait)
                    update = await receive.receive()
                    assert isinstance(update, ViewUpdate)
                    assert update.source.name == "first"
                    assert update.view.series != ()  # the first view after a connection
                lost = await receive.receive()
                assert isinstance(lost, ConnectionLost)
                async with open_server(system, address, name="second"):
                    while isinstance(update := await receive.receive(), ConnectionLost):
                        pass
                    assert update.source.name == "second"
                    assert update.view.series != ()
                    assert update.missed == 0
            nursery.cancel_scope.cancel()


async def test_watch_backs_off_while_nobody_serves(
    socket_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    got: list[Feed] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, f"unix:{socket_dir / 'nobody.sock'}", got.append)
        while len(got) < 7:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert all(isinstance(f, ConnectionLost) for f in got)
    lost = [f for f in got if isinstance(f, ConnectionLost)]
    assert [f.attempt for f in lost] == [1, 2, 3, 4, 5, 6, 7]
    assert [f.retry_in_s for f in lost] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert lost[0].reason.startswith(f"cannot connect to unix:{socket_dir / 'nobody.sock'}: ")


async def test_watch_over_tcp_and_its_bad_arguments() -> None:
    got: list[Feed] = []
    async with memactor.open_system(sample_hz=20) as system:
        system.reporter("loader").alloc(1, 100)
        await system.metrics.flush()
        async with open_server(system, "localhost:0") as server:
            assert server.address.startswith("tcp://127.0.0.1:")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(watch, server.address, got.append, rate_hz=20))
                with trio.fail_after(LIMIT_S):
                    while len(got) < 3:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            with pytest.raises(
                ValueError, match=r"^rate_hz must be above 0 and at most 1000, got 0$"
            ):
                await watch(server.address, got.append, rate_hz=0)
            # Faster than any server serves: refused at once, not retried for ever.
            with pytest.raises(
                ValueError, match=r"^rate_hz must be above 0 and at most 1000, got 5000$"
            ):
                await watch(server.address, got.append, rate_hz=5000)
            with pytest.raises(ValueError, match=r"is not an address"):
                await watch("nowhere", got.append)
    updates = [f for f in got if isinstance(f, ViewUpdate)]
    assert len(updates) == len(got)
    assert [u.view.totals.bytes_in_use for u in updates] == [100] * len(updates)


async def test_fetch_snapshot_errors_are_remote_errors(socket_dir: Path) -> None:
    with pytest.raises(RemoteError, match=r"^cannot connect to unix:/.*/none.sock: No such file"):
        await fetch_snapshot(f"unix:{socket_dir / 'none.sock'}")
    async with (
        memactor.open_system() as system,
        open_server(system, str(socket_dir / "app.sock"), token="t") as server,
    ):
        with pytest.raises(RefusedError, match=r"refused the connection: the token was refused"):
            await fetch_snapshot(server.address, token="x")


async def test_a_server_that_never_answers_times_out(socket_dir: Path) -> None:
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with listener:
        await listener.bind(str(socket_dir / "mute.sock"))
        listener.listen()
        with pytest.raises(RemoteError, match=r"^no snapshot from /.*/mute.sock within 0.2 s$"):
            await fetch_snapshot(str(socket_dir / "mute.sock"), timeout=0.2)
        with pytest.raises(RemoteError, match=r"/mute.sock did not answer the hello within 0.2 s$"):
            async with connect(str(socket_dir / "mute.sock"), timeout=0.2):
                pass


async def test_a_connection_skips_views_while_it_waits_for_a_reply(socket_dir: Path) -> None:
    async with (
        memactor.open_system(sample_hz=50) as system,
        open_server(system, str(socket_dir / "app.sock")) as server,
    ):
        with trio.fail_after(LIMIT_S):
            async with connect(server.address) as connection:
                await connection.subscribe(50)
                await trio.sleep(0.2)  # views pile up unread
                snapshot = await connection.snapshot()
                await connection.ping()
                view, missed = await connection.receive_view()
    assert snapshot.label == ""
    assert view.label == "live"
    assert missed >= 0


async def test_follow_moves_to_the_program_when_it_comes_back_on_a_new_socket(
    runtime: Path,
) -> None:
    runtime.mkdir(mode=0o700, parents=True)
    first, second = f"unix:{runtime / '100.sock'}", f"unix:{runtime / '200.sock'}"
    send, receive = trio.open_memory_channel[Feed](math.inf)
    moves: list[str] = []
    with trio.fail_after(LIMIT_S):
        async with memactor.open_system(sample_hz=20) as system, trio.open_nursery() as nursery:
            system.reporter("loader").alloc(1, 100)
            async with open_server(system, first):
                nursery.start_soon(
                    partial(follow, first, send.send_nowait, rate_hz=20, moved=moves.append)
                )
                assert isinstance(await receive.receive(), ViewUpdate)
            # The program restarted under another pid: its socket has another name.
            async with open_server(system, second):
                while not isinstance(item := await receive.receive(), ViewUpdate):
                    assert isinstance(item, ConnectionLost)
                assert item.source.address == second
                assert moves == [second]
                nursery.cancel_scope.cancel()


async def test_a_viewers_labels_never_evict_the_programs(socket_dir: Path) -> None:
    async with memactor.open_system() as system:
        loader = system.reporter("loader")
        loader.alloc(1, 100)
        await system.metrics.snapshot("warm")
        async with open_server(system, str(socket_dir / "app.sock")) as server:
            with trio.fail_after(LIMIT_S):
                async with connect(server.address) as viewer:
                    # The program's own label too, and more labels than the program keeps.
                    labels = ["warm", "end", *(f"v{n}" for n in range(20))]
                    for label in labels:
                        assert (await viewer.snapshot(label, blocks=False)).label == label
                await fetch_snapshot(server.address, label="warm")
        loader.alloc(2, 50)
        await system.metrics.snapshot("end")
        diff = await system.metrics.diff("warm", "end")
    assert (diff.before_label, diff.after_label, diff.bytes_in_use_delta) == ("warm", "end", 50)


async def test_a_view_over_the_wire_carries_the_top_sites(socket_dir: Path) -> None:
    async with (
        memactor.open_system(sample_hz=50, callsites=True) as system,
        open_server(system, str(socket_dir / "app.sock")) as server,
    ):
        reporter = system.reporter("decode")
        line = sys._getframe().f_lineno + 2
        for block in range(3):
            reporter.alloc(block, 4096)
        await system.metrics.flush()
        with trio.fail_after(LIMIT_S):
            async with connect(server.address) as connection:
                await connection.subscribe(50)
                view, _ = await connection.receive_view()
                while not view.site_usage:
                    view, _ = await connection.receive_view()
    name = "test_a_view_over_the_wire_carries_the_top_sites"
    assert view.site_usage == (SiteUsage(Site(__file__, line, name), "cpu", 3 * 4096, 3),)
    assert view.totals.callsites == 1
    assert len(view.blocks) == 0  # a view: the sites came without the blocks
