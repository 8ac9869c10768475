"""The compiled emits' Batch of compact event records, its Counter and its merge, against
the plain Python they stand for: a list of the event tuples, ``itertools.count`` and a
stable sort by number.

Under ``MEMACTOR_PURE_PYTHON=1`` the runtime keeps lists: the tests of its use of
Batches skip there, and the runtime's tests (run in both modes) cover the lists.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import pickle
import sys
import tracemalloc
import weakref
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memactor._native import load
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import EventOrder, Ledger, _order
from memactor.runtime import MemoryHub
from memactor.runtime._inbox import Inbox
from memactor.runtime._reporter import MemoryReporter, PyMemoryReporter

# Batch, Counter and merge are tested whichever implementation this run selected: the
# extension is built either way. Tests of the runtime's use of them (reporters writing
# Batches, the hub's Counter) need it selected.
compiled: Any = pytest.importorskip("memactor._native._emit", reason="the extension is not built")
runtime_compiled = pytest.mark.skipif(
    load("_emit") is None, reason="MEMACTOR_PURE_PYTHON=1: the runtime keeps lists"
)

Event = tuple[Any, ...]
SEQ = 10


def typed(value: Any) -> Any:
    """*value* with the type of every part beside it: ``1`` and ``np.int64(1)`` differ."""
    if isinstance(value, (list, tuple)):
        return (type(value), [typed(item) for item in value])
    return (type(value), value)


def event(seq: int, *, kind: int = 0, block: Any = 1, component: Any = "pool") -> Event:
    return (kind, component, block, 64, "cpu", "owner", 1_000 + seq, 0, None, (), seq)


# Every field, and the odd values an event may carry in each: the plain ones become C
# fields, the others keep the tuple as it is.
ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**63, -(2**63) - 1, 2**70, 1.5, True, np.int64(3), np.uint8(2), "9"]),
)
texts = st.one_of(st.sampled_from(["", "pool", "cuda:0", "é"]), st.sampled_from([0, None, b"x"]))
tags: st.SearchStrategy[Any] = st.sampled_from(
    [(), (("requested", "5"),), (("site", "3"), ("k", "v")), [], "t", None]
)
events = st.one_of(
    st.tuples(
        st.one_of(st.integers(0, 5), st.sampled_from([6, -1, 9, EventKind.FREE, 2.0])),
        texts,
        ints,
        ints,
        texts,
        texts,
        ints,
        ints,
        st.sampled_from([None, "cuda:1", 5]),
        tags,
        ints,
    ),
    st.sampled_from(["junk", (1, 2), (), None]),
)


@given(st.lists(events, max_size=40))
def test_a_batch_reads_back_exactly_the_events_appended(appended: list[Any]) -> None:
    batch = compiled.Batch()
    for item in appended:
        batch.append(item)
    assert len(batch) == len(appended)
    assert bool(batch) == bool(appended)
    assert typed(list(batch)) == typed(appended)
    assert typed([batch[i] for i in range(-len(batch), len(batch))]) == typed(appended * 2)
    assert batch == appended
    assert (batch != appended) is False
    assert typed(list(compiled.Batch(appended))) == typed(appended)


def test_odd_events_are_kept_as_the_very_objects_appended() -> None:
    named = MemoryEvent(EventKind.ALLOC, "pool", 1, 8, "cpu", "o", 5, 0, None, (), 1)
    floaty = (0, "pool", 1, 8.5, "cpu", "o", 5, 0, None, (), 2)
    plain = event(3)
    batch = compiled.Batch([named, floaty, plain, "junk"])
    assert batch[0] is named
    assert batch[1] is floaty
    assert batch[2] == plain
    assert batch[2] is not plain  # made again from its record
    assert batch[3] == "junk"


@given(
    st.lists(st.integers(0, 1000), max_size=30),
    st.integers(-40, 40) | st.none(),
    st.integers(-40, 40) | st.none(),
    st.sampled_from([None, 1, 2, 3, -1, -2]),
)
def test_slices_are_batches_of_the_lists_slices(
    seqs: list[int], start: int | None, stop: int | None, step: int | None
) -> None:
    appended = [event(seq, block=2**70 if seq % 7 == 0 else seq) for seq in seqs]
    batch = compiled.Batch(appended)
    part = batch[start:stop:step]
    assert type(part) is compiled.Batch
    assert typed(list(part)) == typed(appended[start:stop:step])


def test_concatenation_pop_clear_and_extend_work_as_a_lists_do() -> None:
    first = compiled.Batch([event(1), event(2)])
    second = compiled.Batch([event(3), (1, 2)])
    joined = first + second
    assert type(joined) is compiled.Batch
    assert joined == [event(1), event(2), event(3), (1, 2)]
    assert first == [event(1), event(2)]  # the operands are left as they were
    assert joined.pop() == (1, 2)
    assert joined.pop(0) == event(1)
    assert joined.pop(-2) == event(2)
    assert joined == [event(3)]
    joined.extend(joined)
    joined.extend([event(4)])
    assert joined == [event(3), event(3), event(4)]
    joined.clear()
    assert joined == []
    assert not joined
    joined.append(event(5))
    assert joined == [event(5)]


def test_bad_uses_raise_errors_naming_the_problem() -> None:
    batch = compiled.Batch([event(1)])
    with pytest.raises(IndexError, match=r"^Batch index out of range$"):
        batch[1]
    with pytest.raises(IndexError, match=r"^Batch index out of range$"):
        batch[-2]
    with pytest.raises(TypeError, match=r"^Batch indices must be integers or slices, not str$"):
        batch["a"]
    with pytest.raises(TypeError, match=r'^can only concatenate Batch \(not "list"\) to Batch$'):
        batch + [event(2)]  # noqa: RUF005  # the error is the point
    with pytest.raises(IndexError, match=r"^pop index out of range$"):
        batch.pop(3)
    batch.clear()
    with pytest.raises(IndexError, match=r"^pop from empty Batch$"):
        batch.pop()
    with pytest.raises(TypeError, match=r"^Batch\(\) takes no keyword arguments$"):
        compiled.Batch(events=[])
    with pytest.raises(TypeError, match=r"unhashable type: '[\w.]*Batch'"):
        hash(batch)
    assert batch != "abc"
    assert batch != 5


def test_a_batch_pickles_and_prints_as_its_events() -> None:
    batch = compiled.Batch([event(1), (0, "x", 2**70, 1, "cpu", "", 1, 0, None, (), 2)])
    assert pickle.loads(pickle.dumps(batch)) == batch
    assert type(pickle.loads(pickle.dumps(batch))) is compiled.Batch
    assert repr(batch) == f"Batch({list(batch)!r})"


def test_records_hold_and_release_their_references() -> None:
    component = "".join(["ref", "counted"])  # a string only this test holds
    tags = (("site", "".join(["x", "y"])),)
    baseline = sys.getrefcount(component), sys.getrefcount(tags)
    batch = compiled.Batch()
    for seq in range(1_000):
        batch.append((0, component, seq, 8, "cpu", "o", seq, 0, None, tags, seq))
    assert sys.getrefcount(component) == baseline[0] + 1_000
    halves = batch[::2], batch + batch
    del batch
    assert sys.getrefcount(tags) == baseline[1] + 2_500
    del halves
    assert (sys.getrefcount(component), sys.getrefcount(tags)) == baseline


def test_millions_of_events_through_reporters_leave_no_memory_behind() -> None:
    # Two reporters whose batches interleave: taken, merged, cut and dropped every
    # round, as the metrics actor does (without a ledger, whose books grow by design).
    hub = MemoryHub(batch_size=256, channel_size=8)
    reporters = [hub.reporter("pool"), hub.reporter("decoder")]

    def rounds(count: int) -> None:
        for _ in range(count):
            for block in range(2_500):
                for reporter in reporters:
                    reporter.alloc(block, 64, requested=32 if block % 100 == 0 else None)
                    reporter.free(block, 64)
            merged = compiled.merge([batch.events for batch in hub.collect().batches])
            assert merged is not None
            assert merged[1]
            events = merged[0]
            assert len(events[: len(events) // 2] + events[len(events) // 2 :]) == 10_000

    rounds(2)
    gc.collect()
    tracemalloc.start()
    try:
        rounds(1)
        gc.collect()
        warmed, _ = tracemalloc.get_traced_memory()
        rounds(200)  # two million events
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - warmed < 16 * 1024


def test_merge_holds_and_releases_its_references() -> None:
    component = "".join(["merge", "counted"])  # a string only this test holds
    baseline = sys.getrefcount(component)
    runs: list[Any] = [
        compiled.Batch([event(seq, component=component) for seq in (1, 4, 6)]),
        compiled.Batch(),
        [event(seq, component=component) for seq in (2, 3, 9)],
        [],
    ]
    merged = compiled.merge(runs)
    assert merged is not None
    assert [e[SEQ] for e in merged[0]] == [1, 2, 3, 4, 6, 9]
    del merged, runs
    assert sys.getrefcount(component) == baseline


def test_finalizers_that_change_a_batch_while_it_allocates_do_no_harm() -> None:
    # A collection can run at any allocation, and a finalizer can touch the batch being
    # read or written: every operation must stay within the records there are then.
    batch = compiled.Batch()

    class Meddler:
        def __init__(self, clear: bool) -> None:
            self.clear = clear
            self.me = self  # a cycle: freed by the next collection, which runs __del__

        def __del__(self) -> None:
            if self.clear:
                batch.clear()
            else:
                batch.append(event(99, block=2**70))

    operations: list[Any] = [
        lambda: batch[0],
        lambda: batch[-1],
        lambda: batch[1:40:2],
        lambda: batch + batch,
        lambda: batch.pop(),
        lambda: batch.pop(0),
        lambda: list(batch),
        lambda: batch == list(batch),
        lambda: batch.append((0, "pool", 1, 2.5, "cpu", "o", 1, 0, None, (), 1)),
        lambda: batch.extend(batch),
        lambda: compiled.merge([batch, [event(5)]]),
    ]
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)
    try:
        for round_ in range(40):
            for index, operation in enumerate(operations):
                batch.extend([event(seq) for seq in range(30)])
                Meddler(clear=(round_ + index) % 2 == 0)
                with contextlib.suppress(IndexError):  # the finalizer emptied it first
                    operation()
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()
    assert all(len(e) == 11 for e in batch)


def test_a_batch_of_plain_events_costs_the_collector_nothing_until_it_could_cycle() -> None:
    batch = compiled.Batch([event(1), event(2)])
    assert not gc.is_tracked(batch)
    assert not gc.is_tracked(batch[1:])
    batch.append((0, "pool", 3, 8, "cpu", "o", 3, 0, None, (("k", [1]),), 3))
    assert gc.is_tracked(batch)
    assert gc.is_tracked(batch[2:])
    assert gc.is_tracked(batch[:1] + batch)


def test_a_cycle_through_a_batch_is_collected() -> None:
    class Box:
        pass

    box = Box()
    alive = weakref.ref(box)
    batch = compiled.Batch()
    batch.append((0, "pool", 1, 8, "cpu", "o", 1, 0, None, (("box", box),), 1))
    box.batch = batch  # type: ignore[attr-defined]  # the cycle
    del box, batch
    gc.collect()
    assert alive() is None


# -- the Counter ---------------------------------------------------------------------------


def test_a_counter_counts_as_itertools_count_does() -> None:
    counter, reference = compiled.Counter(5), itertools.count(5)
    assert [counter() if i % 2 else next(counter) for i in range(6)] == [
        next(reference) for _ in range(6)
    ]
    assert repr(counter) == "Counter(11)"
    assert iter(counter) is counter
    assert compiled.Counter()() == 1
    assert compiled.Counter(start=-3)() == -3


def test_a_counter_refuses_to_pass_int64_and_bad_starts() -> None:
    counter = compiled.Counter(2**63 - 2)
    assert counter() == 2**63 - 2
    with pytest.raises(OverflowError, match=r"^the Counter reached 2\*\*63 - 1$"):
        counter()
    with pytest.raises(OverflowError):
        compiled.Counter(2**63)
    with pytest.raises(TypeError):
        compiled.Counter("1")
    with pytest.raises(TypeError, match=r"^Counter\(\) takes no arguments when called$"):
        compiled.Counter()(1)


@runtime_compiled
def test_the_hub_numbers_with_a_counter_that_emits_read_directly() -> None:
    hub = MemoryHub(batch_size=64)
    assert type(hub._seq) is compiled.Counter
    reporter = hub.reporter("pool")
    thread_reporter = hub.thread_reporter("worker")
    reporter.alloc(1, 8)
    thread_reporter.alloc(2, 8)
    reporter.free(1, 8)
    collected = hub.collect()
    numbers = sorted(e[SEQ] for batch in collected.batches for e in batch.events)
    assert numbers == [1, 2, 3]
    assert collected.watermark == 4
    [batch] = [b for b in collected.batches if type(b.events) is compiled.Batch]
    assert [e[SEQ] for e in batch.events] == [1, 3]


# -- merge -----------------------------------------------------------------------------


def reference_merge(runs: Sequence[Sequence[Event]]) -> tuple[list[Event], bool]:
    """EventOrder's Python path: runs sorted by first number, concatenated unless one
    overlaps the one before, else stably sorted by number."""
    runs = sorted((run for run in runs if run), key=lambda run: run[0][SEQ])
    last = -1
    for run in runs:
        if run[0][SEQ] <= last:
            return sorted(chain.from_iterable(runs), key=itemgetter(SEQ)), True
        last = run[-1][SEQ]
    return list(chain.from_iterable(runs)), False


@st.composite
def round_runs(draw: st.DrawFn) -> list[list[Event]]:
    """A round's runs: each in order of its numbers (ties too), or in no order at all;
    a component per run, so that ties stay told apart."""
    runs = []
    for index in range(draw(st.integers(0, 6))):
        seqs = draw(st.lists(st.integers(-3, 60), max_size=12))
        if draw(st.booleans()):
            seqs.sort()
        runs.append([event(seq, component=f"c{index}", block=i) for i, seq in enumerate(seqs)])
    return runs


@given(round_runs(), st.lists(st.booleans(), min_size=6, max_size=6))
def test_merge_gives_the_order_and_overlap_of_a_stable_sort(
    runs: list[list[Event]], as_batch: list[bool]
) -> None:
    given_runs = [compiled.Batch(run) if b else run for run, b in zip(runs, as_batch, strict=False)]
    merged = compiled.merge(given_runs)
    assert merged is not None
    events, interleaved = merged
    assert type(events) is compiled.Batch
    assert (list(events), interleaved) == reference_merge(runs)


def test_merge_lines_up_many_batches_of_a_few_reporters() -> None:
    # 4 reporters whose emits alternate, 24 batches each: every batch overlaps the other
    # reporters' ones, and each reporter's batches follow one another.
    hub = MemoryHub(batch_size=16, channel_size=1 << 20)
    reporters = [hub.reporter(f"stage-{index}") for index in range(4)]
    for step in range(4 * 16 * 24):
        reporters[(step * 5 + step // 7) % 4].alloc(step, 8)
    runs = [batch.events for batch in hub.collect().batches]
    assert len(runs) > 90
    merged = compiled.merge(runs)
    assert merged is not None
    assert (list(merged[0]), merged[1]) == reference_merge([list(run) for run in runs])
    assert [e[SEQ] for e in merged[0]] == list(range(1, 4 * 16 * 24 + 1))


def test_merge_leaves_odd_numbers_to_python() -> None:
    odd = (0, "pool", 1, 8, "cpu", "o", 1, 0, None, (), 2.5)
    assert compiled.merge([[event(1)], compiled.Batch([event(3), odd])]) is None
    assert compiled.merge([[event(1)], ["junk"]]) is None
    assert compiled.merge([]) == (compiled.Batch(), False)


def test_event_order_gives_the_same_rounds_with_and_without_the_compiled_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def rounds() -> tuple[list[Any], Any, Any]:
        hub = MemoryHub(batch_size=3, channel_size=1 << 20)
        reporters = [hub.reporter(f"stage-{i}") for i in range(3)]
        thread = hub.thread_reporter("thread")
        ledger = Ledger()
        order = EventOrder(ledger)
        applied = []
        for step in range(60):
            reporter = reporters[(step * 7) % 3]
            reporter.alloc(step, 8 + step)
            if step % 5 == 0:
                thread.alloc(1_000 + step, 16)
            if step % 4 == 3:
                reporters[step % 3].free(step - 1, 8 + step - 1)
            if step % 9 == 8:
                collected = hub.collect()
                for batch in collected.batches:
                    order.add(batch.events)
                applied.append(order.apply_below(collected.watermark - 2))
        for batch in hub.collect().batches:
            order.add(batch.events)
        applied.append(order.apply_below())
        return (
            applied,
            order.statistics(),
            (ledger.statistics(), ledger.components(), ledger.owners()),
        )

    with_merge = rounds()
    monkeypatch.setattr(_order, "_compiled", None)
    without = rounds()
    assert with_merge[:2] == without[:2]
    assert with_merge[1].interleaved_rounds > 0
    assert with_merge[2] == without[2]


@runtime_compiled
def test_a_compiled_reporter_writes_into_a_batch_and_the_reference_into_a_list() -> None:
    assert type(PyMemoryReporter("pool", Inbox(4))._batch) is list
    reporter = MemoryReporter("pool", Inbox(4), batch_size=8, clock=itertools.count().__next__)
    assert type(reporter._batch) is compiled.Batch
    reporter.alloc(1, 8)
    reporter.transfer(8, "cpu", "cuda:0")
    taken = reporter.take()
    assert type(taken.events) is compiled.Batch
    assert list(taken.events) == [
        (0, "pool", 1, 8, "cpu", "pool", 0, 0, None, (), 1),
        (5, "pool", 0, 8, "cpu", "pool", 1, 0, "cuda:0", (), 2),
    ]
