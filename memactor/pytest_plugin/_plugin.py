"""The pytest hooks and the ``memactor_system`` and ``memactor_run`` fixtures.

Either fixture opens a memory system for one test and leaves its record on the test item.
After the test's call (pytest-trio runs an async test and tears its trio fixtures down
inside it; ``memactor_run`` closes its system before it returns; either way the system is
closed and its ledger complete), the markers and the baseline judge
the ledger and fail the test with a message of their own. A test that failed by itself
is not judged again.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..actors import MemorySystem, read_process_memory
from ..events import format_size
from ..metrics import Snapshot, render_table
from ._baseline import BaselineError, Peaks, Tolerance, compare, load_baseline, save_baseline
from ._markers import MemoryLimit, NoLeaks, reserved_on_cpu
from ._record import RECORD, recorded_system
from ._run import SystemRunner

MARKERS = (
    "memactor_limit(peak, component=None, device=None): fail the test when its peak memory "
    "in use (of a component, on a device, or in total) exceeds peak (a size like '64 MiB'; "
    "equal to it passes; an unknown component or device fails, naming the known ones); "
    "needs the memactor_system or memactor_run fixture",
    "memactor_no_leaks(tolerance=0, component=None, warmup=0, process=False, verdict=False): "
    "fail the test "
    "when it ends with more memory in use than at the start (or at its snapshot number "
    "warmup), beyond tolerance; with process=True (or a size, the tolerance; default "
    "32 MiB) also when the process's memory grew more than the ledger explains "
    "(unattributed growth); with verdict=True also when the leak verdict flags a component "
    "(LEAK or SUSPECT); needs the memactor_system or memactor_run fixture",
)


@dataclass(slots=True)
class _Outcome:
    """What the summary table shows for one test."""

    nodeid: str
    end: Snapshot
    verdict: str
    unattributed_growth: int | None = None
    """How much the process grew beyond the ledger's reserved bytes over the test."""


@dataclass(slots=True)
class _Session:
    """The plugin's options and what it learnt over the session."""

    baseline_path: Path | None
    tolerance: Tolerance
    update: bool
    report: bool
    baseline: dict[str, Peaks] = field(default_factory=dict)
    recorded: dict[str, Peaks] = field(default_factory=dict)
    outcomes: list[_Outcome] = field(default_factory=list)


_SESSION = pytest.StashKey[_Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--memactor-*`` options."""
    group = parser.getgroup("memactor", "memactor memory checks")
    group.addoption(
        "--memactor-baseline",
        metavar="FILE",
        default=None,
        help="record each memactor test's peaks in FILE (JSON) on the first run; "
        "fail a test whose peak grew past --memactor-tolerance on later runs",
    )
    group.addoption(
        "--memactor-tolerance",
        metavar="SHARE_OR_SIZE",
        default="10%",
        help="how much a peak may grow past the baseline: '10%%' (default) or a size, '1 MiB'",
    )
    group.addoption(
        "--memactor-baseline-update",
        action="store_true",
        help="record the peaks of every test that passes in the baseline, instead of comparing",
    )
    group.addoption(
        "--memactor-callsites",
        metavar="N",
        type=int,
        default=None,
        help="record allocation sites in memactor_system (1: every allocation, N: one in N, "
        "0: none; default: the MEMACTOR_CALLSITES variable); failures then name the sites",
    )
    group.addoption(
        "--memactor-report",
        action="store_true",
        help="print a table of each memactor test's peaks and verdict at the end",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and read the options (a bad one is a usage error)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if not _has_pytest_trio(config):
        # So that a test marked for pytest-trio gets the one line below, not pytest's
        # unknown-marker error.
        config.addinivalue_line("markers", f"trio: {INSTALL_PYTEST_TRIO}")
    baseline = config.getoption("memactor_baseline")
    try:
        tolerance = Tolerance.parse(config.getoption("memactor_tolerance"))
        path = config.invocation_params.dir / baseline if baseline else None
        session = _Session(
            path,
            tolerance,
            update=config.getoption("memactor_baseline_update"),
            report=config.getoption("memactor_report"),
            baseline=load_baseline(path) if path else {},
        )
    except BaselineError as error:
        raise pytest.UsageError(f"memactor: {error}") from None
    if session.update and path is None:
        raise pytest.UsageError("memactor: --memactor-baseline-update needs --memactor-baseline")
    config.stash[_SESSION] = session


@pytest.fixture
async def memactor_system(request: pytest.FixtureRequest) -> AsyncIterator[MemorySystem]:
    """A memory system (``memactor.open_system()``) with its metrics actor, for one test.

    It is a trio fixture: the test must be a trio test (``trio_mode = true``, or
    ``@pytest.mark.trio``; pytest-trio runs both, ``pip install 'memactor[pytest]'``
    installs it). The system closes when the test ends (a cancelled or failed test
    included), after which the ``memactor_limit`` and ``memactor_no_leaks`` markers read
    its ledger. A plain test uses :func:`memactor_run` instead.
    """
    async with recorded_system(request.node) as system:
        yield system


INSTALL_PYTEST_TRIO = (
    "memactor_system is a trio fixture and needs pytest-trio, which is not installed "
    "(or was turned off with -p no:trio): pip install 'memactor[pytest]'"
)
"""The one line a test that uses ``memactor_system`` fails with when pytest-trio is missing."""


def _has_pytest_trio(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("trio")


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say at the top of the run, in one line, when pytest-trio is missing."""
    if _has_pytest_trio(config):
        return None
    return (
        "memactor: pytest-trio is missing, so memactor_system cannot run "
        "(memactor_run can): pip install 'memactor[pytest]'"
    )


@pytest.fixture
def memactor_run(request: pytest.FixtureRequest) -> SystemRunner:
    """For a plain (``def``) test: ``memactor_run(fn, *args)`` runs ``await fn(system,
    *args)`` under a fresh memory system with ``trio.run`` and returns its result.

    The markers judge that system as they judge ``memactor_system``'s; see
    :class:`~memactor.pytest_plugin.SystemRunner` for errors and the one-run rule. It
    needs trio, not pytest-trio.
    """
    return SystemRunner(request.node)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Refuse a memactor marker without a fixture, a fixture in the wrong kind of test,
    ``memactor_system`` without pytest-trio, and a marker with bad arguments; each with
    a message that says what to change."""
    fixtures = getattr(item, "fixturenames", ())
    uses_system = "memactor_system" in fixtures
    uses_run = "memactor_run" in fixtures
    for name in ("memactor_limit", "memactor_no_leaks"):
        if item.get_closest_marker(name) is not None and not (uses_system or uses_run):
            pytest.fail(
                f"@pytest.mark.{name} needs the memactor_system fixture (in an async trio "
                "test) or memactor_run (in a plain test): add one to the test's arguments "
                "and run the memory under test in it",
                pytrace=False,
            )
    if uses_system and uses_run:
        pytest.fail(
            "a test uses memactor_system or memactor_run, not both: memactor_system in an "
            "async trio test, memactor_run in a plain one",
            pytrace=False,
        )
    if uses_system and not _has_pytest_trio(item.config):
        pytest.fail(INSTALL_PYTEST_TRIO, pytrace=False)
    is_trio_test = item.get_closest_marker("trio") is not None
    if uses_system and not is_trio_test:
        pytest.fail(
            "memactor_system is a trio fixture: make the test 'async def' and mark it "
            "@pytest.mark.trio (or set trio_mode = true), or use memactor_run in a plain test",
            pytrace=False,
        )
    if uses_run and (is_trio_test or inspect.iscoroutinefunction(getattr(item, "obj", None))):
        pytest.fail(
            "memactor_run is for plain (def) tests: it starts its own trio run; "
            "an async test uses the memactor_system fixture",
            pytrace=False,
        )
    try:
        for mark in item.iter_markers("memactor_limit"):
            MemoryLimit.from_mark(mark)
        for mark in item.iter_markers("memactor_no_leaks"):
            NoLeaks.from_mark(mark)
    except (TypeError, ValueError) as error:
        pytest.fail(f"bad memactor marker: {error}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Judge the test's ledger by its markers and the baseline once the test passed."""
    session = item.config.stash[_SESSION]
    try:
        yield
    except BaseException as error:
        record = item.stash.get(RECORD, None)
        if record is not None:
            # pytest.skip() inside the test ends its call with an exception too.
            verdict = "failed"
            if isinstance(error, pytest.skip.Exception):
                verdict = "skipped"
            elif isinstance(error, pytest.xfail.Exception) or item.get_closest_marker("xfail"):
                verdict = "xfailed"
            session.outcomes.append(_Outcome(item.nodeid, record.system.ledger.snapshot(), verdict))
        raise
    record = item.stash.get(RECORD, None)
    if record is None:
        if "memactor_run" in getattr(item, "fixturenames", ()) and _has_memactor_marker(item):
            pytest.fail(
                "the test's memactor markers had nothing to judge: it never called "
                "memactor_run(fn, ...)",
                pytrace=False,
            )
        return
    end = record.system.ledger.snapshot("end")
    readings = [*record.readings, read_process_memory(devices=False)]
    limits = [MemoryLimit.from_mark(m) for m in item.iter_markers("memactor_limit")]
    no_leaks = [NoLeaks.from_mark(m) for m in item.iter_markers("memactor_no_leaks")]
    over = [message for message in (m.judge(end) for m in limits) if message]
    leaked = [message for message in (m.judge(record.taken, end) for m in no_leaks) if message]
    outside = [m.judge_process(record.taken, end, readings) for m in no_leaks]
    unattributed = [message for message in outside if message]
    failures = over + leaked + unattributed
    verdict = ", ".join(
        v
        for v, found in (("over limit", over), ("leak", leaked), ("unattributed", unattributed))
        if found
    )
    verdict = verdict or "ok"
    if not failures and session.baseline_path is not None:
        grown = _against_baseline(session, item.nodeid, Peaks.of(end))
        if grown is not None:
            verdict = "grew"
            failures.append(grown)
    growth = readings[-1].host_bytes - readings[0].host_bytes - reserved_on_cpu(end)
    session.outcomes.append(_Outcome(item.nodeid, end, verdict, growth))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def _has_memactor_marker(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(n) for n in ("memactor_limit", "memactor_no_leaks"))


def _against_baseline(session: _Session, nodeid: str, peaks: Peaks) -> str | None:
    before = session.baseline.get(nodeid)
    if before is None or session.update:
        session.recorded[nodeid] = peaks
        return None
    table = compare(before, peaks, session.tolerance)
    if table is None:
        return None
    return (
        f"memactor baseline: peak memory in use grew past the tolerance of "
        f"{session.tolerance} ({session.baseline_path})\n\n{table}\n\n"
        "If the growth is intended, record the new peaks with --memactor-baseline-update "
        "(or delete the baseline file)."
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the baseline when tests were recorded in it."""
    state = session.config.stash.get(_SESSION, None)
    if state is None or state.baseline_path is None or not state.recorded:
        return
    save_baseline(state.baseline_path, {**state.baseline, **state.recorded})


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """With ``--memactor-report``: each memactor test's peaks, what it left, its verdict."""
    state = config.stash.get(_SESSION, None)
    if state is None:
        return
    if state.recorded and state.baseline_path is not None:
        terminalreporter.write_line(
            f"memactor: recorded the peaks of {len(state.recorded)} "
            f"test{'' if len(state.recorded) == 1 else 's'} in {state.baseline_path}"
        )
    if not state.report:
        return
    terminalreporter.section("memactor memory report")
    if not state.outcomes:
        terminalreporter.write_line("no test used the memactor_system fixture")
        return
    rows = [
        [
            o.nodeid,
            format_size(o.end.totals.peak_bytes_in_use),
            format_size(o.end.totals.peak_bytes_reserved),
            format_size(o.end.totals.bytes_in_use),
            o.verdict,
        ]
        for o in state.outcomes
    ]
    terminalreporter.write_line(
        render_table(
            ["test", "peak in use", "peak reserved", "in use at end", "verdict"], rows, right="123"
        )
    )
    outside = [o for o in state.outcomes if o.unattributed_growth is not None]
    if outside:
        terminalreporter.write_line("")
        terminalreporter.write_line(
            "memory outside memactor (the process's growth over each test beyond the "
            "reserved bytes it reported):"
        )
        terminalreporter.write_line(
            render_table(
                ["test", "unattributed growth"],
                [[o.nodeid, format_size(o.unattributed_growth or 0, signed=True)] for o in outside],
                right="1",
            )
        )
