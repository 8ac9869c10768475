"""The demo pipeline: frames in, chunked processing on pooled buffers, a sink out.

A source produces seeded float32 frames; the ``decode`` stage runs them through a
:class:`ChunkProcessor` (``decode.chunks``) whose working buffers come from a
:class:`BufferPool` (``pool``); ``upload`` copies each frame to the device and back
through a :class:`GpuBufferManager` (``gpu``: CuPy on a GPU, the host backend
elsewhere); the ``enrich`` stage keeps a small header per frame for a
while; the ``sink`` folds each frame into a checksum. With ``leak``, ``enrich`` forgets
to let go of one header in ten: a steady leak that both the trend verdict and the diff
must name. Everything is real: trio actors, NumPy buffers, the metrics actor.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from ..actors import (
    BufferPool,
    ChunkProcessor,
    GpuBufferManager,
    MemorySystem,
    Stage,
    open_pipeline,
    open_system,
)
from ..metrics import Snapshot, SnapshotDiff, diff

Frame = npt.NDArray[np.float32]

FRAME_SHAPE = (256, 256)
CHUNK_SHAPE = (64, 64)
HEADER_BYTES = 16 * 1024
KEEP_HEADERS = 8
LEAK_EVERY = 10
SETTLE_S = 5.0


def _decode_chunk(chunk: Frame) -> Frame:
    """The work of a decoder, per chunk: a little arithmetic over every element."""
    return np.sqrt(np.abs(chunk) + 1.0, dtype=np.float32)


async def _decode_chunk_in_trio(chunk: Frame) -> Frame:
    """The same work in the trio thread (no worker threads: a mock clock then decides
    every moment of the run)."""
    return _decode_chunk(chunk)


class Decode(Stage[Frame, Frame]):
    """Hands each frame to the chunk processor and sends the result on."""

    def __init__(self, chunks: ChunkProcessor) -> None:
        self.chunks = chunks

    async def process(self, item: Frame) -> Frame:
        return await self.chunks.process(item)


class Enrich(Stage[Frame, Frame]):
    """Keeps a header buffer per frame, the last few only; with *leak*, one in ten stays."""

    def __init__(self, *, leak: bool) -> None:
        self.leak = leak
        self.headers: list[tuple[int, npt.NDArray[np.uint8]]] = []
        self.leaked: list[npt.NDArray[np.uint8]] = []
        self.seen = 0

    async def process(self, item: Frame) -> Frame:
        reporter = self.reporter
        header = np.full(HEADER_BYTES, self.seen % 256, dtype=np.uint8)
        block = reporter.next_block()
        reporter.alloc(block, header.nbytes)
        self.seen += 1
        if self.leak and self.seen % LEAK_EVERY == 0:
            self.leaked.append(header)  # the bug: kept for ever, never freed
        else:
            self.headers.append((block, header))
        while len(self.headers) > KEEP_HEADERS:
            old_block, old = self.headers.pop(0)
            reporter.free(old_block, old.nbytes)
        return item

    async def on_stop(self) -> None:
        for block, header in self.headers:
            self.reporter.free(block, header.nbytes)
        self.headers.clear()


class Upload(Stage[Frame, Frame]):
    """Copies each frame to the device and back through the GPU manager (a real GPU
    with CuPy, the host backend elsewhere), holding the device copy in between."""

    def __init__(self, gpu: GpuBufferManager) -> None:
        self.gpu = gpu

    async def process(self, item: Frame) -> Frame:
        buffer = await self.gpu.to_device(item, owner=self.name)
        try:
            back: Frame = await self.gpu.to_host(buffer)
        finally:
            self.gpu.free(buffer)
        return back


class Sink(Stage[Frame, None]):
    """Folds every frame into a checksum."""

    def __init__(self) -> None:
        self.frames = 0
        self.checksum = 0.0

    async def process(self, item: Frame) -> None:
        self.frames += 1
        self.checksum += float(item.sum(dtype=np.float64))


@dataclass(frozen=True)
class PipelineRun:
    """What a demo run produced."""

    frames: int
    checksum: float
    warm: Snapshot
    """After a fifth of the run."""
    end: Snapshot
    """After the pipeline drained and stopped."""
    change: SnapshotDiff
    """From ``warm`` to the moment every frame fed had reached the sink (``"fed"``),
    while the stages still held their working state."""
    elapsed_s: float


async def _frames(
    rng: np.random.Generator, items: int | None, seconds: float | None, interval_s: float
) -> AsyncIterator[Frame]:
    deadline = trio.current_time() + seconds if seconds is not None else math.inf
    produced = 0
    while (items is None or produced < items) and trio.current_time() < deadline:
        yield rng.standard_normal(FRAME_SHAPE, dtype=np.float32)
        produced += 1
        await trio.sleep(interval_s)


async def run_pipeline_demo(
    *,
    items: int | None = None,
    seconds: float | None = None,
    leak: bool = False,
    tracking: bool = True,
    seed: int = 1,
    concurrency: int = 2,
    frame_interval_s: float = 0.0,
    threads: bool = True,
    system_options: dict[str, Any] | None = None,
) -> PipelineRun:
    """Run the demo pipeline for *items* frames or *seconds*, whichever ends first.

    See :class:`PipelineRun` for the snapshots. With *tracking* false the reporters are
    no-ops (for the benchmark). *frame_interval_s* and *threads* are :func:`run_demo_in`'s.
    """
    if items is None and seconds is None:
        raise ValueError("give items or seconds (or both)")
    async with open_system(tracking=tracking, **(system_options or {})) as system:
        return await run_demo_in(
            system,
            items=items,
            seconds=seconds,
            leak=leak,
            seed=seed,
            concurrency=concurrency,
            frame_interval_s=frame_interval_s,
            threads=threads,
        )


async def run_demo_in(
    system: MemorySystem,
    *,
    items: int | None = None,
    seconds: float | None = None,
    leak: bool = False,
    seed: int = 1,
    concurrency: int = 2,
    frame_interval_s: float = 0.0,
    threads: bool = True,
) -> PipelineRun:
    """Run the demo pipeline in an open *system* (the live view opens its own); with
    neither *items* nor *seconds* it runs until cancelled. The stages are stopped when it
    returns; the pool, the chunk processor and the GPU manager go on until the system
    closes.

    The source sleeps *frame_interval_s* after each frame (0: it only yields). With
    *threads* false the chunks are decoded in the trio thread rather than in worker
    threads, so that under trio's autojump clock (with the system's ``clock`` reading
    trio time) a run is the same in every detail, however loaded the machine."""
    rng = np.random.default_rng(seed)
    start = trio.current_time()
    pool = BufferPool(max_cached="16 MiB")
    await system.spawn(pool, name="pool")
    decode = _decode_chunk if threads else _decode_chunk_in_trio
    chunks = ChunkProcessor(decode, CHUNK_SHAPE, pool=pool, concurrency=concurrency)
    await system.spawn(chunks, name="decode.chunks")
    gpu = GpuBufferManager("auto")
    await system.spawn(gpu, name="gpu")
    sink = Sink()
    pipeline = await open_pipeline(
        system,
        ("decode", Decode(chunks)),
        ("upload", Upload(gpu)),
        ("enrich", Enrich(leak=leak)),
        ("sink", sink),
    )
    frames = _frames(rng, items, seconds, frame_interval_s)
    warm, fed = await _feed(system, pipeline.feed, sink, frames, items, seconds)
    # Compare like with like: the stages still hold their working state in both.
    done = await _settle(system, sink, fed, "fed")
    await pipeline.close()
    await system.metrics.flush()
    end = await system.metrics.snapshot("end")
    return PipelineRun(
        sink.frames, sink.checksum, warm, end, diff(warm, done), trio.current_time() - start
    )


async def _settle(system: MemorySystem, sink: Sink, fed: int, label: str) -> Snapshot:
    """Wait until every frame fed has reached the sink, then take a snapshot.

    A frame lost to a failed (and restarted) stage never arrives: after a few quiet
    seconds the snapshot is taken anyway.
    """
    with trio.move_on_after(SETTLE_S):
        while sink.frames < fed:
            await trio.sleep(0.005)
    await system.metrics.flush()
    return await system.metrics.snapshot(label)


async def _feed(
    system: MemorySystem,
    feed: Any,
    sink: Sink,
    frames: AsyncIterator[Frame],
    items: int | None,
    seconds: float | None,
) -> tuple[Snapshot, int]:
    """Feed *frames*, taking the warm snapshot a fifth of the way through (and not before
    the stages hold their full working state); return it and how many frames were fed."""
    warm_after_items = max(2 * KEEP_HEADERS, items // 5 if items is not None else 0)
    warm_at = trio.current_time() + seconds / 5 if seconds is not None else -math.inf
    warm: Snapshot | None = None
    fed = 0
    async for frame in frames:
        await feed([frame])
        fed += 1
        if warm is None and fed >= warm_after_items and trio.current_time() >= warm_at:
            warm = await _settle(system, sink, fed, "warm")
    if warm is None:
        warm = await _settle(system, sink, fed, "warm")
    return warm, fed
