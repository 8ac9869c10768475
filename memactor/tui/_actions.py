"""What a viewer may ask of the process it watches, beyond the views it is fed.

The feed's owner supplies the actions: in the same process they ask the metrics actor;
over a stream the client sends a request. Each method is a trio async function that the
app runs inside the feed's trio run (see :class:`~memactor.tui.MemactorApp`).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ..actors import MemorySystem
from ..metrics import Snapshot
from ..remote import fetch_snapshot


class FeedActions(Protocol):
    """Requests the TUI makes of the watched process; each runs in the feed's trio run.

    A method that raises fails that one request only: the TUI says so and goes on.
    """

    async def take_snapshot(self, label: str) -> Snapshot:
        """A full snapshot (live blocks included) taken now and kept under *label*."""
        ...


class SystemActions:
    """:class:`FeedActions` for a memory system in this process; *system* is set once
    the feed has opened it (a request before that fails with :class:`RuntimeError`)."""

    def __init__(self, system: MemorySystem | None = None) -> None:
        self.system = system

    async def take_snapshot(self, label: str) -> Snapshot:
        """Ask the metrics actor for a snapshot with its live blocks, kept under *label*."""
        if self.system is None:
            raise RuntimeError("the memory system is not open yet")
        return await self.system.metrics.snapshot(label)


class RemoteActions:
    """:class:`FeedActions` for a process served at *address*: each request is one
    connection of its own (see :func:`memactor.remote.fetch_snapshot`)."""

    def __init__(self, address: str, *, token: str | None = None) -> None:
        self.address = address
        self.token = token

    async def take_snapshot(self, label: str) -> Snapshot:
        """Ask the served metrics actor for a snapshot with its live blocks, labelled
        *label* here only: the program keeps no copy, so viewers' labels never collide
        with each other's or push out the program's own."""
        snapshot = await fetch_snapshot(self.address, token=self.token)
        return dataclasses.replace(snapshot, label=label)
