"""ChunkProcessor: right results in order, bounded concurrency and lookahead, and not one
byte left lent after a result, an error, a cancellation or an early exit."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import memactor
from memactor.actors import (
    BufferPool,
    ChunkFn,
    ChunkProcessor,
    ChunkStatistics,
    MemorySystem,
    chunk_count,
    chunk_slices,
    size_class,
)
from memactor.runtime import ActorState

Array = npt.NDArray[Any]
NAME = "decode.chunks"


@asynccontextmanager
async def open_processor(
    fn: ChunkFn, chunk_shape: tuple[int, ...], **options: Any
) -> AsyncIterator[tuple[MemorySystem, BufferPool, ChunkProcessor]]:
    async with memactor.open_system() as system:
        pool = BufferPool()
        await system.spawn(pool, name="pool")
        proc = ChunkProcessor(fn, chunk_shape, pool=pool, **options)
        await system.spawn(proc, name=NAME)
        yield system, pool, proc


async def assert_nothing_lent(system: MemorySystem, pool: BufferPool, proc: ChunkProcessor) -> None:
    """Nothing is lent, by the pool's, the processor's and the ledger's accounts alike."""
    stats = proc.statistics()
    assert (stats.in_flight, stats.working_bytes) == (0, 0)
    pool_stats = pool.statistics()
    assert (pool_stats.leases_out, pool_stats.bytes_in_use) == (0, 0)
    await system.metrics.flush()
    if pool_stats.misses == 0:  # nothing was ever lent: the ledger never heard of the pool
        return
    component = system.ledger.component("pool")
    assert component.bytes_in_use == 0
    assert component.bytes_reserved == pool_stats.bytes_cached == pool_stats.bytes_reserved
    owners = {owner.owner: owner for owner in system.ledger.owners()}
    assert owners[NAME].bytes_in_use == 0


def seeded(shape: tuple[int, ...], seed: int = 0) -> Array:
    return np.random.default_rng(seed).standard_normal(shape)


def assemble(shape: tuple[int, ...], chunk_shape: tuple[int, ...], chunks: list[Array]) -> Array:
    result = np.empty(shape, dtype=chunks[0].dtype)
    for index, chunk in zip(chunk_slices(shape, chunk_shape), chunks, strict=True):
        result[index] = chunk
    return result


# -- elementwise functions, plain and async ---------------------------------------------------


def triple_plus_one(chunk: Array) -> Array:
    assert chunk.flags.c_contiguous
    return chunk * 3 + 1


def square_in_place(chunk: Array) -> Array:
    np.square(chunk, out=chunk)  # the chunk is the processor's pooled copy: fair game
    return chunk


async def negate(chunk: Array) -> Array:
    await trio.lowlevel.checkpoint()
    return -chunk


async def is_positive(chunk: Array) -> Array:
    await trio.lowlevel.checkpoint()
    return (chunk > 0).astype(np.int8)


FUNCTIONS: list[ChunkFn] = [triple_plus_one, square_in_place, negate, is_positive]


async def apply_whole(fn: ChunkFn, array: Array) -> Array:
    result = fn(array.copy())
    if isinstance(result, Awaitable):
        result = await result
    return np.asarray(result)


async def run(proc: ChunkProcessor, array: Array, *, streamed: bool) -> Array:
    if not streamed:
        return await proc.process(array)
    chunks: list[Array] = []
    async with aclosing(proc.stream(array)) as results:
        async for index, chunk in results:
            assert index == len(chunks)
            chunks.append(chunk)
    return assemble(array.shape, proc.chunk_shape, chunks)


# -- results --------------------------------------------------------------------------------


@st.composite
def arrays_and_chunks(draw: st.DrawFn) -> tuple[Array, tuple[int, ...]]:
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    chunk = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    return seeded(shape, draw(st.integers(0, 2**16))), chunk


@settings(max_examples=100)
@given(
    case=arrays_and_chunks(),
    fn=st.sampled_from(FUNCTIONS),
    concurrency=st.integers(1, 4),
    streamed=st.booleans(),
)
async def test_results_equal_fn_on_the_whole_array(
    case: tuple[Array, tuple[int, ...]], fn: ChunkFn, concurrency: int, streamed: bool
) -> None:
    array, chunk_shape = case
    async with open_processor(fn, chunk_shape, concurrency=concurrency) as (system, pool, proc):
        result = await run(proc, array, streamed=streamed)
        expected = await apply_whole(fn, array)
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(result, expected)
        await assert_nothing_lent(system, pool, proc)


@pytest.mark.parametrize("streamed", [False, True], ids=["process", "stream"])
@pytest.mark.parametrize("fn", [triple_plus_one, negate], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("shape", "chunk_shape"),
    [((10,), (3,)), ((7, 5), (2, 3)), ((4, 5, 6), (3, 2, 4))],
    ids=["1d", "2d", "3d"],
)
async def test_1d_2d_3d(
    shape: tuple[int, ...], chunk_shape: tuple[int, ...], fn: ChunkFn, streamed: bool
) -> None:
    array = seeded(shape, seed=len(shape))
    async with open_processor(fn, chunk_shape) as (system, pool, proc):
        result = await run(proc, array, streamed=streamed)
        np.testing.assert_array_equal(result, await apply_whole(fn, array))
        assert proc.statistics().chunks_done == chunk_count(shape, chunk_shape)
        await assert_nothing_lent(system, pool, proc)


async def test_a_non_contiguous_input_and_a_0d_input() -> None:
    async with open_processor(triple_plus_one, (2, 2)) as (system, pool, proc):
        array = seeded((5, 3)).T  # a transposed view: not C-contiguous
        np.testing.assert_array_equal(await proc.process(array), array * 3 + 1)
        proc_0d = ChunkProcessor(negate, (), pool=pool)
        await system.spawn(proc_0d, name="scalar")
        result = await proc_0d.process(np.array(2.5))
        assert result.shape == ()
        assert result[()] == -2.5
        streamed = [(index, chunk.tolist()) async for index, chunk in proc_0d.stream(np.array(1.0))]
        assert streamed == [(0, -1.0)]


async def test_an_empty_array_never_calls_fn() -> None:
    calls = 0

    def count(chunk: Array) -> Array:
        nonlocal calls
        calls += 1
        return chunk

    async with open_processor(count, (2, 2), out_dtype=np.float32) as (_, pool, proc):
        result = await proc.process(np.zeros((0, 3), dtype=np.int16))
        assert result.shape == (0, 3)
        assert result.dtype == np.float32
        assert [item async for item in proc.stream(np.zeros((3, 0)))] == []
        assert (calls, proc.statistics().leases, pool.statistics().misses) == (0, 0, 0)
        proc.out_dtype = None
        assert (await proc.process(np.zeros((0, 3), dtype=np.int16))).dtype == np.int16


async def test_out_dtype_casts_every_result() -> None:
    async with open_processor(triple_plus_one, (4,), out_dtype=np.int16) as (_, _pool, proc):
        array = np.array([0.5, 1.9, -2.2, 3.0, 100.7])
        result = await proc.process(array)
        assert result.dtype == np.int16
        np.testing.assert_array_equal(result, (array * 3 + 1).astype(np.int16))


async def test_the_actor_answers_an_ask_with_the_result() -> None:
    async with open_processor(negate, (3,)) as (system, pool, proc):
        result = await proc.ref.ask(np.arange(7.0))
        np.testing.assert_array_equal(result, -np.arange(7.0))
        assert proc.statistics().actor.messages_handled == 1
        await assert_nothing_lent(system, pool, proc)


# -- order, concurrency, backpressure ---------------------------------------------------------


async def test_stream_yields_in_order_whatever_order_chunks_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[int] = []

    async def slower_first(chunk: Array) -> Array:
        index = int(chunk[0])
        await trio.sleep(10 - index)  # later chunks finish first
        finished.append(index)
        return chunk * 2

    array = np.arange(10.0)
    async with open_processor(slower_first, (1,), concurrency=4, lookahead=4) as parts:
        system, pool, proc = parts
        yielded = [(index, chunk.tolist()) async for index, chunk in proc.stream(array)]
        assert yielded == [(i, [2.0 * i]) for i in range(10)]
        assert finished != sorted(finished)
        assert finished[:4] == [3, 2, 1, 0]  # the first four ran together, last one first
        await assert_nothing_lent(system, pool, proc)


async def test_at_most_concurrency_async_chunks_run_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    running = peak = 0
    seen_in_flight: list[int] = []

    async def count(chunk: Array) -> Array:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen_in_flight.append(proc.statistics().in_flight)
        await trio.sleep(1)
        running -= 1
        return chunk

    async with open_processor(count, (1,), concurrency=3, lookahead=10) as (_, _pool, proc):
        await proc.process(np.zeros(20))
        assert peak == 3
        assert max(seen_in_flight) == 3
        assert proc.statistics().peak_in_flight == 3


async def test_at_most_concurrency_threads_run_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0
    together = threading.Barrier(3, timeout=10)  # fails the test rather than hang

    def count(chunk: Array) -> Array:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        together.wait()  # three threads at a time, or the barrier breaks
        with lock:
            running -= 1
        return chunk

    async with open_processor(count, (1,), concurrency=3, lookahead=6) as (system, pool, proc):
        await proc.process(np.zeros(9))
        assert peak == 3
        await assert_nothing_lent(system, pool, proc)


async def test_a_slow_consumer_stops_the_processor_at_its_lookahead() -> None:
    started: list[int] = []

    async def record(chunk: Array) -> Array:
        started.append(int(chunk[0]))
        await trio.lowlevel.checkpoint()
        return chunk

    array = np.arange(20.0)
    block = size_class(array[:1].nbytes)
    async with open_processor(record, (1,), concurrency=2, lookahead=1) as (system, pool, proc):
        async with aclosing(proc.stream(array)) as results:
            async for index, _chunk in results:
                if index == 0:
                    await trio.testing.wait_all_tasks_blocked()
                    # Chunk 0 is taken; concurrency + lookahead = 3 more are started and
                    # hold their result buffers, waiting for the consumer.
                    assert started == [0, 1, 2, 3]
                    assert proc.statistics().working_bytes == 3 * block
        assert started == list(range(20))
        assert proc.statistics().peak_working_bytes <= 4 * block
        await assert_nothing_lent(system, pool, proc)


# -- memory accounting ----------------------------------------------------------------------


async def test_working_memory_is_owned_by_the_processor_and_reused() -> None:
    async def inspect_ledger(chunk: Array) -> Array:
        await system.metrics.flush()
        owners = {owner.owner: owner.bytes_in_use for owner in system.ledger.owners()}
        assert set(owners) == {NAME}
        assert owners[NAME] == proc.statistics().working_bytes > 0
        return chunk + 1

    array = seeded((6, 6))
    # One chunk at a time, so that nothing changes while fn waits for the flush.
    async with open_processor(inspect_ledger, (4, 4), concurrency=1, lookahead=0) as parts:
        system, pool, proc = parts
        await proc.process(array)
        first = proc.statistics()
        assert first.reuse_ratio < 1.0
        await proc.process(array)  # the second pass finds every block in the cache
        second = proc.statistics()
        assert second.pool_hits - first.pool_hits == second.leases - first.leases > 0
        assert second.reuse_ratio > first.reuse_ratio > 0
        await assert_nothing_lent(system, pool, proc)
        (owner,) = system.ledger.owners()
        assert owner.peak_bytes_in_use == second.peak_working_bytes
        assert pool.statistics().hits == second.pool_hits


async def test_the_working_set_is_counted_as_requested_beside_leased() -> None:
    array = np.zeros((5, 3))  # chunks of 48, 48 and 24 bytes in blocks of 64, 64 and 32
    async with open_processor(lambda chunk: chunk, (2, 3), concurrency=1, lookahead=0) as parts:
        system, pool, proc = parts
        await proc.process(array)
        stats = proc.statistics()
        # One chunk at a time: its input and its output (the same size) at most.
        assert (stats.peak_working_bytes, stats.peak_requested_working_bytes) == (128, 96)
        assert (stats.bytes_leased, stats.requested_bytes_leased) == (320, 240)
        assert stats.requested_working_bytes == 0
        await assert_nothing_lent(system, pool, proc)
        ledger = system.ledger.component("pool")  # the processor is the pool's only user
        assert (ledger.bytes_lent, ledger.requested_bytes_lent) == (320, 240)
        assert ledger.peak_requested_bytes_in_use == 96
        assert ledger.slack_ratio == 0.25
        assert ledger.reuse_ratio == 2.5


async def test_every_statistics_field() -> None:
    seen: list[ChunkStatistics] = []

    async def double(chunk: Array) -> Array:
        seen.append(proc.statistics())
        return chunk * 2

    array = np.zeros((5, 4))  # chunks (2, 4), (2, 4), (1, 4): 64, 64 and 32 bytes
    async with open_processor(double, (2, 4), concurrency=1, lookahead=0) as parts:
        _, pool, proc = parts
        fresh = proc.statistics()
        assert dataclasses.astuple(fresh)[1:] == (
            *(0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0),
            *(0, 0, 0, 0, 0.0, 0.0, 0.0, 0, -1),
        )
        await proc.process(array)
        assert [(s.in_flight, s.working_bytes, s.chunks_done) for s in seen] == [
            (1, 64, 0),  # only the input copy is lent while fn runs
            (1, 64, 1),
            (1, 32, 2),
        ]
        stats = proc.statistics()
        assert stats.chunks_done == 3
        assert stats.bytes_processed == array.nbytes == 160
        assert (stats.in_flight, stats.peak_in_flight) == (0, 1)
        # One chunk at a time: its input and its output at most.
        assert (stats.working_bytes, stats.peak_working_bytes) == (0, 128)
        # Chunk 0 misses twice, chunk 1 reuses both blocks, the 32-byte chunk misses twice.
        assert (stats.leases, stats.pool_hits, stats.reuse_ratio) == (6, 2, 2 / 6)
        assert stats.actor.name == NAME
        assert stats.actor.state is ActorState.RUNNING
        assert stats.actor.messages_handled == 0  # called directly, not through the mailbox
        assert pool.statistics().misses == 4
        # Powers of two: nothing asked for is smaller than its block.
        assert (stats.requested_working_bytes, stats.peak_requested_working_bytes) == (0, 128)
        assert (stats.bytes_leased, stats.requested_bytes_leased) == (320, 320)
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.chunks_done = 0  # type: ignore[misc]  # the point of the test


async def test_a_lease_that_waits_for_room_in_a_capped_pool() -> None:
    async with memactor.open_system() as system:
        pool = BufferPool(max_reserved=128)
        await system.spawn(pool, name="pool")
        proc = ChunkProcessor(negate, (8,), pool=pool, concurrency=1, lookahead=0)
        await system.spawn(proc, name=NAME)
        hog = await pool.acquire(8, np.float64, owner="hog")  # 64 of the 128 bytes
        array = np.arange(16.0)  # two chunks of 64 bytes
        results: list[Array] = []

        async def call() -> None:
            results.append(await proc.process(array))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            # Chunk 0's input fits; its result buffer waits for the hog's block.
            assert pool.statistics().waiters == 1
            assert (proc.statistics().leases, proc.statistics().working_bytes) == (1, 64)
            hog.release()
        np.testing.assert_array_equal(results[0], -array)
        stats = proc.statistics()
        # Input 0 is new; result 0 gets the hog's cached block after its wait (a hit);
        # chunk 1 finds both blocks cached.
        assert (stats.leases, stats.pool_hits) == (4, 3)
        assert pool.statistics().hits == 3
        await assert_nothing_lent(system, pool, proc)


# -- errors ---------------------------------------------------------------------------------


class ChunkError(Exception):
    pass


def fail_on_three_sync(chunk: Array) -> Array:
    if int(chunk[0]) == 3:
        raise ChunkError("bad chunk 3")
    return chunk


async def fail_on_three_async(chunk: Array) -> Array:
    await trio.sleep(1 if int(chunk[0]) != 3 else 0.5)  # others in flight when 3 fails
    return fail_on_three_sync(chunk)


@pytest.mark.parametrize("streamed", [False, True], ids=["process", "stream"])
@pytest.mark.parametrize("fn", [fail_on_three_sync, fail_on_three_async], ids=["sync", "async"])
async def test_an_error_in_fn_reaches_the_caller_and_nothing_stays_lent(
    fn: ChunkFn, streamed: bool, autojump_clock: trio.testing.MockClock
) -> None:
    array = np.arange(10.0)
    async with open_processor(fn, (1,), concurrency=3) as (system, pool, proc):
        with pytest.raises(ChunkError, match=r"^bad chunk 3$"):
            await run(proc, array, streamed=streamed)
        await assert_nothing_lent(system, pool, proc)
        assert proc.statistics().chunks_done < 10
        # The processor did not fail, and works on.
        assert proc.statistics().actor.failures == 0
        np.testing.assert_array_equal(await proc.process(array[4:]), array[4:])
        await assert_nothing_lent(system, pool, proc)


async def test_a_result_of_the_wrong_shape_or_dtype_is_an_error() -> None:
    def flatten(chunk: Array) -> Array:
        return chunk.ravel()

    def int_then_float(chunk: Array) -> Array:
        return chunk.astype(np.int64 if chunk.flat[0] == 0 else np.float32)

    async with open_processor(flatten, (2, 2)) as (system, pool, proc):
        with pytest.raises(
            ValueError, match=r"^fn returned shape \(4,\) for chunk 0 of shape \(2, 2\)$"
        ):
            await proc.process(np.zeros((2, 2)))
        proc.fn = int_then_float
        message = (
            r"^fn returned dtype float32 for chunk 1 and int64 for chunk 0; "
            r"pass out_dtype to cast every result$"
        )
        for streamed in (False, True):
            with pytest.raises(ValueError, match=message):
                await run(proc, np.arange(8.0).reshape(2, 4), streamed=streamed)
            await assert_nothing_lent(system, pool, proc)


def test_constructor_errors() -> None:
    pool = BufferPool()
    with pytest.raises(ValueError, match=r"^concurrency must be at least 1, got 0$"):
        ChunkProcessor(negate, (2,), pool=pool, concurrency=0)
    with pytest.raises(ValueError, match=r"^lookahead must be at least 0, got -1$"):
        ChunkProcessor(negate, (2,), pool=pool, lookahead=-1)
    with pytest.raises(ValueError, match=r"^chunk_shape \(2, 0\) has a non-positive length"):
        ChunkProcessor(negate, (2, 0), pool=pool)
    with pytest.raises(TypeError, match=r"^fn must be callable, got 3$"):
        ChunkProcessor(3, (2,), pool=pool)  # type: ignore[arg-type]  # the point of the test


async def test_misuse_errors() -> None:
    async with open_processor(negate, (2, 2)) as (_, pool, _proc):
        idle = ChunkProcessor(negate, (2,), pool=pool)
        with pytest.raises(RuntimeError, match=r"has not been spawned$"):
            await idle.process(np.zeros(3))
        with pytest.raises(RuntimeError, match=r"has not been spawned$"):
            await anext(idle.stream(np.zeros(3)))
        with pytest.raises(ValueError, match=r"^chunk_shape \(2, 2\) has 2 dimensions"):
            await _proc.process(np.zeros(3))


async def test_an_async_callable_object_is_awaited() -> None:
    class Scale:
        async def __call__(self, chunk: Array) -> Array:
            await trio.lowlevel.checkpoint()
            return chunk * 10

    async with open_processor(Scale(), (2,)) as (_, _pool, proc):
        np.testing.assert_array_equal(await proc.process(np.arange(3.0)), np.arange(3.0) * 10)


# -- cancellation ---------------------------------------------------------------------------


async def slow(chunk: Array) -> Array:
    await trio.sleep(1)
    return chunk


@pytest.mark.parametrize("after_s", [0, 0.5, 1, 1.5, 2.5, 100])
async def test_cancelling_process_anywhere_leaves_nothing_lent(
    after_s: float, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_processor(slow, (1,), concurrency=2) as (system, pool, proc):
        with trio.move_on_after(after_s) as scope:
            await proc.process(np.arange(6.0))
        assert scope.cancelled_caught == (after_s < 3)
        await assert_nothing_lent(system, pool, proc)


async def test_cancelling_process_waits_for_a_running_thread() -> None:
    entered = trio.Event()
    gate = threading.Event()

    def blocking(chunk: Array) -> Array:
        trio.from_thread.run_sync(entered.set)
        assert gate.wait(timeout=10)
        return chunk

    async with open_processor(blocking, (4,), concurrency=1) as (system, pool, proc):
        returned = trio.Event()
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await proc.process(np.zeros(8))
                returned.set()

            nursery.start_soon(call)
            await entered.wait()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            # The thread still has the chunk's input buffer: process has not returned.
            assert not returned.is_set()
            assert pool.statistics().leases_out == 1
            gate.set()
        assert scope.cancelled_caught
        await assert_nothing_lent(system, pool, proc)


@pytest.mark.parametrize("after_s", [0, 0.5, 1.5, 3.5])
async def test_cancelling_a_consumer_waiting_for_the_next_chunk(
    after_s: float, autojump_clock: trio.testing.MockClock
) -> None:
    taken: list[int] = []
    async with open_processor(slow, (1,), concurrency=2) as (system, pool, proc):
        with trio.move_on_after(after_s):
            async for index, _chunk in proc.stream(np.arange(10.0)):
                taken.append(index)
        # The generator was cancelled inside __anext__: it has cleaned up already.
        await assert_nothing_lent(system, pool, proc)
        assert taken == list(range(len(taken)))


async def test_cancelling_a_consumer_busy_between_chunks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_processor(slow, (1,), concurrency=2) as (system, pool, proc):
        with trio.move_on_after(2.5):
            async with aclosing(proc.stream(np.arange(10.0))) as results:
                async for _index, _chunk in results:
                    await trio.sleep(5)  # cancelled here, outside the generator
        await assert_nothing_lent(system, pool, proc)


async def test_breaking_out_of_a_bare_async_for_cleans_up_soon() -> None:
    async with open_processor(negate, (1,), concurrency=2) as (system, pool, proc):

        async def take_three() -> None:
            async for index, _chunk in proc.stream(np.arange(10.0)):
                if index == 2:
                    break

        with pytest.warns(ResourceWarning, match=r"Surround its use in 'async with aclosing"):
            await take_three()
        # trio closes the abandoned generator soon after it is garbage collected (and
        # warns, as above: aclosing makes the cleanup deterministic).
        assert pool.statistics().leases_out > 0
        await trio.testing.wait_all_tasks_blocked()
        await assert_nothing_lent(system, pool, proc)


async def test_a_processor_stopping_during_a_stream_breaks_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_processor(slow, (1,), concurrency=2) as (system, pool, proc):

        async def stop_after_two() -> None:
            async with aclosing(proc.stream(np.arange(10.0))) as results:
                async for index, _chunk in results:
                    if index == 1:
                        await proc.ref.stop()

        message = r"^chunk processor 'decode\.chunks' stopped during the stream$"
        with pytest.raises(trio.BrokenResourceError, match=message):
            await stop_after_two()
        await assert_nothing_lent(system, pool, proc)
        with pytest.raises(RuntimeError, match=r"is not running"):
            await anext(proc.stream(np.arange(3.0)))


async def test_stream_cleanup_runs_before_the_generator_is_first_iterated() -> None:
    async with open_processor(negate, (1,)) as (system, pool, proc):
        results = proc.stream(np.arange(3.0))
        await results.aclose()  # never started: nothing to clean
        await assert_nothing_lent(system, pool, proc)
        assert proc.statistics().leases == 0


async def test_an_int_chunk_shape_and_a_bad_out_dtype() -> None:
    pool = BufferPool()
    processor = ChunkProcessor(lambda c: c, 64, pool=pool)
    assert processor.chunk_shape == (64,)
    with pytest.raises(TypeError, match=r"^out_dtype must be a sized dtype without Python"):
        ChunkProcessor(lambda c: c, (4,), pool=pool, out_dtype=object)
