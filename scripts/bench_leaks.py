#!/usr/bin/env python3
"""Measure how often the leak verdict is right: labelled scenarios on the real actors.

Each scenario runs real trio tasks and a real :class:`memactor.actors.BufferPool` under
one memory system, on trio's mock clock (``autojump_threshold=0``: two minutes of
virtual time take well under a second), seeded, so every run is the same. Some leak, some
are their non-leaking twins. A snapshot is taken every ``--checkpoint`` seconds; each is
judged by the trend fit alone (``find_growth``: the verdict before issue 17) and by
:func:`memactor.metrics.judge_leaks`, side by side.

A scenario is *flagged* when a component is flagged in the snapshot at the end of the
run; a leaking scenario counts as found only when its leaking component is the one
flagged. The time to detect is the first checkpoint from which the right component stays
flagged to the end. Printed: precision, recall, false positive rate and the median time
to detect of each verdict, and how many twins were flagged at some checkpoint before the
end (transient flags: memory held far longer than usual that was given back later).

Run: ``PYTHONPATH=. .venv/bin/python scripts/bench_leaks.py [--seconds 120] [--only NAME]``
"""

from __future__ import annotations

import argparse
import functools
import heapq
import random
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import trio
import trio.testing

import memactor
from memactor.actors import BufferPool, MemorySystem
from memactor.metrics import Snapshot, find_growth, judge_leaks
from memactor.runtime import MemoryReporter

KiB, MiB = 1024, 1024 * 1024
SAMPLE_HZ = 4.0

Body = Callable[[MemorySystem, random.Random], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: str
    leaking: str | None
    """The component that leaks, or ``None`` for a non-leaking twin."""
    body: Body


@dataclass(slots=True)
class Outcome:
    scenario: Scenario
    old_flagged: set[str] = field(default_factory=set)
    new_flagged: set[str] = field(default_factory=set)
    old_detected_s: float | None = None
    new_detected_s: float | None = None
    old_ever: bool = False
    new_ever: bool = False
    reasons: tuple[str, ...] = ()


def now_ns() -> int:
    return round(trio.current_time() * 1e9)


# -- building blocks: tasks that report like real components --------------------------


class Churn:
    """Allocates blocks on a tick and frees each when its lifetime is up (``None``:
    never). Frees happen on the tick too, so a lifetime is exact to one tick."""

    def __init__(self, reporter: MemoryReporter, rng: random.Random) -> None:
        self.reporter = reporter
        self.rng = rng
        self.due: list[tuple[float, int, int]] = []

    def alloc(self, size: int, life_s: float | None, owner: str | None = None) -> None:
        block = self.reporter.next_block()
        self.reporter.alloc(block, size, owner=owner)
        if life_s is not None:
            heapq.heappush(self.due, (trio.current_time() + life_s, block, size))

    def free_due(self) -> None:
        now = trio.current_time()
        while self.due and self.due[0][0] <= now:
            _, block, size = heapq.heappop(self.due)
            self.reporter.free(block, size)

    async def run(
        self,
        tick_s: float,
        step: Callable[[float], None],
    ) -> None:
        start = trio.current_time()
        while True:
            step(trio.current_time() - start)
            self.free_due()
            await trio.sleep(tick_s)


def churn_body(
    component: str,
    *,
    per_tick: int = 2,
    size: int = 16 * KiB,
    life: tuple[float, float] = (0.05, 0.3),
    leak_every_s: float | None = None,
    leak_size: int = 64 * KiB,
    owners: Sequence[str] = ("worker",),
    leaking_owner: str | None = None,
    extra: Callable[[Churn, float], None] | None = None,
) -> Body:
    """Short-lived blocks of *component*; with *leak_every_s*, one block of
    *leak_size* (from *leaking_owner*, else the first owner) is never freed that often."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        churn = Churn(system.reporter(component, owner=owners[0]), rng)
        next_leak = [leak_every_s or 0.0]

        def step(t: float) -> None:
            for _ in range(rng.randint(1, per_tick)):
                churn.alloc(
                    rng.randint(size // 2, size), rng.uniform(*life), owner=rng.choice(owners)
                )
            if leak_every_s is not None and t >= next_leak[0]:
                next_leak[0] += leak_every_s
                churn.alloc(leak_size, None, owner=leaking_owner or owners[0])
            if extra is not None:
                extra(churn, t)

        await churn.run(0.05, step)

    return body


def sawtooth_body(leak_bytes_per_s: int) -> Body:
    """``frames``: fills 48 MiB in 1 MiB blocks over 8 s, frees them all, again and again;
    the owner ``index`` leaks *leak_bytes_per_s* in 4 KiB blocks in the same component."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        churn = Churn(system.reporter("frames", owner="decoder"), rng)
        held: list[tuple[int, int]] = []
        leaked = [0.0]

        def step(t: float) -> None:
            phase = t % 10.0
            if phase < 8.0 and len(held) < 48:
                for _ in range(rng.randint(0, 1) + (1 if len(held) < 6 * phase else 0)):
                    block = churn.reporter.next_block()
                    churn.reporter.alloc(block, MiB, owner="decoder")
                    held.append((block, MiB))
            elif phase >= 8.0 and held:
                for block, size in held:
                    churn.reporter.free(block, size)
                held.clear()
            leaked[0] += leak_bytes_per_s * 0.05
            while leaked[0] >= 4 * KiB:
                leaked[0] -= 4 * KiB
                churn.alloc(4 * KiB, None, owner="index")
            churn.alloc(8 * KiB, rng.uniform(0.05, 0.2), owner="index")

        await churn.run(0.05, step)

    return body


def step_body(at_s: float, blocks: int, hold_s: float | None, owner: str = "loader") -> Body:
    """Churn in ``parse``; at *at_s* the owner takes *blocks* of 64 KiB and frees them
    after *hold_s* (``None``: never)."""
    taken = [False]

    def extra(churn: Churn, t: float) -> None:
        if t >= at_s and not taken[0]:
            taken[0] = True
            for _ in range(blocks):
                churn.alloc(64 * KiB, hold_s, owner=owner)

    return churn_body("parse", owners=("parser",), extra=extra)


def cache_body(*, capacity: int | None, fill_s: float, grows: bool = False) -> Body:
    """``cache``: one entry of 32 KiB every ``fill_s / 200`` s. With *capacity* the oldest
    entry is evicted (freed) beyond it; without, the cache stops at 200 entries unless it
    *grows* (an unbounded cache: a leak); beside it ``parse`` churns."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        cache = system.reporter("cache", owner="lookup")
        entries: list[int] = []
        added = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                churn_body("parse", owners=("parser",)), system, random.Random(rng.random())
            )
            while True:
                await trio.sleep(fill_s / 200)
                if added >= 200 and capacity is None and not grows:
                    continue
                block = cache.next_block()
                cache.alloc(block, 32 * KiB)
                entries.append(block)
                added += 1
                if capacity is not None and len(entries) > capacity:
                    cache.free(entries.pop(0), 32 * KiB)

    return body


def pool_body(*, max_reserved: str, workers: int, leak_one_in: int | None) -> Body:
    """*workers* tasks lease buffers from a real BufferPool with a cap and hold each for
    a while; with *leak_one_in*, worker 0 keeps one lease in that many forever."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        pool = BufferPool(max_reserved=max_reserved)
        await system.spawn(pool, name="pool")
        kept = []

        async def worker(index: int, rng: random.Random) -> None:
            while True:
                nbytes = rng.choice((64 * KiB, 256 * KiB, MiB))
                lease = await pool.acquire(nbytes, np.uint8, owner=f"worker{index}")
                if leak_one_in is not None and index == 0 and rng.randrange(leak_one_in) == 0:
                    kept.append(lease)
                else:
                    await trio.sleep(rng.uniform(0.05, 0.5))
                    lease.release()
                await trio.sleep(rng.uniform(0.0, 0.4))

        async with trio.open_nursery() as nursery:
            for index in range(workers):
                # One generator per task: trio may wake tasks due at once in any order.
                nursery.start_soon(worker, index, random.Random(rng.random()))

    return body


def batch_body(*, leftover: int) -> Body:
    """``batch``: every 5 to 15 s a job takes 50 to 200 blocks of 256 KiB for 1 to 3 s
    and frees them, leaving *leftover* behind; between jobs nothing is held."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        reporter = system.reporter("batch", owner="job")
        while True:
            await trio.sleep(rng.uniform(5.0, 15.0))
            blocks = [reporter.next_block() for _ in range(rng.randint(50, 200))]
            for block in blocks:
                reporter.alloc(block, 256 * KiB)
            await trio.sleep(rng.uniform(1.0, 3.0))
            for block in blocks[leftover:]:
                reporter.free(block, 256 * KiB)

    return body


def delayed_body(*, never_one_in: int | None) -> Body:
    """``io``: most blocks live 0.05 to 0.15 s, one in 20 is held 3 to 6 s (a slow
    consumer); with *never_one_in*, that many blocks' frees never come."""

    def life(rng: random.Random) -> float | None:
        if never_one_in is not None and rng.randrange(never_one_in) == 0:
            return None
        return rng.uniform(3.0, 6.0) if rng.randrange(20) == 0 else rng.uniform(0.05, 0.15)

    async def body(system: MemorySystem, rng: random.Random) -> None:
        churn = Churn(system.reporter("io", owner="reader"), rng)

        def step(t: float) -> None:
            for _ in range(rng.randint(1, 3)):
                churn.alloc(rng.randint(4 * KiB, 32 * KiB), life(rng))

        await churn.run(0.05, step)

    return body


def buffers_body(*, every_s: float | None, churn: bool) -> Body:
    """``model``: 20 buffers of 1 MiB set up at start and held for good; with *every_s*,
    one more (a session's state nobody drops) that often; with *churn*, short-lived
    scratch blocks in the same component."""

    async def body(system: MemorySystem, rng: random.Random) -> None:
        reporter = system.reporter("model", owner="loader")
        await trio.sleep(0.5)
        for _ in range(20):
            reporter.alloc(reporter.next_block(), MiB)
        async with trio.open_nursery() as nursery:
            if churn:
                nursery.start_soon(
                    churn_body("model", owners=("scratch",)), system, random.Random(rng.random())
                )
            if every_s is not None:
                while True:
                    await trio.sleep(every_s)
                    reporter.alloc(reporter.next_block(), 256 * KiB, owner="sessions")

    return body


def owners_body(leak_every_s: float, leak_size: int, *, per_tick: int = 2) -> Body:
    """``decode``: four owners churn; ``w3`` also leaks *leak_size* every *leak_every_s*."""
    return churn_body(
        "decode",
        per_tick=per_tick,
        owners=("w0", "w1", "w2", "w3"),
        leak_every_s=leak_every_s,
        leaking_owner="w3",
        leak_size=leak_size,
    )


def scenarios() -> list[Scenario]:
    """The labelled set: each kind with its leaking variants and its non-leaking twins."""
    s = Scenario
    return [
        s("steady-leak-fast", "steady leak", "parse", churn_body("parse", leak_every_s=0.5)),
        s("steady-leak-slow", "steady leak", "parse", churn_body("parse", leak_every_s=3.0)),
        s("steady-twin", "steady leak", None, churn_body("parse")),
        s("steady-twin-busy", "steady leak", None, churn_body("parse", per_tick=6)),
        s("sawtooth-leak-64k", "leak under sawtooth", "frames", sawtooth_body(64 * KiB)),
        s("sawtooth-leak-16k", "leak under sawtooth", "frames", sawtooth_body(16 * KiB)),
        s("sawtooth-twin", "leak under sawtooth", None, sawtooth_body(0)),
        s("step-leak-100", "step change", "parse", step_body(45.0, 100, None)),
        s("step-leak-20", "step change", "parse", step_body(70.0, 20, None)),
        s("step-twin", "step change", None, step_body(45.0, 100, 15.0)),
        s(
            "cache-unbounded",
            "cache warm-up",
            "cache",
            cache_body(capacity=None, fill_s=60, grows=True),
        ),
        s("cache-plateau", "cache warm-up", None, cache_body(capacity=None, fill_s=30)),
        s("cache-lru", "cache warm-up", None, cache_body(capacity=120, fill_s=30)),
        s(
            "pool-leak-30",
            "pool to a cap",
            "pool",
            pool_body(max_reserved="256 MiB", workers=4, leak_one_in=30),
        ),
        s(
            "pool-leak-80",
            "pool to a cap",
            "pool",
            pool_body(max_reserved="256 MiB", workers=4, leak_one_in=80),
        ),
        s(
            "pool-twin",
            "pool to a cap",
            None,
            pool_body(max_reserved="8 MiB", workers=6, leak_one_in=None),
        ),
        s(
            "pool-twin-roomy",
            "pool to a cap",
            None,
            pool_body(max_reserved="256 MiB", workers=4, leak_one_in=None),
        ),
        s("batch-leak-2", "bursty batches", "batch", batch_body(leftover=2)),
        s("batch-leak-10", "bursty batches", "batch", batch_body(leftover=10)),
        s("batch-twin", "bursty batches", None, batch_body(leftover=0)),
        s("dead-held-30", "held but dead", "parse", step_body(20.0, 30, None, owner="orphan")),
        s("dead-held-5", "held but dead", "parse", step_body(90.0, 5, None, owner="orphan")),
        s("dead-twin-setup", "held but dead", None, step_body(2.0, 30, None, owner="setup")),
        s("owner-leak", "leaking owner", "decode", owners_body(2.0, 16 * KiB)),
        s("owner-leak-tiny", "leaking owner", "decode", owners_body(5.0, 4 * KiB, per_tick=8)),
        s(
            "owner-twin",
            "leaking owner",
            None,
            churn_body("decode", owners=("w0", "w1", "w2", "w3")),
        ),
        s("delayed-leak-200", "delayed frees", "io", delayed_body(never_one_in=200)),
        s("delayed-leak-1000", "delayed frees", "io", delayed_body(never_one_in=1000)),
        s("delayed-twin", "delayed frees", None, delayed_body(never_one_in=None)),
        s(
            "buffers-sessions",
            "long-lived buffers",
            "model",
            buffers_body(every_s=5.0, churn=False),
        ),
        s(
            "buffers-sessions-churn",
            "long-lived buffers",
            "model",
            buffers_body(every_s=8.0, churn=True),
        ),
        s("buffers-twin", "long-lived buffers", None, buffers_body(every_s=None, churn=False)),
        s("buffers-twin-churn", "long-lived buffers", None, buffers_body(every_s=None, churn=True)),
    ]


def judged(snapshot: Snapshot) -> tuple[set[str], set[str], tuple[str, ...]]:
    """The components flagged by the trend fit alone and by the verdict, and the
    verdict's reasons for its flags."""
    old = {t.component for t in find_growth(snapshot) if t.growing}
    verdicts = [v for v in judge_leaks(snapshot) if v.flagged]
    return old, {v.component for v in verdicts}, tuple(v.reason for v in verdicts)


async def run_scenario(
    scenario: Scenario, *, seconds: float, checkpoint_s: float, seed: int
) -> Outcome:
    """Run *scenario* for *seconds* of trio time and judge a snapshot every checkpoint."""
    outcome = Outcome(scenario)
    rng = random.Random(f"{seed}:{scenario.name}")
    history: list[tuple[float, set[str], set[str]]] = []
    async with memactor.open_system(
        clock=now_ns, sample_hz=SAMPLE_HZ, stall_threshold_s=None
    ) as system:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scenario.body, system, rng)
            checkpoint = checkpoint_s
            while checkpoint <= seconds + 1e-9:
                await trio.sleep_until(start + checkpoint)
                snapshot = await system.metrics.snapshot()
                old, new, reasons = judged(snapshot)
                history.append((checkpoint, old, new))
                outcome.reasons = reasons
                checkpoint += checkpoint_s
            nursery.cancel_scope.cancel()
    outcome.old_flagged, outcome.new_flagged = history[-1][1], history[-1][2]
    outcome.old_ever = any(old for _, old, _ in history)
    outcome.new_ever = any(new for _, _, new in history)
    if scenario.leaking is not None:
        outcome.old_detected_s = _detected(history, scenario.leaking, 1)
        outcome.new_detected_s = _detected(history, scenario.leaking, 2)
    return outcome


def _detected(
    history: list[tuple[float, set[str], set[str]]], leaking: str, which: int
) -> float | None:
    """The first checkpoint from which *leaking* stays flagged to the end."""
    found = None
    for entry in history:
        flagged = entry[which]
        assert isinstance(flagged, set)
        if leaking in flagged:
            found = entry[0] if found is None else found
        else:
            found = None
    return found


def run_all(
    chosen: Sequence[Scenario], *, seconds: float = 120.0, checkpoint_s: float = 5.0, seed: int = 17
) -> list[Outcome]:
    """Run each of *chosen* in its own ``trio.run`` on a mock clock."""
    return [
        trio.run(
            functools.partial(
                run_scenario, scenario, seconds=seconds, checkpoint_s=checkpoint_s, seed=seed
            ),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        for scenario in chosen
    ]


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float
    false_positive_rate: float
    median_detect_s: float | None
    transient_false_flags: int


def score(outcomes: Sequence[Outcome], which: str) -> Score:
    """Precision, recall and false positive rate of the verdict *which* (``"old"`` or
    ``"new"``) at the end of each run."""
    tp = fp = fn = tn = transient = 0
    detect: list[float] = []
    for o in outcomes:
        flagged: set[str] = getattr(o, f"{which}_flagged")
        leaking = o.scenario.leaking
        if leaking is None:
            fp += bool(flagged)
            tn += not flagged
            transient += bool(not flagged and getattr(o, f"{which}_ever"))
        elif leaking in flagged:
            tp += 1
            detected = getattr(o, f"{which}_detected_s")
            if detected is not None:
                detect.append(detected)
        else:
            fn += 1
            fp += bool(flagged)  # flagging the wrong component is a false alarm too
    return Score(
        tp / (tp + fp) if tp + fp else 1.0,
        tp / (tp + fn) if tp + fn else 1.0,
        fp / (fp + tn) if fp + tn else 0.0,
        statistics.median(detect) if detect else None,
        transient,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--checkpoint", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    parser.add_argument("--why", action="store_true", help="print the verdict's reasons")
    args = parser.parse_args(argv)
    chosen = [s for s in scenarios() if args.only in s.name]
    outcomes = run_all(chosen, seconds=args.seconds, checkpoint_s=args.checkpoint, seed=args.seed)
    print(f"{len(chosen)} scenarios, {args.seconds:g} s each, judged every {args.checkpoint:g} s")
    print(
        f"{'scenario':26} {'kind':20} {'leaks':7} {'trend fit':10} {'verdict':10} "
        "detect (fit / verdict)"
    )
    for o in outcomes:
        print(
            f"{o.scenario.name:26} {o.scenario.kind:20} {o.scenario.leaking or '-':7} "
            f"{_mark(o, o.old_flagged):10} {_mark(o, o.new_flagged):10} "
            f"{_seconds(o.old_detected_s)} / {_seconds(o.new_detected_s)}"
        )
        if o.scenario.leaking is None and not o.new_flagged and o.new_ever:
            print("    (the verdict flagged it at a checkpoint before the end)")
        if args.why:
            for reason in o.reasons:
                print(f"    {reason}")
    old, new = score(outcomes, "old"), score(outcomes, "new")
    print()
    print(f"{'':28}{'trend fit':>12}{'verdict':>12}")
    for label, a, b in (
        ("precision", old.precision, new.precision),
        ("recall", old.recall, new.recall),
        ("false positive rate", old.false_positive_rate, new.false_positive_rate),
    ):
        print(f"{label:28}{a:>12.0%}{b:>12.0%}")
    rows = (
        ("median time to detect", _seconds(old.median_detect_s), _seconds(new.median_detect_s)),
        ("twins flagged, then cleared", old.transient_false_flags, new.transient_false_flags),
    )
    for label, x, y in rows:
        print(f"{label:28}{x:>12}{y:>12}")
    both = [o for o in outcomes if o.old_detected_s is not None and o.new_detected_s is not None]
    if both:
        fit_s = statistics.median(o.old_detected_s or 0.0 for o in both)
        verdict_s = statistics.median(o.new_detected_s or 0.0 for o in both)
        print(
            f"median time to detect where both find the leak ({len(both)}): "
            f"trend fit {fit_s:g} s, verdict {verdict_s:g} s"
        )
    if old.recall:
        print(f"recall, verdict / trend fit: {new.recall / old.recall:.2f}x")


def _mark(outcome: Outcome, flagged: set[str]) -> str:
    if outcome.scenario.leaking is None:
        return "FP" if flagged else "ok"
    return "found" if outcome.scenario.leaking in flagged else "MISSED"


def _seconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g} s"


if __name__ == "__main__":
    main()
