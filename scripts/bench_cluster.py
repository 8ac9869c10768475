#!/usr/bin/env python3
"""Benchmark the aggregator: CPU per source and wire bytes per source, against shipping
every event.

Each source stands for a process that emits 100,000 events a second of a churning pool
workload (eight workers leasing and returning 64 cached blocks, the pool now and then
growing or shrinking). Its updates are recorded once (a real ledger, a real
``UpdateMaker``, ten updates a second) and then replayed to a real aggregator over
loopback TCP by 1, 4 and 16 sources at 10 updates a second each, so the aggregator alone
is measured, not the sources. Printed side by side in one run:

1. the aggregator's CPU share per source at 10 updates/s: the process's CPU time over the
   live run (replayers included, so an upper bound) and the decode-and-apply time alone;
2. whether it kept up: updates applied, gaps (the target: none at 16 sources);
3. wire bytes per second per source, beside the same events shipped one by one in the
   stream's event batches of 256 (the target: at most 1/10).

Run: ``.venv/bin/python scripts/bench_cluster.py [--seconds S]``
"""

from __future__ import annotations

import argparse
import random
import time

import trio

from memactor.cluster import LedgerCopy, UpdateMaker, open_aggregator
from memactor.cluster._delta import without_series
from memactor.cluster._source import _connect
from memactor.cluster._wire import UPDATE, UPDATE_LIMITS
from memactor.codec import encode_events
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger
from memactor.remote import Source
from memactor.remote._wire import pack, unpack

EVENTS_PER_S = 100_000
UPDATES_PER_S = 10
BATCH = 256


class Churn:
    """A pool's events: lends and returns of cached blocks, now and then a new block or a
    freed one; time advances 10 µs an event (100,000 events a second)."""

    def __init__(self, seed: int = 1) -> None:
        self.random = random.Random(seed)
        self.now = 10**9
        self.cached = list(range(64))
        self.lent: dict[int, str] = {}
        self.next_block = 64
        self.sizes = {block: 1 << (12 + block % 8) for block in self.cached}

    def start(self) -> list[MemoryEvent]:
        events = []
        for block in self.cached:
            events.append(self._event(EventKind.ALLOC, block, "pool"))
            events.append(self._event(EventKind.RELEASE, block, "pool"))
        return events

    def _event(self, kind: EventKind, block: int, owner: str) -> MemoryEvent:
        self.now += 10_000
        return MemoryEvent(kind, "pool", block, self.sizes[block], "cpu", owner, self.now)

    def events(self, count: int) -> list[MemoryEvent]:
        r, out = self.random, list[MemoryEvent]()
        while len(out) < count:
            roll = r.random()
            if roll < 0.002:
                block = self.next_block
                self.next_block += 1
                self.sizes[block] = 1 << (12 + block % 8)
                owner = f"worker-{r.randrange(8)}"
                self.lent[block] = owner
                out.append(self._event(EventKind.ALLOC, block, owner))
            elif roll < 0.004 and self.cached:
                block = self.cached.pop(r.randrange(len(self.cached)))
                out.append(self._event(EventKind.FREE, block, ""))
            elif len(self.lent) < 8 and self.cached:
                block = self.cached.pop(r.randrange(len(self.cached)))
                owner = f"worker-{r.randrange(8)}"
                self.lent[block] = owner
                out.append(self._event(EventKind.ACQUIRE, block, owner))
            elif self.lent:
                block = r.choice(list(self.lent))
                owner = self.lent.pop(block)
                self.cached.append(block)
                out.append(self._event(EventKind.RELEASE, block, owner))
        return out


def record(seconds: int) -> tuple[list[bytes], int]:
    """Recorded update frames (seq 1..) and the bytes of shipping the same events."""
    churn = Churn()
    ledger = Ledger(clock=lambda: churn.now)
    maker = UpdateMaker()
    ledger.apply(churn.start())
    frames, event_bytes = [], 0
    per_update = EVENTS_PER_S // UPDATES_PER_S
    for seq in range(1, seconds * UPDATES_PER_S + 1):
        events = churn.events(per_update)
        ledger.apply(events)
        for i in range(0, len(events), BATCH):
            event_bytes += 4 + len(encode_events(events[i : i + BATCH]))
        snapshot = without_series(ledger.snapshot(series=False))
        frames.append(pack(UPDATE, {"seq": seq, "body": maker.update(snapshot)}))
    return frames, event_bytes


def apply_cost(frames: list[bytes]) -> float:
    """CPU seconds to decode and apply every frame into a fresh copy."""
    copy = LedgerCopy()
    start = time.process_time()
    for frame in frames:
        copy.apply(unpack(frame[4:], limits=UPDATE_LIMITS).body["body"])
    return time.process_time() - start


async def replay(count: int, frames: list[bytes]) -> tuple[float, float, int, int, int]:
    """Replay *frames* from *count* sources at 10 a second each; (wall s, CPU s, updates
    applied, gaps, sources that ended on the last seq)."""
    async with open_aggregator(heartbeat_timeout_s=10) as aggregator:
        streams = []
        for i in range(count):
            identity = Source(f"replay-{i}", 10_000 + i, "bench", 0)
            stream, _ = await _connect(aggregator.address, identity, None)
            streams.append(stream)

        async def send(stream: trio.abc.Stream, offset_s: float) -> None:
            await trio.sleep(offset_s)
            start = trio.current_time()
            for n, frame in enumerate(frames):
                await trio.sleep_until(start + n / UPDATES_PER_S)
                await stream.send_all(frame)

        wall, cpu = time.perf_counter(), time.process_time()
        async with trio.open_nursery() as nursery:
            for i, stream in enumerate(streams):
                nursery.start_soon(send, stream, i / count / UPDATES_PER_S)
        last = len(frames)
        with trio.move_on_after(30):
            await aggregator.wait_until(lambda: all(s.seq == last for s in aggregator.sources()))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stats = aggregator.statistics()
        done = sum(s.seq == last for s in aggregator.sources())
        for stream in streams:
            await stream.aclose()
        return wall, cpu, stats.updates, stats.gaps, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3, help="seconds of updates to replay")
    args = parser.parse_args()
    frames, event_bytes = record(args.seconds)
    update_bytes = sum(len(f) for f in frames)
    per_s = args.seconds
    print(f"recorded {len(frames)} updates of {EVENTS_PER_S * args.seconds:,} events")
    apply_s = apply_cost(frames) / per_s
    print(f"decode and apply alone: {100 * apply_s:.2f}% of a core per source at 10 updates/s")
    print()
    print(f"{'sources':>7}  {'CPU per source':>15}  {'applied':>9}  {'gaps':>4}  kept up")
    for count in (1, 4, 16):
        wall, cpu, applied, gaps, done = trio.run(replay, count, frames)
        share = cpu / wall / count
        expected = count * len(frames)
        kept = "yes" if done == count and applied == expected and gaps == 0 else "NO"
        print(f"{count:>7}  {100 * share:>14.2f}%  {applied:>4}/{expected:<4}  {gaps:>4}  {kept}")
    print()
    updates_bps = update_bytes / per_s
    events_bps = event_bytes / per_s
    print(f"wire bytes/s per source: updates {updates_bps:,.0f}, every event {events_bps:,.0f}")
    ratio = updates_bps / events_bps
    print(
        f"updates / every event: {ratio:.4f} (1/{1 / ratio:,.0f}; "
        f"target at most 1/10: {'met' if ratio <= 0.1 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
