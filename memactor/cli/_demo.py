"""``memactor demo``: a pipeline's memory, simulated, accounted and judged.

Until the actor runtime drives a real pipeline here, the demo feeds the metrics core a
generated, realistic event stream: a buffer pool that warms its cache and lends buffers
to workers, a chunk decoder whose working memory comes and goes, a staging area that
grows and shrinks in bursts, and a cache that keeps one buffer now and then and never
lets go (the leak). It runs in simulated time, samples the ledger at 10 Hz, and prints
the snapshot report, the diff between a snapshot after warm-up and one at the end, and
both leak verdicts.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..events import EventKind, MemoryEvent
from ..metrics import Ledger, Snapshot, SnapshotDiff, diff, render_diff, render_snapshot

SAMPLE_NS = 100_000_000
"""The sampling period: 10 Hz, as the metrics actor samples by default."""

TICK_NS = 10_000_000
"""The simulation step: 10 ms of pipeline time."""

MAX_SECONDS = 3600.0
"""The longest simulated run: an hour of pipeline time takes about a minute."""


@dataclass
class _Component:
    """A simulated component: its name, its next block id and what it holds."""

    name: str
    device: str = "cpu"
    next_block: int = 0
    lent: list[tuple[int, int, str]] = field(default_factory=list)
    cached: list[tuple[int, int]] = field(default_factory=list)

    def new_block(self) -> int:
        self.next_block += 1
        return self.next_block


@dataclass(frozen=True)
class DemoResult:
    """What a demo run produced: the ledger, the two snapshots and their diff."""

    ledger: Ledger
    warm: Snapshot
    end: Snapshot
    change: SnapshotDiff
    leaky: str
    """The component the scenario leaks from."""


def simulate(seconds: float = 60.0, *, seed: int = 1, leak: bool = True) -> DemoResult:
    """Run the scenario for *seconds* of simulated time and return what it produced.

    Deterministic for a given *seed*. With *leak* false, the leaky cache behaves.
    """
    rng = random.Random(seed)
    now = 0
    ledger = Ledger(clock=lambda: now)
    pool = _Component("pool")
    decode = _Component("decode.chunks")
    staging = _Component("staging", device="cuda:0")
    cache = _Component("cache.leaky")
    workers = [f"worker-{i}" for i in range(4)]
    make = MemoryEvent.unchecked
    end_ns = int(seconds * 1e9)
    warm_at = min(end_ns // 4, 10 * 10**9)
    warm: Snapshot | None = None
    burst_until = 0

    while now < end_ns:
        batch: list[MemoryEvent] = []
        # The pool lends a 1-4 MiB buffer to a worker and takes others back.
        if rng.random() < 0.6 and len(pool.lent) < 12:
            worker = rng.choice(workers)
            if pool.cached and rng.random() < 0.9:
                block, size = pool.cached.pop(rng.randrange(len(pool.cached)))
                batch.append(make(EventKind.ACQUIRE, "pool", block, size, "cpu", worker, now))
            else:
                block, size = pool.new_block(), rng.choice((1, 2, 4)) * 2**20
                batch.append(make(EventKind.ALLOC, "pool", block, size, "cpu", worker, now))
            pool.lent.append((block, size, worker))
        if pool.lent and rng.random() < 0.55:
            block, size, worker = pool.lent.pop(rng.randrange(len(pool.lent)))
            batch.append(make(EventKind.RELEASE, "pool", block, size, "cpu", worker, now))
            pool.cached.append((block, size))
            if len(pool.cached) > 16:  # trim the cache, as a capped pool does
                block, size = pool.cached.pop(0)
                batch.append(make(EventKind.FREE, "pool", block, size, "cpu", "", now))
        # The decoder's working buffers live for one chunk.
        for block, size, worker in decode.lent:
            batch.append(make(EventKind.FREE, "decode.chunks", block, size, "cpu", worker, now))
        decode.lent.clear()
        for _ in range(rng.randint(0, 3)):
            block, size = decode.new_block(), rng.randint(16, 256) * 1024
            worker = rng.choice(workers)
            decode.lent.append((block, size, worker))
            batch.append(make(EventKind.ALLOC, "decode.chunks", block, size, "cpu", worker, now))
        # Staging on the device fills in bursts and drains again: no leak.
        if burst_until <= now and rng.random() < 0.01:
            burst_until = now + rng.randint(5, 20) * 100_000_000
        if now < burst_until and rng.random() < 0.2:
            block, size = staging.new_block(), 4 * 2**20
            staging.lent.append((block, size, "uploader"))
            batch.append(make(EventKind.ALLOC, "staging", block, size, "cuda:0", "uploader", now))
            batch.append(
                make(
                    EventKind.TRANSFER, "staging", block, size, "cpu", "uploader", now, 0, "cuda:0"
                )
            )
        elif staging.lent and now >= burst_until:
            block, size, owner = staging.lent.pop()
            batch.append(make(EventKind.FREE, "staging", block, size, "cuda:0", owner, now))
        # The cache keeps a 64 KiB entry now and then and never evicts it.
        if rng.random() < 0.05:
            block = cache.new_block()
            batch.append(make(EventKind.ALLOC, "cache.leaky", block, 65536, "cpu", "indexer", now))
            if not leak:
                batch.append(make(EventKind.FREE, "cache.leaky", block, 65536, "cpu", "", now))

        ledger.apply(batch)
        now += TICK_NS
        if now % SAMPLE_NS == 0:
            ledger.sample()
        if warm is None and now >= warm_at:
            warm = ledger.snapshot("warm")

    # The pipeline drains: workers hand back what they hold, the decoder finishes.
    drain: list[MemoryEvent] = []
    for block, size, worker in pool.lent:
        drain.append(make(EventKind.RELEASE, "pool", block, size, "cpu", worker, now))
    for block, size, worker in decode.lent:
        drain.append(make(EventKind.FREE, "decode.chunks", block, size, "cpu", worker, now))
    for block, size, owner in staging.lent:
        drain.append(make(EventKind.FREE, "staging", block, size, "cuda:0", owner, now))
    ledger.apply(drain)
    ledger.sample()
    end = ledger.snapshot("end")
    assert warm is not None
    return DemoResult(ledger, warm, end, diff(warm, end), cache.name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--headless",
        action="store_true",
        help="print the report instead of opening the live view (the default off a terminal)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="simulated pipeline time (default: 60)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--no-leak", action="store_true", help="let the leaky cache behave")
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="also save the final snapshot to FILE"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its report; exit 0 (the leak is the point, not a failure)."""
    if not 0 < args.seconds <= MAX_SECONDS:
        print(
            f"memactor demo: --seconds must be above 0 and at most {MAX_SECONDS:g}, "
            f"got {args.seconds:g}",
            file=sys.stderr,
        )
        return 2
    result = simulate(args.seconds, seed=args.seed, leak=not args.no_leak)
    out = sys.stdout
    out.write(render_snapshot(result.end))
    out.write("\n")
    out.write(render_diff(result.change))
    if args.save:
        path = result.end.save(args.save)
        out.write(f"\nsnapshot saved to {path}\n")
    return 0
