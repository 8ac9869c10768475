"""The metrics actor's tick over the actors, and the two recommendations it feeds: a
mailbox that is always full, and a chunk processor's lookahead that holds memory
without throughput. Real actors, real pipelines, trio's jumping clock."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

import memactor
from memactor.actors import BufferPool, ChunkProcessor, open_pipeline
from memactor.cluster import LedgerCopy, UpdateMaker
from memactor.cluster._delta import without_series
from memactor.cluster._merge import Part, merge, source_prefix
from memactor.codec import CodecError, encode, unpack
from memactor.metrics import (
    ActorSample,
    AdviceConfig,
    Ledger,
    LedgerStats,
    Snapshot,
    SourceStats,
    leak_report,
    recommend,
    render_leak_report,
)

Array = np.ndarray
CHUNK = 1 << 18  # 256 KiB of uint8 per chunk


def only(snapshot: Snapshot, name: str) -> ActorSample:
    (sample,) = [a for a in snapshot.actors if a.actor == name]
    return sample


async def run_pipeline_for(*, slow: bool) -> Snapshot:
    """150 items through parse -> resize -> sink; *slow*: resize takes 0.5 s and the
    source is as fast as it can be; else every stage is faster than the source."""

    async def source() -> AsyncIterator[int]:
        for item in range(150):
            if not slow:
                await trio.sleep(0.2)
            yield item

    async def resize(item: int) -> int:
        await trio.sleep(0.5 if slow else 0.1)
        return item

    async with memactor.open_system() as system:
        pipeline = await open_pipeline(
            system, ("parse", lambda x: x), ("resize", resize), ("sink", lambda x: None)
        )
        await pipeline.feed(source())
        await pipeline.close()
        return await system.metrics.snapshot(blocks=False)


async def test_a_slow_stage_is_named_as_the_bottleneck(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snapshot = await run_pipeline_for(slow=True)
    resize, parse, sink = (only(snapshot, n) for n in ("resize", "parse", "sink"))
    # 75 s at 10 ticks a second; resize is full nearly throughout.
    assert resize.ticks >= 700
    assert resize.full_own_ratio > 0.95
    assert resize.ticks_full_held_up == 0
    # parse is full too, but only because it waits for room in resize's mailbox.
    assert parse.full_ratio > 0.9
    assert parse.ticks_full_held_up == parse.ticks_full
    assert sink.ticks_full == 0
    (advice,) = recommend(snapshot)
    assert (advice.component, advice.device, advice.kind) == ("resize", "", "mailbox_full")
    assert advice.sentence().startswith("resize: mailbox full in 9")
    assert "ticks (capacity 4) while it waited on no other actor" in advice.evidence
    assert "add workers there" in advice.change
    report = leak_report(snapshot)
    assert f"  {advice.sentence()}" in render_leak_report(report)
    assert report.to_dict()["recommendations"] == [advice.to_dict()]


async def test_a_balanced_pipeline_gets_no_mailbox_advice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snapshot = await run_pipeline_for(slow=False)
    assert only(snapshot, "resize").ticks >= 250
    assert all(a.ticks_full == 0 for a in snapshot.actors)
    assert recommend(snapshot) == ()


async def stream_through(*, consumer_s: float, fn_s: float, lookahead: int) -> Snapshot:
    async def fn(chunk: Array) -> Array:
        await trio.sleep(fn_s)
        return chunk

    async with memactor.open_system() as system:
        pool = BufferPool()
        await system.spawn(pool, name="pool")
        proc = ChunkProcessor(fn, (CHUNK,), pool=pool, concurrency=2, lookahead=lookahead)
        await system.spawn(proc, name="decode.chunks")
        async with contextlib.aclosing(proc.stream(np.zeros(150 * CHUNK, np.uint8))) as results:
            async for _ in results:
                await trio.sleep(consumer_s)
        return await system.metrics.snapshot(blocks=False)


async def test_a_big_lookahead_before_a_slow_consumer_is_advised_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snapshot = await stream_through(consumer_s=0.5, fn_s=0.01, lookahead=8)
    sample = only(snapshot, "decode.chunks")
    assert (sample.kind, sample.lookahead, sample.chunks_done) == ("chunks", 8, 150)
    # The window (concurrency 2 + lookahead 8) fills, and stays full: 10 results wait.
    assert sample.peak_waiting_bytes == 10 * CHUNK
    assert sample.fewest_spare_results == 9
    assert sample.busy_ticks >= 700
    assert sample.results_waiting_ratio > 0.99
    assert sample.consumer_waiting_ns == 10_000_000  # the first chunk's 0.01 s only
    (advice,) = recommend(snapshot)
    assert (advice.component, advice.kind) == ("decode.chunks", "lookahead")
    assert advice.evidence.startswith("lookahead holds up to 2.5 MiB (2.")
    assert "results waited for the consumer 100% of the 75 s it ran" in advice.evidence
    assert "found at least 9 more results ready" in advice.evidence
    assert advice.change == "the consumer is the slow side: lower lookahead to 0 (from 8)"
    assert "lookahead" in json.dumps(leak_report(snapshot).to_dict())


async def test_a_fast_consumer_gets_no_lookahead_advice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snapshot = await stream_through(consumer_s=0.0, fn_s=0.5, lookahead=8)
    sample = only(snapshot, "decode.chunks")
    assert sample.results_waiting_ns == 0
    assert sample.consumer_waiting_ns > 0.95 * sample.busy_ns
    assert sample.fewest_spare_results == 0
    assert recommend(snapshot) == ()
    # Nor with the thresholds at their loosest: the consumer needed every result.
    loose = AdviceConfig(waiting_ratio=1e-9, min_ticks=1, min_takes=1, min_lookahead_bytes=0)
    assert [r.kind for r in recommend(snapshot, loose)] == []


async def test_too_few_ticks_support_no_advice(autojump_clock: trio.testing.MockClock) -> None:
    snapshot = await stream_through(consumer_s=0.05, fn_s=0.001, lookahead=8)
    sample = only(snapshot, "decode.chunks")
    assert sample.results_waiting_ratio > 0.9
    assert sample.busy_ticks < 100
    assert recommend(snapshot) == ()
    assert [r.kind for r in recommend(snapshot, AdviceConfig(min_ticks=10))] == ["lookahead"]


async def test_the_lookahead_figures_are_exact(autojump_clock: trio.testing.MockClock) -> None:
    async def fn(chunk: Array) -> Array:
        await trio.sleep(1)
        return chunk

    async with memactor.open_system() as system:
        pool = BufferPool()
        await system.spawn(pool, name="pool")
        proc = ChunkProcessor(fn, (8,), pool=pool, concurrency=1, lookahead=1)
        await system.spawn(proc, name="p")
        async with contextlib.aclosing(proc.stream(np.zeros(32))) as results:
            async for _ in results:
                await trio.sleep(3)
        stats = proc.statistics()
    # Chunk 0 is ready at 1 s (the consumer waited for it), chunk 1 at 2, chunk 2 at 3
    # (started when chunk 0 was taken), chunk 3 at 5 (started when chunk 1 was taken, at
    # 4); they are taken at 1, 4, 7 and 10. From 2 s to 10 s a result waited.
    assert (stats.busy_s, stats.results_waiting_s, stats.consumer_waiting_s) == (10, 8, 1)
    # At 4 s chunks 1 and 2 were ready (one spare) and chunk 3 was still to start.
    assert (stats.takes_ahead, stats.fewest_spare_results) == (1, 1)
    assert (stats.waiting_results, stats.waiting_bytes, stats.peak_waiting_bytes) == (0, 0, 128)
    assert stats.lookahead == 1


def sample(name: str = "decode", **fields: int) -> ActorSample:
    base = ActorSample(name, "actor", 4, 600, 590, 0, 4)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]  # int fields only


def test_snapshots_carry_actor_samples_in_both_formats(tmp_path: Path) -> None:
    ledger = Ledger(clock=lambda: 0)
    bare = ledger.snapshot("bare")
    assert bare.actors == ()
    assert "actors" not in bare.to_dict()  # files without samples are written as before
    samples = [sample("z"), sample("a", lookahead=3, fewest_spare_results=2)]
    ledger.note_actors(samples)
    snapshot = ledger.snapshot("with")
    assert [a.actor for a in snapshot.actors] == ["a", "z"]
    for name in ("s.msgpack", "s.json"):
        loaded = Snapshot.load(snapshot.save(tmp_path / name))
        assert loaded.actors == snapshot.actors
    assert Snapshot.from_msgpack(snapshot.to_msgpack()).actors == snapshot.actors
    # A file of the current schema without the field (written before it) still loads.
    body = snapshot.to_dict()
    del body["actors"]
    (tmp_path / "old.json").write_text(json.dumps(body))
    assert Snapshot.load(tmp_path / "old.json").actors == ()


def test_a_damaged_actor_sample_is_named(tmp_path: Path) -> None:
    ledger = Ledger(clock=lambda: 0)
    ledger.note_actors([sample()])
    body = ledger.snapshot().to_dict()
    body["actors"][0]["ticks"] = "many"
    (tmp_path / "bad.json").write_text(json.dumps(body))
    with pytest.raises(CodecError, match=r"bad\.json: .*'ticks'"):
        Snapshot.load(tmp_path / "bad.json")


def test_the_mailbox_advice_needs_enough_ticks_and_fullness_of_its_own() -> None:
    ledger = Ledger(clock=lambda: 0)
    ledger.note_actors(
        [
            sample("full"),
            sample("few", ticks=99, ticks_full=99),
            sample("held", ticks_full_held_up=590),
            sample("half", ticks_full=300),
        ]
    )
    assert [(r.component, r.kind) for r in recommend(ledger.snapshot())] == [
        ("full", "mailbox_full")
    ]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("full_ratio", 0.0, r"^full_ratio must be within \(0, 1\], got 0.0$"),
        ("waiting_ratio", 1.5, r"^waiting_ratio must be within \(0, 1\], got 1.5$"),
        ("min_ticks", 0, r"^min_ticks and min_takes must be positive, got 0 and 20$"),
        ("min_lookahead_bytes", -1, r"^min_lookahead_bytes must not be negative, got -1$"),
    ],
)
def test_bad_advice_thresholds_are_named(field: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AdviceConfig(**{field: value})  # type: ignore[arg-type]  # one field by name


def test_the_cluster_passes_actor_samples_through() -> None:
    ledger = Ledger(clock=lambda: 0)
    maker, copy = UpdateMaker(), LedgerCopy()
    first = without_series(ledger.snapshot(now_ns=0))
    body = maker.update(first)
    assert "actors" not in body  # nothing sampled, nothing sent
    copy.apply(unpack_update(body))
    assert copy.snapshot().to_msgpack() == first.to_msgpack()
    ledger.note_actors([sample("resize"), sample("decode", lookahead=8)])
    for _ in range(2):  # whole every time, like the other small tables
        snapshot = without_series(ledger.snapshot(now_ns=0))
        copy.apply(unpack_update(maker.update(snapshot)))
        assert copy.snapshot().to_msgpack() == snapshot.to_msgpack()
    stats = SourceStats(
        "w", "node-1", 7, 0, source_prefix("w", "node-1", 7), "live", 1, 1, 0, 1, 0, 0, 0, 0, 0, 0
    )
    peaks = LedgerStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    merged = merge(
        [Part(stats, copy.snapshot())],
        label="m",
        wall_time_ns=1,
        monotonic_ns=2,
        peaks=peaks,
        device_peaks={},
    )
    assert [a.actor for a in merged.actors] == ["w@node-1:7/decode", "w@node-1:7/resize"]
    assert [r.component for r in recommend(merged)] == [
        "w@node-1:7/decode",
        "w@node-1:7/resize",
    ]


def unpack_update(body: dict[str, object]) -> dict[str, object]:
    """The body as the aggregator receives it: through msgpack."""
    decoded = unpack(encode("update", body))
    assert isinstance(decoded, dict)
    return decoded
