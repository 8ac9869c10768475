"""Pipelines: a source feeding a chain of actors, each handing its results to the next.

Every stage is an ordinary actor with a bounded mailbox, so a slow stage fills the
mailbox in front of it and its producer waits: memory stays bounded by the mailboxes,
however fast the source is. A user's own stage is a :class:`Stage` subclass (or a plain
function); it reports the memory it holds through ``self.reporter`` like any actor.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..runtime import Actor, ActorRef, ActorStatistics, ActorSystem, Restart

InT = TypeVar("InT")
OutT = TypeVar("OutT")

DEFAULT_STAGE_MAILBOX = 4
"""Items that may wait in front of a stage: small, so that backpressure comes early."""


class Stage(Actor[InT, None], Generic[InT, OutT]):
    """One step of a pipeline: :meth:`process` each item; its result goes downstream.

    A result of ``None`` is dropped (a filter). Sending downstream waits while the next
    stage's mailbox is full: that wait is the backpressure. An exception in
    :meth:`process` fails the stage, and its supervision policy decides: restart it (the
    item is lost) or stop the pipeline. The last stage (the sink) has no downstream.
    """

    downstream: ActorRef[OutT, None] | None = None

    async def process(self, item: InT) -> OutT | None:
        """Turn one item into the item to send on (or ``None``). Override it."""
        raise NotImplementedError

    async def handle(self, message: InT) -> None:
        result = await self.process(message)
        if result is not None and self.downstream is not None:
            await self.downstream.send(result)


class FunctionStage(Stage[InT, OutT]):
    """A stage made of a function, sync (run in the stage's task) or async."""

    def __init__(self, fn: Callable[[InT], OutT | Awaitable[OutT | None] | None]) -> None:
        self.fn = fn

    async def process(self, item: InT) -> OutT | None:
        result = self.fn(item)
        if inspect.isawaitable(result):  # an async def, or an object with an async __call__
            awaited: OutT | None = await result
            return awaited
        return result


@dataclass(frozen=True, slots=True)
class PipelineStatistics:
    """A pipeline's counters: items fed, and every stage's actor statistics in order."""

    fed: int
    stages: tuple[ActorStatistics, ...]


class Pipeline:
    """Stages spawned in a system and chained; made by :func:`open_pipeline`."""

    def __init__(self, refs: Sequence[ActorRef[Any, None]]) -> None:
        self.stages = tuple(refs)
        """The stages' refs, source side first."""
        self._fed = 0

    async def feed(self, items: Iterable[Any] | AsyncIterable[Any]) -> int:
        """Send every item of *items* into the first stage; return how many were sent.

        Waits while the first stage's mailbox is full. If cancelled, the item being sent
        was not delivered; those before it were.
        """
        first = self.stages[0]
        sent = 0
        if isinstance(items, AsyncIterable):
            async for item in items:
                await first.send(item)
                sent += 1
                self._fed += 1
        else:
            for item in items:
                await first.send(item)
                sent += 1
                self._fed += 1
        return sent

    async def close(self) -> None:
        """Stop the stages source side first, each after it has handled all it was sent.

        When it returns, every item fed has gone through (or was dropped by a stage that
        failed). Idempotent.
        """
        for stage in self.stages:
            await stage.stop()

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(self._fed, tuple(s.statistics() for s in self.stages))


async def open_pipeline(
    system: ActorSystem,
    *stages: tuple[str, Stage[Any, Any] | Callable[[Any], Any]],
    mailbox_size: int = DEFAULT_STAGE_MAILBOX,
    restart: Restart = Restart.TRANSIENT,
) -> Pipeline:
    """Spawn *stages* (``(name, stage_or_function)`` pairs, source side first) chained.

    They are spawned sink first, so that each knows its downstream before it starts, and
    the system's shutdown (reverse start order) stops the source side first. ``restart``
    is each stage's policy (by default a failed stage is restarted, a stopped one not).
    """
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    refs: list[ActorRef[Any, None]] = []
    downstream: ActorRef[Any, None] | None = None
    try:
        for name, stage in reversed(stages):
            actor: Stage[Any, Any] = stage if isinstance(stage, Stage) else FunctionStage(stage)
            actor.downstream = downstream
            downstream = await system.spawn(
                actor, name=name, mailbox_size=mailbox_size, restart=restart
            )
            refs.append(downstream)
    except BaseException:
        # A stage could not start (a taken name, an on_start error): stop those that did.
        for ref in reversed(refs):
            await ref.stop()
        raise
    refs.reverse()
    return Pipeline(refs)


async def run_pipeline(
    system: ActorSystem,
    items: Iterable[Any] | AsyncIterable[Any],
    *stages: tuple[str, Stage[Any, Any] | Callable[[Any], Any]],
    mailbox_size: int = DEFAULT_STAGE_MAILBOX,
) -> PipelineStatistics:
    """Open a pipeline of *stages*, feed it *items*, close it; return its statistics."""
    pipeline = await open_pipeline(system, *stages, mailbox_size=mailbox_size)
    try:
        await pipeline.feed(items)
    finally:
        await pipeline.close()
    return pipeline.statistics()
