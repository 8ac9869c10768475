"""``memactor_run``: the markers in plain (sync) tests, and the plugin without pytest-trio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import RunInner

HELPERS = """
import pytest
import trio
import memactor

MiB = 1 << 20


async def hold(system, component, size, free=False):
    reporter = system.reporter(component, owner="worker")
    block = reporter.next_block()
    reporter.alloc(block, size)
    await trio.sleep(0)
    if free:
        reporter.free(block, size)
    return size
"""

PLAIN_TESTS = """
@pytest.mark.memactor_limit("2 MiB")
def test_within(memactor_run):
    assert memactor_run(hold, "decode", 2 * MiB, True) == 2 * MiB


@pytest.mark.memactor_limit("2 MiB")
def test_over(memactor_run):
    memactor_run(hold, "decode", 2 * MiB + 1, True)


@pytest.mark.memactor_no_leaks(warmup=1)
def test_warm_cache_is_not_a_leak(memactor_run):
    async def fill_then_balance(system):
        await hold(system, "cache", MiB)
        await system.metrics.snapshot()
        await hold(system, "decode", MiB, free=True)

    memactor_run(fill_then_balance)


@pytest.mark.memactor_no_leaks
def test_leak(memactor_run):
    memactor_run(hold, "decode", 3 * MiB)


def test_an_error_comes_out_as_itself(memactor_run):
    async def fail(system):
        await hold(system, "decode", MiB)
        raise KeyError("frame 7")

    with pytest.raises(KeyError, match="frame 7"):
        memactor_run(fail)


def test_after_the_tests_that_needed_trio():
    pass
"""


def test_memactor_run_lets_plain_tests_use_the_markers(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makepyfile(test_plain=HELPERS + PLAIN_TESTS)
    result = run_inner("-rA")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_over _*",
            "memactor_limit: the peak in use in total, 2.0 MiB (2,097,153 bytes), exceeds "
            "the limit of 2 MiB (2,097,152 bytes)",
            "*_ test_leak _*",
            "memactor_no_leaks: the test ended with 3 MiB (3,145,728 bytes) more in use "
            "than at the start; the tolerance is 0 B (0 bytes)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "PASSED test_plain.py::test_within",
            "PASSED test_plain.py::test_warm_cache_is_not_a_leak",
            "PASSED test_plain.py::test_an_error_comes_out_as_itself",
            "PASSED test_plain.py::test_after_the_tests_that_needed_trio",
        ]
    )


ASYNC_TESTS = """
@pytest.mark.memactor_limit("1 MiB")
@pytest.mark.trio
async def test_async_limit(memactor_system):
    await hold(memactor_system, "decode", 1)


@pytest.mark.trio
async def test_async_plain_fixture(memactor_system):
    await hold(memactor_system, "decode", 1)
"""

INSTALL = (
    "memactor_system is a trio fixture and needs pytest-trio, which is not installed "
    "(or was turned off with -p no:trio): pip install 'memactor[pytest]'"
)


def test_without_pytest_trio_an_async_test_gets_one_line_and_the_rest_run(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makepyfile(test_plain=HELPERS + ASYNC_TESTS + PLAIN_TESTS)
    # --strict-markers: the trio marker alone must not stop the module at collection.
    result = run_inner("-p", "no:trio", "--strict-markers", "-rA")
    result.assert_outcomes(passed=4, failed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "memactor: pytest-trio is missing, so memactor_system cannot run "
            "(memactor_run can): pip install 'memactor[pytest]'",
            "*_ ERROR at setup of test_async_limit _*",
            INSTALL,
            "*_ ERROR at setup of test_async_plain_fixture _*",
            INSTALL,
        ]
    )
    result.stdout.fnmatch_lines(["PASSED test_plain.py::test_after_the_tests_that_needed_trio"])
    assert "requested an async fixture" not in result.stdout.str()
    assert "AssertionError" not in result.stdout.str()


def test_with_pytest_trio_the_header_says_nothing(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makepyfile(test_plain=HELPERS + ASYNC_TESTS)
    result = run_inner("-rA")
    result.assert_outcomes(passed=2)
    assert "pytest-trio is missing" not in result.stdout.str()


def test_memactor_run_is_refused_where_it_cannot_work(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makepyfile(
        test_misuse=HELPERS
        + """
@pytest.mark.trio
async def test_in_an_async_test(memactor_run):
    pass


@pytest.mark.trio
async def test_both_fixtures(memactor_system, memactor_run):
    pass


def test_twice(memactor_run):
    memactor_run(hold, "decode", 1)
    memactor_run(hold, "decode", 1)


@pytest.mark.memactor_limit("1 MiB")
def test_never_called(memactor_run):
    pass


@pytest.mark.memactor_no_leaks
def test_marker_without_a_fixture():
    pass
"""
    )
    result = run_inner("-rA")
    result.assert_outcomes(failed=2, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_in_an_async_test _*",
            "memactor_run is for plain (def) tests: it starts its own trio run; "
            "an async test uses the memactor_system fixture",
            "*_ ERROR at setup of test_both_fixtures _*",
            "a test uses memactor_system or memactor_run, not both: *",
            "*_ ERROR at setup of test_marker_without_a_fixture _*",
            "@pytest.mark.memactor_no_leaks needs the memactor_system fixture (in an async "
            "trio test) or memactor_run (in a plain test): *",
            "*_ test_twice _*",
            "*RuntimeError: memactor_run runs one memory system per test, and this test ran "
            "one already; *",
            "*_ test_never_called _*",
            "the test's memactor markers had nothing to judge: it never called "
            "memactor_run(fn, ...)",
        ]
    )


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "pytest-sync.md"


def guide_example() -> str:
    blocks: list[str] = re.findall(r"```py\n(.*?)```", GUIDE.read_text(), flags=re.S)
    (example,) = [block for block in blocks if "memactor_run" in block]
    return example


def test_the_guide_example_passes_at_its_limit_and_fails_a_byte_under_it(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makepyfile(test_example=guide_example())
    run_inner().assert_outcomes(passed=1)
    tighter = guide_example().replace('memactor_limit("4 MiB"', "memactor_limit(4 * 2**20 - 1")
    pytester.makepyfile(test_example=tighter)
    result = run_inner()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["memactor_limit: the peak in use of 'pool' on cpu, 4 MiB *"])
