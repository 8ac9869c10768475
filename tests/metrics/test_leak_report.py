"""Projections to known limits, fragmentation per pool and device, recommendations, and
the leak report in ``render_snapshot`` and ``snapshot_report_json``.

Projections run on a ledger fed by hand (exact lines); fragmentation and recommendations
on a real BufferPool under trio's mock clock, so the numbers are the pool's own.
"""

from __future__ import annotations

import numpy as np
import pytest
import trio

import memactor
from memactor.actors import BufferPool
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import (
    AdviceConfig,
    Ledger,
    Limit,
    Snapshot,
    fragmentation,
    leak_report,
    parse_limit,
    project,
    recommend,
    render_snapshot,
    snapshot_report_json,
)

KiB, MiB = 1 << 10, 1 << 20
TICK = 100_000_000


def growing(per_tick: int, seconds: int = 60) -> Snapshot:
    """``pool`` takes *per_tick* bytes every 100 ms (reserved and in use grow alike)."""
    now = [0]
    ledger = Ledger(clock=lambda: now[0])
    for tick in range(seconds * 10):
        now[0] = tick * TICK
        if per_tick:
            ledger.apply(
                [MemoryEvent(EventKind.ALLOC, "pool", tick + 1, per_tick, "cpu", "w", now[0])]
            )
        elif tick == 0:
            ledger.apply([MemoryEvent(EventKind.ALLOC, "pool", 1, MiB, "cpu", "w", 0)])
        ledger.sample()
    return ledger.snapshot("end")


def test_steady_growth_reaches_its_cap_with_the_model_and_range_stated() -> None:
    (found,) = project(growing(102_400), [Limit(128 * MiB, "pool", name="cap")])
    # 600 blocks of 100 KiB by the last sample; 1,024,000 B/s on an exact line.
    assert found.current_bytes == 600 * 102_400
    assert found.slope_bytes_per_s == pytest.approx(1_024_000)
    assert found.slope_stderr_bytes_per_s == pytest.approx(0.0, abs=1e-6)
    assert found.seconds_to_limit == pytest.approx((128 * MiB - 600 * 102_400) / 1_024_000)
    assert found.grows
    assert found.sentence == (
        "pool on cpu: 58.6 MiB reserved of its 128 MiB cap: reaches it in about 71 s at "
        "+1000 KiB/s (line fit over the last 30 s, 150 points; 95% range 71 s to 71 s)"
    )
    assert found.to_dict()["model"] == (
        "least-squares line over the recent series; range: slope ± 2 SE"
    )


def test_no_growth_and_over_the_limit_say_so() -> None:
    flat = growing(0)
    (still,) = project(flat, [Limit(8 * MiB, "pool", name="cap")])
    assert not still.grows
    assert still.sentence == (
        "pool on cpu: 1 MiB reserved of its 8 MiB cap: does not grow (0 B/s ± 0 B/s, "
        "line fit over the last 30 s, 150 points)"
    )
    (over,) = project(flat, [Limit(MiB, None, name="limit")])
    assert over.sentence == "everything: 1 MiB reserved of its 1 MiB limit: at or over it now"
    assert project(flat, [Limit(MiB, "absent")]) == ()


def test_limits_read_from_the_command_line() -> None:
    assert parse_limit("pool=1GiB") == Limit(1 << 30, "pool", "cpu", "reserved", "cap")
    assert parse_limit("*=80 GiB") == Limit(80 << 30, None, "cpu", "reserved", "limit")
    with pytest.raises(ValueError, match=r"^'\*@cuda:0=1GiB': '\*' is the total over every"):
        parse_limit("*@cuda:0=1GiB")
    with pytest.raises(ValueError, match=r"^a limit is COMPONENT\[@DEVICE\]=SIZE"):
        parse_limit("pool")
    with pytest.raises(ValueError, match=r"^a limit must be positive, got 0 bytes$"):
        parse_limit("pool=0")
    with pytest.raises(ValueError, match=r"^recent_fraction must be within"):
        project(growing(0, 1), [], recent_fraction=0.0)


async def pool_run() -> Snapshot:
    """A real pool: ten 1 MiB buffers at once early, then one 3000-byte buffer at a time
    (a 4 KiB size class: 1096 bytes of slack per lend) for a minute."""
    async with memactor.open_system(clock=lambda: round(trio.current_time() * 1e9)) as system:
        pool = BufferPool()
        await system.spawn(pool, name="pool")
        big = [await pool.acquire(MiB, np.uint8) for _ in range(10)]
        for lease in big:
            lease.release()
        for _ in range(600):
            async with pool.lease(3000, np.uint8):
                await trio.sleep(0.05)
            await trio.sleep(0.05)
        return await system.metrics.snapshot("end")


async def test_fragmentation_of_a_real_pool(autojump_clock: trio.testing.MockClock) -> None:
    snapshot = await pool_run()
    (pool,) = fragmentation(snapshot)
    assert (pool.component, pool.device) == ("pool", "cpu")
    assert pool.bytes_reserved == 10 * MiB + 4 * KiB
    assert pool.cached_bytes == pool.bytes_reserved
    assert pool.cached_blocks == 11
    assert pool.cached_sizes == ((4096, 8191, 1, 4096), (MiB, 2 * MiB - 1, 10, 10 * MiB))
    assert pool.slack_bytes_lent == 600 * 1096
    assert pool.slack_bytes_now == 0
    assert pool.sentence().startswith(
        "pool on cpu: cache 10.0 MiB in 11 blocks of 10.0 MiB reserved (sizes from 4 KiB: 1, "
        "1 MiB: 10); slack 642.2 KiB of"
    )


async def test_recommendations_of_a_real_pool(autojump_clock: trio.testing.MockClock) -> None:
    snapshot = await pool_run()
    kinds = {r.kind: r for r in recommend(snapshot)}
    assert set(kinds) == {"idle_cache"}  # slack is 5%: nothing to say about it
    idle = kinds["idle_cache"]
    assert idle.evidence.startswith("10 MiB of its 10.0 MiB reserved was never lent over the last ")
    assert "in use peaked at 4 KiB" in idle.evidence
    assert idle.change == (
        "trim its cache (pool.trim()) or lower max_reserved or max_cached toward 4 KiB"
    )
    strict = recommend(snapshot, AdviceConfig(slack_ratio=0.01))
    (slack,) = [r for r in strict if r.kind == "slack"]
    assert slack.sentence().startswith("pool@cpu: 5% of lent bytes were slack (")
    with pytest.raises(ValueError, match=r"^slack_ratio must be within \(0, 1\], got 0$"):
        AdviceConfig(slack_ratio=0)


def test_low_hit_rate_needs_evictions_and_enough_lendings() -> None:
    now = [0]
    ledger = Ledger(clock=lambda: now[0])
    events = []
    for block in range(1, 201):  # each lent, returned, lent again once, then evicted
        events += [
            MemoryEvent(EventKind.ALLOC, "pool", block, KiB, "cpu", "w", now[0]),
            MemoryEvent(EventKind.RELEASE, "pool", block, KiB, "cpu", "", now[0]),
        ]
        if block % 4 == 0:
            events += [
                MemoryEvent(EventKind.ACQUIRE, "pool", block, KiB, "cpu", "w", now[0]),
                MemoryEvent(EventKind.RELEASE, "pool", block, KiB, "cpu", "", now[0]),
            ]
        events.append(MemoryEvent(EventKind.FREE, "pool", block, KiB, "cpu", "", now[0]))
    ledger.apply(events)
    (low,) = recommend(ledger.snapshot())
    assert low.kind == "low_hit_rate"
    assert low.evidence == (
        "20% of 250 lendings were cache hits while it freed 200 blocks back to the system"
    )
    assert recommend(ledger.snapshot(), AdviceConfig(min_lends=1000)) == ()


async def test_report_text_and_json_carry_the_leak_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snapshot = await pool_run()
    limits = [Limit(64 * MiB, "pool", name="cap")]
    text = render_snapshot(snapshot, limits=limits)
    assert "\nleaks: none of 1 components flagged\n" in text
    assert (
        "\nprojections:\n  pool on cpu: 10.0 MiB reserved of its 64 MiB cap: does not grow" in text
    )
    assert "\nfragmentation:\n  pool on cpu: cache 10.0 MiB in 11 blocks" in text
    assert "\nrecommendations:\n  pool@cpu: 10 MiB of its 10.0 MiB reserved was never lent" in text
    report = snapshot_report_json(snapshot, limits=limits)
    assert report["leak_flagged"] is False
    assert [v["verdict"] for v in report["verdicts"]] == ["ok"]
    assert report["projections"][0]["limit_bytes"] == 64 * MiB
    assert report["projections"][0]["seconds_to_limit"] is None
    assert report["fragmentation"][0]["cached_sizes"][1] == {
        "smallest": MiB,
        "largest": 2 * MiB - 1,
        "blocks": 10,
        "bytes": 10 * MiB,
    }
    assert [r["kind"] for r in report["recommendations"]] == ["idle_cache"]
    assert leak_report(snapshot).to_dict()["projections"] == []
