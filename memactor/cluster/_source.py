"""A source: one process's memory system, pushing updates to an aggregator.

Every ``1 / rate_hz`` seconds the source takes a snapshot of its metrics actor (a
consistent cut, blocks included) and sends what changed since the last one (see
:mod:`._delta`). An update is never waited for: it goes to a small outbox that a writer
task empties into the socket, and one made while the outbox is full is lost and counted,
which the aggregator sees as a gap and heals by asking for a checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from ..actors import MemorySystem
from ..metrics import Snapshot
from ..remote import ProtocolError, RefusedError, RemoteError, Source, parse_address
from ..remote._client import open_stream
from ..remote._wire import (
    ERROR,
    HELLO,
    PROTOCOL_VERSION,
    REPLY_LIMITS,
    WELCOME,
    FrameReader,
    pack,
)
from ._delta import UpdateMaker, without_series
from ._wire import BYE, CHECKPOINT, DEFAULT_UPDATE_HZ, OUTBOX_UPDATES, UPDATE

CONNECT_TIMEOUT_S = 10.0
RECONNECT_S = 0.1
MAX_RECONNECT_S = 5.0
CLOSE_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class SourceStatistics:
    """A source's counts at one moment; see :meth:`ClusterSource.statistics`."""

    seq: int
    """The sequence number of the last update made."""
    updates_sent: int
    updates_lost: int
    """Updates made but never sent (a full outbox, or :meth:`ClusterSource.lose_next`)."""
    checkpoints_sent: int
    """Full updates: the first one and one per checkpoint the aggregator asked for."""
    bytes_sent: int


class ClusterSource:
    """A running source; made by :func:`open_source`."""

    def __init__(self, system: MemorySystem, identity: Source, rate_hz: float) -> None:
        self._system = system
        self.identity = identity
        """Who this source is: name, host, pid and start time."""
        self.rate_hz = rate_hz
        self._maker = UpdateMaker()
        self._send, self._pending = trio.open_memory_channel[bytes](OUTBOX_UPDATES)
        self._seq = 0
        self._sent = 0
        self._lost = 0
        self._checkpoints = 0
        self._bytes = 0
        self._checkpoint_due = True
        self._lose_next = False
        self._last: Snapshot | None = None
        self._written = trio.Event()
        self._ticking = trio.CancelScope()
        self._leaving = False
        self.connected = False
        """Whether it is connected to the aggregator now."""
        self.reconnects = 0
        """Connections made again after one was lost."""

    def statistics(self) -> SourceStatistics:
        return SourceStatistics(self._seq, self._sent, self._lost, self._checkpoints, self._bytes)

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The source's own snapshot of its last update (series left out): what the
        aggregator's copy equals once it has applied update :attr:`seq`."""
        return self._last

    def lose_next(self) -> None:
        """Make the next update and drop it unsent, as if lost on the way: for drills
        and tests of gap healing."""
        self._lose_next = True

    async def update_now(self) -> int:
        """Make and queue one update now (waiting for room in the outbox, unlike the
        periodic ones) and return its sequence number."""
        return await self._make(wait=True)

    async def _make(self, *, wait: bool) -> int:
        snapshot = without_series(await self._system.metrics.snapshot("", blocks=True))
        full = self._checkpoint_due
        body = self._maker.update(snapshot, full=full)
        self._checkpoint_due = False
        self._seq += 1
        self._last = snapshot
        if full:
            self._checkpoints += 1
        frame = pack(UPDATE, {"seq": self._seq, "body": body})
        if self._lose_next:
            self._lose_next = False
            self._lost += 1
        elif wait:
            await self._send.send(frame)
        else:
            try:
                self._send.send_nowait(frame)
            except trio.WouldBlock:
                self._lost += 1
        return self._seq

    async def _tick(self) -> None:
        with self._ticking:
            while True:
                await trio.sleep(1.0 / self.rate_hz)
                await self._make(wait=False)

    async def _converse(self, stream: trio.abc.Stream, reader: FrameReader) -> None:
        """Write updates and read checkpoint requests until the connection breaks, or
        until the outbox is closed and written out (the source is leaving)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, reader, nursery.cancel_scope)
            try:
                async for frame in self._pending:
                    await stream.send_all(frame)
                    self._sent += 1
                    self._bytes += len(frame)
                self._written.set()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()

    async def _read(self, reader: FrameReader, done: trio.CancelScope) -> None:
        try:
            while True:
                message = await reader.receive_message(REPLY_LIMITS)
                if message is None or message.type == ERROR:
                    break  # the aggregator went (or read our bye)
                if message.type == CHECKPOINT:
                    self._checkpoint_due = True
        except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
            pass
        done.cancel()

    async def _stay_connected(
        self, stream: trio.abc.Stream, reader: FrameReader, address: str, token: str | None
    ) -> None:
        """Converse; after a lost connection, connect again (0.1 s doubling up to 5 s
        between tries), drop what the outbox held (counted lost) and start over with a
        checkpoint."""
        backoff_s = RECONNECT_S
        while True:
            async with stream:
                self.connected = True
                await self._converse(stream, reader)
                self.connected = False
            if self._leaving:
                return
            self._checkpoint_due = True
            while True:
                try:
                    self._pending.receive_nowait()
                    self._lost += 1
                except trio.WouldBlock:
                    break
            while True:
                await trio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_RECONNECT_S)
                try:
                    stream, reader = await _connect(address, self.identity, token)
                except (RemoteError, OSError):
                    continue
                self.reconnects += 1
                backoff_s = RECONNECT_S
                break
            await self._make(wait=False)  # the checkpoint, now rather than at the next tick


async def _connect(
    address: str, identity: Source, token: str | None
) -> tuple[trio.abc.Stream, FrameReader]:
    stream = await open_stream(address, timeout=CONNECT_TIMEOUT_S)
    reader = FrameReader(stream, REPLY_LIMITS.max_bytes)
    try:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            await _handshake(stream, reader, identity, token)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream, reader


async def _handshake(
    stream: trio.abc.Stream, reader: FrameReader, identity: Source, token: str | None
) -> None:
    hello: dict[str, object] = {
        "version": PROTOCOL_VERSION,
        "client": "memactor source",
        "source": dataclasses.asdict(identity),
    }
    if token is not None:
        hello["token"] = token
    await stream.send_all(pack(HELLO, hello))
    welcome = await reader.receive_message(REPLY_LIMITS)
    if welcome is None:
        raise RemoteError("the aggregator closed the connection during the handshake")
    if welcome.type == ERROR:
        code = str(welcome.body.get("code", ""))
        reason = str(welcome.body.get("reason", ""))
        if code in ("token", "version"):
            raise RefusedError(f"the aggregator refused this source: {reason}", code=code)
        raise RemoteError(f"the aggregator refused this source: {reason}")
    if welcome.type != WELCOME:
        raise ProtocolError(f"expected a welcome, got a {welcome.type!r} frame")


@asynccontextmanager
async def open_source(
    system: MemorySystem,
    address: str,
    *,
    name: str | None = None,
    rate_hz: float = DEFAULT_UPDATE_HZ,
    token: str | None = None,
) -> AsyncIterator[ClusterSource]:
    """Connect *system* to the aggregator at *address* as a source while the block runs.

    *name* is the user's name for this process (default: its script's); with the host,
    the pid and the start time it names the source. The first update is a checkpoint;
    then one update goes every ``1 / rate_hz`` seconds (default 10 a second), whether
    anything changed or not (an empty one is the heartbeat). Updates never wait: one
    made while the outbox (:data:`OUTBOX_UPDATES`) is full is lost and counted, and the
    aggregator heals the gap with a checkpoint.

    The first connection must succeed: :class:`RefusedError` for a refused token or
    version, :class:`RemoteError` when the aggregator cannot be reached, ``ValueError``
    for a bad *rate_hz* or *address*. A connection lost later never stops the program:
    the source connects again (0.1 s doubling up to 5 s between tries), drops what its
    outbox held (counted lost) and starts over with a checkpoint.

    Leaving the block sends a last update (so the aggregator's copy ends equal to
    :attr:`ClusterSource.last_snapshot`) and a ``bye``, and waits up to 5 s for them to
    be written; the aggregator marks the source gone ``"closed"``. Left by a
    cancellation, the connection is cut at once and the aggregator marks the source
    ``"connection lost"``.
    """
    if not 0 < rate_hz <= 1000:
        raise ValueError(f"rate_hz must be above 0 and at most 1000, got {rate_hz}")
    parse_address(address)
    identity = Source.this_process(name=name)
    try:
        stream, reader = await _connect(address, identity, token)
    except trio.TooSlowError:
        raise RemoteError(f"{address} did not answer the hello in time") from None
    source = ClusterSource(system, identity, rate_hz)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(source._stay_connected, stream, reader, address, token)
        await source._make(wait=True)
        nursery.start_soon(source._tick)
        yield source
        source._ticking.cancel()
        if source.connected:
            await source._make(wait=True)
            source._leaving = True
            await source._send.send(pack(BYE, {}))
        source._leaving = True
        source._send.close()
        with trio.move_on_after(CLOSE_GRACE_S):
            await source._written.wait()
        nursery.cancel_scope.cancel()
