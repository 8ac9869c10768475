"""``memactor.tui.run(main)``: a real pipeline under the live view, stopped by a key."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np
import pytest
import trio
from textual.pilot import Pilot
from textual.widgets import Static

import memactor
from memactor.actors import MetricsActor
from memactor.metrics import Limit
from memactor.tui import pipeline_app, run
from memactor.tui._header import MemoryHeader
from memactor.tui._table import RowTable

from .helpers import drive, wait_for


class Holder(memactor.Actor[object, None]):
    """Records that its on_stop ran."""

    def __init__(self, stopped: list[str]) -> None:
        self.stopped = stopped

    async def handle(self, message: object) -> None:
        return None

    async def on_stop(self) -> None:
        self.stopped.append("holder")


def test_quitting_stops_the_pipeline_cleanly() -> None:
    stopped: list[str] = []
    systems: list[memactor.MemorySystem] = []

    async def main(system: memactor.MemorySystem) -> None:
        systems.append(system)
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        await system.spawn(Holder(stopped), name="holder")
        async with pool.lease((4096,), np.uint8) as buffer:
            buffer[:] = 1
            await trio.sleep_forever()

    app = pipeline_app(main, name="tiny", sample_hz=50.0)

    async def script(pilot: Pilot[None]) -> None:
        # The process row "(unattributed)" may come first: wait for the pool's.
        await wait_for(pilot, lambda: app.dashboard.component_rows("pool"))
        assert app.dashboard.component_rows()[0].cells[:4] == ("pool", "cpu", "4 KiB", "4 KiB")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert len(app.snapshots[-1].blocks) == 1  # a full snapshot, from the metrics actor
        await pilot.press("q")
        assert stopped == ["holder"]

    drive(app, script)
    assert app.return_code == 0
    assert app.feed_error is None
    assert systems[0].ledger.bytes_in_use == 0  # the lease went back to the pool


def test_a_pipeline_that_finishes_stays_on_view() -> None:
    async def main(system: memactor.MemorySystem) -> None:
        system.reporter("once").alloc(1, 100)

    app = pipeline_app(main, sample_hz=50.0)

    async def script(pilot: Pilot[None]) -> None:
        while app.dashboard.views_received < 3:
            await pilot.pause(0.02)
        assert any(row[1] == "note" for row in app.dashboard.event_rows())
        assert app.dashboard.connection.state == "connected"
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_a_failing_pipeline_stays_on_view_with_its_error_and_quits_with_1() -> None:
    async def main(system: memactor.MemorySystem) -> None:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        async with pool.lease((4096,), np.uint8):
            await trio.sleep(0.5)  # views of the held lease reach the screen meanwhile
            raise ValueError("bad frame")

    app = pipeline_app(main, title="demo", sample_hz=50.0)

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.feed_error is not None)
        await pilot.pause()
        assert app.return_code is None  # still open, on the last state
        header = app.query_one(MemoryHeader)
        assert header.state == "failed"
        assert header.lines[0].startswith("demo · failed: ValueError: bad frame; q quits")
        assert app.dashboard.view is not None
        assert "pool" in app.query_one("#components-table", RowTable).row_keys[0]
        (toast,) = app._notifications
        assert toast.message == "the pipeline failed: ValueError: bad frame; q quits"
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 1
    assert isinstance(app.feed_error, ValueError)
    report = str(app._error_report(app.feed_error))
    assert report.startswith("Traceback (most recent call last):")
    assert report.endswith("memactor: the pipeline failed: ValueError: bad frame")
    assert "feed" not in report.replace("(most recent call last)", "").splitlines()[-1]


def test_run_prints_the_failure_after_the_view_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main(system: memactor.MemorySystem) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # quits once the view takes the signal
        raise ValueError("bad frame")

    assert run(main, headless=True) == 1
    err = capsys.readouterr().err
    assert "ValueError: bad frame" in err
    assert err.rstrip().endswith("memactor: the pipeline failed: ValueError: bad frame")
    assert "feed" not in err


def test_views_go_on_after_the_metrics_actor_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fault planted in the real metrics actor: the message "crash" fails it.
    handle = MetricsActor.handle

    async def fragile(self: MetricsActor, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        return await handle(self, message)

    monkeypatch.setattr(MetricsActor, "handle", fragile)
    systems: list[memactor.MemorySystem] = []

    async def main(system: memactor.MemorySystem) -> None:
        systems.append(system)
        await trio.sleep_forever()

    app = pipeline_app(main, sample_hz=50.0)

    async def script(pilot: Pilot[None]) -> None:
        while app.dashboard.views_received < 2:
            await pilot.pause(0.02)
        system = systems[0]

        async def crash() -> None:
            await system.metrics.ref.send("crash")  # type: ignore[arg-type]  # the fault

        assert app._guest is not None
        await app._guest.call(crash)  # in the feed's trio run
        rows = app.dashboard.event_rows
        await wait_for(pilot, lambda: any("restarted" in row[2] for row in rows()))
        seen = app.dashboard.views_received
        await wait_for(pilot, lambda: app.dashboard.views_received >= seen + 3)  # views go on
        assert system.metrics.ref.statistics().restarts == 1
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_sigterm_quits_as_q_does_with_exit_code_143() -> None:
    stopped: list[str] = []

    async def main(system: memactor.MemorySystem) -> None:
        await system.spawn(Holder(stopped), name="holder")
        os.kill(os.getpid(), signal.SIGTERM)
        await trio.sleep_forever()

    assert run(main, headless=True) == 143
    assert stopped == ["holder"]  # the system closed: every actor stopped
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone


def test_a_known_cap_is_projected_in_the_leaks_view() -> None:
    pools: list[memactor.BufferPool] = []

    async def main(system: memactor.MemorySystem) -> None:
        pool = memactor.BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        pools.append(pool)
        async with pool.lease((4096,), np.uint8):
            await trio.sleep_forever()

    def caps() -> list[Limit]:
        return [Limit(p.max_reserved, p.name, name="cap") for p in pools if p.max_reserved]

    app = pipeline_app(main, sample_hz=50.0, limits=caps)

    def projected() -> bool:
        report = app.dashboard.leak_report()
        return report is not None and bool(report.projections)

    async def script(pilot: Pilot[None]) -> None:
        await wait_for(pilot, projected)
        await pilot.press("3")
        await pilot.pause()
        body = app.query_one("#leaks-body", Static)
        lines = body.render_lines(body.region.reset_offset)
        shown = " ".join(" ".join("".join(s.text for s in line).split()) for line in lines)
        assert "projections" in shown
        assert "pool on cpu: 4 KiB reserved of its 1 MiB cap: does not grow" in shown
        await pilot.press("q")

    drive(app, script)
