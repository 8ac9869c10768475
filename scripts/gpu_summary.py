#!/usr/bin/env python3
"""The GPU check's measurements: run by ``scripts/gpu-check`` on a machine with a GPU.

For every CUDA device: a manager allocates and copies there, and the bytes memactor
counts are printed beside CuPy's pool and NVML's figures (per process and per device),
with the unattributed remainder. On ``cuda:0``: copies of ``--size`` bytes (256 MiB)
each way through the manager, timed beside bare CuPy copies of the same size in the
same run (best of ``--repeat``), as a ratio of bandwidths (target: at least 0.9), and
the longest stall of trio's loop while the manager copied (target: under 10 ms), seen by
a task that asks to wake every 0.5 ms (``_loop_stall.py``). Exits 1 when a target or an
equality is missed, 2 without CuPy or a GPU.

Run: ``.venv/bin/python scripts/gpu_summary.py [--size 256MiB] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import trio
from _loop_stall import watch_loop

import memactor
from memactor import format_size, parse_size
from memactor.actors import GpuBufferManager, read_process_memory

BANDWIDTH_TARGET = 0.9
STALL_TARGET_S = 0.010


def bare_copies(cupy: Any, host: np.ndarray[Any, Any], repeat: int) -> tuple[float, float]:
    """The best seconds of a bare CuPy copy of *host* to the device and back."""
    up = down = float("inf")
    device = cupy.asarray(host)  # warm the pool and the context
    del device
    for _ in range(repeat):
        start = time.perf_counter()
        device = cupy.asarray(host)
        cupy.cuda.get_current_stream().synchronize()
        up = min(up, time.perf_counter() - start)
        start = time.perf_counter()
        cupy.asnumpy(device)
        down = min(down, time.perf_counter() - start)
        del device
    return up, down


async def managed_copies(
    gpu: GpuBufferManager, host: np.ndarray[Any, Any], repeat: int
) -> tuple[float, float, float]:
    """The best seconds of the manager's copies of *host* each way, and the longest stall
    of trio's loop meanwhile."""
    up = down = float("inf")
    async with watch_loop() as stall:
        gpu.free(await gpu.to_device(host))  # warm
        for _ in range(repeat):
            start = time.perf_counter()
            buffer = await gpu.to_device(host)
            up = min(up, time.perf_counter() - start)
            start = time.perf_counter()
            await gpu.to_host(buffer)
            down = min(down, time.perf_counter() - start)
            gpu.free(buffer)
    return up, down, stall.longest_s


async def main(size: int, repeat: int) -> int:
    import cupy

    failures: list[str] = []
    count = int(cupy.cuda.runtime.getDeviceCount())
    async with memactor.open_system() as system:
        managers = []
        for index in range(count):
            gpu = GpuBufferManager(f"cuda:{index}")
            await system.spawn(gpu, name=f"gpu{index}")
            managers.append(gpu)
            kept = await gpu.alloc((16 << 20) * (index + 1), np.uint8)  # 16 MiB x (N + 1)
            assert kept.nbytes % 512 == 0  # CuPy's pool rounds to 512 bytes
        await system.metrics.flush()
        process = {device: (used, pool) for device, used, pool in read_process_memory().devices}
        print("== bytes per device: memactor, CuPy's pool, NVML")
        header = ("device", "memactor", "cupy used", "cupy total", "nvml process", "unattributed")
        print("  ".join(f"{h:>13}" for h in header))
        for index, gpu in enumerate(managers):
            device = f"cuda:{index}"
            ours = system.ledger.component(f"gpu{index}", device).bytes_reserved
            stats = gpu.statistics()
            nvml_process = process.get(device, (None, None))[0]
            row = (
                device,
                format_size(ours),
                format_size(stats.pool_used_bytes or 0),
                format_size(stats.pool_total_bytes or 0),
                "-" if nvml_process is None else format_size(nvml_process),
                "-" if nvml_process is None else format_size(nvml_process - ours),
            )
            print("  ".join(f"{cell:>13}" for cell in row))
            if stats.pool_used_bytes != ours:
                failures.append(
                    f"{device}: memactor {ours} bytes, CuPy's pool {stats.pool_used_bytes}"
                )
            if stats.device_used_bytes is not None:
                print(
                    f"{'':>13}  NVML device: {format_size(stats.device_used_bytes)} used of "
                    f"{format_size(stats.device_total_bytes or 0)} (every process)"
                )

        host = np.ones(size, np.uint8)
        bare_up, bare_down = bare_copies(cupy, host, repeat)
        up, down, stall = await managed_copies(managers[0], host, repeat)
        print(f"== copies of {format_size(size)} on cuda:0, best of {repeat}")
        for name, bare_s, managed_s in (("to device", bare_up, up), ("to host", bare_down, down)):
            ratio = bare_s / managed_s
            print(
                f"{name:>10}: bare CuPy {size / bare_s / 2**30:6.2f} GiB/s, memactor "
                f"{size / managed_s / 2**30:6.2f} GiB/s, "
                f"ratio {ratio:.2f} (target >= {BANDWIDTH_TARGET})"
            )
            if ratio < BANDWIDTH_TARGET:
                failures.append(f"{name}: {ratio:.2f} of a bare copy's bandwidth")
        await system.metrics.flush()
        for timing in system.ledger.transfer_timings():
            rate = timing.bytes_per_s or 0.0
            print(
                f"{'ledger':>10}: {timing.src} -> {timing.dst}: {timing.transfers} timed copies, "
                f"{format_size(timing.bytes)} in {timing.duration_ns / 1e9:.3f} s, "
                f"{rate / 2**30:.2f} GiB/s"
            )
        print(
            f"== longest stall of trio's loop during copies: {stall * 1e3:.2f} ms "
            f"(target < {STALL_TARGET_S * 1e3:.0f} ms)"
        )
        if stall >= STALL_TARGET_S:
            failures.append(f"trio's loop stalled {stall * 1e3:.2f} ms during copies")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("== summary:", "FAILED" if failures else "all targets met")
    return 1 if failures else 0


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", default="256 MiB", help="bytes per copy (default 256 MiB)")
    parser.add_argument("--repeat", type=int, default=5, help="copies each way (default 5)")
    args = parser.parse_args()
    try:
        import cupy

        if not cupy.cuda.is_available():
            print("gpu_summary: no CUDA device available", file=sys.stderr)
            return 2
    except ImportError:
        print("gpu_summary: CuPy is not installed", file=sys.stderr)
        return 2
    return trio.run(main, parse_size(args.size), args.repeat)


if __name__ == "__main__":
    sys.exit(run())
