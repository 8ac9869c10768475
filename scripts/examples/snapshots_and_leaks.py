#!/usr/bin/env python3
"""Snapshots and leak detection: save, load, diff, verdict.

A "cache" actor is meant to keep at most 4 entries of 64 KiB, but a bug makes it forget
to evict one entry in four. A snapshot is taken after a warm-up and another at the end;
both are saved to files, loaded back and compared. The diff names the cache as the leak
and shows who holds the new blocks. Run:
``.venv/bin/python scripts/examples/snapshots_and_leaks.py [FOLDER]``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

import memactor
from memactor.metrics import diff, render_diff

ENTRY_BYTES = 64 * 1024
WARMUP, MORE = 8, 40


class Cache(memactor.Actor[int, None]):
    """Keeps entries; evicts the oldest beyond 4, except that it forgets every 4th."""

    async def on_start(self) -> None:
        self.entries: list[int] = []

    async def handle(self, key: int) -> None:
        block = self.reporter.next_block()
        self.reporter.alloc(block, ENTRY_BYTES, owner=f"request-{key % 2}")
        self.entries.append(block)
        if len(self.entries) > 4:
            oldest = self.entries.pop(0)
            if oldest % 4:  # the bug: every fourth entry is dropped without a free
                self.reporter.free(oldest, ENTRY_BYTES)


async def main(folder: Path) -> None:
    async with memactor.open_system() as system:
        cache = await system.spawn(Cache, name="cache")
        for key in range(WARMUP):
            await cache.send(key)
        await system.metrics.flush()
        before = (await system.metrics.snapshot("warm")).save(folder / "warm.msgpack")
        for key in range(WARMUP, WARMUP + MORE):
            await cache.send(key)
        await system.metrics.flush()
        after = (await system.metrics.snapshot("end")).save(folder / "end.json")
    result = diff(memactor.Snapshot.load(before), memactor.Snapshot.load(after))
    print(f"saved {before.name} and {after.name}")
    print(render_diff(result), end="")
    (suspect,) = result.suspects
    print(f"suspect: {suspect.component}, +{suspect.bytes_in_use_delta} bytes in use")
    print(f"new blocks lent out since the warm-up: {suspect.new_blocks}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        trio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as temporary:
            trio.run(main, Path(temporary))
