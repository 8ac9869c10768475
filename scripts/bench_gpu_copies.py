#!/usr/bin/env python3
"""Measure what copies off trio's loop buy, on the host backend (no GPU needed).

One :class:`memactor.actors.GpuBufferManager` on the host backend copies ``--size``
bytes (256 MiB) to the "device" and back ``--repeat`` times, twice in one run: with every
copy inline in trio's thread (``copy_threshold`` above the size: the manager before
issue 19) and with copies in worker threads (the default). Meanwhile a task asks to wake
every 0.5 ms and records how late it wakes: the longest lateness is the longest stall of
trio's loop, which every other actor (the metrics actor, a live view) would feel too.
Printed side by side: the longest stall each way and their ratio, and each way's copy
time and their ratio (the cost of the thread hops and the chunking).

On a GPU, ``scripts/gpu_summary.py`` measures the same stall with CuPy's copies, and
bandwidth against bare CuPy copies.

Run: ``PYTHONPATH=. .venv/bin/python scripts/bench_gpu_copies.py [--size 256MiB] [--repeat 8]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import trio
from _loop_stall import watch_loop

import memactor
from memactor import format_size, parse_size
from memactor.actors import GpuBufferManager


async def run(size: int, repeat: int, *, inline: bool) -> tuple[float, float]:
    """The longest stall of trio's loop and the best round-trip copy time (seconds)."""
    host = np.ones(size, np.uint8)
    async with memactor.open_system() as system:
        gpu = GpuBufferManager("cpu", copy_threshold=size + 1 if inline else "1 MiB")
        await system.spawn(gpu, name="gpu")
        gpu.free(await gpu.to_device(host))  # warm
        best = float("inf")
        async with watch_loop() as stall:
            for _ in range(repeat):
                start = time.perf_counter()
                buffer = await gpu.to_device(host)
                await gpu.to_host(buffer)
                best = min(best, time.perf_counter() - start)
                gpu.free(buffer)
    return stall.longest_s, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", default="256 MiB", help="bytes per copy (default 256 MiB)")
    parser.add_argument("--repeat", type=int, default=8, help="round trips (default 8)")
    args = parser.parse_args()
    size = parse_size(args.size)
    stall_inline, copy_inline = trio.run(lambda: run(size, args.repeat, inline=True))
    stall_off, copy_off = trio.run(lambda: run(size, args.repeat, inline=False))
    print(f"round trips of {format_size(size)} on the host backend, best of {args.repeat}")
    print(f"{'':>22}{'inline':>12}{'off the loop':>14}{'ratio':>9}")
    print(
        f"{'longest loop stall':>22}{stall_inline * 1e3:>10.2f}ms{stall_off * 1e3:>12.2f}ms"
        f"{stall_inline / max(stall_off, 1e-9):>8.1f}x"
    )
    print(
        f"{'round-trip copy time':>22}{copy_inline * 1e3:>10.2f}ms{copy_off * 1e3:>12.2f}ms"
        f"{copy_off / copy_inline:>8.2f}x"
    )


if __name__ == "__main__":
    main()
