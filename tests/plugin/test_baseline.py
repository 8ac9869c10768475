"""The baseline: the first run records each test's peaks, later runs compare them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memactor import MemactorError
from memactor.pytest_plugin._baseline import BaselineError, Tolerance

from .conftest import RunInner

TESTS = """
import os

import pytest


def hold(system, component, size, free=True):
    reporter = system.reporter(component, owner="worker")
    block = reporter.next_block()
    reporter.alloc(block, size)
    if free:
        reporter.free(block, size)


async def test_decode(memactor_system):
    hold(memactor_system, "decode", int(os.environ["DECODE_BYTES"]))
    hold(memactor_system, "cache", 1000)


async def test_plain():
    pass
"""

NEW_TEST = """

async def test_added_later(memactor_system):
    hold(memactor_system, "index", 4096)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_io=TESTS)
    monkeypatch.setenv("DECODE_BYTES", "10000")
    return pytester.path / "memory.json"


def entries(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    assert data["memactor_baseline"] == 1
    tests: dict[str, object] = data["tests"]
    return tests


def test_first_run_records_later_runs_compare(
    project: Path, run_inner: RunInner, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_inner("--memactor-baseline", "memory.json")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["memactor: recorded the peaks of 1 test in *memory.json"])
    assert entries(project) == {
        "test_io.py::test_decode": {
            "total": 10000,
            "components": {"cache@cpu": 1000, "decode@cpu": 10000},
        }
    }

    # 10% more is within the default tolerance; the file stays as it was.
    monkeypatch.setenv("DECODE_BYTES", "11000")
    before = project.read_text()
    run_inner("--memactor-baseline", "memory.json").assert_outcomes(passed=2)
    assert project.read_text() == before

    # More than that fails, with the numbers, and records nothing.
    monkeypatch.setenv("DECODE_BYTES", "12000")
    grown = run_inner("--memactor-baseline", "memory.json")
    grown.assert_outcomes(passed=1, failed=1)
    grown.stdout.fnmatch_lines(
        [
            "memactor baseline: peak memory in use grew past the tolerance of 10% (*memory.json)",
            "",
            "peak in use  baseline bytes  now bytes  growth bytes  growth",
            "-----------  --------------  ---------  ------------  ------",
            "total                10,000     12,000        +2,000    +20%",
            "decode@cpu           10,000     12,000        +2,000    +20%",
            "",
            "If the growth is intended, record the new peaks with --memactor-baseline-update "
            "(or delete the baseline file).",
        ]
    )
    assert project.read_text() == before

    # A looser tolerance, as a share or as a size, lets it pass.
    for tolerance in ("25%", "2000"):
        result = run_inner("--memactor-baseline", "memory.json", "--memactor-tolerance", tolerance)
        result.assert_outcomes(passed=2)

    # A new test is added; the old entries stay.
    pytester.makepyfile(test_io=TESTS + NEW_TEST)
    monkeypatch.setenv("DECODE_BYTES", "10000")
    run_inner("--memactor-baseline", "memory.json").assert_outcomes(passed=3)
    assert set(entries(project)) == {"test_io.py::test_decode", "test_io.py::test_added_later"}
    assert not list(project.parent.glob(".memory.json.partial"))

    # --memactor-baseline-update records the grown peaks instead of failing on them.
    monkeypatch.setenv("DECODE_BYTES", "50000")
    update = run_inner("--memactor-baseline", "memory.json", "--memactor-baseline-update")
    update.assert_outcomes(passed=3)
    recorded = entries(project)["test_io.py::test_decode"]
    assert recorded == {"total": 50000, "components": {"cache@cpu": 1000, "decode@cpu": 50000}}
    run_inner("--memactor-baseline", "memory.json").assert_outcomes(passed=3)


def test_a_damaged_baseline_or_a_bad_tolerance_is_a_usage_error(
    project: Path, run_inner: RunInner
) -> None:
    project.write_text('{"tests": {}}')
    result = run_inner("--memactor-baseline", "memory.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*memactor: cannot read the memactor baseline *memory.json: not a memactor baseline*"]
    )
    project.write_text("{trunc")
    result = run_inner("--memactor-baseline", "memory.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot read the memactor baseline *memory.json: Expecting*"])
    result = run_inner("--memactor-tolerance", "lots%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*memactor: cannot read tolerance 'lots%'*"])
    result = run_inner("--memactor-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--memactor-baseline-update needs --memactor-baseline*"])


def test_report_prints_a_summary_of_each_memactor_test(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        test_summary="""
import pytest


@pytest.mark.memactor_no_leaks
async def test_leaks(memactor_system):
    memactor_system.reporter("cache", owner="indexer").alloc(1, 2048)


async def test_clean(memactor_system):
    reporter = memactor_system.reporter("decode")
    reporter.alloc(1, 4096)
    reporter.free(1, 4096)


async def test_fails(memactor_system):
    raise RuntimeError("boom")


async def test_without_memory():
    pass
"""
    )
    result = run_inner("--memactor-report")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*= memactor memory report =*",
            "test                         peak in use  peak reserved  in use at end  verdict",
            "---------------------------  -----------  -------------  -------------  -------",
            "test_summary.py::test_leaks        2 KiB          2 KiB          2 KiB  leak",
            "test_summary.py::test_clean        4 KiB          4 KiB            0 B  ok",
            "test_summary.py::test_fails          0 B            0 B            0 B  failed",
        ]
    )


@pytest.mark.parametrize(
    ("text", "before", "now", "allowed"),
    [
        ("10%", 1000, 1100, True),
        ("10%", 1000, 1101, False),
        ("0%", 0, 1, False),
        ("0.5%", 1000, 1005, True),
        ("1 KiB", 1000, 2024, True),
        ("1 KiB", 1000, 2025, False),
        ("0", 5, 5, True),
    ],
)
def test_tolerance_as_a_share_or_a_size(text: str, before: int, now: int, allowed: bool) -> None:
    assert Tolerance.parse(text).allows(before, now) is allowed


@pytest.mark.parametrize("text", ["-5%", "ten%", "5 parsecs"])
def test_a_bad_tolerance_is_a_memactor_error(text: str) -> None:
    with pytest.raises(MemactorError, match=r"^(cannot read tolerance|tolerance: )") as raised:
        Tolerance.parse(text)
    assert isinstance(raised.value, BaselineError)
    assert isinstance(raised.value, ValueError)


def test_summary_calls_skipped_and_xfailed_tests_so(
    pytester: pytest.Pytester, run_inner: RunInner
) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        test_skips="""
import pytest


async def test_skips(memactor_system):
    pytest.skip("not today")


@pytest.mark.xfail(reason="known")
async def test_expected_to_fail(memactor_system):
    raise RuntimeError("known")


async def test_gives_up(memactor_system):
    pytest.xfail("not yet")
"""
    )
    result = run_inner("--memactor-report")
    result.assert_outcomes(skipped=1, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "test_skips.py::test_skips * 0 B * skipped",
            "test_skips.py::test_expected_to_fail * 0 B * xfailed",
            "test_skips.py::test_gives_up * 0 B * xfailed",
        ]
    )
