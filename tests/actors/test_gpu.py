"""The GPU buffer manager: backend choice, byte-exact accounting of alloc/resize/free,
transfers, misuse, limits, stopping; and, with a GPU and CuPy, the CuPy backend."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import trio

import memactor
from memactor.actors import (
    DeviceBuffer,
    DeviceBufferError,
    DeviceMemoryLimitError,
    DeviceUnavailableError,
    GetStatistics,
    GpuBufferManager,
    GpuStatistics,
    HostBackend,
    MemorySystem,
    current_owner,
)
from memactor.runtime import NO_BACKOFF, Actor, ActorFailedError, ActorRef

HAS_CUPY = importlib.util.find_spec("cupy") is not None


@asynccontextmanager
async def open_gpu(
    device: str = "cpu", max_reserved: int | str | None = None
) -> AsyncIterator[tuple[MemorySystem, GpuBufferManager]]:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager(device, max_reserved=max_reserved)
        await system.spawn(gpu, name="gpu")
        yield system, gpu


async def books(system: MemorySystem, device: str = "cpu") -> tuple[int, int, int]:
    await system.metrics.flush()
    stats = system.ledger.component("gpu", device)
    assert stats.anomaly_count == 0
    return stats.bytes_reserved, stats.live_blocks, stats.peak_bytes_reserved


# -- backend choice -----------------------------------------------------------------------


def test_cpu_device_uses_the_host_backend() -> None:
    gpu = GpuBufferManager("cpu")
    assert isinstance(gpu.backend, HostBackend)
    assert gpu.device == "cpu"
    assert "host backend" in gpu.backend_reason


@pytest.mark.skipif(HAS_CUPY, reason="checks the fallback when CuPy is not installed")
def test_auto_falls_back_to_the_host_and_says_why() -> None:
    gpu = GpuBufferManager()
    assert gpu.device == "cpu"
    assert gpu.backend.name == "host"
    assert (
        gpu.backend_reason == "auto: cupy is not installed; using the host backend (device 'cpu')"
    )


@pytest.mark.skipif(HAS_CUPY, reason="checks the error when CuPy is not installed")
@pytest.mark.parametrize("device", ["cuda:0", "cuda:1"])
def test_explicit_cuda_without_cupy_raises(device: str) -> None:
    with pytest.raises(DeviceUnavailableError, match=rf"device '{device}' needs CuPy") as info:
        GpuBufferManager(device)
    assert isinstance(info.value, memactor.MemactorError)


@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:x", ""])
def test_bad_device_strings_raise_value_error(device: str) -> None:
    with pytest.raises(ValueError, match="must be 'cpu' or 'cuda:N'"):
        GpuBufferManager(device)


# -- accounting ---------------------------------------------------------------------------


async def test_alloc_resize_free_are_accounted_to_the_byte() -> None:
    async with open_gpu() as (system, gpu):
        a = await gpu.alloc((16, 8), np.float32)
        b = await gpu.alloc(100, np.uint8, owner="decoder")
        assert isinstance(a, DeviceBuffer)
        assert (a.nbytes, a.device, a.owner, b.owner) == (512, "cpu", current_owner(), "decoder")
        assert isinstance(a.array, np.ndarray)
        assert a.array.shape == (16, 8)
        assert await books(system) == (612, 2, 612)

        a.array[...] = np.arange(128, dtype=np.float32).reshape(16, 8)
        same = await gpu.resize(a, (32, 4))
        assert same is a
        assert (a.shape, a.nbytes, a.array.shape) == ((32, 4), 512, (32, 4))
        np.testing.assert_array_equal(a.array[:16, :4], np.arange(128).reshape(16, 8)[:, :4])
        await gpu.resize(a, (64, 4))
        assert await books(system) == (1124, 2, 1124)
        await gpu.resize(a, (2, 2))
        assert await books(system) == (116, 2, 1124)
        assert system.ledger.component("gpu").resizes == 3

        gpu.free(b)
        gpu.free(a)
        assert await books(system) == (0, 0, 1124)
        stats = gpu.statistics()
        assert (stats.bytes_reserved, stats.peak_bytes_reserved, stats.live_buffers) == (0, 1124, 0)


async def test_owner_defaults_to_the_calling_actor() -> None:
    class User(Actor[int, DeviceBuffer]):
        def __init__(self, gpu: GpuBufferManager) -> None:
            self.gpu = gpu

        async def handle(self, message: int) -> DeviceBuffer:
            return await self.gpu.alloc(message, np.uint8)

    async with open_gpu() as (system, gpu):
        user = await system.spawn(User(gpu), name="user")
        buffer = await user.ask(64, timeout=5)
        assert buffer.owner == "user"
        await system.metrics.flush()
        owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
        assert owners["user"] == 64


async def test_transfers_are_counted_with_their_bytes() -> None:
    async with open_gpu() as (system, gpu):
        host = np.arange(1000, dtype=np.int64)
        buffer = await gpu.to_device(host)
        assert buffer.nbytes == 8000
        assert buffer.array is not host
        back = await gpu.to_host(buffer)
        assert isinstance(back, np.ndarray)
        np.testing.assert_array_equal(back, host)
        back[0] = -1
        assert buffer.array[0] == 0  # a copy, not a view
        await gpu.to_host(buffer)

        await system.metrics.flush()
        stats = system.ledger.component("gpu", "cpu")
        assert (stats.transfers, stats.bytes_transferred) == (3, 24000)
        assert (stats.bytes_reserved, stats.allocations) == (8000, 1)
        assert system.ledger.transfers() == (("cpu", "cpu", 3, 24000),)
        ours = gpu.statistics()
        assert (ours.transfers_to_device, ours.bytes_to_device) == (1, 8000)
        assert (ours.transfers_to_host, ours.bytes_to_host) == (2, 16000)


async def test_statistics_fields_on_the_host_backend() -> None:
    async with open_gpu(max_reserved="1 KiB") as (_, gpu):
        await gpu.alloc(10, np.float64)
        stats = gpu.statistics()
        assert isinstance(stats, GpuStatistics)
        assert (stats.device, stats.backend) == ("cpu", "host")
        assert stats.bytes_in_use == stats.bytes_reserved == 80
        assert (stats.hooked_blocks, stats.hooked_bytes) == (0, 0)
        assert (stats.to_device_ns, stats.to_host_ns) == (0, 0)
        assert (stats.copies_in_flight, stats.copies_waiting) == (0, 0)
        assert (stats.pinned_buffers, stats.pinned_bytes) == (0, 0)
        unknown = (stats.pool_used_bytes, stats.pool_total_bytes)
        assert (*unknown, stats.device_used_bytes, stats.device_total_bytes) == (None,) * 4
        assert stats.actor.messages_handled == 0
        answered = await gpu.ref.ask(GetStatistics(), timeout=5)
        assert dataclasses.replace(answered, actor=stats.actor) == stats


async def test_a_message_that_is_not_get_statistics_fails_the_manager() -> None:
    async with memactor.open_system(restart_backoff=NO_BACKOFF) as system:
        gpu = GpuBufferManager("cpu")
        await system.spawn(gpu, name="gpu")
        ref: ActorRef[object, object] = gpu.ref  # type: ignore[assignment]  # to send a bad one
        with pytest.raises(ActorFailedError) as info:
            await ref.ask("statistics")  # a message is a frozen value, not a string
        assert isinstance(info.value.error, TypeError)
        assert str(info.value.error).endswith("got 'statistics': not GetStatistics()")
        await trio.testing.wait_all_tasks_blocked()
        assert gpu.statistics().actor.restarts == 1


# -- misuse, limits, stopping -------------------------------------------------------------


async def test_a_second_free_raises_buffer_error() -> None:
    async with open_gpu() as (system, gpu):
        buffer = await gpu.alloc(8)
        gpu.free(buffer)
        with pytest.raises(DeviceBufferError, match="freed after it was freed") as info:
            gpu.free(buffer)
        assert isinstance(info.value, memactor.MemactorError)
        with pytest.raises(DeviceBufferError, match="used after it was freed"):
            _ = buffer.array
        with pytest.raises(DeviceBufferError, match="resized after it was freed"):
            await gpu.resize(buffer, 16)
        assert await books(system) == (0, 0, 64)


async def test_buffers_of_another_manager_are_refused() -> None:
    async with open_gpu() as (system, gpu):
        other = GpuBufferManager("cpu")
        await system.spawn(other, name="other")
        buffer = await other.alloc(4)
        with pytest.raises(DeviceBufferError, match="belongs to"):
            gpu.free(buffer)


async def test_max_reserved_refuses_at_once() -> None:
    async with open_gpu(max_reserved="1 KiB") as (system, gpu):
        buffer = await gpu.alloc(768, np.uint8)
        with pytest.raises(DeviceMemoryLimitError, match="max_reserved 1 KiB") as info:
            await gpu.alloc(512, np.uint8)
        assert isinstance(info.value, memactor.MemactorError)
        assert (info.value.requested_bytes, info.value.bytes_reserved) == (512, 768)
        with pytest.raises(DeviceMemoryLimitError):
            await gpu.to_device(np.zeros(64, np.int64))
        with pytest.raises(DeviceMemoryLimitError):
            await gpu.resize(buffer, 2048)
        await gpu.resize(buffer, 1024)  # exactly the cap fits
        assert await books(system) == (1024, 1, 1024)


async def test_stop_frees_every_live_buffer() -> None:
    async with open_gpu() as (system, gpu):
        kept = [await gpu.alloc(n, np.uint8) for n in (10, 20, 30)]
        gpu.free(kept[0])
        await gpu.ref.stop()
        assert await books(system) == (0, 0, 60)
        assert system.ledger.component("gpu").frees == 3
        with pytest.raises(DeviceBufferError, match="freed when its manager stopped"):
            gpu.free(kept[1])
        with pytest.raises(trio.ClosedResourceError):
            await gpu.alloc(1)


async def test_not_running_before_spawn() -> None:
    gpu = GpuBufferManager("cpu")
    with pytest.raises(trio.ClosedResourceError, match="spawn it first"):
        await gpu.alloc(1)


async def test_cancelled_alloc_allocates_nothing() -> None:
    async with open_gpu() as (system, gpu):
        with trio.CancelScope() as scope:
            scope.cancel()
            await gpu.alloc(100)
        assert gpu.statistics().live_buffers == 0
        await gpu.alloc(1, np.uint8)
        assert await books(system) == (1, 1, 1)


# -- the CuPy backend (needs a GPU) ---------------------------------------------------------


def _no_gpu_reason() -> str | None:
    """Why the GPU tests cannot run here, or None when they can (checked once, at import,
    so that the skip names its reason)."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install -e '.[cuda12]' or '.[cuda13]')"
    import cupy

    if not cupy.cuda.is_available():
        return "CuPy is installed but no CUDA device is available"
    return None


NO_GPU = _no_gpu_reason()
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=NO_GPU or "")


def cupy_or_skip() -> Any:
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@needs_gpu
async def test_cupy_alloc_and_free_are_accounted_on_the_device() -> None:
    cupy = cupy_or_skip()
    async with open_gpu("cuda:0") as (system, gpu):
        assert (gpu.device, gpu.backend.name) == ("cuda:0", "cupy")
        buffer = await gpu.alloc((256, 256), np.float32)
        assert isinstance(buffer.array, cupy.ndarray)
        assert await books(system, "cuda:0") == (1 << 18, 1, 1 << 18)
        host = await gpu.to_host(buffer)
        assert isinstance(host, np.ndarray)
        gpu.free(buffer)
        assert await books(system, "cuda:0") == (0, 0, 1 << 18)
        assert system.ledger.transfers() == (("cuda:0", "cpu", 1, 1 << 18),)


@pytest.mark.gpu
@needs_gpu
async def test_cupy_hook_attributes_allocations_to_the_actor() -> None:
    cupy = cupy_or_skip()

    class Worker(Actor[int, int]):
        async def handle(self, message: int) -> int:
            self.kept = cupy.zeros(message, dtype=cupy.uint8)
            return int(self.kept.nbytes)

    async with open_gpu("cuda:0") as (system, gpu):
        worker = await system.spawn(Worker(), name="worker")
        assert await worker.ask(1 << 20, timeout=30) == 1 << 20
        await system.metrics.flush()
        owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
        assert owners["worker"] >= 1 << 20
        assert system.ledger.component("gpu", "cuda:0").bytes_in_use >= 1 << 20
        assert gpu.statistics().hooked_blocks >= 1


@pytest.mark.gpu
@needs_gpu
async def test_cupy_pool_and_nvml_numbers() -> None:
    cupy_or_skip()
    async with open_gpu("cuda:0") as (_, gpu):
        await gpu.alloc(1 << 20, np.uint8)
        stats = gpu.statistics()
        assert stats.pool_used_bytes is not None
        assert stats.pool_used_bytes >= 1 << 20
        assert stats.pool_total_bytes is not None
        assert stats.pool_total_bytes >= stats.pool_used_bytes
        if importlib.util.find_spec("pynvml") is not None:
            assert stats.device_total_bytes is not None
            assert stats.device_total_bytes > 0
            assert stats.device_used_bytes is not None


@pytest.mark.gpu
@needs_gpu
def test_process_sampling_counts_a_cupy_allocation_nobody_reported() -> None:
    cupy = cupy_or_skip()
    from memactor.actors import read_process_memory

    held = cupy.ones(64 << 20, dtype=cupy.uint8)  # 64 MiB through CuPy's pool
    after = read_process_memory()
    ((device, process_bytes, pool_bytes),) = after.devices
    assert device == f"cuda:{cupy.cuda.runtime.getDevice()}"
    # NVML's per-process figure (when it gives one) adds the CUDA context to the pool.
    assert process_bytes >= pool_bytes >= held.nbytes


@pytest.mark.gpu
@needs_gpu
async def test_cupy_copies_on_streams_let_other_actors_run() -> None:
    cupy = cupy_or_skip()
    seen_copying: list[int] = []

    class Watcher(Actor[None, None]):
        """Looks at the manager every millisecond, from trio's thread."""

        def __init__(self, gpu: GpuBufferManager) -> None:
            self.gpu = gpu

        async def on_start(self) -> None:
            self.start_soon(self._watch)

        async def _watch(self) -> None:
            while True:
                await trio.sleep(0.001)
                seen_copying.append(self.gpu.statistics().copies_in_flight)

        async def handle(self, message: None) -> None:
            pass

    async with open_gpu("cuda:0") as (system, gpu):
        await system.spawn(Watcher(gpu), name="watcher")
        host = np.ones(256 << 20, np.uint8)
        for _ in range(3):  # the loop ran while a copy was in flight, both ways
            buffer = await gpu.to_device(host)
            back = await gpu.to_host(buffer)
            gpu.free(buffer)
        assert int(back[-1]) == 1
        assert any(seen_copying), "the watcher never ran while a copy was in its thread"
        await system.metrics.flush()
        routes = {(t.src, t.dst): t for t in system.ledger.transfer_timings()}
        assert routes["cpu", "cuda:0"].bytes == 3 * (256 << 20)
        assert routes["cuda:0", "cpu"].duration_ns > 0
        on_device = await gpu.to_device(host[: 1 << 20])
        assert isinstance(on_device.array, cupy.ndarray)


@pytest.mark.gpu
@needs_gpu
async def test_cupy_cancelled_copy_leaves_nothing_lent() -> None:
    cupy_or_skip()
    async with memactor.open_system() as system:
        gpu = GpuBufferManager("cuda:0", chunk_bytes="8 MiB")
        await system.spawn(gpu, name="gpu")
        host = np.ones(1 << 30, np.uint8)
        got: list[Any] = []
        with trio.move_on_after(0.005):  # mid-copy or not: either way nothing is left lent
            got.append(await gpu.to_device(host))
        await system.metrics.flush()
        held = system.ledger.component("gpu", "cuda:0").bytes_in_use
        assert held == (got[0].nbytes if got else 0)
        assert gpu.statistics().bytes_reserved == held


@pytest.mark.gpu
@needs_gpu
async def test_cupy_pinned_bytes_match_cupys_pinned_pool() -> None:
    cupy = cupy_or_skip()
    pool = cupy.get_default_pinned_memory_pool()
    async with open_gpu("cuda:0") as (system, gpu):
        staging = await gpu.alloc_pinned(1000, np.uint8)
        is_pinned = getattr(cupy.cuda.pinned_memory, "is_memory_pinned", None)  # CuPy >= 13
        if is_pinned is not None:
            assert is_pinned(staging.array.ctypes.data)
        await system.metrics.flush()
        row = system.ledger.component("gpu.pinned", "cpu")
        assert row.bytes_in_use == 1024  # the pool's block: 1000 bytes rounded up to 512s
        assert row.requested_bytes_in_use == 1000
        free_before = pool.n_free_blocks()
        staging.array[...] = 7
        on_device = await gpu.to_device(staging)
        assert int(on_device.array.sum()) == 7000
        gpu.free(staging)
        del staging
        import gc

        gc.collect()
        assert pool.n_free_blocks() == free_before + 1  # back in CuPy's pool
        await system.metrics.flush()
        assert system.ledger.component("gpu.pinned", "cpu").bytes_in_use == 0


@pytest.mark.gpu
@needs_gpu
async def test_cupy_two_devices_keep_their_own_books() -> None:
    cupy = cupy_or_skip()
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices; this machine has one")
    async with memactor.open_system() as system:
        first, second = GpuBufferManager("cuda:0"), GpuBufferManager("cuda:1")
        await system.spawn(first, name="gpu0")
        await system.spawn(second, name="gpu1")
        await first.to_device(np.ones(4 << 20, np.uint8))
        on_second = await second.to_device(np.ones(8 << 20, np.uint8))
        assert on_second.array.device.id == 1
        await system.metrics.flush()
        devices = {d.device: d.bytes_reserved for d in system.ledger.devices()}
        assert devices["cuda:0"] >= 4 << 20
        assert devices["cuda:1"] >= 8 << 20
        assert system.ledger.component("gpu1", "cuda:1").bytes_reserved == 8 << 20


@pytest.mark.gpu
@needs_gpu
def test_nvml_and_cuda_agree_on_which_device_is_which() -> None:
    cupy = cupy_or_skip()
    pynvml = pytest.importorskip("pynvml")
    from memactor.actors import CupyBackend, match_nvml_devices, parse_pci_bus_id
    from memactor.actors._gpu_devices import cuda_bus_ids, nvml_bus_ids

    pynvml.nvmlInit()
    try:
        cuda, nvml = cuda_bus_ids(cupy), nvml_bus_ids(pynvml)
        matched = match_nvml_devices(cuda, nvml)
        assert sorted(matched) == list(range(cupy.cuda.runtime.getDeviceCount()))
        for cuda_index, nvml_index in matched.items():
            assert parse_pci_bus_id(cuda[cuda_index]) == parse_pci_bus_id(nvml[nvml_index])
            handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)
            with cupy.cuda.Device(cuda_index):
                total_cuda = cupy.cuda.runtime.memGetInfo()[1]
            assert int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) >= total_cuda
            backend = CupyBackend(cuda_index)
            assert backend.nvml_index == nvml_index
            backend.close()
    finally:
        pynvml.nvmlShutdown()
