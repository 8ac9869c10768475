"""GPU buffer manager copies off trio's loop, on the host backend: other actors run during a
large copy, a cancelled copy leaves nothing lent, copy threads' buffers are attributed,
copies are bounded and timed, and pinned buffers show as host memory of their own."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing

import memactor
from memactor.actors import (
    DeviceBufferError,
    GpuBufferManager,
    HostBackend,
    MemorySystem,
)
from memactor.metrics import TransferTiming, render_snapshot
from memactor.runtime import Actor

MIB = 1 << 20


class GatedBackend(HostBackend):
    """The host backend, with each copy held at a gate until the test opens it (or the
    copy is aborted): a deterministic "copy in progress". Records the threads that
    allocate copy buffers."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.copy_threads: list[int] = []
        self.deaf = False
        self.trio_thread = threading.get_ident()  # made in the test, in trio's thread
        """Whether a held copy ignores its abort flag (it then ends, whole, at the gate)."""

    def empty_for_copy(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        self.copy_threads.append(threading.get_ident())
        return super().empty_for_copy(shape, dtype)

    def _hold(self, abort: threading.Event) -> None:
        if threading.get_ident() == self.trio_thread and not self.gate.is_set():
            # Held here, the copy would hold trio's loop and the test would never end.
            raise AssertionError("a copy held at the gate runs in trio's thread")
        self.entered.set()
        while not self.gate.wait(0.001) and (self.deaf or not abort.is_set()):
            pass

    def upload(
        self, dst: Any, src: npt.NDArray[Any], ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        self._hold(abort)
        super().upload(dst, src, ready, abort, chunk)

    def download(
        self, dst: npt.NDArray[Any], src: Any, ready: Any, abort: threading.Event, chunk: int
    ) -> None:
        self._hold(abort)
        super().download(dst, src, ready, abort, chunk)


class Ticker(Actor[None, None]):
    """Ticks once a second, in a task of its own, for as long as it runs."""

    def __init__(self) -> None:
        self.ticks = 0

    async def on_start(self) -> None:
        self.start_soon(self._tick)

    async def _tick(self) -> None:
        while True:
            await trio.sleep(1)
            self.ticks += 1

    async def handle(self, message: None) -> None:
        pass


@asynccontextmanager
async def open_gated(**options: Any) -> AsyncIterator[tuple[MemorySystem, GpuBufferManager]]:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager(GatedBackend(), copy_threshold="1 KiB", **options)
        await system.spawn(gpu, name="gpu")
        yield system, gpu


async def held(gated: GatedBackend) -> None:
    """Wait until a copy is held at the gate (a failed copy cancels this wait)."""
    await trio.to_thread.run_sync(gated.entered.wait, abandon_on_cancel=True)


def gate_of(gpu: GpuBufferManager) -> GatedBackend:
    assert isinstance(gpu.backend, GatedBackend)
    return gpu.backend


async def in_use(system: MemorySystem, component: str = "gpu") -> int:
    await system.metrics.flush()
    return system.ledger.component(component).bytes_in_use


async def test_a_large_copy_does_not_stop_other_actors(autojump_clock: trio.abc.Clock) -> None:
    async with open_gated() as (system, gpu):
        ticker = Ticker()
        await system.spawn(ticker, name="ticker")
        gated = gate_of(gpu)
        copied: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def copy() -> None:
                copied.append(await gpu.to_device(np.ones(MIB, np.uint8)))

            nursery.start_soon(copy)
            await held(gated)  # the copy is in its thread
            before = ticker.ticks
            await trio.sleep(10)
            await trio.testing.wait_all_tasks_blocked()
            assert ticker.ticks >= before + 9  # ten seconds of ticks, the copy still going
            assert copied == []
            assert gpu.statistics().copies_in_flight == 1
            gated.gate.set()
        (buffer,) = copied
        assert int(buffer.array.sum()) == MIB
        assert gpu.statistics().copies_in_flight == 0


@pytest.mark.parametrize("deaf", [False, True], ids=["stopped", "ended before it saw it"])
@pytest.mark.parametrize("direction", ["to_device", "to_host"])
async def test_a_cancelled_copy_leaves_nothing_lent(direction: str, deaf: bool) -> None:
    async with open_gated() as (system, gpu):
        gated = gate_of(gpu)
        gated.deaf = deaf
        gated.gate.set()
        kept = await gpu.to_device(np.arange(MIB // 8, dtype=np.int64))  # 1 MiB
        gated.gate.clear()
        gated.entered.clear()
        before = await in_use(system)
        transfers_before = system.ledger.transfers()
        scope = trio.CancelScope()
        results: list[Any] = []

        async def copy() -> None:
            with scope:
                if direction == "to_device":
                    results.append(await gpu.to_device(np.ones(4 * MIB, np.uint8)))
                else:
                    results.append(await gpu.to_host(kept))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(copy)
            await held(gated)
            if direction == "to_device":  # the copy thread's buffer is lent meanwhile
                assert await in_use(system) == before + 4 * MIB
            scope.cancel()
            if deaf:  # the copy goes on to its end; the caller still gets no result
                await trio.testing.wait_all_tasks_blocked()
                assert not scope.cancelled_caught
                gated.gate.set()
        assert scope.cancelled_caught
        assert results == []  # no buffer, no half array
        assert await in_use(system) == before
        if not deaf:
            assert system.ledger.transfers() == transfers_before  # the copy did not happen
        stats = gpu.statistics()
        assert (stats.live_buffers, stats.bytes_reserved, stats.copies_in_flight) == (1, MIB, 0)
        assert (stats.transfers_to_device, stats.transfers_to_host) == (1, 0)
        assert system.ledger.component("gpu").anomaly_count == 0
        # The manager goes on as before.
        gated.deaf = False
        gated.gate.set()
        np.testing.assert_array_equal(await gpu.to_host(kept), np.arange(MIB // 8))


async def test_a_copy_waiting_for_its_turn_is_cancelled_before_it_starts() -> None:
    async with open_gated(max_copies=1) as (system, gpu):
        gated = gate_of(gpu)
        scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gpu.to_device, np.ones(MIB, np.uint8))
            await held(gated)

            async def second() -> None:
                with scope:
                    await gpu.to_device(np.ones(2 * MIB, np.uint8))

            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            stats = gpu.statistics()
            assert (stats.copies_in_flight, stats.copies_waiting) == (1, 1)
            assert len(gated.copy_threads) == 1  # the second has not allocated anything
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert gpu.statistics().copies_waiting == 0
            gated.gate.set()
        assert scope.cancelled_caught
        assert await in_use(system) == MIB
        assert gpu.statistics().bytes_reserved == MIB


async def test_copies_run_at_most_max_copies_at_once() -> None:
    async with open_gated(max_copies=2) as (system, gpu):
        gated = gate_of(gpu)
        async with trio.open_nursery() as nursery:
            for size in (1, 2, 3):
                nursery.start_soon(gpu.to_device, np.ones(size * MIB, np.uint8))
            await held(gated)
            while len(gated.copy_threads) < 2:  # the second thread may still be starting
                await held(gated)
                await trio.sleep(0.001)
            await trio.testing.wait_all_tasks_blocked()
            stats = gpu.statistics()
            assert (stats.copies_in_flight, stats.copies_waiting) == (2, 1)
            assert len(gated.copy_threads) == 2
            gated.gate.set()
        assert gpu.statistics().live_buffers == 3
        assert await in_use(system) == 6 * MIB


async def test_a_copy_threads_buffer_is_attributed_to_the_caller() -> None:
    class User(Actor[int, int]):
        def __init__(self, gpu: GpuBufferManager) -> None:
            self.gpu = gpu

        async def handle(self, message: int) -> int:
            buffer = await self.gpu.to_device(np.zeros(message, np.uint8))
            return buffer.block

    async with open_gated() as (system, gpu):
        gated = gate_of(gpu)
        user = await system.spawn(User(gpu), name="user")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(user.ask, 3 * MIB)
            await held(gated)
            # Allocated in the copy thread, reported from there, owned by the caller.
            assert gated.copy_threads[0] != threading.get_ident()
            await system.metrics.flush()
            owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
            assert owners["user"] == 3 * MIB
            gated.gate.set()
        await system.metrics.flush()
        owners = {o.owner: o.bytes_in_use for o in system.ledger.owners()}
        assert owners["user"] == 3 * MIB
        assert system.ledger.component("gpu").allocations == 1


async def test_small_copies_run_inline_on_trios_thread() -> None:
    async with memactor.open_system() as system:
        backend = GatedBackend()
        backend.gate.set()
        gpu = GpuBufferManager(backend)  # the default threshold: 1 MiB
        await system.spawn(gpu, name="gpu")
        assert gpu.copy_threshold == MIB
        small = await gpu.to_device(np.ones(MIB - 1, np.uint8))
        large = await gpu.to_device(np.ones(MIB, np.uint8))
        here = threading.get_ident()
        assert backend.copy_threads[0] == here
        assert backend.copy_threads[1] != here
        assert (small.nbytes, large.nbytes) == (MIB - 1, MIB)
        assert await in_use(system) == 2 * MIB - 1


async def test_copies_are_timed_in_the_ledger_snapshot_and_report() -> None:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager("cpu", copy_threshold=0)
        await system.spawn(gpu, name="gpu")
        buffer = await gpu.to_device(np.ones(2 * MIB, np.uint8))
        await gpu.to_host(buffer)
        await gpu.to_host(buffer)
        stats = gpu.statistics()
        assert stats.to_device_ns > 0
        assert stats.to_host_ns > 0
        await system.metrics.flush()
        (timing,) = system.ledger.transfer_timings()  # cpu -> cpu both ways on the host
        assert (timing.src, timing.dst, timing.transfers, timing.bytes) == (
            "cpu",
            "cpu",
            3,
            6 * MIB,
        )
        assert timing.duration_ns == stats.to_device_ns + stats.to_host_ns
        snapshot = await system.metrics.snapshot("copies")
        assert snapshot.transfer_timings == (timing,)
        loaded = type(snapshot).from_msgpack(snapshot.to_msgpack())
        assert loaded.transfer_timings == (timing,)
        assert isinstance(loaded.transfer_timings[0], TransferTiming)
        assert "bandwidth" in render_snapshot(snapshot)


async def test_pinned_buffers_are_host_memory_of_their_own() -> None:
    async with open_gated() as (system, gpu):
        gate_of(gpu).gate.set()
        staging = await gpu.alloc_pinned((512, 512), np.float32, owner="loader")
        assert (staging.pinned, staging.device, staging.nbytes) == (True, "cpu", MIB)
        assert "pinned block" in repr(staging)
        staging.array[...] = 2.0
        assert await in_use(system, "gpu.pinned") == MIB
        row = system.ledger.component("gpu.pinned", "cpu")
        assert (row.live_blocks, row.allocations) == (1, 1)
        stats = gpu.statistics()
        assert (stats.pinned_buffers, stats.pinned_bytes, stats.bytes_reserved) == (1, MIB, 0)

        on_device = await gpu.to_device(staging)  # from pinned memory
        staging.array[...] = 0.0
        back = await gpu.to_host(on_device, out=staging)  # into it
        assert back.shape == (512, 512)
        assert np.shares_memory(back, staging.array)
        assert float(staging.array.sum()) == 2.0 * 512 * 512
        with pytest.raises(DeviceBufferError, match="is host memory already"):
            await gpu.to_host(staging)
        with pytest.raises(DeviceBufferError, match="to_device copies host arrays and pinned"):
            await gpu.to_device(on_device)
        with pytest.raises(DeviceBufferError, match="pinned buffers keep their size"):
            await gpu.resize(staging, 10)
        with pytest.raises(ValueError, match=r"out must be a writeable C-contiguous array of"):
            await gpu.to_host(on_device, out=np.empty(10, np.uint8))

        gpu.free(staging)
        assert await in_use(system, "gpu.pinned") == 0
        assert gpu.statistics().pinned_bytes == 0
        owners = {o.owner: o.peak_bytes_in_use for o in system.ledger.owners()}
        assert owners["loader"] == MIB
        kept = await gpu.alloc_pinned(100, np.uint8)
        await gpu.ref.stop()
        assert kept.freed
        assert await in_use(system, "gpu.pinned") == 0


async def test_a_copy_that_ends_after_its_manager_stopped_gives_its_buffer_back() -> None:
    async with open_gated() as (system, gpu):
        gated = gate_of(gpu)
        failures: list[BaseException] = []

        async def copy() -> None:
            try:
                await gpu.to_device(np.ones(MIB, np.uint8))
            except trio.ClosedResourceError as error:
                failures.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(copy)
            await held(gated)
            await gpu.ref.stop()
            gated.gate.set()
        (failure,) = failures
        assert "has stopped" in str(failure)
        assert await in_use(system) == 0
        assert gpu.statistics().bytes_reserved == 0


def test_copy_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^max_copies must be a positive int, got 0$"):
        GpuBufferManager("cpu", max_copies=0)
    with pytest.raises(ValueError, match=r"^chunk_bytes must be at least 1 byte, got 0$"):
        GpuBufferManager("cpu", chunk_bytes=0)
    gpu = GpuBufferManager(HostBackend(), copy_threshold="4 MiB", chunk_bytes="8 MiB")
    assert (gpu.copy_threshold, gpu.chunk_bytes, gpu.max_copies) == (4 * MIB, 8 * MIB, 2)
    assert gpu.backend_reason == "backend HostBackend given"


async def test_chunked_copies_copy_every_byte() -> None:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager("cpu", copy_threshold=0, chunk_bytes=1000)
        await system.spawn(gpu, name="gpu")
        data = np.random.default_rng(5).integers(0, 255, size=(37, 101), dtype=np.uint8)
        strided = data[:, ::2]  # not contiguous: copied as its C-order bytes
        buffer = await gpu.to_device(strided)
        np.testing.assert_array_equal(buffer.array, strided)
        np.testing.assert_array_equal(await gpu.to_host(buffer), strided)
        scalar = await gpu.to_device(np.float64(2.5))
        assert scalar.shape == ()
        assert float(await gpu.to_host(scalar)) == 2.5
        empty = await gpu.to_device(np.empty((0, 3)))
        assert (await gpu.to_host(empty)).shape == (0, 3)


class FullBackend(HostBackend):
    """A device that is full: every copy's allocation fails, as CuPy's would."""

    def empty_for_copy(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        raise MemoryError("out of memory allocating a copy's buffer")


@pytest.mark.parametrize("threshold", [0, "1 GiB"], ids=["in a thread", "inline"])
async def test_a_copy_whose_allocation_fails_counts_nothing(threshold: int | str) -> None:
    async with memactor.open_system() as system:
        gpu = GpuBufferManager(FullBackend(), copy_threshold=threshold)
        await system.spawn(gpu, name="gpu")
        with pytest.raises(MemoryError, match=r"^out of memory allocating"):
            await gpu.to_device(np.ones(2 * MIB, np.uint8))
        stats = gpu.statistics()
        assert (stats.bytes_reserved, stats.peak_bytes_reserved, stats.live_buffers) == (0, 0, 0)
        await system.metrics.flush()
        assert system.ledger.statistics().live_blocks == 0
        assert system.ledger.transfers() == ()


async def test_with_tracking_off_the_manager_reports_nothing() -> None:
    async with memactor.open_system(tracking=False) as system:
        gpu = GpuBufferManager("cpu", copy_threshold=0)
        await system.spawn(gpu, name="gpu")
        buffer = await gpu.to_device(np.ones(MIB, np.uint8))
        staging = await gpu.alloc_pinned(10)
        await gpu.to_host(buffer, out=np.empty(MIB, np.uint8))
        gpu.free(buffer)
        gpu.free(staging)
        await system.metrics.flush()
        assert system.ledger.statistics().events_applied == 0
        assert gpu.statistics().transfers_to_device == 1  # its own books still count
