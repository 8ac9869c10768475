"""The buffer pool: size classes, hits and misses, byte-exact accounting, backpressure,
lease misuse, cancellation, trimming, stopping, owners, statistics."""

from __future__ import annotations

import collections
import dataclasses
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import memactor
from memactor.actors import (
    BufferPool,
    GetStatistics,
    Lease,
    LeaseError,
    MemorySystem,
    PoolStatistics,
    PoolTimeoutError,
    Trim,
    current_owner,
    size_class,
)
from memactor.runtime import NO_BACKOFF, Actor, ActorFailedError, ActorRef, ActorState

KiB = 1 << 10
MiB = 1 << 20


def held(pool: BufferPool) -> tuple[int, int]:
    """The truth the ledger must match: (reserved, in use), summed over the raw arrays the
    pool holds (read from its private state), cached and lent."""
    lent = sum(block.raw.nbytes for block in pool._lent.values())
    cached = sum(block.raw.nbytes for block in pool._cached.values())
    return lent + cached, lent


async def check_books(system: MemorySystem, pool: BufferPool, name: str = "pool") -> None:
    """The ledger's component for the pool and the pool's own statistics both equal, to
    the byte, the raw blocks the pool holds."""
    await system.metrics.flush()
    stats = pool.statistics()
    reserved, in_use = held(pool)
    if stats.hits + stats.misses == 0:
        assert name not in {c.component for c in system.ledger.components()}
        return
    ledger = system.ledger.component(name)
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (reserved, in_use)
    assert (stats.bytes_reserved, stats.bytes_in_use) == (reserved, in_use)
    assert ledger.anomaly_count == 0


@asynccontextmanager
async def open_pool(
    max_reserved: int | str | None = None, max_cached: int | str | None = None
) -> AsyncIterator[tuple[MemorySystem, BufferPool]]:
    async with memactor.open_system(restart_backoff=NO_BACKOFF) as system:
        pool = BufferPool(max_reserved=max_reserved, max_cached=max_cached)
        await system.spawn(pool, name="pool")
        yield system, pool


# -- size classes and views ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "expected"),
    [
        (0, 0),
        (1, 1),
        (3, 4),
        (1000, 1024),
        (1024, 1024),
        (1025, 2048),
        (MiB - 1, MiB),
        (MiB, MiB),
        (MiB + 1, 2 * MiB),
        (5 * MiB - 1, 5 * MiB),
        (5 * MiB + 1, 6 * MiB),
    ],
)
def test_size_classes(nbytes: int, expected: int) -> None:
    assert size_class(nbytes) == expected


def test_a_negative_size_has_no_class() -> None:
    with pytest.raises(ValueError, match=r"^nbytes must not be negative, got -1$"):
        size_class(-1)


async def test_a_lease_is_a_c_contiguous_view_of_its_raw_block() -> None:
    async with open_pool() as (_, pool):
        lease = await pool.acquire((3, 5), np.float32)
        array = lease.array
        assert (array.shape, array.dtype, array.flags.c_contiguous) == (
            (3, 5),
            np.dtype(np.float32),
            True,
        )
        assert (lease.nbytes, lease.block_nbytes) == (60, 64)
        raw = pool._lent[lease.block].raw
        assert (raw.dtype, raw.nbytes, np.shares_memory(array, raw)) == (
            np.dtype(np.uint8),
            64,
            True,
        )
        array[:] = 7
        assert (raw[:60].view(np.float32) == 7).all()
        scalar = await pool.acquire((), np.complex128)
        assert (scalar.array.shape, scalar.block_nbytes) == ((), 16)
        lease.release()
        scalar.release()


async def test_a_zero_size_request_gets_a_zero_size_block() -> None:
    async with open_pool(max_reserved=0) as (system, pool):
        async with pool.lease((0, 3), np.float64) as array:
            assert array.shape == (0, 3)
            assert pool.statistics().misses == 1
        await check_books(system, pool)
        assert system.ledger.component("pool").allocations == 1


async def test_hits_and_misses_follow_the_size_class() -> None:
    async with open_pool() as (system, pool):
        first = await pool.acquire(1000, np.uint8)  # a 1 KiB block: miss
        first.release()
        again = await pool.acquire(256, np.float32)  # 1 KiB too: hit, same block
        assert (again.block, again.hit, first.hit) == (first.block, True, False)
        other = await pool.acquire(1025, np.uint8)  # 2 KiB: miss
        assert (other.block != first.block, other.hit) == (True, False)
        stats = pool.statistics()
        assert (stats.hits, stats.misses) == (1, 2)
        await system.metrics.flush()
        ledger = system.ledger.component("pool")
        assert (ledger.allocations, ledger.acquires, ledger.releases) == (2, 1, 1)
        again.release()
        other.release()


# -- accounting ---------------------------------------------------------------------------


async def test_the_ledger_matches_the_raw_blocks_after_every_step() -> None:
    async with open_pool(max_reserved=64 * KiB, max_cached=8 * KiB) as (system, pool):
        a = await pool.acquire((10, 10), np.float64)  # 800 B -> 1 KiB
        await check_books(system, pool)
        b = await pool.acquire(3000, np.uint8)  # 4 KiB
        await check_books(system, pool)
        a.release()
        await check_books(system, pool)
        c = await pool.acquire(100, np.int64)  # 800 B -> 1 KiB: hit
        await check_books(system, pool)
        b.release()
        c.release()
        await check_books(system, pool)
        d = await pool.acquire(16 * KiB, np.uint8)  # miss
        await check_books(system, pool)
        d.release()  # the cache would hold 21 KiB: trimmed to 8 KiB or less
        await check_books(system, pool)
        assert pool.statistics().bytes_cached <= 8 * KiB
        e = await pool.acquire(60 * KiB, np.uint8)  # 64 KiB: frees the whole cache for room
        await check_books(system, pool)
        assert pool.statistics().cached_blocks == 0
        e.release()  # 64 KiB is over max_cached at once: freed
        await check_books(system, pool)
        (await pool.acquire(KiB, np.uint8)).release()
        assert pool.trim() == KiB
        await check_books(system, pool)
        assert held(pool) == (0, 0)


async def test_the_ledger_keeps_requested_beside_lent_bytes() -> None:
    # Issue 13's lends "of 1000..5000 then 5000, 10000, 15000 float64 elements", read as
    # eight lends one after another (each returned before the next): 1000, 2000, 3000,
    # 4000 and 5000 elements, then 5000, 10000 and 15000. That reading, and no other
    # with steps of 1000, gives the figures: the requests come to 15,000 +
    # 30,000 = 45,000 elements, 360,000 B in all; the largest, 120,000 B, is the peak in
    # use, as only one lend is out at a time; 360,000 / 120,000 is a reuse ratio of 3.0;
    # and the 120,000 B request's 131,072 B block is the lent peak.
    elements = [1000, 2000, 3000, 4000, 5000, 5000, 10_000, 15_000]
    async with open_pool() as (system, pool):
        for count in elements:
            async with pool.lease(count, np.float64):
                pass
        await system.metrics.flush()
        stats = system.ledger.component("pool")
    blocks = [size_class(8 * count) for count in elements]
    assert blocks == [8192, 16384, 32768, 32768, 65536, 65536, 131_072, 131_072]
    assert stats.peak_requested_bytes_in_use == 120_000
    assert stats.requested_bytes_lent == 360_000
    assert stats.reuse_ratio == 3.0
    assert stats.peak_bytes_in_use == 131_072
    assert stats.requested_bytes_in_use == 0
    assert stats.requested_lends == (stats.allocations + stats.acquires) == 8
    assert stats.bytes_lent == sum(blocks) == 483_328
    assert stats.slack_ratio == (483_328 - 360_000) / 483_328  # 25.5% of lent bytes
    assert stats.anomaly_count == 0


@settings(max_examples=200)
@given(
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 3 * MiB)), max_size=30),
    max_reserved=st.sampled_from([None, 4 * MiB, 8 * MiB]),
    max_cached=st.sampled_from([None, 0, 64 * KiB, 2 * MiB]),
)
def test_random_acquires_and_releases_keep_the_books_exact(
    steps: list[tuple[bool, int]], max_reserved: int | None, max_cached: int | None
) -> None:
    kept: list[tuple[int, int]] = []

    async def main() -> None:
        async with open_pool(max_reserved, max_cached) as (system, pool):
            leases: list[Lease] = []
            lent = 0
            for acquire, n in steps:
                if acquire or not leases:
                    try:
                        leases.append(pool.acquire_nowait(n, np.uint8))
                        lent += 1
                    except trio.WouldBlock:
                        assert max_reserved is not None
                        assert pool.statistics().bytes_in_use + size_class(n) > max_reserved
                else:
                    leases.pop(n % len(leases)).release()
            await check_books(system, pool)
            stats = pool.statistics()
            assert (stats.hits + stats.misses, stats.leases_out) == (lent, len(leases))
            if max_reserved is not None:
                assert stats.peak_bytes_reserved <= max_reserved
            if max_cached is not None:
                assert stats.bytes_cached <= max_cached
            kept.append(held(pool))
        if lent:
            # Leases still out when the system closes stay in the books; the cache does not.
            ledger = system.ledger.component("pool")
            assert ledger.bytes_reserved == ledger.bytes_in_use == kept[0][1]
        for lease in leases:
            lease.release()  # after the close: silent

    trio.run(main)


@pytest.mark.parametrize("seed", range(5))
async def test_many_tasks_waiting_and_cancelled_keep_the_books_exact(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([100, KiB, 3000, 20 * KiB, MiB + 1]) for _ in range(200)]
    holds = [rng.random() for _ in range(200)]
    outcomes: collections.Counter[str] = collections.Counter()
    async with open_pool(max_reserved=3 * MiB, max_cached=MiB) as (system, pool):

        async def worker(first: int) -> None:
            for i in range(first, first + 10):
                with trio.move_on_after(0.5 if i % 7 == 0 else math.inf):
                    try:
                        async with pool.lease(sizes[i], np.uint8, timeout=1.5):
                            await trio.sleep(holds[i])
                        outcomes["done"] += 1
                        continue
                    except PoolTimeoutError:
                        outcomes["timed out"] += 1
                        continue
                outcomes["cancelled"] += 1

        async with trio.open_nursery() as nursery:
            for first in range(0, 200, 10):
                nursery.start_soon(worker, first)
            await trio.sleep(1.25)
            await check_books(system, pool)
        stats = pool.statistics()
        assert (stats.leases_out, stats.waiters, stats.bytes_in_use) == (0, 0, 0)
        assert stats.peak_bytes_reserved <= 3 * MiB
        assert sum(outcomes.values()) == 200
        assert outcomes["done"] > 100
        await check_books(system, pool)


# -- backpressure -------------------------------------------------------------------------


async def test_an_acquire_waits_for_a_release_and_waiters_are_served_in_order() -> None:
    order: list[str] = []
    async with open_pool(max_reserved=4 * KiB) as (system, pool):
        held_2k = await pool.acquire(2 * KiB, np.uint8)

        async def wants(label: str, nbytes: int, release: trio.Event) -> None:
            async with pool.lease(nbytes, np.uint8):
                order.append(label)
                await release.wait()

        done_big, done_small = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wants, "big", 4 * KiB, done_big)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(wants, "small", 1 * KiB, done_small)
            await trio.testing.wait_all_tasks_blocked()
            # 1 KiB would fit beside the 2 KiB lease, but waits behind the earlier request.
            assert (order, pool.statistics().waiters) == ([], 2)
            with pytest.raises(trio.WouldBlock):
                pool.acquire_nowait(1 * KiB, np.uint8)
            held_2k.release()  # frees the cached 2 KiB block to make room for 4 KiB
            await trio.testing.wait_all_tasks_blocked()
            assert (order, pool.statistics().waiters) == (["big"], 1)
            await check_books(system, pool)
            done_big.set()
            await trio.testing.wait_all_tasks_blocked()
            assert (order, pool.statistics().waiters) == (["big", "small"], 0)
            done_small.set()
        await check_books(system, pool)
        assert pool.statistics().peak_bytes_reserved == 4 * KiB


async def test_acquire_nowait_would_block_and_changes_nothing() -> None:
    async with open_pool(max_reserved=2 * KiB) as (system, pool):
        lease = pool.acquire_nowait(2 * KiB, np.uint8)
        before = pool.statistics()
        with pytest.raises(trio.WouldBlock):
            pool.acquire_nowait(1, np.uint8)
        assert dataclasses.replace(pool.statistics(), actor=before.actor) == before
        lease.release()
        pool.acquire_nowait(1, np.uint8).release()  # the cached 2 KiB block made room
        await check_books(system, pool)


async def test_a_timeout_says_what_was_asked_reserved_and_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_pool(max_reserved=6 * KiB) as (system, pool):
        lease = await pool.acquire(4 * KiB, np.uint8)
        start = trio.current_time()
        with pytest.raises(PoolTimeoutError) as info:
            await pool.acquire((256, 2), np.float64, timeout=2.5)
        assert trio.current_time() - start == 2.5
        assert str(info.value) == (
            "pool 'pool' could not lend 4 KiB (4096 bytes, for float64[256, 2]) within 2.5 s: "
            "4 KiB (4096 bytes) reserved, 4 KiB in use, max_reserved 6 KiB (6144 bytes)"
        )
        error = info.value
        assert isinstance(error, TimeoutError)
        assert isinstance(error, memactor.MemactorError)
        assert (error.requested_bytes, error.bytes_reserved, error.max_reserved) == (
            4096,
            4096,
            6144,
        )
        with pytest.raises(PoolTimeoutError):
            async with pool.lease(4 * KiB, np.uint8, timeout=0):
                pass
        assert pool.statistics().waiters == 0
        lease.release()
        await check_books(system, pool)


async def test_a_request_bigger_than_the_cap_fails_at_once() -> None:
    async with open_pool(max_reserved="3 MiB") as (_, pool):
        with pytest.raises(
            ValueError,
            match=(
                r"^float64\[1024, 1024\] needs a 8 MiB block \(8388608 bytes\), more than "
                r"max_reserved 3 MiB \(3145728 bytes\) of pool 'pool': it could never be lent$"
            ),
        ):
            await pool.acquire((1024, 1024))
        # 3 MiB + 1 byte fits nothing smaller than a 4 MiB block.
        with pytest.raises(ValueError, match=r"needs a 4 MiB block"):
            pool.lease(3 * MiB + 1, np.uint8)
        assert pool.statistics().misses == 0


async def test_bad_requests_are_refused_clearly() -> None:
    async with open_pool() as (_, pool):
        with pytest.raises(ValueError, match=r"^shape \(2, -1\) has a negative dimension$"):
            await pool.acquire((2, -1))
        with pytest.raises(TypeError, match=r"^dtype object holds Python objects"):
            await pool.acquire(4, object)
        with pytest.raises(ValueError, match=r"^dtype dtype\('V'\) has no size"):
            await pool.acquire(4, np.void)
        with pytest.raises(ValueError, match=r"^timeout must be None or a non-negative"):
            await pool.acquire(4, timeout=-1)


# -- misuse -------------------------------------------------------------------------------


async def test_each_misuse_of_a_lease_raises_lease_error_saying_which() -> None:
    async with memactor.open_system() as system:
        pool, other = BufferPool(), BufferPool()
        await system.spawn(pool, name="pool")
        await system.spawn(other, name="other")
        lease = await pool.acquire(8, np.uint8, owner="me")
        with pytest.raises(
            LeaseError,
            match=r"^lease of uint8\[8\] \(block 1\) for 'me' belongs to pool 'pool', "
            r"not to pool 'other'$",
        ):
            other.release(lease)
        array = lease.array
        lease.release()
        with pytest.raises(LeaseError, match=r"^lease of .* for 'me' was released twice$"):
            lease.release()
        with pytest.raises(LeaseError, match=r"^lease of .* was used after release"):
            _ = lease.array
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1  # the view handed out earlier is read-only now
        assert lease.block == 1  # still names the block it had
        pending = pool.lease(8, np.uint8, owner="me")
        with pytest.raises(LeaseError, match=r"^lease of uint8\[8\] for 'me' was never acquired"):
            _ = pending.array
        with pytest.raises(LeaseError, match=r"was never acquired, so cannot be released$"):
            pending.release()
        with pytest.raises(LeaseError, match=r"was never acquired and has no block$"):
            _ = pending.block
        async with pending:
            with pytest.raises(LeaseError, match=r"was entered twice"):
                await pending.__aenter__()
        await check_books(system, pool)


async def test_acquire_before_spawn_and_after_stop_is_refused() -> None:
    pool = BufferPool()
    with pytest.raises(trio.ClosedResourceError, match=r"^buffer pool is not running yet"):
        await pool.acquire(8)
    with pytest.raises(RuntimeError, match=r"has not been spawned$"):
        pool.statistics()
    async with memactor.open_system() as system:
        ref = await system.spawn(pool, name="pool")
        await ref.stop()
        with pytest.raises(trio.ClosedResourceError, match=r"^buffer pool 'pool' has stopped$"):
            await pool.acquire(8)
        with pytest.raises(trio.ClosedResourceError, match=r"has stopped"):
            async with pool.lease(8):
                pass
        with pytest.raises(trio.ClosedResourceError, match=r"has stopped"):
            pool.acquire_nowait(8)


async def test_a_waiter_is_told_when_the_pool_stops() -> None:
    async with open_pool(max_reserved=KiB) as (system, pool):
        lease = await pool.acquire(KiB, np.uint8)
        errors: list[Exception] = []

        async def waiter() -> None:
            try:
                await pool.acquire(8, np.uint8, owner="late")
            except trio.ClosedResourceError as error:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await system.lookup("pool").stop()
        assert [str(e) for e in errors] == [
            "buffer pool 'pool' stopped while lease of uint8[8] for 'late' waited"
        ]
        assert pool.statistics().waiters == 0
        lease.release()
        await check_books(system, pool)


# -- cancellation and errors --------------------------------------------------------------


async def test_cancelled_while_waiting_nothing_is_lent() -> None:
    async with open_pool(max_reserved=KiB) as (system, pool):
        lease = await pool.acquire(KiB, np.uint8)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.acquire, 8, np.uint8)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.statistics().waiters == 1
            nursery.cancel_scope.cancel()
        assert pool.statistics().waiters == 0
        lease.release()
        stats = pool.statistics()
        assert (stats.leases_out, stats.misses) == (0, 1)
        await check_books(system, pool)


async def test_a_cancelled_head_waiter_lets_the_next_one_in() -> None:
    async with open_pool(max_reserved=4 * KiB) as (system, pool):
        lease = await pool.acquire(2 * KiB, np.uint8)
        got: list[Lease] = []
        big_scope = trio.CancelScope()

        async def big() -> None:
            with big_scope:
                got.append(await pool.acquire(4 * KiB, np.uint8))

        async def small() -> None:
            got.append(await pool.acquire(KiB, np.uint8))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(small)
            await trio.testing.wait_all_tasks_blocked()
            assert (pool.statistics().waiters, len(got)) == (2, 0)
            big_scope.cancel()  # the small request fits beside the 2 KiB lease
        assert (pool.statistics().waiters, [g.block_nbytes for g in got]) == (0, [KiB])
        for each in [lease, *got]:
            each.release()
        await check_books(system, pool)


async def test_cancelled_inside_async_with_the_lease_is_released() -> None:
    async with open_pool() as (system, pool):
        with trio.CancelScope() as scope:
            async with pool.lease(100, np.uint8):
                scope.cancel()
                await trio.sleep(0)
        assert scope.cancelled_caught
        assert pool.statistics().leases_out == 0
        await check_books(system, pool)


async def test_an_exception_inside_async_with_releases_the_lease() -> None:
    async with open_pool() as (system, pool):
        with pytest.raises(KeyError):
            async with pool.lease(100, np.uint8):
                raise KeyError("boom")
        assert pool.statistics().leases_out == 0
        await check_books(system, pool)
        async with pool.lease(100, np.uint8) as array:
            assert array.size == 100  # and a body that releases early is fine too
        assert pool.statistics().hits == 1


# -- the cache ----------------------------------------------------------------------------


async def test_the_cache_is_trimmed_to_max_cached_coldest_first() -> None:
    async with open_pool(max_cached=2 * KiB) as (system, pool):
        leases = [await pool.acquire(KiB, np.uint8) for _ in range(3)]
        assert [lease.block for lease in leases] == [1, 2, 3]
        for lease in leases:
            lease.release()  # the third release pushes the cache to 3 KiB: block 1 goes
        await check_books(system, pool)
        ledger = system.ledger.component("pool")
        assert (ledger.frees, pool.statistics().trims) == (1, 1)
        live = sorted(b.block for b in system.ledger.snapshot("now").blocks)
        assert live == [2, 3]
        warm = await pool.acquire(KiB, np.uint8)
        assert warm.block == 3  # a hit takes the block returned last
        warm.release()
        assert await system.lookup("pool").ask(Trim()) == 2 * KiB
        await check_books(system, pool)
        assert system.ledger.component("pool").frees == 3


async def test_stopping_frees_the_cache_but_not_the_leases_out() -> None:
    async with open_pool() as (system, pool):
        kept = await pool.acquire(MiB, np.uint8)
        for _ in range(3):
            (await pool.acquire(KiB, np.uint8)).release()
        (await pool.acquire(2 * MiB, np.uint8)).release()
    ledger = system.ledger.component("pool")
    assert (ledger.bytes_reserved, ledger.bytes_in_use) == (MiB, MiB)
    assert ledger.frees == 2
    assert [(o.owner, o.bytes_in_use) for o in system.ledger.owners()] == [(current_owner(), MiB)]
    kept.release()  # after the system closed: no one to tell, and no error
    assert held(pool) == (0, 0)
    assert system.ledger.component("pool").bytes_in_use == MiB


async def test_a_lease_released_after_the_pool_stopped_is_freed_and_reported() -> None:
    async with open_pool() as (system, pool):
        lease = await pool.acquire(KiB, np.uint8)
        await system.lookup("pool").stop()
        with trio.CancelScope() as scope:
            scope.cancel()
            lease.release()  # synchronous: fine in a cancelled scope
        assert held(pool) == (0, 0)
        await check_books(system, pool)
        assert system.ledger.component("pool").frees == 1


async def test_a_restarted_pool_takes_its_leases_back() -> None:
    async with open_pool() as (system, pool):
        out = await pool.acquire(KiB, np.uint8)
        (await pool.acquire(2 * KiB, np.uint8)).release()
        ref: ActorRef[object, object] = system.lookup("pool")
        with pytest.raises(ActorFailedError) as info:
            await ref.ask("statistics")  # a message is a frozen value, not a string
        assert isinstance(info.value.error, TypeError)
        assert str(info.value.error) == (
            "buffer pool 'pool' got 'statistics': not GetStatistics() or Trim()"
        )
        await trio.testing.wait_all_tasks_blocked()
        assert pool.statistics().actor.restarts == 1
        out.release()  # into the restarted pool's cache
        stats = pool.statistics()
        assert (stats.cached_blocks, stats.bytes_cached, stats.trims) == (1, KiB, 1)
        await check_books(system, pool)


# -- owners -------------------------------------------------------------------------------


class Worker(Actor[int, int]):
    """Holds a lease per message; a background task holds one more."""

    def __init__(self, pool: BufferPool) -> None:
        self.pool = pool
        self.leases: list[Lease] = []
        self.background_ready = trio.Event()

    async def on_start(self) -> None:
        self.start_soon(self.background)

    async def background(self) -> None:
        async with self.pool.lease(2 * KiB, np.uint8):
            self.background_ready.set()
            await trio.sleep_forever()

    async def handle(self, message: int) -> int:
        lease = await self.pool.acquire(message, np.uint8)
        self.leases.append(lease)
        return lease.block

    async def on_stop(self) -> None:
        for lease in self.leases:
            lease.release()


@asynccontextmanager
async def held_by_a_task(pool: BufferPool, nbytes: int, *, name: str) -> AsyncIterator[None]:
    """A task outside any actor, called ``name``, holds ``nbytes`` from ``pool`` meanwhile."""

    async def holder(done: trio.Event) -> None:
        async with pool.lease(nbytes, np.uint8):
            await done.wait()

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder, done, name=name)
        await trio.testing.wait_all_tasks_blocked()
        try:
            yield
        finally:
            done.set()


async def test_owners_are_the_calling_actor_or_task_unless_named() -> None:
    async with open_pool() as (system, pool):
        worker = Worker(pool)
        ref = await system.spawn(worker, name="decode.worker")
        await ref.ask(KiB)
        await worker.background_ready.wait()
        async with held_by_a_task(pool, 4 * KiB, name="loader"):
            named = await pool.acquire(8 * KiB, np.uint8, owner="batch-7")
            await system.metrics.flush()
            owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
            assert owners == {"decode.worker": 3 * KiB, "loader": 4 * KiB, "batch-7": 8 * KiB}
        named.release()
        await ref.stop()
        await check_books(system, pool)
        assert {o.owner: o.bytes_in_use for o in system.ledger.owners()} == {
            "decode.worker": 0,
            "loader": 0,
            "batch-7": 0,
        }


async def test_a_task_named_like_an_actor_outside_any_actor_owns_under_its_own_name() -> None:
    async with open_pool() as (system, pool):
        await system.spawn(Worker(pool), name="decode.worker")
        async with held_by_a_task(pool, 4 * KiB, name="actor decode.worker"):
            await system.metrics.flush()
            owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
            assert owners == {"decode.worker": 2 * KiB, "actor decode.worker": 4 * KiB}


async def test_a_task_started_in_an_actor_nursery_from_outside_owns_under_its_own_name() -> None:
    owners: list[str] = []
    async with open_pool() as (system, pool):
        worker = Worker(pool)
        await system.spawn(worker, name="decode.worker")

        async def visitor() -> None:
            owners.append(current_owner())

        worker.nursery.start_soon(visitor, name="visitor")
        await trio.testing.wait_all_tasks_blocked()
    assert owners == ["visitor"]


# -- statistics and the story -------------------------------------------------------------


async def test_every_statistics_field() -> None:
    async with open_pool(max_reserved=8 * KiB, max_cached=KiB) as (system, pool):
        a = await pool.acquire(KiB, np.uint8)  # miss
        b = await pool.acquire(2 * KiB, np.uint8)  # miss
        b.release()  # cache 2 KiB > 1 KiB: trimmed
        c = await pool.acquire(KiB, np.uint8)  # miss (1 KiB: nothing cached)
        c.release()  # cached: 1 KiB
        d = await pool.acquire(KiB, np.uint8)  # hit
        d.release()
        e = await pool.acquire(4 * KiB, np.uint8)  # miss
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.acquire, 4 * KiB, np.uint8)
            await trio.testing.wait_all_tasks_blocked()
            stats = await system.lookup("pool").ask(GetStatistics())
            nursery.cancel_scope.cancel()
        assert isinstance(stats, PoolStatistics)
        assert stats == PoolStatistics(
            hits=1,
            misses=4,
            leases_out=2,
            cached_blocks=1,
            bytes_reserved=6 * KiB,
            peak_bytes_reserved=6 * KiB,
            bytes_in_use=5 * KiB,
            peak_bytes_in_use=5 * KiB,
            bytes_cached=KiB,
            waiters=1,
            trims=1,
            max_reserved=8 * KiB,
            max_cached=KiB,
            actor=stats.actor,
        )
        assert (stats.actor.name, stats.actor.state) == ("pool", ActorState.RUNNING)
        assert stats.actor.messages_handled == 0  # the ask being answered is not done yet
        a.release()
        e.release()
        await check_books(system, pool)


async def test_a_pool_lifecycle() -> None:
    pool = BufferPool(max_reserved="16 KiB", max_cached="8 KiB")
    async with memactor.open_system() as system:
        ref = await system.spawn(pool, name="pool")
        # Decode four frames through one 4 KiB buffer: one miss, three hits.
        for frame in range(4):
            async with pool.lease((32, 32), np.float32) as buffer:
                buffer.fill(frame)
        assert (pool.statistics().misses, pool.statistics().hits) == (1, 3)
        # Two wide frames fill the cap; a third waits until one comes back.
        wide = [await pool.acquire(2048, np.float32) for _ in range(2)]  # 8 KiB each
        assert pool.statistics().bytes_reserved == 16 * KiB  # the 4 KiB block made room
        third: list[Lease] = []

        async def third_frame() -> None:
            third.append(await pool.acquire(2048, np.float32))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(third_frame)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.statistics().waiters == 1
            wide.pop().release()
        assert third[0].block_nbytes == 8 * KiB
        await check_books(system, pool)
        # Everything comes back; the cache keeps 8 KiB, a trim frees it.
        for lease in [*wide, *third]:
            lease.release()
        assert pool.statistics().bytes_cached == 8 * KiB
        assert await ref.ask(Trim()) == 8 * KiB
        await check_books(system, pool)
    stats = pool.statistics()
    assert (stats.actor.state, stats.bytes_reserved) == (ActorState.STOPPED, 0)
    pool_ledger = system.ledger.component("pool")
    assert (pool_ledger.bytes_reserved, pool_ledger.peak_bytes_reserved) == (0, 16 * KiB)
    assert pool_ledger.hit_ratio == 4 / 7


async def test_a_sub_array_dtype_is_extra_dimensions_and_nothing_stays_lent() -> None:
    async with memactor.open_system() as system:
        pool = BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        async with pool.lease((4,), np.dtype(("f4", (3,)))) as array:
            assert (array.shape, array.dtype) == ((4, 3), np.dtype("f4"))
        async with pool.lease(np.array([2, 3]), np.uint8) as array:
            assert array.shape == (2, 3)
        with pytest.raises(TypeError, match=r"^shape must be an int or a sequence of ints, got "):
            pool.acquire_nowait((2.5,), np.uint8)  # type: ignore[arg-type]  # the bad input
        assert pool.statistics().leases_out == 0
