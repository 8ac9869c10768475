"""The markers, run by pytester: passing and failing tests, and what a failure says."""

from __future__ import annotations

import pytest

from .conftest import RunInner

HELPERS = """
import numpy as np
import pytest
import memactor

MiB = 1 << 20


def hold(system, component, size, owner="worker", device="cpu", free=False):
    reporter = system.reporter(component, owner=owner, device=device)
    block = reporter.next_block()
    reporter.alloc(block, size)
    if free:
        reporter.free(block, size)
"""


def run(pytester: pytest.Pytester, run_inner: RunInner, source: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_memory=HELPERS + source)
    return run_inner("-rA")


def test_memactor_limit_fails_a_test_whose_peak_exceeds_it(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    result = run(
        pytester,
        run_inner,
        """
@pytest.mark.memactor_limit(peak="4 MiB")
async def test_under(memactor_system):
    hold(memactor_system, "cache", 3 * MiB, free=True)
    hold(memactor_system, "decode", 3 * MiB, free=True)


@pytest.mark.memactor_limit(peak="4 MiB")
async def test_over_total(memactor_system):
    hold(memactor_system, "cache", 3 * MiB, owner="indexer")
    hold(memactor_system, "decode", 2 * MiB, owner="decoder")


@pytest.mark.memactor_limit("1 MiB", component="decode")
async def test_at_component_limit(memactor_system):
    hold(memactor_system, "decode", 1 * MiB, owner="decoder", free=True)
    hold(memactor_system, "cache", 8 * MiB, free=True)


@pytest.mark.memactor_limit("1 MiB", component="decode")
async def test_a_byte_over_component_limit(memactor_system):
    hold(memactor_system, "decode", 1 * MiB + 1, owner="decoder", free=True)
    hold(memactor_system, "cache", 8 * MiB, free=True)


@pytest.mark.memactor_limit("1 MiB", component="gpu", device="cuda:0")
async def test_other_device_does_not_count(memactor_system):
    hold(memactor_system, "gpu", 8 * MiB, device="cpu", free=True)
    hold(memactor_system, "gpu", MiB - 1, device="cuda:0", free=True)


@pytest.mark.memactor_limit("1 KiB", device="cuda:0")
async def test_device_total(memactor_system):
    hold(memactor_system, "gpu", 600, device="cuda:0")
    hold(memactor_system, "upload", 600, device="cuda:0")


@pytest.mark.memactor_limit("3 KiB")
async def test_pool_cache_is_not_in_use(memactor_system):
    pool = memactor.BufferPool()
    await memactor_system.spawn(pool, name="pool")
    for _ in range(4):
        async with pool.lease((1024,), np.uint8):
            pass
        async with pool.lease((2048,), np.uint8):
            pass
    snapshot = await memactor_system.metrics.snapshot()
    assert snapshot.totals.peak_bytes_reserved == 3072


@pytest.mark.memactor_limit("1 MiB", component="decoder")
async def test_unknown_component(memactor_system):
    hold(memactor_system, "decode", 1, free=True)


@pytest.mark.memactor_limit("1 MiB", device="cuda:1")
async def test_unknown_device(memactor_system):
    hold(memactor_system, "gpu", 1, device="cuda:0", free=True)
""",
    )
    result.assert_outcomes(passed=4, failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ test_over_total _*",
            "memactor_limit: the peak in use in total, 5 MiB (5,242,880 bytes), exceeds "
            "the limit of 4 MiB (4,194,304 bytes)",
            "",
            "component  device  peak in use  live blocks at end",
            "---------  ------  -----------  ------------------",
            "cache      cpu           3 MiB                   1",
            "decode     cpu           2 MiB                   1",
            "",
            "owner    peak in use",
            "-------  -----------",
            "indexer        3 MiB",
            "decoder        2 MiB",
            "*_ test_a_byte_over_component_limit _*",
            "memactor_limit: the peak in use of 'decode' on cpu, 1.0 MiB (1,048,577 bytes), "
            "exceeds the limit of 1 MiB (1,048,576 bytes)",
            "",
            "component  device  peak in use  live blocks at end",
            "---------  ------  -----------  ------------------",
            "decode     cpu         1.0 MiB                   0",
            "",
            "*_ test_device_total _*",
            "memactor_limit: the peak in use on cuda:0, 1.2 KiB (1,200 bytes), exceeds "
            "the limit of 1 KiB (1,024 bytes)",
            "*_ test_unknown_component _*",
            "memactor_limit: unknown component 'decoder' in the snapshot (components: decode@cpu)",
            "*_ test_unknown_device _*",
            "memactor_limit: no device 'cuda:1' in the snapshot (devices: cuda:0)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "PASSED test_memory.py::test_under",
            "PASSED test_memory.py::test_at_component_limit",
            "PASSED test_memory.py::test_other_device_does_not_count",
            "PASSED test_memory.py::test_pool_cache_is_not_in_use",
        ]
    )


def test_memactor_no_leaks_fails_a_test_that_ends_holding_more(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    result = run(
        pytester,
        run_inner,
        """
@pytest.mark.memactor_no_leaks
async def test_gives_everything_back(memactor_system):
    hold(memactor_system, "decode", MiB, free=True)


@pytest.mark.memactor_no_leaks(tolerance="1 KiB")
async def test_leak(memactor_system):
    for _ in range(3):
        hold(memactor_system, "cache", 2048, owner="indexer")
    hold(memactor_system, "decode", 100, owner="decoder")
    hold(memactor_system, "decode", 100, owner="decoder", free=True)


@pytest.mark.memactor_no_leaks(tolerance="1 KiB")
async def test_within_tolerance(memactor_system):
    hold(memactor_system, "cache", 1024, owner="indexer")


@pytest.mark.memactor_no_leaks(component="decode")
async def test_another_component_leaks(memactor_system):
    hold(memactor_system, "cache", 1024, owner="indexer")


@pytest.mark.memactor_no_leaks(component="cache")
async def test_the_component_leaks(memactor_system):
    hold(memactor_system, "cache", 1024, owner="indexer")
    hold(memactor_system, "decode", 4096, owner="decoder")


@pytest.mark.memactor_no_leaks
async def test_pool_cache_is_not_a_leak(memactor_system):
    pool = memactor.BufferPool()
    await memactor_system.spawn(pool, name="pool")
    async with pool.lease((1024,), np.uint8) as array:
        array[:] = 1
    snapshot = await memactor_system.metrics.snapshot()
    assert snapshot.component("pool").bytes_reserved == 1024
    assert snapshot.component("pool").bytes_in_use == 0


@pytest.mark.memactor_no_leaks(warmup=1)
async def test_warm_up_is_not_a_leak(memactor_system):
    hold(memactor_system, "table", 4096, owner="lazy")
    await memactor_system.metrics.snapshot("warm")
    hold(memactor_system, "work", 4096, free=True)


@pytest.mark.memactor_no_leaks(warmup=1)
async def test_leak_after_warm_up(memactor_system):
    hold(memactor_system, "table", 4096, owner="lazy")
    await memactor_system.metrics.snapshot("warm")
    hold(memactor_system, "work", 512, owner="worker")


@pytest.mark.memactor_no_leaks(warmup=2)
async def test_too_few_snapshots(memactor_system):
    await memactor_system.metrics.snapshot("warm")


@pytest.mark.memactor_no_leaks
async def test_failing_by_itself_is_not_judged_again(memactor_system):
    hold(memactor_system, "cache", 1024)
    assert 1 + 1 == 3
""",
    )
    result.assert_outcomes(passed=5, failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ test_leak _*",
            "memactor_no_leaks: the test ended with 6.1 KiB (6,244 bytes) more in use than "
            "at the start; the tolerance is 1 KiB (1,024 bytes)",
            "",
            "component  owner    bytes  live blocks",
            "---------  -------  -----  -----------",
            "cache      indexer  6 KiB            3",
            "decode     decoder  100 B            1",
            "*_ test_the_component_leaks _*",
            "memactor_no_leaks: component 'cache' ended with 1 KiB (1,024 bytes) more in use "
            "than at the start; the tolerance is 0 B (0 bytes)",
            "",
            "component  owner    bytes  live blocks",
            "---------  -------  -----  -----------",
            "cache      indexer  1 KiB            1",
            "*_ test_leak_after_warm_up _*",
            "memactor_no_leaks: the test ended with 512 B (512 bytes) more in use than after "
            "warm-up (snapshot 1); the tolerance is 0 B (0 bytes)",
            "",
            "component  owner   bytes  live blocks",
            "---------  ------  -----  -----------",
            "work       worker  512 B            1",
            "*_ test_too_few_snapshots _*",
            "memactor_no_leaks(warmup=2): the test took 1 snapshot, but warm-up ends at its "
            "snapshot number 2 (take one with 'await memactor_system.metrics.snapshot()')",
            "*_ test_failing_by_itself_is_not_judged_again _*",
            "*assert (1 + 1) == 3",
        ]
    )
    # The other component's rows never show, and a failing test gets no memactor verdict.
    assert "decoder  4 KiB" not in result.stdout.str()
    verdicts = [line for line in result.stdout.lines if line.startswith("memactor_no_leaks:")]
    assert len(verdicts) == 3


def test_markers_need_the_fixture_a_trio_test_and_good_arguments(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    # No trio_mode here: a user's suite that marks its trio tests one by one.
    pytester.makepyfile(
        test_usage=HELPERS
        + """
@pytest.mark.trio
@pytest.mark.memactor_no_leaks
async def test_marked_trio_works(memactor_system):
    hold(memactor_system, "decode", 10, free=True)


@pytest.mark.trio
@pytest.mark.memactor_no_leaks
async def test_marked_trio_leaks(memactor_system):
    hold(memactor_system, "decode", 10, owner="decoder")


@pytest.mark.memactor_limit("1 MiB")
async def test_without_the_fixture():
    pass


def test_fixture_in_a_sync_test(memactor_system):
    pass


@pytest.mark.trio
@pytest.mark.memactor_limit(peak="lots")
async def test_bad_size(memactor_system):
    pass


@pytest.mark.trio
@pytest.mark.memactor_no_leaks(warmup=-1)
async def test_bad_warmup(memactor_system):
    pass


@pytest.mark.trio
@pytest.mark.memactor_limit()
async def test_missing_peak(memactor_system):
    pass
"""
    )
    result = run_inner()
    result.assert_outcomes(passed=1, failed=1, errors=5)
    result.stdout.fnmatch_lines_random(
        [
            "*memactor_no_leaks: the test ended with 10 B (10 bytes) more in use*",
            "*@pytest.mark.memactor_limit needs the memactor_system fixture (in an async "
            "trio test) or memactor_run (in a plain test): add one to the test's arguments*",
            "*memactor_system is a trio fixture: make the test 'async def' and mark it "
            "@pytest.mark.trio (or set trio_mode = true)*",
            "*bad memactor marker: memactor_limit(peak=...): cannot read 'lots' as a size*",
            "*bad memactor marker: memactor_no_leaks(warmup=...) is a number of snapshots "
            "(0 or more), not -1",
            "*bad memactor marker: *missing 1 required positional argument: 'peak'",
        ]
    )
