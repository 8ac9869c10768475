#!/usr/bin/env python3
"""GPU memory tracking: device buffers and host<->device copies, per component and device.

A manager picks CuPy on a GPU machine and the host backend elsewhere (``device="auto"``)
and says which. An uploader sends four 4 MiB frames to the device, reads one back and
frees them. Run: ``.venv/bin/python scripts/examples/gpu_memory.py``
"""

from __future__ import annotations

import numpy as np
import trio

import memactor
from memactor import format_size
from memactor.actors import GpuBufferManager

FRAMES, SHAPE = 4, (1024, 1024)  # float32: 4 MiB each


async def main() -> None:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager("auto")
        await system.spawn(gpu, name="gpu")
        print(f"backend: {gpu.backend_reason}")
        frames = np.random.default_rng(1).random((FRAMES, *SHAPE), dtype=np.float32)
        buffers = [await gpu.to_device(frame, owner="uploader") for frame in frames]
        back = await gpu.to_host(buffers[0])
        assert np.array_equal(back, frames[0])
        await system.metrics.flush()
        stats = gpu.statistics()
        device = stats.device
        books = system.ledger.component("gpu", device)
        print(f"device: {device}")
        print(f"memactor in use on {device}: {books.bytes_in_use} bytes")
        print(f"to device: {stats.transfers_to_device} copies, {stats.bytes_to_device} bytes")
        print(f"to host:   {stats.transfers_to_host} copies, {stats.bytes_to_host} bytes")
        if stats.pool_used_bytes is not None:
            print(f"cupy pool used: {stats.pool_used_bytes} bytes of {stats.pool_total_bytes}")
        if stats.device_used_bytes is not None:
            print(
                f"device (NVML): {format_size(stats.device_used_bytes)} used of "
                f"{format_size(stats.device_total_bytes or 0)}"
            )
        for buffer in buffers:
            gpu.free(buffer)
        await system.metrics.flush()
        print(f"after free: {system.ledger.component('gpu', device).bytes_in_use} bytes")


if __name__ == "__main__":
    trio.run(main)
