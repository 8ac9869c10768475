"""``memactor_no_leaks(process=...)``: memory the process holds that nobody reported."""

from __future__ import annotations

import re

import pytest

from .conftest import RunInner

SOURCE = """
import numpy as np
import pytest

MiB = 1 << 20
KEPT = []
CACHE = {}


def lookup_table():
    # Built on the first call and kept: a cache, not a leak.
    if "table" not in CACHE:
        CACHE["table"] = np.ones(48 * MiB // 8)
    return CACHE["table"]


@pytest.mark.memactor_no_leaks(process=True)
async def test_keeps_untracked_arrays(memactor_system):
    # 100 MB that nobody reports, in arrays above glibc's largest mmap threshold
    # (32 MiB): fresh pages, whatever the heap kept from earlier tests.
    for _ in range(2):
        KEPT.append(np.ones(50 * 10**6 // 8))


@pytest.mark.memactor_no_leaks(process=True)
async def test_untracked_but_freed(memactor_system):
    KEPT.append(np.ones(10 * 10**6 // 8))
    KEPT.pop()


@pytest.mark.memactor_no_leaks(warmup=1, process=True)
async def test_only_warms_a_cache(memactor_system):
    reporter = memactor_system.reporter("work", owner="worker")
    for round in range(4):
        table = lookup_table()
        block = reporter.next_block()
        reporter.alloc(block, 4 * MiB)
        scratch = np.ones(4 * MiB // 8) + table[: 4 * MiB // 8]
        del scratch
        reporter.free(block, 4 * MiB)
        if round == 0:
            await memactor_system.metrics.snapshot("warm")


@pytest.mark.memactor_no_leaks(process="1 GiB")
async def test_a_larger_process_tolerance(memactor_system):
    KEPT.append(np.ones(40 * MiB // 8))
"""


def test_untracked_growth_fails_and_a_warmed_cache_passes(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_outside=SOURCE)
    result = run_inner("-rA", "--memactor-report")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*memactor_no_leaks(process=...): unattributed growth of * MiB (*) since the "
            "start: the process (USS) grew by * MiB (*) while the ledger's reserved bytes "
            "grew by 0 B (0 bytes); the tolerance is 32 MiB (33,554,432 bytes). This memory "
            "is outside memactor: nothing reported it*",
        ]
    )
    out = result.stdout.str()
    assert "FAILED test_outside.py::test_keeps_untracked_arrays" in out
    found = re.search(r"unattributed growth of [^(]+\(([\d,]+) bytes\)", out)
    assert found is not None
    assert int(found[1].replace(",", "")) >= 90 * 10**6  # most of the 100 MB kept
    result.stdout.fnmatch_lines(
        [
            "memory outside memactor (the process's growth over each test beyond the "
            "reserved bytes it reported):",
            "test *unattributed growth",
            "*test_outside.py::test_keeps_untracked_arrays *+* MiB",
        ]
    )


def test_a_bad_process_argument_fails_the_test_at_setup(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.memactor_no_leaks(process="lots")
async def test_bad(memactor_system):
    pass
"""
    )
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad memactor marker: memactor_no_leaks(process=...): *"])
