"""The sites view: its rows as pure code, and key 5 showing them in the app."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

from textual.pilot import Pilot

from memactor.metrics import Ledger, Snapshot
from memactor.remote import ViewUpdate
from memactor.runtime import MemoryHub
from memactor.tui import MemactorApp
from memactor.tui._sites import SITE_COLUMNS, site_rows
from memactor.tui._table import RowTable

from .feeds import SOURCE, START_WALL_NS, updates, with_sites
from .helpers import drive

HERE = Path(__file__).resolve().relative_to(Path.cwd().resolve())
KIB = 1024


def sited_view(every: int = 1) -> tuple[Snapshot, int]:
    """A view (no blocks) of allocations from two lines of this file, and the first line."""
    hub = MemoryHub(callsites=every, clock=lambda: 5)
    decode, index = hub.reporter("decode"), hub.reporter("index")
    line = sys._getframe().f_lineno + 2
    for block in range(4):
        decode.alloc(block, 64 * KIB)
    index.alloc(1, 4 * KIB, device="cuda:0")
    ledger = Ledger(clock=lambda: 10, sites=hub.sites)
    for batch in hub.collect().batches:
        ledger.apply(batch.events)
    view = ledger.snapshot("live", blocks=False)
    return dataclasses.replace(view, wall_time_ns=START_WALL_NS), line


def test_site_rows_list_the_views_top_sites() -> None:
    view, line = sited_view()
    assert site_rows(view) == (
        (
            f"{Path.cwd() / HERE}\0{line}\0cpu",
            (f"{HERE}:{line} in sited_view", "cpu", "256 KiB", "4"),
        ),
        (
            f"{Path.cwd() / HERE}\0{line + 1}\0cuda:0",
            (f"{HERE}:{line + 1} in sited_view", "cuda:0", "4 KiB", "1"),
        ),
    )
    assert [cells[2] for _, cells in site_rows(view, "SITED")] == ["256 KiB", "4 KiB"]
    assert site_rows(view, "nowhere") == ()
    assert site_rows(None) == ()


def test_site_rows_say_when_sites_are_sampled_or_off() -> None:
    sampled, _ = sited_view(every=2)
    rows = site_rows(sampled)
    # Each reporter records its first allocation, then one in two.
    assert [cells[2] for _, cells in rows] == ["128 KiB", "4 KiB", ""]
    assert rows[-1] == (
        "sampled",
        ("(sampled: one allocation in 2 recorded, bytes not scaled)", "", "", ""),
    )
    off = Ledger().snapshot(blocks=False)
    assert site_rows(off) == (
        ("off", ("sites are off: open_system(callsites=True) or MEMACTOR_CALLSITES=1", "", "", "")),
    )


def test_key_5_shows_the_sites_view(tmp_path: Path) -> None:
    app = MemactorApp(chart_hz=None, save_dir=tmp_path)
    view, line = sited_view()

    async def script(pilot: Pilot[None]) -> None:
        app.post(ViewUpdate(view, SOURCE, received_ns=10))
        await pilot.press("5")
        await pilot.pause()
        table = app.query_one("#sites-table", RowTable)
        assert table.row_keys[0] == f"{Path.cwd() / HERE}\0{line}\0cpu"
        assert table.get_row(table.row_keys[0])[2:] == ("256 KiB", "4")

    drive(app, script)


def test_a_narrow_sites_table_leaves_out_blocks_then_device() -> None:
    app = MemactorApp(chart_hz=None)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            for index, update in enumerate(updates(3)):
                app.post(with_sites(update, index))
            await pilot.press("5")
            await pilot.pause()
            table = app.query_one("#sites-table", RowTable)
            assert list(table.shown_columns) == ["site", "device", "in use"]
            assert table.get_row(table.row_keys[0])[3] == "1"  # left out, still kept
            await pilot.resize_terminal(72, 24)
            await pilot.pause()
            assert list(table.shown_columns) == ["site", "in use"]
            await pilot.resize_terminal(120, 24)
            await pilot.pause()
            assert list(table.shown_columns) == list(SITE_COLUMNS)

    asyncio.run(main())
