"""The compiled emits against the pure-Python reference: the same tuples, the same calls
to the clock and the numbering in the same order, the same batching, drops, flushes,
put-backs and errors after close.

Each test feeds a compiled reporter (:class:`MemoryReporter` where ``_emit`` loads) and
a pure-Python one (:data:`PyMemoryReporter`) the same calls, with clocks and numberings
of the same values, and compares everything observable. Under ``MEMACTOR_PURE_PYTHON=1``
both are the reference, and the tests still check the reporter's behaviour.
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from memactor._native import load, pure_python_asked
from memactor.events import REQUESTED_TAG, EventKind
from memactor.runtime import MemoryHub, NullReporter, SampledReporter, SitedReporter
from memactor.runtime._emits import PyEmits
from memactor.runtime._inbox import EventBatch, Inbox
from memactor.runtime._reporter import MemoryReporter, PyMemoryReporter

compiled = load("_emit")
Kind = type[MemoryReporter]
BOTH: list[Kind] = [MemoryReporter, PyMemoryReporter]


def test_the_compiled_core_is_the_reporters_base_unless_pure_python_is_asked() -> None:
    if pure_python_asked():
        assert compiled is None
        assert MemoryReporter.__mro__[1] is PyEmits
        assert PyMemoryReporter is MemoryReporter
    else:
        assert compiled is not None, "the _emit extension did not build"
        assert MemoryReporter.__mro__[1] is compiled.EmitCore
        assert PyMemoryReporter.__mro__[1] is PyEmits
        assert compiled.REQUESTED_TAG == REQUESTED_TAG
    for kind in (NullReporter, SitedReporter, SampledReporter):
        assert issubclass(kind, MemoryReporter)


def test_the_emits_keep_their_signatures_and_docstrings() -> None:
    import inspect

    for name in ("alloc", "free", "acquire", "release", "resize", "transfer"):
        compiled_emit = getattr(MemoryReporter, name)
        reference = getattr(PyEmits, name)
        assert inspect.getdoc(compiled_emit) == inspect.getdoc(reference)
        names = list(inspect.signature(compiled_emit).parameters)
        assert names == list(inspect.signature(reference).parameters)


# -- one stream of emits, both ways --------------------------------------------------------


class Log:
    """Records the order of the calls an emit makes into user code."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._clock = itertools.count(1_000)
        self._seq = itertools.count(1)

    def clock(self) -> int:
        self.calls.append("clock")
        return next(self._clock)

    def seq(self) -> int:
        self.calls.append("seq")
        return next(self._seq)


class Loud:
    """A value whose truth and text are logged (and may fail): passed where an emit
    takes a device or a requested size, which emits append as they are."""

    def __init__(self, log: Log, truth: bool, fail: str = "") -> None:
        self.log, self.truth, self.fail = log, truth, fail

    def __bool__(self) -> bool:
        self.log.calls.append("bool")
        if self.fail == "bool":
            raise ZeroDivisionError("no truth here")
        return self.truth

    def __str__(self) -> str:
        self.log.calls.append("str")
        if self.fail == "str":
            raise ZeroDivisionError("no text here")
        return "loud"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loud) and (self.truth, self.fail) == (other.truth, other.fail)

    __hash__ = None  # type: ignore[assignment]  # compared, never a key


ODD_VALUES: list[Any] = [
    0,
    -1,
    7,
    2**70,
    np.int64(12),
    np.uint32(5),
    1.5,
    "seven",
    None,
    True,
    (1, 2),
]
DEVICES: list[Any] = [None, "", "cpu", "cuda:1", "gpu", 0, np.int64(0), np.int64(2)]
OWNERS: list[Any] = [None, "", "decoder", 5, np.int64(3)]
REQUESTED: list[Any] = [None, 100, np.int64(64), -1, "abc", 2**65]

values = st.sampled_from(ODD_VALUES)
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


@st.composite
def emit_calls(draw: st.DrawFn) -> Call:
    """One emit with every argument drawn, passed positionally or by keyword."""
    kind = draw(st.sampled_from(["alloc", "acquire", "free", "release", "resize", "transfer"]))
    if kind in ("alloc", "acquire"):
        names = ["block", "size", "owner", "device", "requested"]
        pool = [values, values, st.sampled_from(OWNERS), st.sampled_from(DEVICES),
                st.sampled_from(REQUESTED)]  # fmt: skip
        required = 2
    elif kind in ("free", "release"):
        names, required = ["block", "size", "device"], 2
        pool = [values, values, st.sampled_from(DEVICES)]
    elif kind == "resize":
        names = ["block", "old_size", "size", "device"]
        pool, required = [values, values, values, st.sampled_from(DEVICES)], 3
    else:
        names = ["size", "src", "dst", "block"]
        pool = [values, st.sampled_from(DEVICES), st.sampled_from(DEVICES), values]
        required = 3
    given_count = draw(st.integers(required, len(names)))
    positional = draw(st.integers(0, given_count))
    arguments = [draw(strategy) for strategy in pool[:given_count]]
    args = tuple(arguments[:positional])
    kwargs = dict(zip(names[positional:given_count], arguments[positional:], strict=True))
    return kind, args, kwargs


TAGS: list[Any] = [(), ((REQUESTED_TAG, "5"),), (("site", "3"),), "not tags", None]


@st.composite
def lend_calls(draw: st.DrawFn) -> Call:
    """One call of ``_lend``, the sited reporters' way into the compiled emits."""
    kind = draw(st.sampled_from([int(EventKind.ALLOC), int(EventKind.ACQUIRE), 9]))
    args = (kind, draw(values), draw(values), draw(st.sampled_from(OWNERS)),
            draw(st.sampled_from(DEVICES)), draw(st.sampled_from(TAGS)))  # fmt: skip
    return "_lend", args, {}


operations = st.one_of(
    emit_calls(),
    lend_calls(),
    st.sampled_from([(name, (), {}) for name in ("flush_nowait", "take", "round", "close")]),
)


def observe(
    kind: Kind, calls: list[Call], *, capacity: int, batch_size: int, lossy: bool
) -> list[Any]:
    """Everything observable of *calls* made on a fresh reporter of *kind*."""
    log = Log()
    inbox = Inbox(capacity)
    reporter = kind(
        "pool",
        inbox,
        owner="owner",
        device="cuda:0",
        lossy=lossy,
        batch_size=batch_size,
        clock=log.clock,
        seq=log.seq,
    )
    seen: list[Any] = []
    for name, args, kwargs in calls:
        try:
            if name == "take":
                result: Any = reporter.take()
            elif name == "round":
                result = inbox.take_all()
            else:
                result = getattr(reporter, name)(*args, **kwargs)
        except Exception as error:  # every error is compared
            result = (type(error), str(error))
        seen.append((name, exact(result), reporter.pending, reporter.dropped, log.calls[:]))
        log.calls.clear()
    seen.append(exact(inbox.take_all()))
    return seen


def exact(value: Any) -> Any:
    """*value* with the type of every part beside it: ``1`` and ``np.int64(1)`` differ. A
    compiled ``Batch`` counts as the list of the tuples it reads as."""
    if isinstance(value, EventBatch):
        return ("batch", exact(value.events), value.dropped)
    if compiled is not None and type(value) is compiled.Batch:
        value = list(value)
    if isinstance(value, (list, tuple)):
        return (type(value), [exact(item) for item in value])
    return (type(value), value)


@given(
    calls=st.lists(operations, max_size=60),
    capacity=st.integers(1, 3),
    batch_size=st.integers(1, 5),
    lossy=st.booleans(),
)
def test_random_streams_of_emits_give_identical_batches(
    calls: list[Call], capacity: int, batch_size: int, lossy: bool
) -> None:
    compiled_seen, reference_seen = (
        observe(kind, calls, capacity=capacity, batch_size=batch_size, lossy=lossy) for kind in BOTH
    )
    assert compiled_seen == reference_seen


@pytest.mark.parametrize("kind", BOTH, ids=["compiled", "python"])
def test_each_emit_calls_bool_clock_str_seq_in_that_order(kind: Kind) -> None:
    log = Log()
    reporter = kind("pool", Inbox(4), batch_size=8, clock=log.clock, seq=log.seq)
    false: Any = Loud(log, truth=False)
    true: Any = Loud(log, truth=True)
    failing_text: Any = Loud(log, truth=True, fail="str")
    failing_truth: Any = Loud(log, truth=True, fail="bool")
    reporter.alloc(1, 8, device=false, requested=true)
    assert log.calls == ["bool", "clock", "str", "seq"]
    [event] = reporter.take().events
    assert event[4] == "cpu"  # a false device means the reporter's
    assert event[9] == ((REQUESTED_TAG, "loud"),)
    log.calls.clear()
    with pytest.raises(ZeroDivisionError, match=r"^no text here$"):
        reporter.acquire(1, 8, requested=failing_text)
    assert log.calls == ["clock", "str"]  # numbered after the text: never drawn
    log.calls.clear()
    with pytest.raises(ZeroDivisionError, match=r"^no truth here$"):
        reporter.free(1, 8, device=failing_truth)
    assert log.calls == ["bool"]
    assert reporter.pending == 0
    reporter.release(1, 8, true)
    assert reporter.take().events[0][4] is true


@pytest.mark.parametrize("kind", BOTH, ids=["compiled", "python"])
def test_a_failing_clock_or_numbering_appends_nothing(kind: Kind) -> None:
    def broken() -> int:
        raise OSError("no time")

    reporter = kind("pool", Inbox(4), clock=broken)
    with pytest.raises(OSError, match=r"^no time$"):
        reporter.alloc(1, 8)
    reporter = kind("pool", Inbox(4), seq=broken)
    with pytest.raises(OSError, match=r"^no time$"):
        reporter.transfer(8, "cpu", "cuda:0")
    assert reporter.pending == 0


def stamps(
    kind: Kind, clock: Callable[[], int], seq: Callable[[], int] | None
) -> list[tuple[int, int]]:
    reporter = kind("pool", Inbox(4), batch_size=64, clock=clock, seq=seq)
    for block in range(20):
        reporter.alloc(block, 8)
        reporter.free(block, 8)
    return [(event[6], event[10]) for event in reporter.take().events]


def test_counters_as_clock_and_numbering_give_the_same_stamps() -> None:
    # itertools.count's __next__ is the numbering's fast path: the values and what is
    # left in the counter are the reference's.
    counters = []
    results = []
    for kind in BOTH:
        clock, seq = itertools.count(50, 3), itertools.count(2**62)
        results.append(stamps(kind, clock.__next__, seq.__next__))
        counters.append((next(clock), next(seq)))
    assert results[0] == results[1]
    assert counters[0] == counters[1] == (50 + 3 * 40, 2**62 + 40)
    shared = itertools.count(1)
    assert [s for _, s in stamps(MemoryReporter, time.monotonic_ns, shared.__next__)] == list(
        range(1, 41)
    )


def test_the_monotonic_clock_reads_what_time_monotonic_ns_reads() -> None:
    for kind in BOTH:
        before = time.monotonic_ns()
        taken = stamps(kind, time.monotonic_ns, None)
        after = time.monotonic_ns()
        times = [stamp for stamp, _ in taken]
        assert all(type(stamp) is int for stamp in times)
        assert times == sorted(times)
        assert before <= times[0]
        assert times[-1] <= after
        assert [number for _, number in taken] == list(range(1, 41))


def cycling(*values: Any) -> Callable[[], Callable[[], Any]]:
    """Makes clocks (or numberings) that return *values* over and over, each from the
    start: one for each reporter compared, so that both see the same values."""
    return lambda: itertools.cycle(values).__next__


CLOCKS: dict[str, Callable[[], Callable[[], Any]]] = {
    "float": cycling(1.5),
    "mixed": cycling(1, 2.5, True, np.int64(7), 2**70, -(2**63), 2**63 - 1, 2**63, "t"),
    "numpy": cycling(np.uint64(3), None, 0),
    "count": lambda: itertools.count(2**63 - 9).__next__,
}
NUMBERINGS: dict[str, Callable[[], Callable[[], Any]]] = {
    "counter": lambda: (
        itertools.count(2**62).__next__ if compiled is None else compiled.Counter(2**62)
    ),
    "count": lambda: itertools.count(2**63 - 9).__next__,
    "user": cycling(5, 3, 2**64, -1),
    "odd": cycling(1, 2.5, True, np.int64(7), 2**70, "n"),
}


@pytest.mark.parametrize("clock", list(CLOCKS))
@pytest.mark.parametrize("seq", list(NUMBERINGS))
def test_odd_clocks_and_numberings_read_back_as_the_reference_builds(clock: str, seq: str) -> None:
    # Odd values must come back as they were (the record keeps the tuple), plain ones
    # from the record's C fields: either way, the reference's tuples.
    seen = []
    for kind in BOTH:
        reporter = kind("pool", Inbox(4), batch_size=1_000, clock=CLOCKS[clock](),
                        seq=NUMBERINGS[seq]())  # fmt: skip
        for step in range(24):
            reporter.alloc(step, 8, requested=step if step % 3 else None)
            reporter.resize(step, 8, 16)
            reporter.transfer(16, "cpu", "cuda:0", block=step)
            reporter.free(step, 16)
        seen.append(exact(reporter.take()))
    assert seen[0] == seen[1]


@pytest.mark.parametrize("kind", BOTH, ids=["compiled", "python"])
def test_clock_and_numbering_can_be_swapped_on_a_live_reporter(kind: Kind) -> None:
    reporter = kind("pool", Inbox(4), batch_size=8, clock=time.monotonic_ns)
    reporter.alloc(1, 8)
    reporter._clock = itertools.count(7).__next__
    reporter._seq = lambda: -1
    reporter.alloc(2, 8)
    assert reporter._clock() == 8
    assert [event[6::4] for event in reporter.take().events][1] == (7, -1)


# -- calls the reference refuses too -----------------------------------------------------


@pytest.mark.parametrize(
    ("call", "args", "kwargs"),
    [
        ("alloc", (1,), {}),
        ("alloc", (1, 2, None, None, None, 6), {}),
        ("alloc", (1, 2), {"colour": "red"}),
        ("alloc", (1, 2), {"block": 1}),
        ("resize", (1, 2), {}),
        ("transfer", (8, "cpu"), {"block": 1}),
        ("free", (), {"size": 1}),
    ],
)
def test_bad_calls_raise_type_errors_naming_the_argument(
    call: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    for kind in BOTH:
        reporter = kind("pool", Inbox(4))
        with pytest.raises(TypeError, match=rf"{call}\(\)"):
            getattr(reporter, call)(*args, **kwargs)
        assert reporter.pending == 0


def test_keywords_name_every_parameter() -> None:
    batches = []
    for kind in BOTH:
        reporter = kind("pool", Inbox(4), batch_size=16, clock=itertools.count().__next__)
        reporter.alloc(block=1, size=2, owner="o", device="cuda:3", requested=1)
        reporter.acquire(requested=None, device=None, owner=None, size=2, block=1)
        reporter.free(size=2, block=1, device="cpu")
        reporter.release(1, size=2)
        reporter.resize(1, size=4, old_size=2, device="cuda:0")
        reporter.transfer(dst="cpu", src="cuda:0", size=9, block=4)
        batches.append(exact(reporter.take()))
    assert batches[0] == batches[1]


# -- batching, drops, flushes, close -----------------------------------------------------


async def flush_scenario(kind: Kind) -> list[Any]:
    """A lossless reporter whose flush waits for room and is cancelled; then lossy drops,
    a close, and an emit after it."""
    seen: list[Any] = []
    inbox = Inbox(1)
    reporter = kind("pool", inbox, batch_size=2, clock=itertools.count().__next__,
                    seq=itertools.count(1).__next__)  # fmt: skip
    for block in range(1, 6):
        reporter.alloc(block, 8)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reporter.flush)
            await trio.testing.wait_all_tasks_blocked()
            seen.append(("waiting", inbox.waiting, reporter.pending))
            reporter.free(1, 8)
            reporter.free(2, 8)
            scope.cancel()
    seen.append(("put back", reporter.pending, reporter.backlogged, exact(inbox.take_all())))
    await reporter.flush()
    seen.append(("flushed", reporter.pending, exact(inbox.take_all())))

    lossy = kind("lossy", inbox, lossy=True, batch_size=2, clock=itertools.count().__next__,
                 seq=itertools.count(100).__next__)  # fmt: skip
    for block in range(7):
        lossy.acquire(block, 1)
    seen.append(("lossy", lossy.pending, lossy.dropped, exact(inbox.take_handed_on())))
    reporter.alloc(9, 8)
    reporter.close()
    reporter.close()
    with pytest.raises(trio.ClosedResourceError, match=r"^reporter 'pool' is closed$"):
        reporter.resize(9, 8, 16)
    seen.append(("closed", reporter.pending, reporter.closed, exact(inbox.take_all())))
    await lossy.flush()
    seen.append(("lossy flushed", exact(inbox.take_all())))
    return seen


async def test_flushes_put_backs_drops_and_close_behave_alike() -> None:
    compiled_seen = await flush_scenario(MemoryReporter)
    reference_seen = await flush_scenario(PyMemoryReporter)
    assert compiled_seen == reference_seen
    assert compiled_seen[0] == ("waiting", 1, 0)
    assert compiled_seen[1][1:3] == (5, True)  # 3, 4, 5 back in front of the frees


@pytest.mark.parametrize("kind", BOTH, ids=["compiled", "python"])
def test_every_emit_after_close_raises_and_keeps_nothing(kind: Kind) -> None:
    reporter = kind("pool", Inbox(1), batch_size=4)
    reporter.close()
    calls: list[Callable[[], None]] = [
        lambda: reporter.alloc(1, 8),
        lambda: reporter.acquire(1, 8, requested=4),
        lambda: reporter.free(1, 8),
        lambda: reporter.release(1, 8),
        lambda: reporter.resize(1, 8, 16),
        lambda: reporter.transfer(8, "cpu", "cuda:0"),
    ]
    for call in calls:
        with pytest.raises(trio.ClosedResourceError, match=r"^reporter 'pool' is closed$"):
            call()
        assert reporter.pending == 0


async def test_a_hub_system_round_trip_matches_the_reference() -> None:
    # Through a real hub: reporters of both kinds on one inbox, numbered by the hub.
    hub = MemoryHub(batch_size=3, channel_size=64, clock=itertools.count().__next__)
    made = [
        kind(f"c{index}", hub._inbox, batch_size=3, clock=hub.clock, seq=hub._seq)
        for index, kind in enumerate(BOTH)
    ]
    for step in range(20):
        for reporter in made:
            reporter.alloc(step, step * 8, requested=step if step % 3 else None)
        await made[step % 2].flush()
    events = [event for batch in hub.collect().batches for event in batch.events]
    assert sorted(event[10] for event in events) == list(range(1, 41))
    by_component = {
        name: [event[0:1] + event[2:5] + event[7:10] for event in events if event[1] == name]
        for name in ("c0", "c1")
    }
    assert by_component["c0"] == by_component["c1"]


# -- the type's own duties ------------------------------------------------------------


def test_a_reporter_in_a_cycle_is_collected_with_what_it_holds() -> None:
    component = "".join(["cyc", "le"])  # a string only this test holds
    baseline = sys.getrefcount(component)
    for kind in BOTH:
        inbox = Inbox(1)
        reporter = kind(component, inbox, batch_size=4)
        reporter.alloc(1, 8)  # the inbox now holds the reporter, which holds the inbox
        assert reporter in inbox._pending
        del reporter, inbox
        gc.collect()
        assert sys.getrefcount(component) == baseline


def test_sites_switch_the_class_of_a_compiled_reporter() -> None:
    hub = MemoryHub(callsites=4)
    reporter = hub.reporter("pool")
    assert type(reporter) is SampledReporter
    assert hub.sites is not None
    reporter.use_sites(type(hub.sites)(1))
    assert type(reporter) is SitedReporter
    reporter.alloc(1, 8)
    reporter.free(1, 8)
    kinds = [EventKind(event[0]) for batch in hub.collect().batches for event in batch.events]
    assert kinds == [EventKind.ALLOC, EventKind.FREE]


def test_a_null_reporter_stays_silent_even_after_close() -> None:
    reporter = NullReporter("pool", Inbox(1))
    reporter.alloc(1, 8)
    reporter.close()
    reporter.transfer(1, "cpu", "cuda:0")
    assert reporter.pending == 0
