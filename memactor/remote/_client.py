"""The stream client: connect to a metrics server, fetch a snapshot, watch its views."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import trio

from ..codec import CodecError
from ..metrics import Snapshot
from ._address import UnixAddress, find_servers, parse_address
from ._errors import ProtocolError, RefusedError, RemoteError
from ._feed import ConnectionLost, Feed, Source, ViewUpdate
from ._wire import (
    ERROR,
    HELLO,
    MAX_RATE_HZ,
    PING,
    PONG,
    PROTOCOL_VERSION,
    REPLY_LIMITS,
    SNAPSHOT,
    SUBSCRIBE,
    VIEW,
    WELCOME,
    FrameReader,
    Message,
    get_field,
    pack,
    rate_allowed,
)

DEFAULT_RATE_HZ: Final = 10.0
DEFAULT_TIMEOUT_S: Final = 10.0
FIRST_RETRY_S: Final = 0.1
""":func:`watch` waits this long before its first retry, then doubles the wait..."""
MAX_RETRY_S: Final = 2.0
"""... up to this; a connection that gets as far as a welcome resets it."""
KEEPALIVE_S: Final = 5.0
"""While it waits for a view, a connection pings the server when it has sent nothing for
this long (so the server knows it is alive), and gives the server up as gone when it has
received nothing, views and pongs alike, for :data:`SILENT_PINGS` times as long."""
SILENT_PINGS: Final = 3


class Connection:
    """One connection to a metrics server, past its handshake; made by :func:`connect`.

    Use it from one task at a time. Every method raises :class:`RemoteError` when the
    connection breaks or the server sends something it should not; after that, or after
    the ``async with`` block, the connection is closed and every method raises it too.
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        reader: FrameReader,
        address: str,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._stream = stream
        self._reader = reader
        self.address = address
        """The address it was opened with."""
        self.source = Source("", 0, "", 0, address)
        """The process at the other end, as its server describes it."""
        self._last_seq = 0
        self._next_ping = 0
        self._keepalive_s = keepalive_s
        self._ping_at = trio.current_time() + keepalive_s

    async def snapshot(self, label: str = "", *, blocks: bool = True) -> Snapshot:
        """A snapshot from the server's metrics actor, labelled *label*. The label is this
        viewer's own: the program does not keep the snapshot, so a viewer never evicts the
        labelled snapshots the program keeps for its diffs. Views that arrive meanwhile
        are skipped (counted as missed)."""
        await self._send(SNAPSHOT, {"label": label, "blocks": blocks})
        message = await self._receive_reply()
        if message.type != SNAPSHOT:
            raise ProtocolError(f"expected a snapshot, got a {message.type!r} frame")
        try:
            return Snapshot.from_dict(message.body)
        except CodecError as error:
            raise ProtocolError(f"a damaged snapshot: {error}") from None

    async def ping(self) -> None:
        """Ask for a pong and wait for it (views meanwhile are skipped)."""
        await self._send_ping()
        message = await self._receive_reply(self._next_ping)
        if message.type != PONG or message.body.get("id") != self._next_ping:
            raise ProtocolError(f"expected pong {self._next_ping}, got a {message.type!r} frame")

    async def subscribe(self, rate_hz: float = DEFAULT_RATE_HZ) -> None:
        """Ask for views at *rate_hz*; the first carries the time series, later ones not.
        Subscribing again changes the rate and starts over (series included)."""
        _check_rate(rate_hz)
        await self._send(SUBSCRIBE, {"rate_hz": float(rate_hz)})
        self._last_seq = 0

    async def receive_view(self) -> tuple[Snapshot, int]:
        """The next view and how many were dropped just before it (the viewer was slow).

        While it waits it keeps the connection alive: a ping after ``keepalive_s`` without
        sending, and :class:`RemoteError` after :data:`SILENT_PINGS` times ``keepalive_s``
        with nothing received (a server that stays connected but stopped sending).
        Cancelling it loses nothing: a frame half received is finished by the next call.
        """
        while True:
            message = await self._receive_keeping_alive()
            if message.type != VIEW:
                continue  # a late pong or snapshot
            seq = get_field(message, "seq", int)
            payload = get_field(message, "view", bytes)
            try:
                view = Snapshot.from_msgpack(payload)
            except CodecError as error:
                raise ProtocolError(f"a damaged view: {error}") from None
            missed = max(0, seq - self._last_seq - 1)
            self._last_seq = seq
            return view, missed

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._stream.aclose()

    async def _send_ping(self) -> None:
        self._next_ping += 1
        await self._send(PING, {"id": self._next_ping})

    async def _receive_keeping_alive(self) -> Message:
        silent_s = SILENT_PINGS * self._keepalive_s
        give_up_at = trio.current_time() + silent_s
        while True:
            with trio.move_on_at(min(self._ping_at, give_up_at)):
                # Cancelled only between chunks: FrameReader keeps what it has read.
                return await self._receive()
            if trio.current_time() >= give_up_at:
                raise RemoteError(f"{self.address} sent nothing for {silent_s:g} s")
            await self._send_ping()

    async def _send(self, type_: str, body: dict[str, object]) -> None:
        self._ping_at = trio.current_time() + self._keepalive_s
        try:
            await self._stream.send_all(pack(type_, body))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise RemoteError(f"the connection to {self.address} broke ({error})") from None

    async def _receive_reply(self, ping_id: int | None = None) -> Message:
        """The next frame that is not a view, nor the pong of an earlier ping."""
        while True:
            message = await self._receive()
            if message.type == VIEW:
                continue
            if message.type == PONG and message.body.get("id") != ping_id:
                continue  # the late answer to a keepalive ping
            return message

    async def _receive(self) -> Message:
        try:
            message = await self._reader.receive_message(REPLY_LIMITS)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise RemoteError(f"the connection to {self.address} broke ({error})") from None
        if message is None:
            raise RemoteError(f"{self.address} closed the connection")
        if message.type == ERROR:
            raise _server_error(self.address, message)
        return message

    async def _handshake(self, token: str | None, name: str) -> None:
        hello: dict[str, object] = {"version": PROTOCOL_VERSION, "client": name}
        if token is not None:
            hello["token"] = token
        await self._send(HELLO, hello)
        welcome = await self._receive()
        if welcome.type != WELCOME:
            raise ProtocolError(f"expected a welcome, got a {welcome.type!r} frame")
        version = welcome.body.get("version")
        if version != PROTOCOL_VERSION:
            raise RefusedError(
                f"{self.address} speaks protocol version {version!r}, this client "
                f"{PROTOCOL_VERSION}; use the same memactor version on both sides",
                code="version",
            )
        source = get_field(welcome, "source", dict)
        try:
            self.source = Source(
                name=str(source["name"]),
                pid=int(source["pid"]),
                host=str(source["host"]),
                started_wall_ns=int(source["started_wall_ns"]),
                address=str(source["address"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("a welcome with a damaged source") from None


def _server_error(address: str, message: Message) -> RemoteError:
    code = str(message.body.get("code", ""))
    reason = str(message.body.get("reason", "no reason given"))
    if code in ("token", "version"):
        return RefusedError(f"{address} refused the connection: {reason}", code=code)
    return RemoteError(f"{address} closed the connection: {reason}")


def _check_rate(rate_hz: float) -> None:
    # A server closes the connection of a faster subscribe: refused here, not retried.
    if not rate_allowed(rate_hz):
        raise ValueError(f"rate_hz must be above 0 and at most {MAX_RATE_HZ:g}, got {rate_hz}")


async def open_stream(address: str, *, timeout: float) -> trio.SocketStream:
    """A socket connected to *address* (any form :func:`parse_address` takes).

    Raises ``ValueError`` for an address that does not parse, and :class:`RemoteError`
    when nothing answers there within *timeout* seconds.
    """
    where = parse_address(address)
    try:
        with trio.fail_after(timeout):
            if isinstance(where, UnixAddress):
                return await trio.open_unix_socket(where.path)
            return await trio.open_tcp_stream(where.host, where.port)
    except OSError as error:
        raise RemoteError(f"cannot connect to {address}: {error.strerror or error}") from None
    except trio.TooSlowError:
        raise RemoteError(f"cannot connect to {address} within {timeout:g} s") from None


@asynccontextmanager
async def connect(
    address: str,
    *,
    token: str | None = None,
    name: str = "memactor",
    timeout: float = DEFAULT_TIMEOUT_S,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[Connection]:
    """Connect to the server at *address* and shake hands; closed when the block is left.

    *name* tells the server who is asking. *keepalive_s* paces the pings that
    :meth:`Connection.receive_view` sends while it waits, and how long it waits for a
    silent server (:data:`SILENT_PINGS` times as long); a server closes a connection
    that sends nothing for its idle timeout (30 s by default), so between calls that
    wait for views, call :meth:`Connection.ping` now and then.

    Raises ``ValueError`` for an address that does not parse or a *keepalive_s* not above
    0, :class:`RefusedError` when the server refuses the token or the version, and
    :class:`RemoteError` when it cannot be reached or does not answer the hello within
    *timeout* seconds.
    """
    parse_address(address)
    if not keepalive_s > 0:
        raise ValueError(f"keepalive_s must be above 0, got {keepalive_s}")
    stream = await open_stream(address, timeout=timeout)
    async with stream:
        reader = FrameReader(stream, REPLY_LIMITS.max_bytes)
        connection = Connection(stream, reader, address, keepalive_s)
        try:
            with trio.fail_after(timeout):
                await connection._handshake(token, name)
        except trio.TooSlowError:
            raise RemoteError(f"{address} did not answer the hello within {timeout:g} s") from None
        yield connection


async def fetch_snapshot(
    address: str,
    *,
    label: str = "",
    blocks: bool = True,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Snapshot:
    """One snapshot from the server at *address* (blocks included unless told), taken
    over one connection and labelled *label* here (the program does not keep it).

    Raises what :func:`connect` raises, and :class:`RemoteError` when the whole exchange
    takes more than *timeout* seconds.
    """
    with trio.move_on_after(timeout):
        async with connect(address, token=token, name="memactor snapshot", timeout=timeout) as c:
            return await c.snapshot(label, blocks=blocks)
    raise RemoteError(f"no snapshot from {address} within {timeout:g} s")


async def watch(
    address: str,
    post: Callable[[Feed], None],
    *,
    token: str | None = None,
    rate_hz: float = DEFAULT_RATE_HZ,
    name: str = "memactor top",
    keepalive_s: float = KEEPALIVE_S,
) -> None:
    """Watch the server at *address* until cancelled, handing *post* everything seen.

    Each view becomes a :class:`ViewUpdate` (its ``missed``: views dropped just before it
    because this viewer read too slowly). When the connection cannot be made or breaks,
    *post* gets a :class:`ConnectionLost` and ``watch`` tries again after
    :data:`FIRST_RETRY_S`, doubling the wait up to :data:`MAX_RETRY_S`; a connection that
    is welcomed resets the wait. A server that stays connected but sends nothing, not
    even the pongs of the pings sent every *keepalive_s*, for :data:`SILENT_PINGS` times
    *keepalive_s* (15 s by default) counts as a broken connection too.
    *post* is called from this task and must not block.

    Raises ``ValueError`` for a bad address or rate at once, and :class:`RefusedError`
    when the server refuses the token or the version (retrying cannot help). Cancelling
    it closes the connection.
    """
    parse_address(address)
    _check_rate(rate_hz)
    if not keepalive_s > 0:
        raise ValueError(f"keepalive_s must be above 0, got {keepalive_s}")
    attempt = 0
    delay_s = FIRST_RETRY_S
    while True:
        try:
            async with connect(
                address, token=token, name=name, keepalive_s=keepalive_s
            ) as connection:
                attempt, delay_s = 0, FIRST_RETRY_S
                await connection.subscribe(rate_hz)
                while True:
                    view, missed = await connection.receive_view()
                    post(ViewUpdate(view, connection.source, missed))
        except RefusedError:
            raise
        except RemoteError as error:
            reason = str(error)
        attempt += 1
        post(ConnectionLost(reason, delay_s, attempt))
        await trio.sleep(delay_s)
        delay_s = min(delay_s * 2, MAX_RETRY_S)


async def follow(
    address: str,
    post: Callable[[Feed], None],
    *,
    token: str | None = None,
    rate_hz: float = DEFAULT_RATE_HZ,
    name: str = "memactor top",
    moved: Callable[[str], None] | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> None:
    """:func:`watch` the local server at *address*, and follow the program when it comes
    back elsewhere.

    A program serving on its default socket serves on a new one when it restarts (the
    socket is named by its pid). So whenever the connection is lost and exactly one
    other server runs in :func:`runtime_dir`, ``follow`` switches to it and calls
    ``moved(new_address)``. Otherwise it behaves as :func:`watch`, until cancelled.
    """
    current = address
    while True:
        with trio.CancelScope() as watching:

            def relay(item: Feed) -> None:
                nonlocal current
                post(item)
                if isinstance(item, ConnectionLost):
                    found = find_servers()
                    if len(found) == 1 and found[0] != current:
                        current = found[0]
                        if moved is not None:
                            moved(current)
                        watching.cancel()

            await watch(
                current, relay, token=token, rate_hz=rate_hz, name=name, keepalive_s=keepalive_s
            )
