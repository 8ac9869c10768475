#!/usr/bin/env python3
"""Basic metrics: an actor that holds memory, and what the metrics actor knows about it.

A "decoder" actor keeps a 1 MiB frame buffer per message and lets the oldest go when it
holds more than three. After eight messages it holds three frames; at its peak it held
four. Run: ``.venv/bin/python scripts/examples/basic_metrics.py``
"""

from __future__ import annotations

import numpy as np
import trio

import memactor
from memactor import format_size

FRAME_BYTES = 1 << 20
KEEP = 3


class Decoder(memactor.Actor[int, None]):
    """Decodes frame *n* into a fresh buffer; keeps the last three."""

    async def on_start(self) -> None:
        self.frames: dict[int, np.ndarray] = {}

    async def handle(self, n: int) -> None:
        block = self.reporter.next_block()
        self.frames[block] = np.full(FRAME_BYTES, n % 256, dtype=np.uint8)
        self.reporter.alloc(block, self.frames[block].nbytes)
        if len(self.frames) > KEEP:
            oldest = min(self.frames)
            self.reporter.free(oldest, self.frames.pop(oldest).nbytes)


async def main() -> None:
    async with memactor.open_system() as system:
        decoder = await system.spawn(Decoder, name="decoder")
        for n in range(8):
            await decoder.ask(n)  # handled when it returns (send would only queue it)
        await system.metrics.flush()  # a cut: every event emitted before it is applied
        stats = system.ledger.component("decoder")
        print(f"in use:      {stats.bytes_in_use} bytes ({format_size(stats.bytes_in_use)})")
        print(f"peak in use: {stats.peak_bytes_in_use} bytes")
        print(f"live blocks: {stats.live_blocks}")
        print(f"allocations: {stats.allocations}")
        print(f"frees:       {stats.frees}")
        (owner,) = system.ledger.owners()
        print(f"owner:       {owner.owner} holds {owner.bytes_in_use} bytes")
        print(f"mailbox:     {decoder.statistics().messages_handled} messages handled")


if __name__ == "__main__":
    trio.run(main)
