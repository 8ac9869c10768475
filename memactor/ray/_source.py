"""A memactor system inside any Ray actor or task, connected to the aggregator.

The bridge is a trio thread per worker: :class:`RaySource` runs ``trio.run`` in a
thread of its own, with the system and its source in it. Why a thread and not trio's
guest mode on the actor's asyncio loop: a Ray task and a threaded actor have no event
loop to be a guest of, and an async actor's loop also runs Ray's own method calls, so a
busy memactor round there would stall the actor's calls (and a blocking call in a
method would stall memactor's rounds and heartbeats). A thread works the same in all
three. Code in the actor reaches the system through :meth:`RaySource.run` (run an async
function in the trio thread and wait for it), :meth:`RaySource.arun` (the same, awaited
from an async actor without blocking its loop) and thread-safe reporters.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray
import trio

from ..actors import MemorySystem, open_system
from ..cluster import ClusterSource, open_source
from ..runtime import ThreadReporter
from ._aggregator import DEFAULT_NAME, DEFAULT_NAMESPACE

T = TypeVar("T")


class RaySource:
    """A memory system in a trio thread, a source of the named aggregator actor.

    Use as a context manager (``with RaySource("decoder") as memory:``), or call
    :meth:`close`. Closing sends a last update and says goodbye: the aggregator's copy
    ends equal to the system's ledger. A worker that dies without closing is marked gone
    by the aggregator (connection lost, missed heartbeats, or Ray's state API).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        aggregator: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
        rate_hz: float = 10.0,
    ) -> None:
        handle: Any = ray.get_actor(aggregator, namespace=namespace)
        addresses: Any = ray.get(handle.addresses.remote())
        address, token = str(addresses[0]), str(addresses[2])
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._system: MemorySystem | None = None
        self._source: ClusterSource | None = None
        self._thread = threading.Thread(
            target=trio.run,
            args=(self._main, address, name, rate_hz, token),
            name=f"memactor {name or 'source'}",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        context = ray.get_runtime_context()
        actor_id = context.get_actor_id()
        if actor_id is not None:
            identity = self.source.identity
            ray.get(handle.watch_actor.remote(actor_id, identity.name, identity.pid))

    async def _main(self, address: str, name: str | None, rate_hz: float, token: str) -> None:
        try:
            async with (
                open_system() as system,
                open_source(system, address, name=name, rate_hz=rate_hz, token=token) as source,
            ):
                self._system, self._source = system, source
                self._stop = trio.Event()
                self._trio_token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:
            self._failure = error
            raise
        finally:
            self._ready.set()

    @property
    def system(self) -> MemorySystem:
        """The memory system (use it only in functions given to :meth:`run`)."""
        assert self._system is not None
        return self._system

    @property
    def source(self) -> ClusterSource:
        assert self._source is not None
        return self._source

    def run(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``await function(*args, **kwargs)`` in the trio thread and return its
        result (or raise its error); blocks the calling thread meanwhile. After
        :meth:`close`, raises ``RuntimeError`` (trio is no longer running)."""
        call = functools.partial(function, *args, **kwargs)
        return trio.from_thread.run(call, trio_token=self._trio_token)

    async def arun(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """:meth:`run` from an async actor: its event loop keeps running meanwhile."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.run, function, *args, **kwargs)
        return await loop.run_in_executor(None, call)

    def reporter(
        self, component: str, *, owner: str | None = None, device: str = "cpu"
    ) -> ThreadReporter:
        """A reporter for the actor's own threads (see ``MemorySystem.thread_reporter``)."""
        return self.system.thread_reporter(component, owner=owner, device=device)

    def close(self) -> None:
        """Send a last update, say goodbye and stop the system; waits for the thread.
        Idempotent."""
        if self._stop is not None and self._thread.is_alive():
            stop = self._stop
            trio.from_thread.run_sync(stop.set, trio_token=self._trio_token)
        self._thread.join()

    def __enter__(self) -> RaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
