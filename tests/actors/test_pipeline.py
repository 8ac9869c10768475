"""Pipelines: order, filters, backpressure, failing stages, statistics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import memactor
from memactor.actors import Stage, open_pipeline, run_pipeline
from memactor.runtime import Restart


class Square(Stage[int, int]):
    """Squares an item, holding an 8-byte scratch block while it works."""

    async def process(self, item: int) -> int:
        block = self.reporter.next_block()
        self.reporter.alloc(block, 8)
        self.reporter.free(block, 8)
        return item * item


async def test_items_flow_in_order_through_every_stage() -> None:
    out: list[int] = []

    async def add_one(item: int) -> int:
        await trio.sleep(0)
        return item + 1

    async with memactor.open_system() as system:
        stats = await run_pipeline(
            system, range(50), ("square", Square()), ("add", add_one), ("sink", out.append)
        )
    assert out == [i * i + 1 for i in range(50)]
    assert stats.fed == 50
    assert [s.messages_handled for s in stats.stages] == [50, 50, 50]
    square = system.ledger.component("square")
    assert (square.allocations, square.frees, square.bytes_in_use) == (50, 50, 0)


async def test_a_stage_that_returns_none_filters() -> None:
    out: list[int] = []
    async with memactor.open_system() as system:
        await run_pipeline(
            system,
            range(10),
            ("evens", lambda x: x if x % 2 == 0 else None),
            ("sink", out.append),
        )
    assert out == [0, 2, 4, 6, 8]


async def test_a_slow_sink_slows_the_source(autojump_clock: trio.testing.MockClock) -> None:
    received: list[int] = []

    async def slow(item: int) -> None:
        await trio.sleep(1)
        received.append(item)

    async with memactor.open_system() as system:
        pipeline = await open_pipeline(
            system, ("pass", lambda x: x), ("sink", slow), mailbox_size=2
        )
        fed = 0

        async def feed() -> None:
            nonlocal fed
            for item in range(100):
                await pipeline.feed([item])
                fed += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            await trio.sleep(10.5)
            # The source is held back: at most two mailboxes and two items in hand ahead.
            assert len(received) == 10
            assert fed <= len(received) + 2 * 2 + 2
            for stage in pipeline.statistics().stages:
                assert stage.mailbox_peak_depth <= 2
            nursery.cancel_scope.cancel()
        await pipeline.close()


async def test_a_temporary_stage_that_fails_stops_the_pipeline() -> None:
    def explode(item: int) -> int:
        if item == 3:
            raise ValueError("bad item 3")
        return item

    out: list[int] = []
    async with memactor.open_system() as system:
        pipeline = await open_pipeline(
            system, ("explode", explode), ("sink", out.append), restart=Restart.TEMPORARY
        )
        with pytest.raises(trio.BrokenResourceError):
            await pipeline.feed(range(100))
        await pipeline.close()
    assert out == [0, 1, 2]


async def test_a_stage_that_keeps_failing_escalates_its_error() -> None:
    def explode(item: int) -> int:
        raise ValueError(f"bad item {item}")

    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^bad item \d+")):
        async with memactor.open_system(max_restarts=2) as system:
            pipeline = await open_pipeline(system, ("explode", explode))
            await pipeline.feed(range(10))
            await trio.sleep_forever()


async def test_a_pipeline_needs_a_stage() -> None:
    async with memactor.open_system() as system:
        with pytest.raises(ValueError, match=r"^a pipeline needs at least one stage$"):
            await open_pipeline(system)


class Leasing(Stage[int, int]):
    """Works on a pooled buffer per item; raises on the item it is told to fail on."""

    def __init__(self, pool: memactor.BufferPool, fail_on: int | None = None) -> None:
        self.pool = pool
        self.fail_on = fail_on

    async def process(self, item: int) -> int:
        async with self.pool.lease((1024,), "float64") as buffer:
            buffer.fill(item)
            await trio.sleep(0)
            if item == self.fail_on:
                raise ValueError(f"bad item {item}")
            return int(buffer[0])


async def test_a_stage_that_raises_returns_its_leases() -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        pipeline = await open_pipeline(
            system, ("work", Leasing(pool, fail_on=3)), restart=Restart.TEMPORARY
        )
        with pytest.raises(trio.BrokenResourceError):
            await pipeline.feed(range(10))
        await pipeline.close()
        await system.metrics.flush()
        books = system.ledger.component("pool")
        assert (books.bytes_in_use, pool.statistics().leases_out) == (0, 0)
        assert books.bytes_reserved == 8192  # the one block, cached


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5, 2.5])
async def test_cancelling_a_pipeline_anywhere_leaves_nothing_lent(
    delay: float, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow(item: int) -> None:
        await trio.sleep(1)

    async with memactor.open_system() as system:
        pool = memactor.BufferPool()
        await system.spawn(pool, name="pool")
        pipeline = await open_pipeline(system, ("work", Leasing(pool)), ("sink", slow))
        with trio.move_on_after(delay):
            await pipeline.feed(range(100))
        await pipeline.close()
        await system.metrics.flush()
        assert system.ledger.statistics().bytes_in_use == 0
        assert pool.statistics().leases_out == 0


class AsyncCallable:
    """An object whose __call__ is a coroutine function."""

    async def __call__(self, item: int) -> int:
        await trio.sleep(0)
        return item + 1


async def test_an_object_with_an_async_call_is_awaited() -> None:
    out: list[int] = []
    async with memactor.open_system() as system:
        await run_pipeline(system, range(3), ("inc", AsyncCallable()), ("sink", out.append))
    assert out == [1, 2, 3]


async def test_feed_counts_what_it_delivered_before_a_failure() -> None:
    def explode(item: int) -> int:
        if item == 3:
            raise ValueError("bad item 3")
        return item

    async with memactor.open_system() as system:
        pipeline = await open_pipeline(system, ("explode", explode), restart=Restart.TEMPORARY)
        with pytest.raises(trio.BrokenResourceError):
            await pipeline.feed(range(10))
        assert 4 <= pipeline.statistics().fed < 10
        await pipeline.close()


async def test_a_pipeline_that_cannot_start_stops_what_it_started() -> None:
    async with memactor.open_system() as system:
        await system.spawn(Square(), name="taken")
        with pytest.raises(memactor.runtime.DuplicateNameError):
            await open_pipeline(system, ("taken", Square()), ("a", Square()), ("b", Square()))
        # "a" and "b" were stopped and their names are free again.
        pipeline = await open_pipeline(system, ("a", Square()), ("b", Square()))
        await pipeline.close()
