"""Sources and the aggregator over real loopback sockets: exact copies, gaps healed by
checkpoints, gone sources, and the merged snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import trio
from remote.helpers import raw_client

import memactor
from memactor.cluster import Aggregator, ClusterSource, by_host, open_aggregator, open_source
from memactor.metrics import Snapshot
from memactor.remote import RefusedError, RemoteError, connect
from memactor.remote._wire import MAX_REQUEST_BYTES


async def churn(pool: memactor.BufferPool, owner: str, rounds: int) -> list[np.ndarray]:
    """Lease and return buffers of a few sizes; keep every fifth one (held at the end)."""
    kept = []
    for i in range(rounds):
        async with pool.lease((1024 * (1 + i % 3),), np.uint8, owner=owner) as buffer:
            buffer.fill(1)
            if i % 5 == 0:
                kept.append(buffer.copy())
        await trio.sleep(0)
    return kept


async def settled(aggregator: Aggregator, source: ClusterSource) -> Snapshot:
    """The source's own last snapshot, once the aggregator has applied the update it
    went with and no later one. Read it and the aggregator's copy with no checkpoint
    in between: both are then of the same sequence number."""
    await source.update_now()
    name = source.identity.name
    await aggregator.wait_until(lambda: aggregator.source(name).seq == source.statistics().seq)
    assert source.last_snapshot is not None
    return source.last_snapshot


@pytest.fixture
async def aggregator() -> AsyncIterator[Aggregator]:
    async with open_aggregator("tcp://127.0.0.1:0", heartbeat_timeout_s=5.0) as running:
        yield running


async def test_a_source_copy_equals_its_ledger_byte_for_byte(aggregator: Aggregator) -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        async with open_source(system, aggregator.address, name="worker", rate_hz=50) as source:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(churn, pool, "a", 200)
                nursery.start_soon(churn, pool, "b", 200)
            own = await settled(aggregator, source)
            copy = aggregator.copy_of("worker")
            assert copy.to_msgpack() == own.to_msgpack()
            assert own.totals.events_applied > 400
            stats = aggregator.source("worker")
            assert (stats.state, stats.gaps, stats.checkpoints) == ("live", 0, 1)
            assert stats.peak_bytes_in_use == own.totals.peak_bytes_in_use
    # Left cleanly: a last update and a bye.
    await aggregator.wait_until(lambda: aggregator.source("worker").state == "gone")
    assert aggregator.source("worker").gone_how == "closed"


async def test_a_lost_update_is_a_gap_healed_by_a_checkpoint(aggregator: Aggregator) -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        async with open_source(system, aggregator.address, name="worker", rate_hz=1) as source:
            await churn(pool, "a", 20)
            source.lose_next()
            await source.update_now()
            await churn(pool, "a", 20)
            await source.update_now()  # the aggregator sees the gap and asks
            await aggregator.wait_until(lambda: aggregator.source("worker").gaps == 1)
            await aggregator.wait_until(lambda: aggregator.source("worker").checkpoints == 2)
            own = await settled(aggregator, source)
            assert aggregator.copy_of("worker").to_msgpack() == own.to_msgpack()
            assert source.statistics().updates_lost == 1
            assert aggregator.statistics().skipped >= 1


async def test_a_source_cut_off_is_gone_and_leaves_the_live_totals(
    aggregator: Aggregator,
) -> None:
    async with memactor.open_system() as system:
        pool = memactor.BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        async with open_source(system, aggregator.address, name="stays", rate_hz=20) as stays:
            with trio.CancelScope() as cut:
                async with open_source(system, aggregator.address, name="cut", rate_hz=20) as gone:
                    kept = await churn(pool, "a", 10)
                    await settled(aggregator, gone)
                    await settled(aggregator, stays)
                    merged = aggregator.snapshot()
                    assert merged.totals.bytes_reserved == 2 * system.ledger.bytes_reserved
                    cut.cancel()
            await aggregator.wait_until(lambda: aggregator.source("cut").state == "gone")
            after = aggregator.snapshot()
            cut_row = aggregator.source("cut")
            assert cut_row.gone_how == "connection lost"
            assert cut_row.gone_wall_ns > 0
            assert cut_row.bytes_reserved == system.ledger.bytes_reserved  # its history stays
            assert after.totals.bytes_reserved == system.ledger.bytes_reserved
            assert all(c.component.startswith("stays@") for c in after.components)
            assert {s.name: s.state for s in after.sources} == {"stays": "live", "cut": "gone"}
            # The cluster's peak was sampled while both were live.
            assert after.totals.peak_bytes_reserved >= merged.totals.bytes_reserved
            assert len(kept) == 2
            await settled(aggregator, stays)


async def test_a_silent_source_is_gone_after_missed_heartbeats() -> None:
    # One update a minute: silent for far longer than the heartbeat timeout.
    async with (
        open_aggregator(heartbeat_timeout_s=0.3) as aggregator,
        memactor.open_system() as system,
        open_source(system, aggregator.address, name="slow", rate_hz=1 / 60) as source,
    ):
        await aggregator.wait_until(lambda: aggregator.source("slow").state == "gone")
        assert aggregator.source("slow").gone_how == "missed heartbeats"
        # The source connects again and starts over with a checkpoint.
        await aggregator.wait_until(lambda: aggregator.source("slow").checkpoints == 2)
        assert aggregator.source("slow").state == "live"
        assert source.reconnects == 1


async def test_the_merged_view_is_served_and_saves_with_its_sources(
    socket_dir: Path,
) -> None:
    async with (
        open_aggregator(serve=f"unix:{socket_dir}/cluster.sock") as aggregator,
        memactor.open_system() as system,
        open_source(system, aggregator.address, name="worker", rate_hz=20) as source,
    ):
        pool = memactor.BufferPool(max_reserved="1 MiB")
        await system.spawn(pool, name="pool")
        kept = await churn(pool, "a", 10)
        own = await settled(aggregator, source)
        assert aggregator.served_address is not None
        async with connect(aggregator.served_address, name="test") as viewer:
            assert viewer.source.name == "memactor aggregate"
            await viewer.subscribe(20)
            view, _ = await viewer.receive_view()
            served = await viewer.snapshot("cluster")
        prefix = f"worker@{source.identity.host}:{source.identity.pid}/"
        assert [s.prefix for s in view.sources] == [prefix]
        assert view.totals.bytes_reserved == own.totals.bytes_reserved
        assert {c.component for c in served.components} == {prefix + "pool"}
        assert {o.owner for o in served.owners} == {prefix + o.owner for o in own.owners}
        assert len(served.blocks) == len(own.blocks) == own.totals.live_blocks
        assert {b.component for b in served.blocks} == {prefix + "pool"}
        (host,) = by_host(served)
        assert (host.host, host.device, host.sources) == (source.identity.host, "cpu", 1)
        assert host.bytes_reserved == own.totals.bytes_reserved
        for name in ("cluster.msgpack", "cluster.json"):
            saved = Snapshot.load(served.save(socket_dir / name))
            assert saved == served
            assert saved.sources == served.sources
        assert len(kept) == 2


async def test_every_statistics_field_of_a_source_and_the_aggregator() -> None:
    async with (
        open_aggregator(token="s3cret", heartbeat_timeout_s=60) as aggregator,
        memactor.open_system() as system,
    ):
        with pytest.raises(RefusedError, match=r"^the aggregator refused this source: the token"):
            async with open_source(system, aggregator.address, name="intruder", token="guess"):
                pass
        assert aggregator.statistics().refused == 1
        # One update a minute: only the first and the ones asked for below are made.
        async with open_source(
            system, aggregator.address, name="worker", rate_hz=1 / 60, token="s3cret"
        ) as source:
            await source.update_now()  # 2
            source.lose_next()
            await source.update_now()  # 3, lost
            await source.update_now()  # 4: a gap; skipped until the checkpoint
            await aggregator.wait_until(lambda: aggregator.statistics().skipped == 1)
            made_after_gap = 1
            while aggregator.source("worker").checkpoints < 2:
                await source.update_now()  # the first one made after the request is full
                made_after_gap += 1
                await trio.sleep(0.01)
            await aggregator.wait_until(
                lambda: aggregator.statistics().bytes_received == source.statistics().bytes_sent
            )
            sent = source.statistics()
            assert sent.seq == 3 + made_after_gap
            assert sent.updates_lost == 1
            assert sent.updates_sent == sent.seq - 1
            assert sent.checkpoints_sent == 2
            assert sent.bytes_sent > 0
            stats = aggregator.statistics()
            assert (stats.sources_live, stats.sources_gone) == (1, 0)
            assert stats.gaps == 1
            assert stats.checkpoints == 2
            # Applied: 1, 2 and the checkpoint; skipped: every other one after the gap.
            assert stats.updates == 3
            assert stats.skipped == made_after_gap - 1
            assert stats.refused == 1
        await aggregator.wait_until(lambda: aggregator.statistics().sources_gone == 1)
        assert aggregator.statistics().sources_live == 0


async def test_a_peer_that_has_not_said_hello_cannot_send_a_large_frame(
    aggregator: Aggregator,
) -> None:
    async with raw_client(aggregator.address) as raw:
        await raw.send((MAX_REQUEST_BYTES + 1).to_bytes(4, "big"))
        reply = await raw.receive()
    assert reply is not None
    assert (reply.type, reply.body["code"]) == ("error", "too_large")
    assert aggregator.statistics().refused == 1
    assert aggregator.sources() == ()


async def test_one_source_too_many_is_told_busy() -> None:
    async with (
        open_aggregator(max_sources=1) as aggregator,
        memactor.open_system() as system,
        open_source(system, aggregator.address, name="first"),
    ):
        with pytest.raises(RemoteError, match=r"^the aggregator refused this source: too many"):
            async with open_source(system, aggregator.address, name="second"):
                pass
        assert aggregator.statistics().refused == 1
        assert [s.name for s in aggregator.sources()] == ["first"]


async def test_a_damaged_update_ends_its_source_with_the_reason(aggregator: Aggregator) -> None:
    identity = {"name": "broken", "pid": 1, "host": "h", "started_wall_ns": 0, "address": ""}
    async with raw_client(aggregator.address) as raw:
        welcome = await raw.hello(source=identity)
        assert welcome.type == "welcome"
        await raw.request("update", seq=1, body={"full": True, "label": ""})
        assert await raw.receive() is None  # the aggregator closed the connection
    await aggregator.wait_until(lambda: aggregator.source("broken").state == "gone")
    assert aggregator.source("broken").gone_how == (
        "protocol error: a damaged update 1: missing field 'wall_time_ns'"
    )
