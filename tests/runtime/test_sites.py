"""Allocation sites as reporters record them: the test's own line, sampled or not, from
trio code, through a pool and from a worker thread; and how sites are turned on."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import trio

import memactor
from memactor.events import (
    CALLSITES_ENV,
    REQUESTED_TAG,
    SITE_TAG,
    Site,
    SiteTable,
    callsites_from_env,
    check_callsites,
    site_of,
)
from memactor.runtime import MemoryHub, SampledReporter, SitedReporter
from memactor.runtime._inbox import Inbox

HERE = __file__


def line_below() -> int:
    """The number of the line after the caller's."""
    return sys._getframe(1).f_lineno + 1


def sites_of(hub: MemoryHub) -> list[Site | None]:
    """The site each event collected from *hub* carries, in order."""
    assert hub.sites is not None
    return [hub.sites.site(site_of(event[9])) for event in _events(hub)]


def _events(hub: MemoryHub) -> list[tuple[Any, ...]]:
    return [event for batch in hub.collect().batches for event in batch.events]


def test_a_site_is_the_line_of_the_test_that_emitted() -> None:
    hub = MemoryHub(callsites=True)
    reporter = hub.reporter("pool")
    first = line_below()
    reporter.alloc(1, 100)
    second = line_below()
    reporter.acquire(2, 200, requested=150)
    reporter.resize(1, 100, 50)  # shrinking: no site
    third = line_below()
    reporter.resize(1, 50, 400)
    reporter.release(2, 200)
    reporter.free(1, 400)
    name = "test_a_site_is_the_line_of_the_test_that_emitted"
    assert sites_of(hub) == [
        Site(HERE, first, name),
        Site(HERE, second, name),
        None,
        Site(HERE, third, name),
        None,
        None,
    ]


def test_one_line_is_one_site_and_tags_keep_their_order() -> None:
    hub = MemoryHub(callsites=1)
    reporter = hub.reporter("pool")
    for block in range(3):
        reporter.alloc(block, 10, requested=5)
    events = _events(hub)
    assert hub.sites is not None
    assert len(hub.sites) == 1
    assert [event[9] for event in events] == [((REQUESTED_TAG, "5"), (SITE_TAG, "1"))] * 3


def test_sampling_tags_one_allocation_in_n() -> None:
    hub = MemoryHub(callsites=3)
    reporter = hub.reporter("pool")
    line = line_below()
    for block in range(7):
        reporter.alloc(block, 10)
    site = Site(HERE, line + 1, "test_sampling_tags_one_allocation_in_n")
    assert sites_of(hub) == [site, None, None, site, None, None, site]
    assert hub.sites is not None
    assert hub.sites.every == 3


def _lend_a(reporter: memactor.MemoryReporter, block: int) -> None:
    reporter.alloc(block, 10)


def _lend_b(reporter: memactor.MemoryReporter, block: int) -> None:
    reporter.alloc(block, 10)


@pytest.mark.parametrize("every", [1, 2])
def test_two_functions_calling_from_one_offset_keep_their_own_sites(every: int) -> None:
    # The same body in two functions: the emit's caller is at the same instruction
    # offset in two codes, so the reporters' fast path must tell the codes apart.
    assert _lend_a.__code__.co_code == _lend_b.__code__.co_code
    hub = MemoryHub(callsites=every)
    reporter = hub.reporter("pool")
    for block in range(4 * every):
        (_lend_a if block // every % 2 == 0 else _lend_b)(reporter, block)
    functions = [site.function if site else None for site in sites_of(hub)]
    tagged = ["_lend_a", "_lend_b", "_lend_a", "_lend_b"]
    assert functions == (tagged if every == 1 else [name for t in tagged for name in (t, None)])
    assert hub.sites is not None
    assert len(hub.sites) == 2


def test_the_table_rate_picks_the_reporter_class() -> None:
    reporter = SitedReporter("pool", Inbox(1))
    reporter.use_sites(SiteTable(5))
    assert type(reporter) is SampledReporter
    reporter.use_sites(SiteTable(1))
    assert type(reporter) is SitedReporter
    hub = MemoryHub(callsites=64)
    assert type(hub.reporter("pool")) is SampledReporter


def test_a_huge_rate_tags_the_first_allocation_only() -> None:
    hub = MemoryHub(callsites=10**12)
    reporter = hub.reporter("pool")
    line = line_below()
    for block in range(1000):
        reporter.alloc(block, 10, requested=5)
    events = _events(hub)
    assert hub.sites is not None
    assert hub.sites.site(site_of(events[0][9])) == Site(
        HERE, line + 1, "test_a_huge_rate_tags_the_first_allocation_only"
    )
    assert events[0][9] == ((REQUESTED_TAG, "5"), (SITE_TAG, "1"))
    assert [event[9] for event in events[1:]] == [((REQUESTED_TAG, "5"),)] * 999


async def test_pool_leases_from_two_lines_are_two_sites() -> None:
    # A pool's lend is called from memactor's own code: the position of that call says
    # nothing about the site, which is found by walking out each time.
    async with memactor.open_system(callsites=True) as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        first = line_below()
        one = pool.acquire_nowait((1000,), np.uint8)
        second = line_below()
        two = pool.acquire_nowait((1000,), np.uint8)
        snapshot = await system.metrics.snapshot()
        one.release()
        two.release()
    name = "test_pool_leases_from_two_lines_are_two_sites"
    assert sorted(block.site.line for block in snapshot.blocks if block.site) == [first, second]
    assert {block.site for block in snapshot.blocks} == {
        Site(HERE, first, name),
        Site(HERE, second, name),
    }


def test_sites_are_off_unless_asked_for() -> None:
    hub = MemoryHub()
    reporter = hub.reporter("pool")
    reporter.alloc(1, 10)
    assert hub.sites is None
    assert type(reporter) is memactor.MemoryReporter
    assert [event[9] for event in _events(hub)] == [()]


def test_a_frame_inside_memactor_is_never_a_site() -> None:
    table = SiteTable()
    line = line_below()
    assert table.tags(None, depth=1) == ((SITE_TAG, "1"),)
    assert table.site(1) == Site(HERE, line, "test_a_frame_inside_memactor_is_never_a_site")
    assert table.site(0) is None
    assert table.site(2) is None
    # Past memactor's frames (the hub's, here) and trio's, to the first outside: this.
    hub = MemoryHub(callsites=True)
    trio.run(_emit_from_a_task, hub)
    assert [site.function if site else None for site in sites_of(hub)] == ["_emit_from_a_task"]
    # With nothing but internal frames (a metrics actor's own task), no site at all.
    assert table.tags_at(None) == ()


async def _emit_from_a_task(hub: MemoryHub) -> None:
    hub.reporter("pool").alloc(1, 10)


async def test_a_pool_lease_points_at_the_test_not_at_the_pool() -> None:
    async with memactor.open_system(callsites=True) as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        line = line_below()
        async with pool.lease((1000,), np.uint8):
            held = await system.metrics.snapshot()
        again = line_below()
        lease = pool.acquire_nowait((1000,), np.uint8)  # a cache hit: an ACQUIRE
        hit = await system.metrics.snapshot()
        lease.release()
    name = "test_a_pool_lease_points_at_the_test_not_at_the_pool"
    assert [block.site for block in held.blocks] == [Site(HERE, line, name)]
    assert [block.site for block in hit.blocks] == [Site(HERE, again, name)]


async def test_a_thread_reporter_records_the_threads_line() -> None:
    async with memactor.open_system(callsites=True) as system:
        reporter = system.thread_reporter("worker")
        lines: list[int] = []

        def work() -> None:
            lines.append(line_below())
            reporter.alloc(1, 4096)
            lines.append(line_below())
            reporter.alloc(2, 100, requested=10)
            reporter.resize(1, 4096, 8192)  # growing: the whole block moves here

        await trio.to_thread.run_sync(work)
        snapshot = await system.metrics.snapshot()
    sites = {block.block: block.site for block in snapshot.blocks}
    name = "test_a_thread_reporter_records_the_threads_line.<locals>.work"
    assert sites == {1: Site(HERE, lines[1] + 1, name), 2: Site(HERE, lines[1], name)}
    assert [(u.bytes_in_use, u.blocks) for u in snapshot.site_usage] == [(8192, 1), (100, 1)]


async def test_open_system_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALLSITES_ENV, "4")
    async with memactor.open_system() as system:
        assert system.memory.sites is not None
        assert system.memory.sites.every == 4
        assert (await system.metrics.statistics()).callsites == 4
    async with memactor.open_system(callsites=False) as system:
        assert system.memory.sites is None
    monkeypatch.setenv(CALLSITES_ENV, "yes")
    with pytest.raises(ValueError, match=r"^MEMACTOR_CALLSITES must be 0, 1 or a sampling"):
        memactor.open_system()


def test_callsite_settings_are_checked() -> None:
    assert callsites_from_env({}) == 0
    assert callsites_from_env({CALLSITES_ENV: " 16 "}) == 16
    assert [check_callsites(v) for v in (True, False, 0, 1, 9)] == [1, 0, 0, 1, 9]
    for bad in (-1, 1.5, "1"):
        with pytest.raises(ValueError, match=r"^callsites must be True, False or a sampling"):
            check_callsites(bad)  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(ValueError, match=r"^every must be a positive int"):
        SiteTable(0)
    with pytest.raises(ValueError, match=r"^tag 'site' must be a decimal site id"):
        site_of(((SITE_TAG, "x"),))
