"""Watch a pipeline in this process: its memory system feeds the live view directly.

``memactor.tui.run(main)`` opens a memory system, runs ``main(system)`` in it and shows
the metrics actor's views until you quit; quitting cancels the pipeline and closes the
system, so every actor stops (its ``on_stop`` runs) and every lease is released.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from .._errors import MemactorError
from ..actors import MemorySystem, open_system
from ..remote import RemoteError, Source, ViewUpdate, open_server
from ._actions import SystemActions
from ._app import MemactorApp
from ._bridge import FeedNote, Post
from ._model import Dashboard, Limits

Main = Callable[[MemorySystem], Awaitable[None]]
"""The user's pipeline: a trio async function given the open memory system."""

DEFAULT_SAMPLE_HZ = 10.0
"""Views per second, and the metrics actor's sampling rate."""
RESUBSCRIBE_DELAY_S = 0.1
"""The pause before asking a restarting metrics actor for views again."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that quit the view cleanly."""


def pipeline_app(
    main: Main,
    *,
    title: str | None = None,
    name: str | None = None,
    sample_hz: float = DEFAULT_SAMPLE_HZ,
    serve: str | bool = False,
    token: str | None = None,
    limits: Limits = (),
    **open_system_options: Any,
) -> MemactorApp:
    """The live view of ``main(system)`` in this process, not yet running.

    The feed opens ``memactor.open_system(sample_hz=sample_hz, **open_system_options)``,
    runs ``main(system)`` and posts every view of the metrics actor (at *sample_hz*)
    under the name *name* (default: *title*, else the program's name). When ``main``
    returns, a note says so and the views go on until quit; when it raises, the system
    closes, the last view stays on screen with the error, and quitting exits with 1.
    Snapshots (``s``) come from the metrics actor, with live blocks. Run it with
    ``app.run()`` or, in a test, ``app.run_test()``.

    *limits* (a pool's ``max_reserved``, a budget: :class:`~memactor.metrics.Limit`
    values, or a function returning them) are projected in the Leaks view: when the
    current growth reaches each one.

    *serve* also serves the metrics actor for ``memactor top`` in other terminals, on this
    process's socket (``True``) or the address given (see
    :func:`memactor.remote.open_server`, which also takes *token*); the header shows where.
    """
    actions = SystemActions()

    async def run_main(system: MemorySystem, post: Post) -> None:
        await main(system)
        post(FeedNote("the pipeline finished; its memory stays on view until you quit"))

    async def feed(post: Post) -> None:
        async with (
            open_system(sample_hz=sample_hz, **open_system_options) as system,
            AsyncExitStack() as serving,
        ):
            actions.system = system
            try:
                address = ""
                if serve is not False:
                    where = None if serve is True else serve
                    try:
                        server = await serving.enter_async_context(
                            open_server(system, where, token=token, name=name or title)
                        )
                    except (OSError, ValueError) as error:
                        # Said in one line when the view closes, like a refused viewer.
                        raise RemoteError(f"cannot serve: {error}") from None
                    address = server.address
                source = Source.this_process(name=name or title, address=address)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(run_main, system, post)
                    await _show_views(system, sample_hz, source, post)
            finally:
                actions.system = None

    return MemactorApp(
        feed,
        actions=actions,
        title=title,
        watching="the pipeline",
        dashboard=Dashboard(limits=limits),
    )


async def _show_views(system: MemorySystem, rate_hz: float, source: Source, post: Post) -> None:
    """Post every view until cancelled. A subscription outlives restarts of the metrics
    actor (a note says when one happened); should it end anyway, subscribe again."""
    restarts = 0
    while True:
        try:
            views = await system.metrics.subscribe(rate_hz)
        except MemactorError:
            await trio.sleep(RESUBSCRIBE_DELAY_S)  # it is restarting
            continue
        async with views:
            async for view in views:
                post(ViewUpdate(view, source))
                now = _restarts_of(system)
                if now > restarts:
                    restarts = now
                    post(FeedNote("the metrics actor restarted; its views go on"))


def _restarts_of(system: MemorySystem) -> int:
    try:
        return system.metrics.ref.statistics().restarts
    except MemactorError:
        return 0


def run(main: Main, *, headless: bool = False, **options: Any) -> int:
    """Run ``main(system)`` under the live view until you quit; return the exit code.

    0 when you quit; 1 when ``main`` (or the memory system) failed: the view then stays
    open on the last state with the error in red, and the traceback is printed once you
    quit and the view has left the screen. SIGINT and SIGTERM quit as ``q`` does
    (the pipeline is cancelled, the system closes, a server says goodbye to its viewers)
    and the code is then 128 + the signal's number: 130 or 143. *headless* runs without a
    terminal (for tests). Every other option is :func:`pipeline_app`'s (*title*, *name*,
    *sample_hz*, *serve*, *token*, *limits*, and those of ``memactor.open_system``).
    """
    app = pipeline_app(main, **options)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            app.call_later(app.action_quit)
        else:
            app.exit(return_code=128 + received[0])  # a second signal: leave at once

    async def run_app() -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await app.run_async(headless=headless)
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    asyncio.run(run_app())
    code = app.return_code or 0
    if received and code == 0:
        return 128 + received[0]
    return code
