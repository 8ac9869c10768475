"""The one bridge between trio and asyncio: a feed runs as a trio guest on Textual's loop.

Textual runs on asyncio. The feed (a trio async function that calls ``post(item)`` for
every view) runs under :func:`trio.lowlevel.start_guest_run` on the same loop and the
same thread, so ``post`` hands each item straight to the app. Actions the app asks of
the feed's owner (a snapshot) run as trio tasks in the same run and answer through an
asyncio future. Stopping cancels the trio run and waits until it has finished, so that
everything the feed opened (a memory system, its actors, their leases) closes cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import outcome
import trio

from .._errors import sole_error
from ..remote import Feed

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FeedNote:
    """A line from the feed's owner for the events tail (``"pipeline finished"``)."""

    text: str


FeedItem = Feed | FeedNote
"""What a feed may post: views, word of a lost connection, notes."""

Post = Callable[[FeedItem], None]
"""Hands one item to the app; synchronous, never blocks, call it from the feed's trio run."""

FeedFunction = Callable[[Post], Awaitable[None]]
"""A trio async function that posts items until it returns, raises or is cancelled."""


class TrioGuest:
    """Runs one feed as a trio guest run on the running asyncio loop.

    ``on_done(error)`` is called once, on the loop, when the run ends: with ``None`` when
    the feed returned or was stopped, else with what the feed raised (single-exception
    groups unwrapped).
    """

    def __init__(
        self,
        feed: FeedFunction,
        post: Post,
        on_done: Callable[[BaseException | None], None],
    ) -> None:
        self._feed = feed
        self._post = post
        self._on_done = on_done
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._stop_requested = False
        self._done: asyncio.Future[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self.finished_normally = False
        """Whether the feed returned by itself (not stopped, not failed)."""

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done()

    def start(self) -> None:
        """Start the run on the running asyncio loop; call once."""
        if self._done is not None:
            raise RuntimeError("the feed was started already")
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        trio.lowlevel.start_guest_run(
            self._root,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=self._finished,
            host_uses_signal_set_wakeup_fd=True,
        )

    async def _root(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._stop_requested:
                scope.cancel()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._feed(self._post)
                self.finished_normally = True
                nursery.cancel_scope.cancel()  # actions still running have no feed left
        self._nursery = None

    def _finished(self, result: outcome.Outcome[None]) -> None:
        error = result.error if isinstance(result, outcome.Error) else None
        for future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the view stopped before the answer came"))
        self._pending.clear()
        assert self._done is not None
        self._done.set_result(None)
        self._on_done(None if error is None else sole_error(error))

    async def stop(self) -> None:
        """Cancel the run and wait until it has finished; a no-op if it has."""
        done = self._done
        if done is None or done.done():
            return
        self._stop_requested = True
        scope, token = self._scope, self._token
        if scope is not None and token is not None:
            token.run_sync_soon(scope.cancel)
        await asyncio.shield(done)

    async def wait(self) -> None:
        """Wait until the run has finished (started or not: returns at once if never)."""
        if self._done is not None:
            await asyncio.shield(self._done)

    def call(self, action: Callable[[], Awaitable[_T]]) -> asyncio.Future[_T]:
        """Run the trio async function *action* in the feed's run; its result or error
        arrives in the returned future. Fails at once if the run is not going."""
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        nursery, token = self._nursery, self._token
        if nursery is None or token is None or not self.running:
            future.set_exception(RuntimeError("the view is no longer live"))
            return future
        self._pending.add(future)

        async def task() -> None:
            try:
                result = await action()
            except Exception as error:
                if not future.done():
                    future.set_exception(error)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._pending.discard(future)

        def spawn() -> None:
            if self._nursery is None:
                self._pending.discard(future)
                if not future.done():
                    future.set_exception(RuntimeError("the view is no longer live"))
                return
            self._nursery.start_soon(task)

        token.run_sync_soon(spawn)
        return future
