"""Driving the app in a test: pytest-trio runs in trio mode, so each test is a plain
function that runs the app under ``asyncio.run`` and scripts it with a Pilot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from memactor.tui import MemactorApp

SIZE = (120, 40)
"""The terminal every app test and snapshot runs in."""


def drive(app: MemactorApp, script: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    """Run *app* headless at :data:`SIZE` and hand its pilot to *script*."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await script(pilot)

    asyncio.run(main())


async def wait_for(pilot: Pilot[None], ready: Callable[[], object]) -> None:
    """Pause until ``ready()`` is true; fail after a bounded number of tries."""
    for _ in range(1000):
        if ready():
            return
        await pilot.pause(0.01)
    raise AssertionError("the view never got there")
