"""One viewer's connection on the server side: its bounded outbox and its writer.

The server never waits on a viewer: views are offered with ``send_nowait`` and one that
finds the outbox full is dropped (and counted). Only the viewer's own requests wait for
room, and only in that viewer's own task. A writer task per connection moves frames from
the outbox to the socket, so a viewer that stops reading fills its own outbox and kernel
buffer and nothing else.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Final

import trio

from ._wire import VIEW, error_frame, pack

OUTBOX_FRAMES: Final = 4
"""Frames a connection may have waiting to be written; views beyond are dropped."""
CLOSE_GRACE_S: Final = 1.0
"""How long a closing connection may take to write its last frames (an error, a goodbye)
and to let the viewer read them; a viewer that does not read is cut off after it."""
DRAIN_BYTES: Final = 1 << 20


@dataclass(slots=True)
class Counters:
    """The server's running counts; :class:`ServerStatistics` freezes them."""

    connections_now: int = 0
    connections_peak: int = 0
    connections_total: int = 0
    rejected: int = 0
    protocol_errors: int = 0
    views_sent: int = 0
    views_dropped: int = 0
    snapshots_sent: int = 0
    bytes_sent: int = 0
    handshakes_now: int = 0
    handshakes_peak: int = 0
    turned_away: int = 0
    idle_closed: int = 0
    accept_failures: int = 0


@dataclass(frozen=True, slots=True)
class _View:
    seq: int
    payload: bytes
    """A snapshot payload shared by every viewer of the tick."""


@dataclass(frozen=True, slots=True)
class _Frame:
    data: bytes
    """A whole frame, length included."""
    is_snapshot: bool = False


class Peer:
    """The server's side of one connection after its handshake."""

    def __init__(self, stream: trio.SocketStream, counters: Counters) -> None:
        self.stream = stream
        self._counters = counters
        self._outbox, self._pending = trio.open_memory_channel[_View | _Frame](OUTBOX_FRAMES)
        self.rate_hz: float | None = None
        """The rate it subscribed at; None until it subscribes."""
        self.seq = 0
        """Views due to it since it last subscribed, dropped ones included."""

    def offer_view(self, payload: bytes) -> None:
        """Queue a view without waiting; drop it (and count the drop) if the outbox is
        full. After :meth:`close_outbox`, does nothing."""
        self.seq += 1
        try:
            self._outbox.send_nowait(_View(self.seq, payload))
        except trio.WouldBlock:
            self._counters.views_dropped += 1
        except trio.ClosedResourceError:
            pass

    async def restart_views(self, first: bytes) -> None:
        """Queue *first* as view 1 of a new subscription, waiting for room."""
        self.seq = 1
        await self._outbox.send(_View(1, first))

    async def send(self, frame: bytes, *, is_snapshot: bool = False) -> None:
        """Queue a reply, waiting for room: only this connection's requests wait."""
        await self._outbox.send(_Frame(frame, is_snapshot))

    def close_outbox(self, *, code: str = "", reason: str = "") -> None:
        """Queue an error frame if there is room (the viewer may not be reading), and
        close the outbox: the writer writes what is queued and ends. Idempotent."""
        if code:
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                self._outbox.send_nowait(_Frame(error_frame(code, reason)))
        self._outbox.close()

    async def write(self, done: trio.CancelScope) -> None:
        """The writer task: write every queued frame, then cancel *done* (the connection's
        scope) once the outbox is closed and empty or the viewer has gone."""
        counters = self._counters
        try:
            async for item in self._pending:
                # Counted as handed to the socket: a viewer may read it before this task
                # runs again.
                if isinstance(item, _View):
                    data = pack(VIEW, {"seq": item.seq, "view": item.payload})
                    counters.views_sent += 1
                else:
                    data = item.data
                    if item.is_snapshot:
                        counters.snapshots_sent += 1
                counters.bytes_sent += len(data)
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the viewer went away
        finally:
            done.cancel()


async def linger(stream: trio.SocketStream, grace_s: float = CLOSE_GRACE_S) -> None:
    """Say we are done writing and read (and discard) what the other side still sends,
    until it closes or *grace_s* passes: closing a socket that has unread input resets
    the connection, and a reset can discard our last frame unread."""
    with trio.move_on_after(grace_s):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_eof()
            discarded = 0
            while discarded < DRAIN_BYTES:
                chunk = await stream.receive_some(1 << 16)
                if not chunk:
                    break
                discarded += len(chunk)
