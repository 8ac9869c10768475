#!/usr/bin/env python3
"""Benchmark the metrics core: apply rate, memory per live block, 1M-block snapshot round trip.

Everything is measured side by side in one run and printed with its ratio:

1. events/s applied by ``Ledger.apply`` in batches of 256 and of 4096 (a realistic pool
   churn: allocs, releases, acquires, frees across 4 components and 16 owners), compiled
   and pure Python side by side, against a bare ``list.append`` of the same tuples
   (instructions per event under callgrind: ``scripts/callgrind_ledger.py``);
2. bytes of Python memory per live block in the ledger, measured with ``tracemalloc``:
   the compiled ledger's C block tables against the pure-Python ledger's dicts.

The pure-Python figures are the reference run as it runs under ``MEMACTOR_PURE_PYTHON=1``
(``Ledger._apply_python`` on accounts whose blocks are dicts), in this process beside the
compiled one;
3. seconds to snapshot, save, load and diff 1,000,000 live blocks (msgpack);
4. milliseconds per tick (``sample`` and a live view without blocks or series) with
   100,000 components of which 100 change, beside a tick that has every one to redo;
5. the ledger's memory after 1,200 short-lived components, with and without retirement.

Run: ``.venv/bin/python scripts/bench_ledger.py [--events N] [--blocks N]``
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import memactor.metrics._accounts as accounts_module
from memactor.codec import decode, decode_events, encode, encode_events
from memactor.events import (
    MAX_BLOCK,
    MAX_SEQ,
    MAX_SIZE,
    EventKind,
    MemoryEvent,
    check_device,
    check_kind,
    check_timestamp,
)
from memactor.metrics import Ledger, Snapshot, diff

BATCH = 256


def churn_events(count: int, seed: int = 7, batch_size: int = BATCH) -> list[list[MemoryEvent]]:
    """Batches of a pool-like stream, as reporters send them: each batch comes from one
    component. Lend, return, re-lend from cache, trim; a steady live set."""
    rng = random.Random(seed)
    components = ["pool", "decode.chunks", "encode.chunks", "gpu"]
    owners = [f"worker-{i}" for i in range(16)]
    next_block = dict.fromkeys(components, 0)
    lent: dict[str, list[tuple[int, int]]] = {c: [] for c in components}
    cached: dict[str, list[tuple[int, int]]] = {c: [] for c in components}
    batches: list[list[MemoryEvent]] = []
    ts = 0
    made = 0
    make = MemoryEvent.unchecked
    while made < count:
        component = rng.choice(components)
        batch: list[MemoryEvent] = []
        for _ in range(min(batch_size, count - made)):
            ts += 1000
            roll = rng.random()
            if roll < 0.35 or not lent[component]:
                if cached[component] and rng.random() < 0.8:
                    block, size = cached[component].pop()
                    kind = EventKind.ACQUIRE
                else:
                    next_block[component] += 1
                    block, size = next_block[component], 4096 * rng.randint(1, 64)
                    kind = EventKind.ALLOC
                lent[component].append((block, size))
                owner = rng.choice(owners)
                batch.append(make(kind, component, block, size, "cpu", owner, ts))
            else:
                stack = lent[component]
                block, size = stack.pop(rng.randrange(len(stack)))
                if roll < 0.85:
                    cached[component].append((block, size))
                    batch.append(make(EventKind.RELEASE, component, block, size, "cpu", "", ts))
                else:
                    batch.append(make(EventKind.FREE, component, block, size, "cpu", "", ts))
        made += len(batch)
        batches.append(batch)
    return batches


@contextlib.contextmanager
def books_of(method: str) -> Iterator[None]:
    """For ``_apply_python``, accounts opened meanwhile keep their blocks in dicts, as
    the pure-Python ledger's do (the compiled ledger's are C tables, which ``apply``
    needs); for ``apply``, nothing changes."""
    made = accounts_module.new_blocks
    if method == "_apply_python":
        accounts_module.new_blocks = dict
    try:
        yield
    finally:
        accounts_module.new_blocks = made


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def bench_apply(event_count: int, batch_size: int) -> None:
    """Both implementations of ``Ledger.apply`` side by side, against ``list.append`` and
    a bare loop over the same events."""
    batches = churn_events(event_count, batch_size=batch_size)
    events = [event for batch in batches for event in batch]

    def append_run() -> float:
        out: list[MemoryEvent] = []
        append = out.append
        start = time.perf_counter()
        for batch in batches:
            for event in batch:
                append(event)
        return time.perf_counter() - start

    def bare_loop_run() -> float:
        # The least any per-event Python loop can do: unpack the event, dispatch on kind.
        start = time.perf_counter()
        for batch in batches:
            for event in batch:
                kind, *_ = event
                if kind == 4 or kind == 3 or kind == 0 or kind == 1:
                    pass
        return time.perf_counter() - start

    def ledger_run(method: str) -> Callable[[], float]:
        def run() -> float:
            with books_of(method):
                ledger = Ledger()
                apply = getattr(ledger, method)
                start = time.perf_counter()
                for batch in batches:
                    apply(batch)
                elapsed = time.perf_counter() - start
            assert ledger.statistics().anomalies == 0
            return elapsed

        return run

    # Interleaved rounds, best of each: a burst of load on the machine hits all alike.
    runs: dict[str, Callable[[], float]] = {
        "append": append_run,
        "bare": bare_loop_run,
        "python": ledger_run("_apply_python"),
    }
    if Ledger.implementation == "compiled":
        runs["compiled"] = ledger_run("apply")
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(5):
        for name, run in runs.items():
            best[name] = min(best[name], run())
    rate = {name: len(events) / seconds / 1e6 for name, seconds in best.items()}
    print(f"apply, {len(events):,} events in batches of {batch_size}:")
    print(f"  list.append        {rate['append']:8.2f} M events/s")
    print(f"  bare loop          {rate['bare']:8.2f} M events/s (unpack + dispatch)")
    for name in ("python", "compiled"):
        if name not in best:
            print(f"  {name:<18} (not built: {Ledger.implementation} only)")
            continue
        print(
            f"  {name:<18} {rate[name]:8.2f} M events/s  "
            f"{best['append'] / best[name]:6.3f} of list.append (target >= 0.25), "
            f"{best['bare'] / best[name]:6.3f} of the bare loop"
        )
    if "compiled" in best:
        print(f"  compiled/python    {best['python'] / best['compiled']:8.2f}x")


def fill(ledger: Ledger, blocks: int, method: str = "apply") -> None:
    make = MemoryEvent.unchecked
    apply = getattr(ledger, method)
    for start in range(0, blocks, 4096):
        apply(
            make(
                EventKind.ALLOC,
                "pool",
                block,
                4096 + 64 * (block % 97),
                "cpu",
                f"worker-{block % 16}",
                1_000_000 + block,
            )
            for block in range(start, min(blocks, start + 4096))
        )


def bench_memory(blocks: int) -> None:
    """Python memory per live block, filled by each implementation: a dict entry, an int
    block id and a packed int record in pure Python; a 24-byte entry and its share of
    the index in the compiled ledger's C table (``memactor/_native/_blocktable.h``)."""
    print(f"memory, {blocks:,} live blocks:")
    methods = {"python": "_apply_python"}
    if Ledger.implementation == "compiled":
        methods["compiled"] = "apply"
    for name, method in methods.items():
        gc.collect()
        tracemalloc.start()
        with books_of(method):
            ledger = Ledger()
            fill(ledger, 1, method)
            base, _ = tracemalloc.get_traced_memory()
            fill(ledger, blocks, method)
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del ledger
        print(f"  {name:<18} {(used - base) / blocks:8.1f} bytes per live block (target <= 64)")


def leaky_ledger(blocks: int) -> tuple[Ledger, Snapshot]:
    """A ledger of *blocks* live blocks, a snapshot of it, then 1,000 more blocks of a
    component that appeared since (a leak for the diff to find)."""
    ledger = Ledger(clock=lambda: 5_000_000_000)
    fill(ledger, blocks)
    before = ledger.snapshot("before")
    ledger.apply(
        MemoryEvent.unchecked(EventKind.ALLOC, "leaky", block, 1024, "cpu", "worker", 2 * 10**9)
        for block in range(1000)
    )
    return ledger, before


def bench_round_trip(blocks: int) -> None:
    ledger, before = leaky_ledger(blocks)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "after.msgpack"
        start = time.perf_counter()
        after = ledger.snapshot("after")
        snap_s = time.perf_counter() - start
        start = time.perf_counter()
        after.save(path)
        save_s = time.perf_counter() - start
        size = path.stat().st_size
        start = time.perf_counter()
        loaded = Snapshot.load(path)
        load_s = time.perf_counter() - start
    start = time.perf_counter()
    result = diff(before, loaded)
    diff_s = time.perf_counter() - start
    assert [s.component for s in result.suspects] == ["leaky"]
    total = snap_s + save_s + load_s + diff_s
    print(f"round trip, {blocks:,} live blocks ({size / 2**20:.1f} MiB msgpack file):")
    print(
        f"  snapshot {snap_s:6.2f} s   save {save_s:6.2f} s   load {load_s:6.2f} s   "
        f"diff {diff_s:6.2f} s"
    )
    print(f"  total    {total:6.2f} s (target < 5 s)")


def _rows_encode(events: list[MemoryEvent]) -> bytes:
    """The event batch format before columns (one array per event), for comparison."""
    rows = [[int(e[0]), *e[1:9], [list(p) for p in e[9]], e[10]] for e in events]
    return encode("events", {"events": rows})


def _rows_decode(data: bytes) -> list[MemoryEvent]:
    """The per-event decoder that went with :func:`_rows_encode`, its checks included."""
    out = []
    for kind, comp, block, size, dev, owner, ts, old, dst, tags, seq in decode(data, "events")[
        "events"
    ]:
        event_kind = check_kind(kind)
        if not isinstance(comp, str) or not comp or not isinstance(owner, str):
            raise ValueError("bad string")
        for value, top in ((block, MAX_BLOCK), (size, MAX_SIZE), (old, MAX_SIZE), (seq, MAX_SEQ)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError("bad int")
        check_timestamp(ts)
        check_device(dev)
        if dst is not None:
            check_device(dst, field="dst_device")
        pairs = tuple((k, v) for k, v in tags)
        out.append(
            MemoryEvent.unchecked(
                event_kind, comp, block, size, dev, owner, ts, old, dst, pairs, seq
            )
        )
    return out


def bench_codec(event_count: int) -> None:
    """Encode and decode event batches as columns, beside the old one-array-per-event rows."""
    batches = churn_events(event_count)
    events = [event for batch in batches for event in batch]
    print(f"codec, {len(events):,} events (target: column decode >= 2 M events/s):")
    for label, groups in ((f"batches of {BATCH}", batches), ("one batch", [events])):
        for name, enc, dec in (
            ("rows   ", _rows_encode, _rows_decode),
            ("columns", encode_events, decode_events),
        ):
            start = time.perf_counter()
            payloads = [enc(group) for group in groups]
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decoded = [dec(payload) for payload in payloads]
            decode_s = time.perf_counter() - start
            assert decoded == groups
            del decoded
            # As the metrics actor decodes: apply a batch, then let it go. Keeping a
            # million events alive makes the cyclic collector walk them over and over.
            gc.collect()
            start = time.perf_counter()
            for payload in payloads:
                dec(payload)
            dropped_s = time.perf_counter() - start
            size = sum(len(p) for p in payloads)
            print(
                f"  {label:>18} {name} encode {len(events) / encode_s / 1e6:6.2f} M/s  "
                f"decode {len(events) / decode_s / 1e6:6.2f} M/s kept, "
                f"{len(events) / dropped_s / 1e6:6.2f} M/s dropped  "
                f"{size / len(events):5.1f} bytes/event"
            )


def _memory_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM); 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS (VmHWM) window; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def bench_snapshot_scale(blocks: int, repeats: int = 1) -> None:
    """Snapshot, save, load and diff *blocks* live blocks, with the peak memory it takes.

    The flow is a leak check's: take a snapshot and save it, then (the taken one gone)
    load it back and diff it against an earlier one. Peak memory is the growth of the
    process's peak RSS over its RSS before the snapshot, beside the file's size.
    """
    ledger, before = leaky_ledger(blocks)
    print(f"snapshot scale, {blocks:,} live blocks (target: total <= 1.5 s, peak <= 1.5x file):")
    for _ in range(repeats):
        gc.collect()
        windowed = _reset_peak_rss()
        base_kib = _memory_kib("VmRSS")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "after.msgpack"
            start = time.perf_counter()
            after = ledger.snapshot("after")
            snap_s = time.perf_counter() - start
            start = time.perf_counter()
            after.save(path)
            save_s = time.perf_counter() - start
            del after
            size = path.stat().st_size
            start = time.perf_counter()
            loaded = Snapshot.load(path)
            load_s = time.perf_counter() - start
        start = time.perf_counter()
        result = diff(before, loaded)
        diff_s = time.perf_counter() - start
        peak_kib = _memory_kib("VmHWM") - base_kib if windowed else 0
        assert [s.component for s in result.suspects] == ["leaky"]
        assert len(result.new_blocks) == 1000
        del loaded, result
        total = snap_s + save_s + load_s + diff_s
        peak = f"{peak_kib / 1024:7.1f} MiB" if windowed else "    n/a"
        print(
            f"  snapshot {snap_s:5.2f} s  save {save_s:5.2f} s  load {load_s:5.2f} s  "
            f"diff {diff_s:5.2f} s  total {total:5.2f} s"
        )
        print(
            f"  file {size / 2**20:7.1f} MiB  peak RSS growth {peak}  "
            f"ratio {peak_kib * 1024 / size:5.2f}x of the file"
        )


class TickClock:
    """A clock moved by hand: 100 ms per tick, as the metrics actor samples at 10 Hz."""

    def __init__(self) -> None:
        self.now_ns = 10**9

    def __call__(self) -> int:
        return self.now_ns


def bench_tick(components: int, changing: int = 100, ticks: int = 30) -> None:
    clock = TickClock()
    ledger = Ledger(clock=clock)
    make = MemoryEvent.unchecked
    names = [f"request.{i:06d}" for i in range(components)]
    ledger.apply(
        make(EventKind.ALLOC, name, 0, 4096, "cpu", f"worker-{i % 16}", clock.now_ns)
        for i, name in enumerate(names)
    )
    rng = random.Random(11)

    def tick() -> float:
        start = time.perf_counter()
        ledger.sample()
        ledger.snapshot("live", blocks=False, series=False)
        return time.perf_counter() - start

    tick()  # the first tick freezes and samples every component
    changed_s: list[float] = []
    for block in range(1, ticks + 1):
        clock.now_ns += 100_000_000
        ledger.apply(
            [
                make(EventKind.ALLOC, name, block, 512, "cpu", "worker-0", clock.now_ns)
                for name in rng.sample(names, changing)
            ]
        )
        changed_s.append(tick())
    full_s: list[float] = []
    for _ in range(3):
        clock.now_ns += 100_000_000
        # What every tick cost before: freeze and sample every component again.
        ledger._dirty.update(ledger._accounts.values())
        full_s.append(tick())
    start = time.perf_counter()
    with_series = ledger.snapshot("live", blocks=False, series=True)
    series_s = time.perf_counter() - start
    assert len(with_series.series) == components + 1
    changed_s.sort()
    median, best = changed_s[len(changed_s) // 2], changed_s[0]
    slow = changed_s[len(changed_s) * 9 // 10]
    print(f"tick, {components:,} components of which {changing} change (sample + live view):")
    print(
        f"  changed only     {median * 1e3:8.2f} ms median, {best * 1e3:.2f} ms best, "
        f"{slow * 1e3:.2f} ms 90th percentile (target <= 2)"
    )
    print(f"  all redone       {min(full_s) * 1e3:8.2f} ms (every component frozen and sampled)")
    print(f"  ratio            {min(full_s) / median:8.1f}x")
    print(f"  view with series {series_s * 1e3:8.2f} ms (first view after subscribing)")


def bench_short_lived(components: int, retire: bool) -> int:
    """Bytes the ledger holds after *components* that each live one request and idle."""
    clock = TickClock()
    gc.collect()
    tracemalloc.start()
    ledger = Ledger(clock=clock, retire_after_ns=60 * 10**9 if retire else None)
    base, _ = tracemalloc.get_traced_memory()
    make = MemoryEvent.unchecked
    for i in range(components):
        name, owner = f"request.{i}", f"task-{i}"
        ts = clock.now_ns
        ledger.apply(
            [
                make(EventKind.ALLOC, name, 1, 65536, "cpu", owner, ts),
                make(EventKind.FREE, name, 1, 65536, "cpu", "", ts + 1000),
            ]
        )
        clock.now_ns += 10_000_000  # a request every 10 ms, sampled at 10 Hz
        if i % 10 == 9:
            ledger.sample()
            ledger.snapshot("live", blocks=False, series=False)
    for _ in range(700):  # then idle for 70 s
        clock.now_ns += 100_000_000
        ledger.sample()
    ledger.snapshot("live", blocks=False, series=False)
    gc.collect()
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert ledger.statistics().bytes_in_use == 0
    return used - base


def bench_retirement(components: int) -> None:
    kept = bench_short_lived(components, retire=False)
    retired = bench_short_lived(components, retire=True)
    print(f"memory after {components:,} short-lived components (one owner each), idle 70 s:")
    print(f"  never retired    {kept / 2**20:8.2f} MiB")
    print(f"  retired at 60 s  {retired / 2**20:8.2f} MiB (target <= 5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--codec-events", type=int, default=1_000_000, help="events to encode")
    parser.add_argument(
        "--scale-blocks", type=int, default=5_000_000, help="live blocks for snapshot scale"
    )
    parser.add_argument("--scale-only", action="store_true", help="run only the scale sections")
    parser.add_argument(
        "--apply-only", action="store_true", help="run only the apply rate and memory sections"
    )
    parser.add_argument("--components", type=int, default=100_000)
    parser.add_argument("--short-lived", type=int, default=1_200)
    args = parser.parse_args()
    if args.scale_only:
        bench_codec(args.codec_events)
        bench_snapshot_scale(args.scale_blocks, repeats=2)
        bench_tick(args.components)
        bench_retirement(args.short_lived)
        return
    for batch_size in (BATCH, 4096):
        bench_apply(args.events, batch_size)
    bench_memory(args.blocks)
    if args.apply_only:
        return
    bench_round_trip(args.blocks)
    bench_codec(args.codec_events)
    bench_snapshot_scale(args.scale_blocks)
    bench_tick(args.components)
    bench_retirement(args.short_lived)


if __name__ == "__main__":
    main()
