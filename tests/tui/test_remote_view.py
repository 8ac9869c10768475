"""The live view over a real socket: a served pipeline, the stream client and its actions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import trio
from textual.pilot import Pilot

import memactor
from memactor.actors import UnknownSnapshotError
from memactor.remote import fetch_snapshot, open_server, watch
from memactor.tui import MemactorApp, Post, RemoteActions, pipeline_app

from .helpers import drive, wait_for


def test_a_served_pipeline_can_be_snapshotted_from_outside(socket_dir: Path) -> None:
    address = f"unix:{socket_dir / 'view.sock'}"

    async def main(system: memactor.MemorySystem) -> None:
        system.reporter("cache", owner="indexer").alloc(1, 3000)
        await trio.sleep_forever()

    app = pipeline_app(main, name="served", sample_hz=50.0, serve=address)

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.dashboard.component_rows())
        assert app.dashboard.source is not None
        assert app.dashboard.source.address == address  # the header says where it serves
        # Another client (a thread of its own, as another process would be) reads it.
        outside = await asyncio.to_thread(lambda: trio.run(fetch_snapshot, address))
        assert outside.component("cache").bytes_in_use == 3000
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0
    assert not (socket_dir / "view.sock").exists()  # the server closed with the pipeline


def test_the_stream_client_feeds_the_view_and_its_snapshot_key(socket_dir: Path) -> None:
    address = f"unix:{socket_dir / 'top.sock'}"

    async def feed(post: Post) -> None:
        # The watched program and the viewer share this trio run; they meet on the socket.
        async with memactor.open_system(sample_hz=50.0) as system:
            systems.append(system)
            system.reporter("pool", owner="decode").alloc(7, 4096)
            async with open_server(system, address):
                await watch(address, post, rate_hz=50.0)

    systems: list[memactor.MemorySystem] = []
    app = MemactorApp(feed, actions=RemoteActions(address), title="memactor top")

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.dashboard.component_rows())
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert [s.label for s in app.snapshots] == ["snap-1"]
        assert len(app.snapshots[-1].blocks) == 1  # taken in the program, with live blocks
        assert app.snapshots[-1].component("pool").bytes_in_use == 4096

        async def kept_there() -> bool:
            try:
                await systems[0].metrics.diff("snap-1", "snap-1")
            except UnknownSnapshotError:
                return False
            return True

        assert app._guest is not None
        assert not await app._guest.call(kept_there)  # the viewer's label stays its own
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_a_refused_token_ends_the_view_with_one_line(socket_dir: Path) -> None:
    address = f"unix:{socket_dir / 'locked.sock'}"

    async def feed(post: Post) -> None:
        async with memactor.open_system() as system, open_server(system, address, token="s3"):
            await watch(address, post, token="wrong")

    app = MemactorApp(feed)

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.feed_error is not None)

    drive(app, script)
    assert app.return_code == 1
    assert "refused" in str(app.feed_error)


def test_a_pipeline_that_cannot_serve_ends_the_view_with_one_line(socket_dir: Path) -> None:
    async def main(system: memactor.MemorySystem) -> None:
        await trio.sleep_forever()

    # Beyond loopback without a token: refused before anything listens.
    app = pipeline_app(main, serve="0.0.0.0:0")

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.feed_error is not None)

    drive(app, script)
    assert app.return_code == 1
    error = app.feed_error
    assert error is not None
    assert str(error).startswith("cannot serve: serving on tcp://0.0.0.0:0 (not a loopback")
    assert app._error_report(error).plain.startswith("memactor: cannot serve")
