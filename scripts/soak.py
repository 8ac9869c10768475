#!/usr/bin/env python3
"""Soak the served demo pipeline: nothing a viewer does may cost the program an event,
a file descriptor or a steady growth of memory.

For ``--minutes N`` (default 1) the demo pipeline runs in this process, its metrics actor
served on a Unix socket, while:

- viewers churn: each connects, subscribes, takes a few views (and now and then a
  snapshot under its own label), and disconnects;
- bad frames arrive: peers that send garbage, an absurd frame length, or nothing;
- the program takes labelled snapshots of its own;
- a stage crashes every few seconds (the sink gets a message it cannot process) and its
  supervisor restarts it.

It then prints the events lost (every emit of every reporter is counted, and compared
with the ledger's ``events_applied + events_dropped``: must be 0), the file descriptors
open before the system opened and after it closed, and the resident memory's growth per
minute (a least-squares fit of RSS sampled every second after the first tenth of the
run). It exits 1 when an event was lost or a descriptor leaked.

Run from the repository root: ``PYTHONPATH=. .venv/bin/python scripts/soak.py [--minutes N]
[--viewers N]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import logging
import os
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

import memactor
from memactor.cli._pipeline_demo import run_demo_in
from memactor.events import format_size
from memactor.remote import RemoteError, connect, open_server
from memactor.runtime import ActorNotFoundError, MemoryReporter, ThreadReporter

EMITS = ("alloc", "free", "resize", "acquire", "release", "transfer")
CRASH_EVERY_S = 5.0
SNAPSHOT_EVERY_S = 2.0
BAD_PEER_EVERY_S = 0.5
RSS_EVERY_S = 1.0
CLOSE_WAIT_S = 15.0
"""How long a bad peer waits for the server to close its connection."""


@dataclass
class Tally:
    """What the soak did, and what came of it."""

    emitted: int = 0
    viewer_connections: int = 0
    views: int = 0
    viewer_snapshots: int = 0
    viewer_errors: int = 0
    bad_peers: int = 0
    bad_peers_closed: int = 0
    program_snapshots: int = 0
    crashes: int = 0


class ExpectedCrashes(logging.Filter):
    """Keeps the log free of the sink's planned failures (any other failure still shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.args == ("sink",) and "failed; restarting it" in record.msg)


def count_emits(tally: Tally) -> Callable[[], None]:
    """Count every emit of every reporter from now on; return the undo."""
    originals: list[tuple[type, str, Any]] = []
    for cls in (MemoryReporter, ThreadReporter):
        for name in EMITS:
            original = getattr(cls, name)

            @functools.wraps(original)
            def counted(self: Any, *args: Any, __original: Any = original, **kw: Any) -> Any:
                tally.emitted += 1
                return __original(self, *args, **kw)

            originals.append((cls, name, original))
            setattr(cls, name, counted)

    def undo() -> None:
        for cls, name, original in originals:
            setattr(cls, name, original)

    return undo


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes), in bytes per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_b = sum(b for _, b in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (b - mean_b) for t, b in samples)
    return cov / var * 60.0


async def churn_viewer(address: str, tally: Tally, rng: random.Random) -> None:
    """Connect, watch a little, sometimes take a snapshot, leave; again and again."""
    while True:
        try:
            async with connect(address, name="soak viewer") as viewer:
                tally.viewer_connections += 1
                await viewer.subscribe(20.0)
                for _ in range(rng.randint(1, 5)):
                    await viewer.receive_view()
                    tally.views += 1
                if rng.random() < 0.3:
                    await viewer.snapshot(f"viewer-{tally.viewer_snapshots}", blocks=False)
                    tally.viewer_snapshots += 1
        except RemoteError:
            tally.viewer_errors += 1
        await trio.sleep(rng.uniform(0.0, 0.2))


BAD_FRAMES = (
    b"GET / HTTP/1.1\r\n\r\n",
    b"\xff\xff\xff\xff\xff\xff\xff\xff" + b"x" * 64,  # an absurd frame length
    bytes(range(256)) * 4,
    b"",  # says nothing at all
)


async def bad_peers(path: str, tally: Tally, nursery: trio.Nursery) -> None:
    """Now and then a peer that sends a bad frame and waits for the server to close."""
    kinds = 0
    while True:
        nursery.start_soon(bad_peer, path, BAD_FRAMES[kinds % len(BAD_FRAMES)], tally)
        kinds += 1
        await trio.sleep(BAD_PEER_EVERY_S)


async def bad_peer(path: str, frame: bytes, tally: Tally) -> None:
    tally.bad_peers += 1
    try:
        stream = await trio.open_unix_socket(path)
    except OSError:
        return
    async with stream:
        with trio.move_on_after(CLOSE_WAIT_S):
            try:
                if frame:
                    await stream.send_all(frame)
                while await stream.receive_some(65536):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            tally.bad_peers_closed += 1


async def program_snapshots(system: memactor.MemorySystem, tally: Tally) -> None:
    while True:
        await trio.sleep(SNAPSHOT_EVERY_S)
        await system.metrics.snapshot(f"soak-{tally.program_snapshots}")
        tally.program_snapshots += 1


async def crash_a_stage(system: memactor.MemorySystem, tally: Tally) -> None:
    """Every few seconds the sink gets a message it cannot process: it fails, and is
    restarted by its supervisor."""
    while True:
        await trio.sleep(CRASH_EVERY_S)
        try:
            await system.lookup("sink").send("not a frame")
        except (ActorNotFoundError, trio.BrokenResourceError):
            continue
        tally.crashes += 1


async def sample_rss(samples: list[tuple[float, int]], after_s: float) -> None:
    start = trio.current_time()
    while True:
        await trio.sleep(RSS_EVERY_S)
        elapsed = trio.current_time() - start
        if elapsed >= after_s:
            samples.append((elapsed, rss_bytes()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long (default: 1)")
    parser.add_argument("--viewers", type=int, default=4, help="viewers churning at once")
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    tally = Tally()
    logging.getLogger("memactor.runtime").addFilter(ExpectedCrashes())
    gc.collect()
    fds_start, rss_start = open_fds(), rss_bytes()
    undo = count_emits(tally)
    try:
        stats, frames, samples, crashes_restarted = trio.run(run_soak, seconds, args.viewers, tally)
    finally:
        undo()
    gc.collect()
    fds_end, rss_end = open_fds(), rss_bytes()
    accounted = stats.events_applied + stats.events_dropped
    lost = tally.emitted - accounted
    growth = slope_per_minute(samples)
    print(
        f"soak: {args.minutes:g} min, {frames:,} frames, {tally.viewer_connections:,} viewer "
        f"connections ({tally.views:,} views, {tally.viewer_snapshots:,} snapshots, "
        f"{tally.viewer_errors:,} refused or broken), {tally.bad_peers:,} bad peers "
        f"({tally.bad_peers_closed:,} closed by the server, the rest still waiting), "
        f"{tally.program_snapshots:,} program snapshots, {tally.crashes:,} stage crashes "
        f"({crashes_restarted:,} restarts)"
    )
    print(
        f"events lost: {lost:,} (emitted {tally.emitted:,}; applied {stats.events_applied:,}"
        f" + dropped {stats.events_dropped:,})"
    )
    print(f"file descriptors: {fds_start} at start, {fds_end} at end")
    print(
        f"RSS: {format_size(rss_start)} at start, {format_size(rss_end)} at end; growth "
        f"{format_size(round(growth)) if growth >= 0 else '-' + format_size(round(-growth))}"
        f"/min (fit over {len(samples)} samples)"
    )
    return 0 if lost == 0 and fds_end == fds_start else 1


async def run_soak(
    seconds: float, viewers: int, tally: Tally
) -> tuple[Any, int, list[tuple[float, int]], int]:
    """The soak in one trio run; returns the ledger's statistics once the system has
    closed, the frames, the RSS samples and how many times the sink was restarted."""
    rng = random.Random(1)
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="soak-", dir="/tmp") as where:
        path = str(Path(where) / "soak.sock")
        async with (
            memactor.open_system() as system,
            open_server(system, path, name="soak") as server,
            trio.open_nursery() as nursery,
        ):
            for _ in range(viewers):
                nursery.start_soon(churn_viewer, server.address, tally, rng)
            nursery.start_soon(bad_peers, path, tally, nursery)
            nursery.start_soon(program_snapshots, system, tally)
            nursery.start_soon(crash_a_stage, system, tally)
            nursery.start_soon(sample_rss, samples, seconds / 10)
            restarts = SinkRestarts(system)
            nursery.start_soon(restarts.watch)
            run = await run_demo_in(system, seconds=seconds, seed=1)
            nursery.cancel_scope.cancel()
    return system.ledger.statistics(), run.frames, samples, restarts.seen


class SinkRestarts:
    """The sink's restart count, read while it lives (it is gone once the pipeline closes)."""

    def __init__(self, system: memactor.MemorySystem) -> None:
        self.system = system
        self.seen = 0

    async def watch(self) -> None:
        while True:
            with contextlib.suppress(ActorNotFoundError):  # not spawned yet, or closed
                self.seen = self.system.lookup("sink").statistics().restarts
            await trio.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
